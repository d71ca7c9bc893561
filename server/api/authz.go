package api

import (
	"context"
	"fmt"

	"nslab/server/store"
)

// action is what a caller asks to do with a sandbox.
type action int

const (
	// actRead: Get, List, ListGrades.
	actRead action = iota
	// actUse: Exec, Shell, Capture, AttachXDP, Grade, Extend, Delete.
	actUse
	// actSolve: run an exercise's reference solution. Not for learners:
	// it hands them the answer.
	actSolve
)

// unrestricted reports whether ctx's caller may see and touch everything:
// an admin, or no caller at all (in-process calls that bypass the
// listeners; the listeners always set one).
func unrestricted(ctx context.Context) bool {
	c := CallerFrom(ctx)
	return c == nil || c.Admin()
}

// scopeOf is what c may see: admins (and the nil caller) everything;
// learners what they own; instructors what they own and what the
// learners of their workshop own.
func scopeOf(c *Caller) store.Scope {
	if c == nil || c.Admin() {
		return store.Scope{All: true}
	}
	sc := store.Scope{Owner: c.Subject}
	if c.Role == store.RoleInstructor {
		sc.Workshop = c.Workshop
	}
	return sc
}

// errNoSandbox is the error for an id the caller may not see. It is the
// store's error for an id without a row, word for word, so that a caller
// cannot tell another's sandbox from one that does not exist.
func errNoSandbox(id string) error {
	return fmt.Errorf("sandbox %q: %w", id, store.ErrNotFound)
}

// authorize checks that ctx's caller may do act to the sandbox row: one
// it may not see is NotFound (as if it did not exist), and a learner
// asking for a solution is PermissionDenied.
func (s *SandboxServer) authorize(ctx context.Context, row *store.Sandbox, act action) error {
	c := CallerFrom(ctx)
	ok, err := s.cfg.Store.InScope(ctx, scopeOf(c), row.Owner)
	if err != nil {
		return fmt.Errorf("authorize access to sandbox %s: %w", row.ID, err)
	}
	if !ok {
		return errNoSandbox(row.ID)
	}
	if act == actSolve && !unrestricted(ctx) && c.Role != store.RoleInstructor {
		return fmt.Errorf("solve in sandbox %s: reference solutions are for instructors and admins, not %ss: %w", row.ID, c.Role, errPermission)
	}
	return nil
}

// sandboxRow returns sandbox id's row, without its nodes, if ctx's caller
// may do act to it, and NotFound if there is none or the caller may not
// see it.
func (s *SandboxServer) sandboxRow(ctx context.Context, id string, act action) (*store.Sandbox, error) {
	row, err := s.cfg.Store.LookupSandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, row, act); err != nil {
		return nil, err
	}
	return row, nil
}

// visibleTo reports whether ctx's caller may see sandbox id (a live one;
// false when it has no row). The activity interceptors use it so that
// calls refused for another's sandbox do not keep that sandbox alive.
func (s *SandboxServer) visibleTo(ctx context.Context, id string) bool {
	if unrestricted(ctx) {
		return true
	}
	_, err := s.sandboxRow(ctx, id, actRead)
	return err == nil
}
