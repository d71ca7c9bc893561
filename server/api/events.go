package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

// Bounds on watchers: each has a buffer of watchBuffer events; past it
// the watcher loses events and is sent a snapshot instead (see
// WatchSandboxes), so a slow watcher never holds up the server.
const (
	watchBuffer = 256
	maxWatchers = 1024
)

// EventType is what happened to a sandbox.
type EventType int

const (
	EventStateChanged EventType = iota + 1 // Sandbox.State is the new state
	EventDeleted                           // the row is gone; Sandbox is as it was last
	EventExpiring                          // Expiry says when and why
	EventExtended                          // ExtendSandbox pushed Sandbox.Expire back
)

// Event is one thing that happened to a sandbox. It carries the store's
// row, owner included, so that who may see it is decided in one place
// (SandboxServer.visible).
type Event struct {
	Type    EventType
	Time    time.Time
	Sandbox *store.Sandbox
	Reason  string
	Expiry  *Expiry // EventExpiring only
}

// Expiry is an imminent deletion.
type Expiry struct {
	Cause     store.DueReason
	At        time.Time
	Remaining time.Duration
}

// broadcaster hands every event to every subscription that wants it,
// never blocking: a full buffer counts the event as lost.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
	done   chan struct{} // closed by close
}

// subscription is one watcher's view of the broadcaster.
type subscription struct {
	id      string                    // only this sandbox; "" all
	visible func(*store.Sandbox) bool // whether the watcher may see it
	ch      chan Event
	lostCh  chan struct{} // signalled when lost goes above 0
	done    <-chan struct{}

	lost int64 // guarded by broadcaster.mu
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[*subscription]struct{}{}, done: make(chan struct{})}
}

// errWatchersFull refuses a watcher past maxWatchers.
var errWatchersFull = fmt.Errorf("%d watchers are open, the most labd serves: %w", maxWatchers, errExhausted)

func (b *broadcaster) subscribe(id string, visible func(*store.Sandbox) bool) (*subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("watch sandboxes: labd is shutting down: %w", errUnavailable)
	}
	if len(b.subs) >= maxWatchers {
		return nil, errWatchersFull
	}
	sub := &subscription{
		id: id, visible: visible,
		ch:     make(chan Event, watchBuffer),
		lostCh: make(chan struct{}, 1),
		done:   b.done,
	}
	b.subs[sub] = struct{}{}
	return sub, nil
}

func (b *broadcaster) unsubscribe(sub *subscription) {
	b.mu.Lock()
	delete(b.subs, sub)
	b.mu.Unlock()
}

// watchers is how many subscriptions are open.
func (b *broadcaster) watchers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// publish offers ev to every subscription that watches its sandbox and
// may see it; where a buffer is full the event is counted as lost.
func (b *broadcaster) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		if sub.id != "" && sub.id != ev.Sandbox.ID {
			continue
		}
		if !sub.visible(ev.Sandbox) {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			sub.lost++
			select {
			case sub.lostCh <- struct{}{}:
			default:
			}
		}
	}
}

// takeLost returns how many events sub missed since it was last asked,
// counting (and discarding) what its buffer holds, plus extra events the
// caller took and will not send: a snapshot read after this call covers
// all of them. A later loss signals lostCh again.
func (b *broadcaster) takeLost(sub *subscription, extra int64) int64 {
	n := extra
	for drained := false; !drained; {
		select {
		case <-sub.ch:
			n++
		default:
			drained = true
		}
	}
	b.mu.Lock()
	n += sub.lost
	sub.lost = 0
	b.mu.Unlock()
	return n
}

// hasLost reports whether sub has lost events not yet taken.
func (b *broadcaster) hasLost(sub *subscription) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sub.lost > 0
}

// close ends every subscription and refuses new ones.
func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// visible says whether ctx's caller may see a sandbox owned by owner:
// everything without a caller (in-process calls) or as an admin; its own
// sandboxes otherwise; and an instructor those of its workshop's
// learners, whose subjects are "<workshop>/<learner>".
func (s *SandboxServer) visible(ctx context.Context, owner string) bool {
	c := CallerFrom(ctx)
	switch {
	case c == nil || c.Admin():
		return true
	case c.Subject != "" && owner == c.Subject:
		return true
	case c.Role == store.RoleInstructor && c.Workshop != "" && strings.HasPrefix(owner, c.Workshop+"/"):
		return true
	}
	return false
}

// emit publishes an event about row.
func (s *SandboxServer) emit(typ EventType, row *store.Sandbox, reason string, exp *Expiry) {
	if row == nil {
		return
	}
	s.events.publish(Event{Type: typ, Time: time.Now(), Sandbox: row, Reason: reason, Expiry: exp})
}

// emitState publishes the state sandbox id is now in, as the store has
// it. A row that cannot be read is not published: the event would say
// nothing the watcher can trust, and a later one (or its deletion) will.
func (s *SandboxServer) emitState(ctx context.Context, id, reason string) *store.Sandbox {
	row, err := s.cfg.Store.GetSandbox(context.WithoutCancel(ctx), id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.logger(ctx).Warn("read sandbox for its event", "sandbox", id, "err", err)
		}
		return nil
	}
	s.emit(EventStateChanged, row, reason, nil)
	return row
}

