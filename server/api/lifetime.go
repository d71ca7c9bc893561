package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

// Lifetime defaults (labd's --ttl, --max-ttl and --idle-timeout).
const (
	DefaultTTL         = 4 * time.Hour
	DefaultMaxTTL      = 24 * time.Hour
	DefaultIdleTimeout = time.Hour
	// DefaultExtension is what ExtendSandbox adds when the request does
	// not say.
	DefaultExtension = time.Hour
	// DefaultReapInterval is how often RunReaper looks for sandboxes
	// whose time is up.
	DefaultReapInterval = 10 * time.Second
)

// touchInterval bounds activity writes to one per sandbox per interval:
// a few seconds, and a small part of the idle timeout so that the
// throttling never decides whether a sandbox goes idle.
func touchInterval(idle time.Duration) time.Duration {
	return min(5*time.Second, idle/10)
}

// requestTTL is the lifetime a CreateSandboxRequest asks for, or the
// server's default.
func (s *SandboxServer) requestTTL(req *labsv1.CreateSandboxRequest) (time.Duration, error) {
	if req.GetTtl() == nil {
		return s.cfg.TTL, nil
	}
	if err := req.GetTtl().CheckValid(); err != nil {
		return 0, invalidField("ttl", "%s", err)
	}
	ttl := req.GetTtl().AsDuration()
	switch {
	case ttl == 0:
		return s.cfg.TTL, nil
	case ttl < 0:
		return 0, invalidField("ttl", "must be positive, got %s", ttl)
	case ttl > s.cfg.MaxTTL:
		return 0, invalidField("ttl", "%s is longer than this server's maximum of %s", ttl, s.cfg.MaxTTL)
	}
	return ttl, nil
}

// ExtendSandbox pushes a READY sandbox's expiry back by the requested
// duration, cut short at MaxTTL from now, and counts as activity.
func (s *SandboxServer) ExtendSandbox(ctx context.Context, req *labsv1.ExtendSandboxRequest) (*labsv1.ExtendSandboxResponse, error) {
	id, err := sandboxID("name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.sandboxRow(ctx, id, actUse); err != nil {
		return nil, toStatus(err)
	}
	by := DefaultExtension
	if d := req.GetDuration(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, toStatus(invalidField("duration", "%s", err))
		}
		if by = d.AsDuration(); by <= 0 {
			return nil, toStatus(invalidField("duration", "must be positive, got %s", by))
		}
	}
	now := time.Now()
	s.touch(ctx, id, now, true)
	row, capped, err := s.cfg.Store.ExtendSandbox(ctx, id, by, now, now.Add(s.cfg.MaxTTL))
	if errors.Is(err, store.ErrNotReady) {
		err = preconditionErr{err}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	msg := fmt.Sprintf("by %s to %s", by, row.Expire.Format(time.RFC3339))
	if capped {
		msg += fmt.Sprintf(" (capped: at most %s from now)", s.cfg.MaxTTL)
	}
	s.cfg.Store.RecordEvent(ctx, id, "extended", msg)
	s.emit(EventExtended, row, msg, nil)
	s.mu.Lock()
	sb := s.live[id]
	s.mu.Unlock()
	return &labsv1.ExtendSandboxResponse{Sandbox: s.toProto(row, sb), Capped: capped}, nil
}

// preconditionErr makes a store error a FailedPrecondition without
// changing its message.
type preconditionErr struct{ error }

func (e preconditionErr) Unwrap() []error { return []error{e.error, errPrecondition} }

// touch records activity in a live sandbox at now: at most one write
// per touchEvery per sandbox, unless force. Ids that are not live are
// ignored, which also keeps the bookkeeping bounded by live sandboxes.
// A failed write is logged, not returned: activity never fails a call.
func (s *SandboxServer) touch(ctx context.Context, id string, now time.Time, force bool) {
	s.mu.Lock()
	_, live := s.live[id]
	write := live && (force || now.Sub(s.touched[id]) >= s.touchEvery)
	if write {
		s.touched[id] = now
	}
	s.mu.Unlock()
	if !write {
		return
	}
	// The call may end right away; its activity is still recorded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.TouchSandbox(ctx, id, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("record activity", "sandbox", id, "err", err)
	}
}

// touchSessions records activity in every sandbox with an open session,
// so that a long shell or capture keeps its sandbox from going idle.
func (s *SandboxServer) touchSessions(ctx context.Context, now time.Time) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		if _, live := s.live[id]; live {
			ids = append(ids, id)
			s.touched[id] = now
		}
	}
	s.mu.Unlock()
	if err := s.cfg.Store.TouchSandboxes(ctx, ids, now); err != nil {
		s.log.Warn("record activity of open sessions", "err", err)
	}
}

// activityMethods are the RPCs that count as using a sandbox.
var activityMethods = map[string]bool{
	labsv1.SandboxService_Exec_FullMethodName:      true,
	labsv1.SandboxService_Shell_FullMethodName:     true,
	labsv1.SandboxService_Capture_FullMethodName:   true,
	labsv1.SandboxService_AttachXDP_FullMethodName: true,
	labsv1.GradingService_Grade_FullMethodName:     true,
	labsv1.GradingService_Solve_FullMethodName:     true,
}

