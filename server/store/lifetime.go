package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotReady: the operation needs a READY sandbox and the row is in
// another state.
var ErrNotReady = errors.New("not READY")

// DueReason says why a sandbox is due for deletion.
type DueReason string

const (
	// DueTTL: its expire time has passed.
	DueTTL DueReason = "ttl"
	// DueIdle: nothing was done in it for the idle timeout.
	DueIdle DueReason = "idle"
)

// Due is a READY or FAILED sandbox whose lifetime is over.
type Due struct {
	ID           string
	Reason       DueReason // DueTTL when both apply
	Expire       time.Time
	LastActivity time.Time
}

// dueWhere selects rows that are due at ?1 (now, nanos) given ?2 (the
// idle cut-off, nanos: last activity at or before it is idle; 0 disables
// the idle test): READY rows whose expiry or idle timeout has passed, and
// FAILED rows whose expiry has (nothing is done in those). Unset (0)
// columns never make a row due.
const dueWhere = `(
	(state IN ('READY', 'FAILED') AND expire > 0 AND expire <= ?1) OR
	(state = 'READY' AND ?2 > 0 AND last_activity > 0 AND last_activity <= ?2))`

// dueReason is DueTTL or DueIdle for a row selected by dueWhere.
func dueReason(expire, now int64) DueReason {
	if expire > 0 && expire <= now {
		return DueTTL
	}
	return DueIdle
}

// idleCutoff is the ?2 of dueWhere; idle <= 0 means no idle timeout.
func idleCutoff(now time.Time, idle time.Duration) int64 {
	if idle <= 0 {
		return 0
	}
	return nanos(now.Add(-idle))
}

// nanosOrZero stores the zero time as 0 ("not set").
func nanosOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

// SetExpiry sets when the sandbox is to be deleted; the zero time clears
// it (the sandbox then never expires by its TTL).
func (s *Store) SetExpiry(ctx context.Context, id string, expire time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET expire = ? WHERE id = ?`, nanosOrZero(expire), id)
	if err != nil {
		return fmt.Errorf("set expiry of sandbox %q: %w", id, err)
	}
	return oneRow(res, id, "set expiry of")
}

// TouchSandbox records activity in the sandbox at the given time. The
// clock never goes back: an older time than the one stored is ignored.
func (s *Store) TouchSandbox(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE sandboxes SET last_activity = MAX(last_activity, ?) WHERE id = ?`, nanos(at), id)
	if err != nil {
		return fmt.Errorf("record activity in sandbox %q: %w", id, err)
	}
	return oneRow(res, id, "record activity in")
}

// TouchSandboxes records activity at the given time in each READY
// sandbox of ids, in one transaction; ids without a READY row are
// skipped.
func (s *Store) TouchSandboxes(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx,
				`UPDATE sandboxes SET last_activity = MAX(last_activity, ?) WHERE id = ? AND state = 'READY'`,
				nanos(at), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record activity in %d sandboxes: %w", len(ids), err)
	}
	return nil
}

func oneRow(res sql.Result, id, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s sandbox %q: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	}
	return nil
}

// StartLifetimes prepares READY sandboxes for a labd that starts at now:
// a row without an expiry gets expire (rows from before lifetimes), and
// every idle clock restarts at now, since labd being down is not the
// learner being idle. It returns how many rows it changed.
func (s *Store) StartLifetimes(ctx context.Context, now, expire time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET
		expire = CASE WHEN expire = 0 THEN ?1 ELSE expire END,
		last_activity = MAX(last_activity, ?2)
		WHERE state = 'READY'`, nanos(expire), nanos(now))
	if err != nil {
		return 0, fmt.Errorf("start sandbox lifetimes: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("start sandbox lifetimes: %w", err)
	}
	return int(n), nil
}

// ExtendSandbox pushes a READY sandbox's expiry back by d, but not past
// limit, and returns the sandbox as it now is and whether limit cut the
// extension short. An expiry already past limit is kept, not shortened;
// a sandbox without one is extended from now. It fails with ErrNotFound
// or ErrNotReady, and with ErrInvalid unless d > 0.
func (s *Store) ExtendSandbox(ctx context.Context, id string, d time.Duration, now, limit time.Time) (*Sandbox, bool, error) {
	if d <= 0 {
		return nil, false, fmt.Errorf("extend sandbox %q by %s: %w", id, d, ErrInvalid)
	}
	var capped bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			st     State
			expire int64
		)
		err := tx.QueryRowContext(ctx, `SELECT state, expire FROM sandboxes WHERE id = ?`, id).Scan(&st, &expire)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if st != StateReady {
			return fmt.Errorf("it is %s, %w", strings.ToLower(string(st)), ErrNotReady)
		}
		from := fromNanos(expire)
		if from.IsZero() {
			from = now
		}
		to := from.Add(d)
		if to.After(limit) {
			capped = true
			to = limit
		}
		if to.Before(from) {
			to = from
		}
		_, err = tx.ExecContext(ctx, `UPDATE sandboxes SET expire = ? WHERE id = ?`, nanos(to), id)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("extend sandbox %q: %w", id, err)
	}
	sb, err := s.GetSandbox(ctx, id)
	if err != nil {
		return nil, false, fmt.Errorf("extend sandbox %q: %w", id, err)
	}
	return sb, capped, nil
}

// DueSandboxes lists the sandboxes due for deletion at now: READY or
// FAILED ones whose expiry has passed, and (with idle > 0) READY ones
// nothing was done in for idle. Oldest first.
func (s *Store) DueSandboxes(ctx context.Context, now time.Time, idle time.Duration) ([]Due, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT id, expire, last_activity FROM sandboxes WHERE `+dueWhere+` ORDER BY created, id`,
		nanos(now), idleCutoff(now, idle))
	if err != nil {
		return nil, fmt.Errorf("sandboxes due: %w", err)
	}
	defer rows.Close()
	var out []Due
	for rows.Next() {
		var (
			d                 Due
			expire, lastActed int64
		)
		if err := rows.Scan(&d.ID, &expire, &lastActed); err != nil {
			return nil, fmt.Errorf("sandboxes due: %w", err)
		}
		d.Reason = dueReason(expire, nanos(now))
		d.Expire, d.LastActivity = fromNanos(expire), fromNanos(lastActed)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sandboxes due: %w", err)
	}
	return out, nil
}

// ClaimDue moves the sandbox from READY (or FAILED) to DELETING if, in
// the same transaction, it is still due at now (an extension or activity
// since it was listed saves it). It reports the sandbox as it was when
// claimed, and false when it was not due any more.
func (s *Store) ClaimDue(ctx context.Context, id string, now time.Time, idle time.Duration) (Due, bool, error) {
	var (
		d       = Due{ID: id}
		claimed bool
	)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var expire, lastActed int64
		err := tx.QueryRowContext(ctx,
			`SELECT expire, last_activity FROM sandboxes WHERE id = ?3 AND `+dueWhere,
			nanos(now), idleCutoff(now, idle), id).Scan(&expire, &lastActed)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sandboxes SET state = 'DELETING' WHERE id = ?`, id); err != nil {
			return err
		}
		d.Reason = dueReason(expire, nanos(now))
		d.Expire, d.LastActivity = fromNanos(expire), fromNanos(lastActed)
		claimed = true
		return nil
	})
	if err != nil {
		return Due{}, false, fmt.Errorf("claim due sandbox %q: %w", id, err)
	}
	return d, claimed, nil
}
