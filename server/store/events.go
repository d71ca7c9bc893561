package store

import (
	"context"
	"fmt"
	"time"
)

// Event is one audit record.
type Event struct {
	Time                   time.Time
	Sandbox, Kind, Message string
}

// RecordEvent appends an audit event. Events are not tied to a sandbox row,
// so they outlive DeleteSandbox.
func (s *Store) RecordEvent(ctx context.Context, sandbox, kind, message string) error {
	if _, err := s.w.ExecContext(ctx,
		`INSERT INTO events (time, sandbox, kind, message) VALUES (?, ?, ?, ?)`,
		nanos(time.Now()), sandbox, kind, message); err != nil {
		return fmt.Errorf("record %s event for sandbox %q: %w", kind, sandbox, err)
	}
	return nil
}

// Events returns the events of one sandbox in the order they were recorded
// (none is not an error: the sandbox may be gone).
func (s *Store) Events(ctx context.Context, sandbox string) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT time, sandbox, kind, message FROM events WHERE sandbox = ? ORDER BY id`, sandbox)
	if err != nil {
		return nil, fmt.Errorf("events of sandbox %q: %w", sandbox, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e Event
			t int64
		)
		if err := rows.Scan(&t, &e.Sandbox, &e.Kind, &e.Message); err != nil {
			return nil, fmt.Errorf("events of sandbox %q: %w", sandbox, err)
		}
		e.Time = fromNanos(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of sandbox %q: %w", sandbox, err)
	}
	return out, nil
}
