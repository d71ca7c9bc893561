package api

import (
	"context"

	"nslab/server/store"
)

// Caller is who is making a request: found by the listener's
// authentication (SO_PEERCRED on the unix socket, a bearer token over TCP)
// and carried in the request's context.
type Caller struct {
	// Subject names the caller: "uid:1000" on the unix socket, the
	// token's subject over TCP. Sandboxes record it as their owner.
	Subject string
	// Role is store.RoleAdmin, store.RoleInstructor or store.RoleLearner.
	Role string
	// Workshop is the workshop a learner's or instructor's token belongs
	// to, "" if none.
	Workshop string
	// TokenID is the token used, "" on the unix socket.
	TokenID string
}

// Admin reports whether the caller may see and touch everything.
func (c *Caller) Admin() bool { return c != nil && c.Role == store.RoleAdmin }

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries, or nil when none was set
// (in-process calls and tests that bypass the listeners).
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// ownerOf is the owner recorded for a sandbox created by ctx's caller.
func ownerOf(ctx context.Context) string {
	if c := CallerFrom(ctx); c != nil {
		return c.Subject
	}
	return ""
}
