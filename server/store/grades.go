package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

// Grade is one stored grade of an exercise.
type Grade struct {
	ID      int64
	Sandbox string
	// Owner is the owner of the sandbox when it was graded; it keeps
	// the grade visible to them after the sandbox is gone.
	Owner    string
	Lab      string
	LabHash  string
	Exercise string
	Time     time.Time
	Score    int
	Max      int
	Passed   bool
	Duration time.Duration
	Report   []byte // JSON, as the grader produced it
}

// AddGrade stores a grade and returns its id. It is durable once AddGrade
// returns (WAL, synchronous commit).
func (s *Store) AddGrade(ctx context.Context, g *Grade) (int64, error) {
	if g.Sandbox == "" || g.Exercise == "" {
		return 0, fmt.Errorf("add grade: sandbox and exercise are required: %w", ErrInvalid)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO grades
		(sandbox, owner, lab, lab_hash, exercise, time, score, max_score, passed, duration, report)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.Sandbox, g.Owner, g.Lab, g.LabHash, g.Exercise, nanos(g.Time), g.Score, g.Max, g.Passed, int64(g.Duration), g.Report)
	if err != nil {
		return 0, fmt.Errorf("add grade of %s/%s: %w", g.Sandbox, g.Exercise, err)
	}
	return res.LastInsertId()
}

// ListGrades returns a sandbox's grades newest first, optionally of one
// exercise, at most limit after pageToken; it returns the next token or "".
func (s *Store) ListGrades(ctx context.Context, sandbox, exercise string, limit int, pageToken string) ([]*Grade, string, error) {
	return s.ListGradesIn(ctx, Scope{All: true}, sandbox, exercise, limit, pageToken)
}

// ListGradesIn is ListGrades of the grades in scope only (by the owner
// each grade recorded).
func (s *Store) ListGradesIn(ctx context.Context, scope Scope, sandbox, exercise string, limit int, pageToken string) ([]*Grade, string, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	before := int64(1<<63 - 1)
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err == nil {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || before <= 0 {
			return nil, "", fmt.Errorf("list grades: bad page token: %w", ErrInvalid)
		}
	}
	cond, args := scope.where("owner")
	args = append([]any{sandbox, exercise, exercise, before}, args...)
	rows, err := s.r.QueryContext(ctx, `SELECT id, sandbox, owner, lab, lab_hash, exercise, time, score, max_score, passed, duration, report
		FROM grades WHERE sandbox = ? AND (? = '' OR exercise = ?) AND id < ? AND `+cond+` ORDER BY id DESC LIMIT ?`,
		append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list grades of %s: %w", sandbox, err)
	}
	defer rows.Close()
	var out []*Grade
	for rows.Next() {
		var g Grade
		var t, d int64
		if err := rows.Scan(&g.ID, &g.Sandbox, &g.Owner, &g.Lab, &g.LabHash, &g.Exercise, &t, &g.Score, &g.Max, &g.Passed, &d, &g.Report); err != nil {
			return nil, "", fmt.Errorf("list grades of %s: %w", sandbox, err)
		}
		g.Time, g.Duration = fromNanos(t), time.Duration(d)
		out = append(out, &g)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list grades of %s: %w", sandbox, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(out[limit-1].ID, 10)))
	}
	return out, next, nil
}