// activitySandbox is the bare id of the sandbox a request names, or "".
func activitySandbox(req any) string {
	var name string
	switch r := req.(type) {
	case *labsv1.ShellRequest:
		name = r.GetStart().GetSandbox()
	case interface{ GetSandbox() string }:
		name = r.GetSandbox()
	}
	return strings.TrimPrefix(name, "sandboxes/")
}

// UnaryActivity is a gRPC interceptor that records the activity of
// AttachXDP, Grade and Solve calls in the sandbox they name. Activity is
// tracked here rather than in each handler so that no RPC that uses a
// sandbox can forget it.
func (s *SandboxServer) UnaryActivity(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if activityMethods[info.FullMethod] {
		if id := activitySandbox(req); id != "" && s.visibleTo(ctx, id) {
			s.touch(ctx, id, time.Now(), false)
		}
	}
	return handler(ctx, req)
}

// StreamActivity is UnaryActivity for Exec, Shell and Capture: every
// message from the client is activity, and while the stream is open the
// sandbox counts as in use (the reaper renews it).
func (s *SandboxServer) StreamActivity(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !activityMethods[info.FullMethod] {
		return handler(srv, ss)
	}
	as := &activityStream{ServerStream: ss, s: s}
	defer as.end()
	return handler(srv, as)
}

// activityStream learns the sandbox from the first message that names
// it. RecvMsg may run on a goroutine of the handler's own (Shell's pump)
// while the handler returns, hence the lock.
type activityStream struct {
	grpc.ServerStream
	s *SandboxServer

	mu    sync.Mutex
	id    string
	ended bool
}

func (as *activityStream) RecvMsg(m any) error {
	if err := as.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	as.mu.Lock()
	if as.id == "" && !as.ended {
		// A call refused for another's sandbox must not keep it alive.
		if id := activitySandbox(m); id != "" && as.s.visibleTo(as.Context(), id) {
			as.id = id
			as.s.mu.Lock()
			as.s.sessions[id]++
			as.s.mu.Unlock()
		}
	}
	id := as.id
	as.mu.Unlock()
	if id != "" {
		as.s.touch(as.Context(), id, time.Now(), false)
	}
	return nil
}

// end closes the session; its last moment is activity too.
func (as *activityStream) end() {
	as.mu.Lock()
	id := as.id
	as.ended = true
	as.mu.Unlock()
	if id == "" {
		return
	}
	as.s.mu.Lock()
	if as.s.sessions[id]--; as.s.sessions[id] <= 0 {
		delete(as.s.sessions, id)
	}
	as.s.mu.Unlock()
	as.s.touch(as.Context(), id, time.Now(), false)
	as.s.kickWarnings() // its idle deadline counts again
}

// RunReaper deletes sandboxes whose time is up until ctx is done: at
// once, then every interval (DefaultReapInterval if interval <= 0). Call
// it once, after Reconcile. It first restarts the idle clocks of the
// re-adopted sandboxes and gives those from before lifetimes an expiry.
// Alongside, it publishes expiry warnings to watchers as each falls due.
// A deletion in progress when ctx ends is finished before it returns.
func (s *SandboxServer) RunReaper(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultReapInterval
	}
	now := time.Now()
	if n, err := s.cfg.Store.StartLifetimes(ctx, now, now.Add(s.cfg.TTL)); err != nil {
		s.log.Error("start sandbox lifetimes", "err", err)
	} else if n > 0 {
		s.log.Info("idle clocks restarted", "sandboxes", n)
	}
	var warner sync.WaitGroup
	wctx, stopWarner := context.WithCancel(ctx)
	warner.Go(func() { s.runWarnings(wctx) })
	defer func() {
		stopWarner()
		warner.Wait()
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := s.Reap(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reap sandboxes", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Reap deletes every sandbox that is due now (READY or FAILED and
// expired, or READY and idle with no open session), through the same
// path as DeleteSandbox, after recording an "expired" event that says
// why. Grades are kept. It returns the ids it deleted.
func (s *SandboxServer) Reap(ctx context.Context) ([]string, error) {
	now := time.Now()
	s.touchSessions(ctx, now)
	due, err := s.cfg.Store.DueSandboxes(ctx, now, s.cfg.IdleTimeout)
	if err != nil {
		return nil, err
	}
	var (
		gone []string
		errs []error
	)
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		// Claiming re-checks in one transaction, so an extension that
		// came in since the listing wins; the claim also makes
		// ExtendSandbox refuse from here on.
		d, ok, err := s.cfg.Store.ClaimDue(ctx, d.ID, now, s.cfg.IdleTimeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		why := expiryReason(d, s.cfg.IdleTimeout)
		s.log.Info("sandbox expired", "sandbox", d.ID, "reason", why)
		s.cfg.Store.RecordEvent(context.WithoutCancel(ctx), d.ID, "expired", why)
		if err := s.delete(ctx, d.ID, "expired: "+why); err != nil {
			errs = append(errs, fmt.Errorf("delete expired sandbox %s: %w", d.ID, err))
			continue
		}
		gone = append(gone, d.ID)
	}
	return gone, errors.Join(errs...)
}

// expiryReason is the message of an "expired" event.
func expiryReason(d store.Due, idle time.Duration) string {
	if d.Reason == store.DueTTL {
		return fmt.Sprintf("ttl: its lifetime ended at %s", d.Expire.Format(time.RFC3339))
	}
	return fmt.Sprintf("idle: nothing was done in it since %s (idle timeout %s)", d.LastActivity.Format(time.RFC3339), idle)
}
