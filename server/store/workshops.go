package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Workshop is one workshop row.
type Workshop struct {
	ID  string // "w-" + 6 hex
	Lab string
	// TTL is each learner's sandbox lifetime; 0 means the server's default.
	TTL time.Duration
	// Creator is the subject of the caller who made the workshop.
	Creator string
	// InstructorToken is the id of the workshop's instructor token.
	InstructorToken string
	Created         time.Time
	Deleted         time.Time // zero while the workshop is live
	Learners        int       // roster size
}

// Learner is one learner of a workshop's roster, with their current
// sandbox.
type Learner struct {
	Workshop, Name string
	Token          string // token id
	// Sandbox is the last sandbox provisioned for the learner by the
	// workshop ("" if none); Failure says why the last provisioning failed.
	Sandbox, Failure string
	// Current is the learner's newest sandbox row (made by the workshop
	// or by the learner), nil when they have none.
	Current *LearnerSandbox
}

// LearnerSandbox is the part of a sandbox row a roster shows.
type LearnerSandbox struct {
	ID      string
	State   State
	Failure string
}

// Subject is the learner's token subject and sandbox owner.
func (l *Learner) Subject() string { return LearnerSubject(l.Workshop, l.Name) }

// LearnerSubject is the subject of learner name of workshop ws:
// "<ws>/<name>".
func LearnerSubject(ws, name string) string { return ws + "/" + name }

// ParseLearnerSubject splits a subject made by LearnerSubject; ok is
// false for any other subject ("uid:1000", an instructor's).
func ParseLearnerSubject(subject string) (ws, name string, ok bool) {
	ws, name, ok = strings.Cut(subject, "/")
	if !ok || !ValidWorkshopID(ws) || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return ws, name, true
}

// InstructorSubject is the subject of workshop ws's instructor token. It
// has no '/', so it is never taken for a learner's.
func InstructorSubject(ws string) string { return ws + ":instructor" }