// WatchSandboxes streams sandbox events to a watcher. Its buffer holds
// watchBuffer events; a watcher that falls further behind is not ended:
// the events it missed are dropped and counted, and once it catches up it
// is sent TYPE_EVENTS_LOST with the count, then the current state of
// what it watches (TYPE_CURRENT each, TYPE_SYNCED), then events again.
func (s *SandboxServer) WatchSandboxes(req *labsv1.WatchSandboxesRequest, stream labsv1.SandboxService_WatchSandboxesServer) error {
	ctx := stream.Context()
	id := ""
	if req.GetSandbox() != "" {
		var err error
		if id, err = sandboxID("sandbox", req.GetSandbox()); err != nil {
			return toStatus(err)
		}
	}
	// Subscribe before looking: nothing that happens after the look is
	// missed.
	sub, err := s.events.subscribe(id, func(sb *store.Sandbox) bool { return s.visible(ctx, sb.Owner) })
	if err != nil {
		return toStatus(err)
	}
	defer s.events.unsubscribe(sub)
	s.cfg.Metrics.watcherOpened()
	defer s.cfg.Metrics.watcherClosed()
	if id != "" {
		row, err := s.cfg.Store.GetSandbox(ctx, id)
		if err == nil && !s.visible(ctx, row.Owner) {
			err = fmt.Errorf("sandbox %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return toStatus(fmt.Errorf("watch: %w", err))
		}
	}
	if req.GetSendCurrent() {
		if gone, err := s.sendSnapshot(ctx, stream, id); err != nil || gone {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case <-sub.done:
			return toStatus(fmt.Errorf("watch sandboxes: labd is shutting down: %w", errUnavailable))
		case <-sub.lostCh:
			if gone, err := s.resync(ctx, stream, sub, 0); err != nil || gone {
				return err
			}
		case ev := <-sub.ch:
			if s.events.hasLost(sub) {
				// ev is older than the snapshot about to be sent.
				if gone, err := s.resync(ctx, stream, sub, 1); err != nil || gone {
					return err
				}
				continue
			}
			if err := stream.Send(s.eventToProto(ev)); err != nil {
				return err
			}
			if id != "" && ev.Type == EventDeleted {
				return nil // nothing more can happen to it
			}
		}
	}
}

// resync tells the watcher how many events it lost (extra of them taken
// by the caller) and sends a snapshot.
func (s *SandboxServer) resync(ctx context.Context, stream labsv1.SandboxService_WatchSandboxesServer, sub *subscription, extra int64) (gone bool, err error) {
	if !s.events.hasLost(sub) {
		return false, nil // a signal left from a loss already reported
	}
	lost := s.events.takeLost(sub, extra)
	s.cfg.Metrics.eventsLost(int(lost))
	s.logger(ctx).Warn("watcher fell behind", "lost", lost)
	if err := stream.Send(&labsv1.WatchSandboxesResponse{
		Type: labsv1.WatchSandboxesResponse_TYPE_EVENTS_LOST, Time: timestamppb.Now(), Lost: lost,
	}); err != nil {
		return false, err
	}
	return s.sendSnapshot(ctx, stream, sub.id)
}

// sendSnapshot sends the current state of the sandbox id, or of every
// sandbox the caller may see, then TYPE_SYNCED. gone reports that the one
// sandbox watched no longer exists.
func (s *SandboxServer) sendSnapshot(ctx context.Context, stream labsv1.SandboxService_WatchSandboxesServer, id string) (gone bool, err error) {
	var rows []*store.Sandbox
	if id != "" {
		row, err := s.cfg.Store.GetSandbox(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			gone = true
		case err != nil:
			return false, toStatus(fmt.Errorf("watch: %w", err))
		default:
			rows = append(rows, row)
		}
	} else {
		if rows, err = s.cfg.Store.AllSandboxes(ctx); err != nil {
			return false, toStatus(fmt.Errorf("watch: %w", err))
		}
	}
	now := timestamppb.Now()
	for _, row := range rows {
		if !s.visible(ctx, row.Owner) {
			continue
		}
		if err := stream.Send(&labsv1.WatchSandboxesResponse{
			Type: labsv1.WatchSandboxesResponse_TYPE_CURRENT, Time: now, Sandbox: s.toProto(row, nil), Reason: row.Failure,
		}); err != nil {
			return false, err
		}
	}
	if err := stream.Send(&labsv1.WatchSandboxesResponse{Type: labsv1.WatchSandboxesResponse_TYPE_SYNCED, Time: now}); err != nil {
		return false, err
	}
	return gone, nil
}

var eventTypeToProto = map[EventType]labsv1.WatchSandboxesResponse_Type{
	EventStateChanged: labsv1.WatchSandboxesResponse_TYPE_STATE_CHANGED,
	EventDeleted:      labsv1.WatchSandboxesResponse_TYPE_DELETED,
	EventExpiring:     labsv1.WatchSandboxesResponse_TYPE_EXPIRING,
	EventExtended:     labsv1.WatchSandboxesResponse_TYPE_EXTENDED,
}

func (s *SandboxServer) eventToProto(ev Event) *labsv1.WatchSandboxesResponse {
	out := &labsv1.WatchSandboxesResponse{
		Type: eventTypeToProto[ev.Type], Time: timestamppb.New(ev.Time),
		Sandbox: s.toProto(ev.Sandbox, nil), Reason: ev.Reason,
	}
	if e := ev.Expiry; e != nil {
		cause := labsv1.ExpiryWarning_CAUSE_TTL
		if e.Cause == store.DueIdle {
			cause = labsv1.ExpiryWarning_CAUSE_IDLE
		}
		out.Expiry = &labsv1.ExpiryWarning{Cause: cause, ExpireTime: timestamppb.New(e.At), Remaining: durationpb.New(e.Remaining)}
	}
	return out
}

// Expiry warnings.

// warnThresholds are how long before the end of a lifetime of length l
// its warnings come: 5 minutes and 1 minute, and for a short lifetime at
// most l/2 and l/5, so that a 5s TTL is warned of too. Longest first.
func warnThresholds(l time.Duration) []time.Duration {
	if l <= 0 {
		return nil
	}
	return []time.Duration{min(5*time.Minute, l/2), min(time.Minute, l/5)}
}

// maxWarnSleep bounds how long the warner sleeps without looking.
const maxWarnSleep = 30 * time.Second

// warnKey is one deadline of one sandbox; a deadline that moves (an
// extension, activity) is a new key, warned of afresh.
type warnKey struct {
	id       string
	cause    store.DueReason
	deadline int64
}

// deadline is one way a sandbox's life may end.
type deadline struct {
	cause    store.DueReason
	at       time.Time
	lifetime time.Duration
}

// deadlines of a READY row at now: its TTL, and its idle timeout unless a
// session keeps it alive or the TTL ends it first anyway.
func (s *SandboxServer) deadlines(row *store.Sandbox, sessions bool) []deadline {
	var out []deadline
	if !row.Expire.IsZero() {
		from := row.Ready
		if from.IsZero() {
			from = row.Created
		}
		out = append(out, deadline{store.DueTTL, row.Expire, row.Expire.Sub(from)})
	}
	if !row.LastActivity.IsZero() && !sessions {
		at := row.LastActivity.Add(s.cfg.IdleTimeout)
		if row.Expire.IsZero() || at.Before(row.Expire) {
			out = append(out, deadline{store.DueIdle, at, s.cfg.IdleTimeout})
		}
	}
	return out
}

// runWarnings publishes expiry warnings until ctx is done, waking when
// the next one is due or when a sandbox becomes READY.
func (s *SandboxServer) runWarnings(ctx context.Context) {
	warned := map[warnKey]time.Duration{}
	for {
		next := s.warnPass(ctx, time.Now(), warned)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.warnKick:
		case <-t.C:
		}
		t.Stop()
	}
}

