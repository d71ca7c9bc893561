package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrRevoked: the token exists but has been revoked.
var ErrRevoked = errors.New("token revoked")

// Token roles.
const (
	RoleAdmin      = "admin"
	RoleInstructor = "instructor"
	RoleLearner    = "learner"
)

// TokenPrefix starts every token secret, so a leaked one is easy to
// recognise (and grep for) in logs and files.
const TokenPrefix = "nslab_"

// Token is one stored bearer token, without its secret.
type Token struct {
	ID       string // "t-" + 8 hex; what list and revoke name
	Role     string // RoleAdmin, RoleInstructor or RoleLearner
	Subject  string // who holds it
	Workshop string // the workshop it belongs to, "" if none
	Created  time.Time
	Revoked  time.Time // zero while the token is good
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func validRole(role string) bool {
	return role == RoleAdmin || role == RoleInstructor || role == RoleLearner
}

// CreateToken makes a token and returns its secret, which is not stored
// and cannot be shown again. subject must be non-empty printable text of
// at most 128 bytes.
func (s *Store) CreateToken(ctx context.Context, role, subject, workshop string) (string, *Token, error) {
	return insertToken(ctx, s.w, role, subject, workshop)
}

// insertToken makes a token with db, which may be a transaction (a
// workshop's tokens are made in the workshop's).
func insertToken(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, role, subject, workshop string) (string, *Token, error) {
	if !validRole(role) {
		return "", nil, fmt.Errorf("create token: role %q: want admin, instructor or learner: %w", role, ErrInvalid)
	}
	if subject == "" || len(subject) > 128 || strings.ContainsFunc(subject, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", nil, fmt.Errorf("create token: subject %q: want 1-128 printable bytes: %w", subject, ErrInvalid)
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	var idb [4]byte
	rand.Read(idb[:])
	t := &Token{ID: fmt.Sprintf("t-%x", idb), Role: role, Subject: subject, Workshop: workshop, Created: time.Now().UTC()}
	if _, err := db.ExecContext(ctx,
		`INSERT INTO tokens (id, hash, role, subject, workshop, created) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, hashSecret(secret), t.Role, t.Subject, t.Workshop, nanos(t.Created)); err != nil {
		return "", nil, fmt.Errorf("create token for %q: %w", subject, err)
	}
	return secret, t, nil
}

func scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	var t Token
	var created, revoked int64
	if err := row.Scan(&t.ID, &t.Role, &t.Subject, &t.Workshop, &created, &revoked); err != nil {
		return nil, err
	}
	t.Created, t.Revoked = fromNanos(created), fromNanos(revoked)
	return &t, nil
}

const tokenCols = `id, role, subject, workshop, created, revoked`

// LookupToken finds the token whose secret this is: ErrNotFound when there
// is none, ErrRevoked (with the token) when it was revoked.
func (s *Store) LookupToken(ctx context.Context, secret string) (*Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hashSecret(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if !t.Revoked.IsZero() {
		return t, ErrRevoked
	}
	return t, nil
}

// ListTokens returns every token, oldest first; workshop, if not "",
// keeps only that workshop's.
func (s *Store) ListTokens(ctx context.Context, workshop string) ([]*Token, error) {
	q := `SELECT ` + tokenCols + ` FROM tokens`
	var args []any
	if workshop != "" {
		q += ` WHERE workshop = ?`
		args = append(args, workshop)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes the token with this id (ErrNotFound if none).
// Revoking twice is not an error; the first time is kept.
func (s *Store) RevokeToken(ctx context.Context, id string) (*Token, error) {
	var t *Token
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0`, nanos(time.Now()), id); err != nil {
			return err
		}
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke token %q: %w", id, err)
	}
	return t, nil
}