// ValidWorkshopID reports whether id has the form NewWorkshopID makes.
func ValidWorkshopID(id string) bool {
	if len(id) != 8 || !strings.HasPrefix(id, "w-") {
		return false
	}
	for _, c := range id[2:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// NewWorkshopID returns a random workshop id, "w-" and 6 hex digits.
func NewWorkshopID() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("w-%x", b)
}

// NewWorkshop is what CreateWorkshop writes.
type NewWorkshop struct {
	ID, Lab, Creator string
	TTL              time.Duration
	Learners         []string // roster names, validated by the caller
}

// WorkshopSecrets are the token secrets of a new workshop, shown once.
type WorkshopSecrets struct {
	Instructor string
	Learners   []string // in roster order
}

// CreateWorkshop writes a workshop, its roster, a learner token for each
// learner and an instructor token, all in one transaction: on any failure
// nothing is written. It fails with ErrAlreadyExists when the id is taken.
func (s *Store) CreateWorkshop(ctx context.Context, nw NewWorkshop) (*Workshop, *WorkshopSecrets, error) {
	if !ValidWorkshopID(nw.ID) || nw.Lab == "" || len(nw.Learners) == 0 {
		return nil, nil, fmt.Errorf("create workshop %q: id, lab and learners are required: %w", nw.ID, ErrInvalid)
	}
	w := &Workshop{ID: nw.ID, Lab: nw.Lab, TTL: nw.TTL, Creator: nw.Creator, Created: time.Now().UTC(), Learners: len(nw.Learners)}
	sec := &WorkshopSecrets{Learners: make([]string, len(nw.Learners))}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM workshops WHERE id = ?`, nw.ID).Scan(&one); {
		case err == nil:
			return ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		secret, t, err := insertTokenRetry(ctx, tx, RoleInstructor, InstructorSubject(nw.ID), nw.ID)
		if err != nil {
			return err
		}
		sec.Instructor, w.InstructorToken = secret, t.ID
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO workshops (id, lab, ttl, creator, instructor_token, created) VALUES (?, ?, ?, ?, ?, ?)`,
			w.ID, w.Lab, int64(w.TTL), w.Creator, w.InstructorToken, nanos(w.Created)); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO learners (workshop, name, seq, token) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, name := range nw.Learners {
			secret, t, err := insertTokenRetry(ctx, tx, RoleLearner, LearnerSubject(nw.ID, name), nw.ID)
			if err != nil {
				return fmt.Errorf("learner %q: %w", name, err)
			}
			sec.Learners[i] = secret
			if _, err := ins.ExecContext(ctx, nw.ID, name, i, t.ID); err != nil {
				return fmt.Errorf("learner %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create workshop %s: %w", nw.ID, err)
	}
	return w, sec, nil
}

// insertTokenRetry is insertToken with a fresh id when the random one
// is taken. A failed statement leaves SQLite's transaction usable.
func insertTokenRetry(ctx context.Context, tx *sql.Tx, role, subject, ws string) (string, *Token, error) {
	for try := 0; ; try++ {
		secret, t, err := insertToken(ctx, tx, role, subject, ws)
		var se sqlite3.Error
		if err != nil && errors.As(err, &se) && se.Code == sqlite3.ErrConstraint && try < 3 {
			continue
		}
		return secret, t, err
	}
}

const workshopCols = `id, lab, ttl, creator, instructor_token, created, deleted,
	(SELECT COUNT(*) FROM learners l WHERE l.workshop = workshops.id)`

func scanWorkshop(row interface{ Scan(...any) error }) (*Workshop, error) {
	var (
		w                     Workshop
		ttl, created, deleted int64
	)
	if err := row.Scan(&w.ID, &w.Lab, &ttl, &w.Creator, &w.InstructorToken, &created, &deleted, &w.Learners); err != nil {
		return nil, err
	}
	w.TTL, w.Created, w.Deleted = time.Duration(ttl), fromNanos(created), fromNanos(deleted)
	return &w, nil
}

// GetWorkshop returns a workshop, deleted or not, or ErrNotFound.
func (s *Store) GetWorkshop(ctx context.Context, id string) (*Workshop, error) {
	w, err := scanWorkshop(s.r.QueryRowContext(ctx, `SELECT `+workshopCols+` FROM workshops WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("workshop %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("workshop %q: %w", id, err)
	}
	return w, nil
}

// WorkshopFilter narrows ListWorkshops.
type WorkshopFilter struct {
	ShowDeleted bool
	// Scoped keeps only the workshop whose id is ID and those whose
	// creator is Creator (an instructor's view); "" matches nothing.
	Scoped      bool
	ID, Creator string
}

// ListWorkshops returns workshops newest first (created desc, id desc),
// at most limit after pageToken, and the next page's token or "".
func (s *Store) ListWorkshops(ctx context.Context, f WorkshopFilter, limit int, pageToken string) ([]*Workshop, string, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	var (
		where []string
		args  []any
	)
	if !f.ShowDeleted {
		where = append(where, `deleted = 0`)
	}
	if f.Scoped {
		where = append(where, `((id = ? AND ? != '') OR (creator = ? AND ? != ''))`)
		args = append(args, f.ID, f.ID, f.Creator, f.Creator)
	}
	if pageToken != "" {
		created, id, err := decodePageToken(pageToken)
		if err != nil {
			return nil, "", fmt.Errorf("list workshops: %w", err)
		}
		where = append(where, `(created, id) < (?, ?)`)
		args = append(args, created, id)
	}
	q := `SELECT ` + workshopCols + ` FROM workshops`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list workshops: %w", err)
	}
	defer rows.Close()
	var out []*Workshop
	for rows.Next() {
		w, err := scanWorkshop(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list workshops: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list workshops: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = encodePageToken(nanos(last.Created), last.ID)
	}
	return out, next, nil
}

// learnerQuery reads learners with their newest sandbox, which the
// sandboxes_owner index finds per learner.
const learnerQuery = `SELECT l.workshop, l.name, l.token, l.sandbox, l.failure,
	COALESCE(s.id, ''), COALESCE(s.state, ''), COALESCE(s.failure, '')
	FROM learners l LEFT JOIN sandboxes s ON s.id = (
		SELECT id FROM sandboxes WHERE owner = l.workshop || '/' || l.name
		ORDER BY created DESC, id DESC LIMIT 1)`

func scanLearner(row interface{ Scan(...any) error }) (*Learner, error) {
	var (
		l                 Learner
		sid, sst, sfailed string
	)
	if err := row.Scan(&l.Workshop, &l.Name, &l.Token, &l.Sandbox, &l.Failure, &sid, &sst, &sfailed); err != nil {
		return nil, err
	}
	if sid != "" {
		l.Current = &LearnerSandbox{ID: sid, State: State(sst), Failure: sfailed}
	}
	return &l, nil
}

// WorkshopLearners returns a workshop's roster in order, each learner with
// their newest sandbox.
func (s *Store) WorkshopLearners(ctx context.Context, ws string) ([]*Learner, error) {
	rows, err := s.r.QueryContext(ctx, learnerQuery+` WHERE l.workshop = ? ORDER BY l.seq`, ws)
	if err != nil {
		return nil, fmt.Errorf("learners of workshop %q: %w", ws, err)
	}
	defer rows.Close()
	var out []*Learner
	for rows.Next() {
		l, err := scanLearner(rows)
		if err != nil {
			return nil, fmt.Errorf("learners of workshop %q: %w", ws, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("learners of workshop %q: %w", ws, err)
	}
	return out, nil
}

// GetLearner returns one learner, or ErrNotFound.
func (s *Store) GetLearner(ctx context.Context, ws, name string) (*Learner, error) {
	l, err := scanLearner(s.r.QueryRowContext(ctx, learnerQuery+` WHERE l.workshop = ? AND l.name = ?`, ws, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("learner %q of workshop %q: %w", name, ws, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("learner %q of workshop %q: %w", name, ws, err)
	}
	return l, nil
}

// SetLearnerSandbox records the outcome of provisioning a learner's
// sandbox: the sandbox made, or (sandbox "") why it failed. A failure
// keeps the last sandbox id, which a report still shows.
func (s *Store) SetLearnerSandbox(ctx context.Context, ws, name, sandbox, failure string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE learners SET
		sandbox = CASE WHEN ?1 = '' THEN sandbox ELSE ?1 END, failure = ?2
		WHERE workshop = ?3 AND name = ?4`, sandbox, failure, ws, name)
	if err != nil {
		return fmt.Errorf("record sandbox of learner %q of workshop %q: %w", name, ws, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record sandbox of learner %q of workshop %q: %w", name, ws, err)
	} else if n == 0 {
		return fmt.Errorf("learner %q of workshop %q: %w", name, ws, ErrNotFound)
	}
	return nil
}

// DeleteWorkshop marks a workshop deleted (the first time only) and
// revokes its tokens in the same transaction; it returns the workshop and
// how many tokens it revoked. ErrNotFound if there is no such workshop.
func (s *Store) DeleteWorkshop(ctx context.Context, id string) (*Workshop, int, error) {
	var (
		w       *Workshop
		revoked int64
	)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := nanos(time.Now())
		res, err := tx.ExecContext(ctx, `UPDATE workshops SET deleted = ? WHERE id = ? AND deleted = 0`, now, id)
		if err != nil {
			return err
		}
		if _, err := res.RowsAffected(); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `UPDATE tokens SET revoked = ? WHERE workshop = ? AND revoked = 0`, now, id)
		if err != nil {
			return err
		}
		if revoked, err = res.RowsAffected(); err != nil {
			return err
		}
		w, err = scanWorkshop(tx.QueryRowContext(ctx, `SELECT `+workshopCols+` FROM workshops WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("delete workshop %q: %w", id, err)
	}
	return w, int(revoked), nil
}

// OwnedSandboxes returns the ids of the sandboxes (in any state) that
// owner owns, oldest first.
func (s *Store) OwnedSandboxes(ctx context.Context, owner string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM sandboxes WHERE owner = ? ORDER BY created, id`, owner)
	if err != nil {
		return nil, fmt.Errorf("sandboxes of %q: %w", owner, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sandboxes of %q: %w", owner, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SandboxOwner returns the owner of a sandbox row, or ErrNotFound.
func (s *Store) SandboxOwner(ctx context.Context, id string) (string, error) {
	var owner string
	err := s.r.QueryRowContext(ctx, `SELECT owner FROM sandboxes WHERE id = ?`, id).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("owner of sandbox %q: %w", id, err)
	}
	return owner, nil
}

// LearnerGrade is a grade with the learner it belongs to.
type LearnerGrade struct {
	Learner string // roster name
	Grade
}

// LatestGrades returns, for every learner of a workshop, their latest
// grade of each exercise they were graded on (by the grades' owner), by
// learner in roster order, then exercise.
func (s *Store) LatestGrades(ctx context.Context, ws string) ([]*LearnerGrade, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT l.name, g.id, g.sandbox, g.lab, g.lab_hash, g.exercise, g.time,
		g.score, g.max_score, g.passed, g.duration, g.report
		FROM learners l
		JOIN (SELECT owner, exercise, MAX(id) AS id FROM grades
			WHERE owner IN (SELECT workshop || '/' || name FROM learners WHERE workshop = ?1)
			GROUP BY owner, exercise) m ON m.owner = l.workshop || '/' || l.name
		JOIN grades g ON g.id = m.id
		WHERE l.workshop = ?1
		ORDER BY l.seq, g.exercise`, ws)
	if err != nil {
		return nil, fmt.Errorf("latest grades of workshop %q: %w", ws, err)
	}
	defer rows.Close()
	var out []*LearnerGrade
	for rows.Next() {
		var (
			g      LearnerGrade
			t, dur int64
		)
		if err := rows.Scan(&g.Learner, &g.ID, &g.Sandbox, &g.Lab, &g.LabHash, &g.Exercise, &t,
			&g.Score, &g.Max, &g.Passed, &dur, &g.Report); err != nil {
			return nil, fmt.Errorf("latest grades of workshop %q: %w", ws, err)
		}
		g.Time, g.Duration = fromNanos(t), time.Duration(dur)
		out = append(out, &g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latest grades of workshop %q: %w", ws, err)
	}
	return out, nil
}