// warnPass publishes the warnings due at now, records them in warned
// (which it prunes to the deadlines that still exist), and returns when
// it should next run.
func (s *SandboxServer) warnPass(ctx context.Context, now time.Time, warned map[warnKey]time.Duration) time.Time {
	next := now.Add(maxWarnSleep)
	rows, err := s.cfg.Store.ReadySandboxes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("expiry warnings", "err", err)
		}
		return next
	}
	s.mu.Lock()
	sessions := make(map[string]bool, len(s.sessions))
	for id, n := range s.sessions {
		sessions[id] = n > 0
	}
	s.mu.Unlock()
	current := map[warnKey]bool{}
	for _, row := range rows {
		for _, d := range s.deadlines(row, sessions[row.ID]) {
			key := warnKey{row.ID, d.cause, d.at.UnixNano()}
			current[key] = true
			left := d.at.Sub(now)
			if left <= 0 {
				continue // the reaper's now
			}
			var crossed time.Duration // the smallest threshold passed
			for _, th := range warnThresholds(d.lifetime) {
				if left <= th {
					crossed = th
				} else if at := d.at.Add(-th); at.Before(next) {
					next = at
				}
			}
			if crossed == 0 {
				continue
			}
			if last, ok := warned[key]; ok && last <= crossed {
				continue
			}
			warned[key] = crossed
			full, err := s.cfg.Store.GetSandbox(ctx, row.ID)
			if err != nil {
				continue // gone meanwhile
			}
			s.emit(EventExpiring, full, "", &Expiry{Cause: d.cause, At: d.at, Remaining: left})
		}
	}
	for k := range warned {
		if !current[k] {
			delete(warned, k)
		}
	}
	return next
}

// kickWarnings makes the warner look again now (a new deadline exists).
func (s *SandboxServer) kickWarnings() {
	select {
	case s.warnKick <- struct{}{}:
	default:
	}
}
