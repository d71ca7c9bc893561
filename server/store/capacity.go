package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CreateOption adds a check to the transaction in which CreateSandbox
// inserts a row, so that the check and the insert are one atomic step:
// two creates racing for the last free place cannot both pass.
type CreateOption func(*createOptions)

type createOptions struct {
	capacity Capacity
}

// Capacity is a host-wide limit on what sandboxes may hold at once; zero
// in a field means no limit. FAILED sandboxes count for neither: their
// nodes are torn down and their uid ranges released.
type Capacity struct {
	Sandboxes int // sandboxes not FAILED
	Nodes     int // nodes of those sandboxes
}

// WithCapacity refuses a create that would take the host past c, with a
// *LimitError (which wraps ErrExhausted).
func WithCapacity(c Capacity) CreateOption {
	return func(o *createOptions) { o.capacity = c }
}

// LimitError is a create refused because a limit is reached.
type LimitError struct {
	Limit   string // what is limited: "sandboxes" or "nodes"
	Max     int    // the limit
	Current int    // how many there are now
	Need    int    // how many the refused create would have added
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("host limit of %d %s reached: %d in use, %d more wanted", e.Max, e.Limit, e.Current, e.Need)
}

func (e *LimitError) Unwrap() error { return ErrExhausted }

// check refuses a sandbox of nodes nodes when c does not leave room for
// it. It must run inside the write transaction that then inserts it.
func (c Capacity) check(ctx context.Context, tx *sql.Tx, nodes int) error {
	if c.Sandboxes > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sandboxes WHERE state != 'FAILED'`).Scan(&n); err != nil {
			return err
		}
		if n+1 > c.Sandboxes {
			return &LimitError{Limit: "sandboxes", Max: c.Sandboxes, Current: n, Need: 1}
		}
	}
	if c.Nodes > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes`).Scan(&n); err != nil {
			return err
		}
		if n+nodes > c.Nodes {
			return &LimitError{Limit: "nodes", Max: c.Nodes, Current: n, Need: nodes}
		}
	}
	return nil
}

// Counts is how many sandboxes are in each state, and how many nodes
// they hold.
type Counts struct {
	Sandboxes map[State]int // every state is present, 0 if none
	Nodes     int
}

// Count counts sandboxes by state, and nodes, in one snapshot.
func (s *Store) Count(ctx context.Context) (Counts, error) {
	c := Counts{Sandboxes: map[State]int{StateCreating: 0, StateReady: 0, StateDeleting: 0, StateFailed: 0}}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT state, COUNT(*) FROM sandboxes GROUP BY state`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				st State
				n  int
			)
			if err := rows.Scan(&st, &n); err != nil {
				return err
			}
			c.Sandboxes[st] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes`).Scan(&c.Nodes)
	})
	if err != nil {
		return Counts{}, fmt.Errorf("count sandboxes: %w", err)
	}
	return c, nil
}

// FailSandbox marks a sandbox FAILED with reason, in one transaction with
// the release of its nodes and their uid ranges: the caller has torn its
// processes down (or is sure they are gone). The row stays, to tell its
// owner what happened, until it expires: at its expiry if it has one,
// else at expire. Its grades and events are kept.
func (s *Store) FailSandbox(ctx context.Context, id, reason string, expire time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sandboxes SET state = 'FAILED', failure = ?,
			expire = CASE WHEN expire = 0 THEN ? ELSE expire END WHERE id = ?`,
			reason, nanosOrZero(expire), id)
		if err != nil {
			return err
		}
		if err := oneRow(res, id, "fail"); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM uid_leases WHERE sandbox = ?`,
			`DELETE FROM nodes WHERE sandbox = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark sandbox %q failed: %w", id, err)
	}
	return nil
}

// ReadySandboxes returns every READY sandbox, without its nodes: what
// expiry warnings are computed from.
func (s *Store) ReadySandboxes(ctx context.Context) ([]*Sandbox, error) {
	var out []*Sandbox
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = querySandboxes(ctx, tx, `SELECT `+sandboxCols+` FROM sandboxes WHERE state = 'READY' ORDER BY created, id`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ready sandboxes: %w", err)
	}
	return out, nil
}
