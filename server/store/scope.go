package store

import (
	"context"
	"fmt"
)

// Scope selects the sandboxes and grades a caller may see, by their
// owner. Rows owned by "" (from before owners) are in Scope{All: true}
// only; the zero Scope selects nothing.
type Scope struct {
	// All selects every row (admins).
	All bool
	// Owner selects the rows it owns.
	Owner string
	// Workshop, if not "", also selects the rows owned by the subject of
	// any learner token of that workshop (an instructor's learners).
	Workshop string
}

// where is the SQL condition on the owner column col that selects the
// scope's rows, and its arguments.
func (sc Scope) where(col string) (string, []any) {
	if sc.All {
		return `1`, nil
	}
	cond := col + ` <> '' AND (` + col + ` = ?`
	args := []any{sc.Owner}
	if sc.Workshop != "" {
		cond += ` OR ` + col + ` IN (SELECT subject FROM tokens WHERE role = 'learner' AND workshop = ?)`
		args = append(args, sc.Workshop)
	}
	return cond + `)`, args
}

// InScope reports whether rows owned by owner are in scope.
func (s *Store) InScope(ctx context.Context, scope Scope, owner string) (bool, error) {
	switch {
	case scope.All:
		return true, nil
	case owner == "":
		return false, nil
	case owner == scope.Owner:
		return true, nil
	case scope.Workshop == "":
		return false, nil
	}
	var n int
	if err := s.r.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM tokens WHERE role = 'learner' AND workshop = ? AND subject = ?`,
		scope.Workshop, owner).Scan(&n); err != nil {
		return false, fmt.Errorf("is %q a learner of workshop %q: %w", owner, scope.Workshop, err)
	}
	return n > 0, nil
}
