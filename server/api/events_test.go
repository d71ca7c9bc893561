package api

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

func TestVisible(t *testing.T) {
	s := NewSandboxServer(Config{})
	tests := []struct {
		name   string
		caller *Caller
		owner  string
		want   bool
	}{
		{"no caller sees all", nil, "alice", true},
		{"admin sees all", &Caller{Subject: "root", Role: store.RoleAdmin}, "ws1/bob", true},
		{"learner sees own", &Caller{Subject: "ws1/alice", Role: store.RoleLearner, Workshop: "ws1"}, "ws1/alice", true},
		{"learner not another's", &Caller{Subject: "ws1/alice", Role: store.RoleLearner, Workshop: "ws1"}, "ws1/bob", false},
		{"learner not unowned", &Caller{Subject: "ws1/alice", Role: store.RoleLearner}, "", false},
		{"empty subject owns nothing", &Caller{Role: store.RoleLearner}, "", false},
		{"instructor sees workshop", &Caller{Subject: "teach", Role: store.RoleInstructor, Workshop: "ws1"}, "ws1/bob", true},
		{"instructor not other workshop", &Caller{Subject: "teach", Role: store.RoleInstructor, Workshop: "ws1"}, "ws10/bob", false},
		{"instructor sees own", &Caller{Subject: "teach", Role: store.RoleInstructor, Workshop: "ws1"}, "teach", true},
		{"instructor without workshop", &Caller{Subject: "teach", Role: store.RoleInstructor}, "/bob", false},
		{"learner with workshop is no instructor", &Caller{Subject: "ws1/alice", Role: store.RoleLearner, Workshop: "ws1"}, "ws1/carol", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.caller != nil {
				ctx = WithCaller(ctx, tc.caller)
			}
			if got := s.visible(ctx, tc.owner); got != tc.want {
				t.Errorf("visible(%+v, %q) = %v, want %v", tc.caller, tc.owner, got, tc.want)
			}
		})
	}
}

func TestWarnThresholds(t *testing.T) {
	tests := []struct {
		lifetime time.Duration
		want     []time.Duration
	}{
		{4 * time.Hour, []time.Duration{5 * time.Minute, time.Minute}},
		{10 * time.Minute, []time.Duration{5 * time.Minute, time.Minute}},
		{4 * time.Minute, []time.Duration{2 * time.Minute, 48 * time.Second}},
		{5 * time.Second, []time.Duration{2500 * time.Millisecond, time.Second}},
		{0, nil},
	}
	for _, tc := range tests {
		if got := warnThresholds(tc.lifetime); !slices.Equal(got, tc.want) {
			t.Errorf("warnThresholds(%s) = %v, want %v", tc.lifetime, got, tc.want)
		}
	}
}

func TestBroadcaster(t *testing.T) {
	b := newBroadcaster()
	all, err := b.subscribe("", func(*store.Sandbox) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	one, _ := b.subscribe("s-aaa111", func(*store.Sandbox) bool { return true })
	mine, _ := b.subscribe("", func(sb *store.Sandbox) bool { return sb.Owner == "alice" })
	ev := func(id, owner string) Event {
		return Event{Type: EventStateChanged, Sandbox: &store.Sandbox{ID: id, Owner: owner}}
	}
	b.publish(ev("s-aaa111", "bob"))
	b.publish(ev("s-bbb222", "alice"))
	if len(all.ch) != 2 || len(one.ch) != 1 || len(mine.ch) != 1 {
		t.Errorf("buffered all %d, one %d, mine %d; want 2, 1, 1", len(all.ch), len(one.ch), len(mine.ch))
	}
	if got := (<-mine.ch).Sandbox.ID; got != "s-bbb222" {
		t.Errorf("alice's watcher got %s", got)
	}

	// Past the buffer nothing blocks: events are counted as lost.
	for range watchBuffer + 10 {
		b.publish(ev("s-aaa111", "bob"))
	}
	if !b.hasLost(all) || !b.hasLost(one) || b.hasLost(mine) {
		t.Errorf("hasLost all %v, one %v, mine %v; want true, true, false", b.hasLost(all), b.hasLost(one), b.hasLost(mine))
	}
	select {
	case <-all.lostCh:
	default:
		t.Error("no lost signal")
	}
	// all missed 2+266 - its buffer of 256 ... it holds 256 and lost 12;
	// taking the loss discards the buffer: 268 events not delivered.
	if n := b.takeLost(all, 0); n != 2+watchBuffer+10 {
		t.Errorf("takeLost = %d, want %d", n, 2+watchBuffer+10)
	}
	if b.hasLost(all) || len(all.ch) != 0 {
		t.Errorf("after takeLost: hasLost %v, %d buffered", b.hasLost(all), len(all.ch))
	}

	b.unsubscribe(one)
	if n := b.watchers(); n != 2 {
		t.Errorf("%d watchers after one unsubscribed, want 2", n)
	}
	b.close()
	select {
	case <-all.done:
	default:
		t.Error("close did not end subscriptions")
	}
	if _, err := b.subscribe("", func(*store.Sandbox) bool { return true }); status.Code(toStatus(err)) != codes.Unavailable {
		t.Errorf("subscribe after close: %v, want Unavailable", err)
	}
}

func TestBroadcasterLimit(t *testing.T) {
	b := newBroadcaster()
	for range maxWatchers {
		if _, err := b.subscribe("", func(*store.Sandbox) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.subscribe("", func(*store.Sandbox) bool { return true })
	if st := status.Convert(toStatus(err)); st.Code() != codes.ResourceExhausted {
		t.Fatalf("watcher %d: %v, want ResourceExhausted", maxWatchers+1, err)
	}
}

// watchEnv is a SandboxServer without a sandbox manager (events only)
// served over bufconn; the "x-test-caller" metadata sets the caller.
type watchEnv struct {
	s      *SandboxServer
	st     *store.Store
	client labsv1.SandboxServiceClient
	srv    *grpc.Server
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "labd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := labs.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	s := NewSandboxServer(Config{Store: st, Catalog: cat, Metrics: NewMetrics(), TTL: time.Hour, IdleTimeout: time.Hour})
	lis := bufconn.Listen(1 << 20)
	setCaller := func(ctx context.Context) context.Context {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("x-test-caller"); len(v) == 1 {
			return WithCaller(ctx, &Caller{Subject: v[0], Role: store.RoleLearner})
		}
		return ctx
	}
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &observedStream{ServerStream: ss, ctx: setCaller(ss.Context())})
		}))
	labsv1.RegisterSandboxServiceServer(srv, s)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A fixed window, so that a client that does not read holds the
		// server's sends back soon.
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &watchEnv{s: s, st: st, client: labsv1.NewSandboxServiceClient(conn), srv: srv}
}

// row creates a READY sandbox row of hello-link owned by owner.
func (e *watchEnv) row(t *testing.T, id, owner string) *store.Sandbox {
	t.Helper()
	ctx := t.Context()
	if _, err := e.st.CreateSandbox(ctx, id, "hello-link", owner, []string{"h1", "h2"}, 1<<30, 64); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetState(ctx, id, store.StateReady, ""); err != nil {
		t.Fatal(err)
	}
	sb, err := e.st.GetSandbox(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func (e *watchEnv) watch(t *testing.T, ctx context.Context, req *labsv1.WatchSandboxesRequest) labsv1.SandboxService_WatchSandboxesClient {
	t.Helper()
	stream, err := e.client.WatchSandboxes(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// waitWatchers waits until n watchers are subscribed: a stream is open
// once its first message is read or its handler has subscribed.
func (e *watchEnv) waitWatchers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.s.events.watchers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d watchers, want %d", e.s.events.watchers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func recv(t *testing.T, stream labsv1.SandboxService_WatchSandboxesClient) *labsv1.WatchSandboxesResponse {
	t.Helper()
	m, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return m
}

func TestWatchSandboxes(t *testing.T) {
	e := newWatchEnv(t)
	a := e.row(t, "s-aaa111", "alice")
	b := e.row(t, "s-bbb222", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Everything, with the current state first.
	all := e.watch(t, ctx, &labsv1.WatchSandboxesRequest{SendCurrent: true})
	var current []string
	for {
		m := recv(t, all)
		if m.GetType() == labsv1.WatchSandboxesResponse_TYPE_SYNCED {
			break
		}
		if m.GetType() != labsv1.WatchSandboxesResponse_TYPE_CURRENT || m.GetSandbox().GetState() != labsv1.Sandbox_STATE_READY {
			t.Fatalf("snapshot message %v", m)
		}
		current = append(current, m.GetSandbox().GetId())
	}
	if !slices.Equal(current, []string{"s-aaa111", "s-bbb222"}) {
		t.Errorf("snapshot %q, want both sandboxes", current)
	}
	// One sandbox; alice's own; bob watching alice's is NotFound.
	one := e.watch(t, ctx, &labsv1.WatchSandboxesRequest{Sandbox: "sandboxes/s-aaa111"})
	aliceCtx := metadata.AppendToOutgoingContext(ctx, "x-test-caller", "alice")
	alice := e.watch(t, aliceCtx, &labsv1.WatchSandboxesRequest{})
	bobCtx := metadata.AppendToOutgoingContext(ctx, "x-test-caller", "bob")
	_, err := e.watch(t, bobCtx, &labsv1.WatchSandboxesRequest{Sandbox: "s-aaa111"}).Recv()
	if status.Code(err) != codes.NotFound {
		t.Errorf("bob watching alice's sandbox: %v, want NotFound", err)
	}
	_, err = e.watch(t, ctx, &labsv1.WatchSandboxesRequest{Sandbox: "s-000000"}).Recv()
	if status.Code(err) != codes.NotFound {
		t.Errorf("watching a missing sandbox: %v, want NotFound", err)
	}
	_, err = e.watch(t, ctx, &labsv1.WatchSandboxesRequest{Sandbox: "nope!"}).Recv()
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("watching a bad name: %v, want InvalidArgument", err)
	}
	e.waitWatchers(t, 3)

	e.s.emit(EventExtended, b, "by 1h", nil)
	e.s.emit(EventExpiring, a, "", &Expiry{Cause: store.DueIdle, At: time.Unix(100, 0), Remaining: time.Minute})
	e.s.emit(EventDeleted, a, "deleted", nil)

	for _, want := range []struct {
		typ labsv1.WatchSandboxesResponse_Type
		id  string
	}{
		{labsv1.WatchSandboxesResponse_TYPE_EXTENDED, "s-bbb222"},
		{labsv1.WatchSandboxesResponse_TYPE_EXPIRING, "s-aaa111"},
		{labsv1.WatchSandboxesResponse_TYPE_DELETED, "s-aaa111"},
	} {
		if m := recv(t, all); m.GetType() != want.typ || m.GetSandbox().GetId() != want.id {
			t.Errorf("all: %v %s, want %v %s", m.GetType(), m.GetSandbox().GetId(), want.typ, want.id)
		}
	}
	m := recv(t, one)
	if m.GetType() != labsv1.WatchSandboxesResponse_TYPE_EXPIRING || m.GetExpiry().GetCause() != labsv1.ExpiryWarning_CAUSE_IDLE ||
		m.GetExpiry().GetRemaining().AsDuration() != time.Minute || m.GetExpiry().GetExpireTime().AsTime().Unix() != 100 {
		t.Errorf("one: %v, want the idle warning", m)
	}
	if m := recv(t, one); m.GetType() != labsv1.WatchSandboxesResponse_TYPE_DELETED || m.GetReason() != "deleted" {
		t.Errorf("one: %v, want DELETED", m)
	}
	if _, err := one.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("watch of one sandbox after its deletion: %v, want the end of the stream", err)
	}
	if m := recv(t, alice); m.GetType() != labsv1.WatchSandboxesResponse_TYPE_EXPIRING || m.GetSandbox().GetId() != "s-aaa111" {
		t.Errorf("alice got %v first; want her own sandbox's warning, not bob's extension", m)
	}

	// Shutdown ends the streams.
	e.s.Drain()
	for _, st := range []labsv1.SandboxService_WatchSandboxesClient{all, alice} {
		for {
			_, err := st.Recv()
			if err != nil {
				if status.Code(err) != codes.Unavailable {
					t.Errorf("after Drain: %v, want Unavailable", err)
				}
				break
			}
		}
	}
}

// TestWatchSlowWatcher: a watcher that does not read is never waited
// for; when it reads again it gets what fitted, then how many events it
// lost, then the current state, then new events. Nothing is both lost
// and delivered.
func TestWatchSlowWatcher(t *testing.T) {
	e := newWatchEnv(t)
	a := e.row(t, "s-aaa111", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slow := e.watch(t, ctx, &labsv1.WatchSandboxesRequest{})
	e.waitWatchers(t, 1)

	const n = 5000
	start := time.Now()
	for range n {
		e.s.emit(EventExtended, a, "by 1h", nil)
	}
	t.Logf("published %d events in %s with a watcher not reading", n, time.Since(start))

	// Read until every event is accounted for: delivered, or reported
	// lost (perhaps in several reports while the publisher raced on),
	// each report followed by a snapshot before any further event.
	var delivered, lost, reports int64
	inSnapshot := false
	for delivered+lost < n || inSnapshot {
		m := recv(t, slow)
		switch m.GetType() {
		case labsv1.WatchSandboxesResponse_TYPE_EXTENDED:
			if inSnapshot {
				t.Fatal("an event inside a snapshot")
			}
			delivered++
		case labsv1.WatchSandboxesResponse_TYPE_EVENTS_LOST:
			if inSnapshot {
				t.Fatal("a loss report inside a snapshot")
			}
			lost += m.GetLost()
			reports++
			inSnapshot = true
		case labsv1.WatchSandboxesResponse_TYPE_CURRENT:
			if !inSnapshot || m.GetSandbox().GetId() != "s-aaa111" {
				t.Fatalf("unexpected %v", m)
			}
		case labsv1.WatchSandboxesResponse_TYPE_SYNCED:
			inSnapshot = false
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	t.Logf("delivered %d, lost %d in %d reports", delivered, lost, reports)
	if lost == 0 || delivered+lost != n {
		t.Errorf("delivered %d + lost %d != %d published, or nothing lost", delivered, lost, n)
	}
	if got := testCounter(t, e.s.cfg.Metrics, "nslab_watch_events_lost_total"); got != float64(lost) {
		t.Errorf("nslab_watch_events_lost_total %v, want %d", got, lost)
	}
	// Caught up, it gets events again.
	e.s.emit(EventDeleted, a, "deleted", nil)
	if m := recv(t, slow); m.GetType() != labsv1.WatchSandboxesResponse_TYPE_DELETED {
		t.Errorf("after the resync: %v, want the next event", m)
	}
}

// TestWarnPass: warnings come once per threshold, and again for a
// deadline that moved; an open session silences the idle warning.
func TestWarnPass(t *testing.T) {
	e := newWatchEnv(t)
	ctx := t.Context()
	row := e.row(t, "s-aaa111", "alice")
	ready := row.Ready
	if err := e.st.SetExpiry(ctx, row.ID, ready.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := e.st.TouchSandbox(ctx, row.ID, ready); err != nil {
		t.Fatal(err)
	}
	e.s.cfg.IdleTimeout = 8 * time.Minute // idle deadline ready+8m, before the ttl's
	sub, _ := e.s.events.subscribe("", func(*store.Sandbox) bool { return true })
	warned := map[warnKey]time.Duration{}
	pass := func(at time.Duration) (next time.Duration, got []string) {
		n := e.s.warnPass(ctx, ready.Add(at), warned)
		for {
			select {
			case ev := <-sub.ch:
				got = append(got, string(ev.Expiry.Cause)+" "+ev.Expiry.Remaining.String())
			default:
				return n.Sub(ready), got
			}
		}
	}
	steps := []struct {
		at       time.Duration
		wantNext time.Duration
		want     []string
	}{
		// Idle (L=8m) warns at +4m and +7m, the ttl (L=10m) at +5m and
		// +9m; the warner looks at least every maxWarnSleep (30s).
		{0, 30 * time.Second, nil},
		{3*time.Minute + 30*time.Second, 4 * time.Minute, nil},
		{4 * time.Minute, 4*time.Minute + 30*time.Second, []string{"idle 4m0s"}},
		{4*time.Minute + time.Second, 4*time.Minute + 31*time.Second, nil}, // once
		{5 * time.Minute, 5*time.Minute + 30*time.Second, []string{"ttl 5m0s"}},
		{6*time.Minute + 45*time.Second, 7 * time.Minute, nil},
		{7*time.Minute + 30*time.Second, 8 * time.Minute, []string{"idle 30s"}},
	}
	for _, st := range steps {
		next, got := pass(st.at)
		if next != st.wantNext || !slices.Equal(got, st.want) {
			t.Errorf("pass at +%s: warnings %q, next at +%s; want %q, +%s", st.at, got, next, st.want, st.wantNext)
		}
	}
	// Activity moves the idle deadline: a new one, warned of afresh
	// when due; an open session means no idle warning at all.
	if err := e.st.TouchSandbox(ctx, row.ID, ready.Add(7*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, got := pass(7*time.Minute + 31*time.Second); got != nil {
		t.Errorf("after activity: %q, want nothing (idle is 8m away, the ttl warned)", got)
	}
	if _, got := pass(9*time.Minute + 10*time.Second); !slices.Equal(got, []string{"ttl 50s"}) {
		t.Errorf("at +9m10s: %q, want the ttl's last warning", got)
	}
	if err := e.st.SetExpiry(ctx, row.ID, ready.Add(time.Hour)); err != nil { // extended
		t.Fatal(err)
	}
	e.s.mu.Lock()
	e.s.sessions[row.ID] = 1
	e.s.mu.Unlock()
	if _, got := pass(15*time.Minute + 20*time.Second); got != nil {
		t.Errorf("with a session open, 10s before the idle deadline: %q, want nothing", got)
	}
	e.s.mu.Lock()
	delete(e.s.sessions, row.ID)
	e.s.mu.Unlock()
	if _, got := pass(15*time.Minute + 20*time.Second); !slices.Equal(got, []string{"idle 10s"}) {
		t.Errorf("session closed, 10s before the idle deadline: %q, want the idle warning", got)
	}
	if len(warned) > 2 {
		t.Errorf("warned holds %d deadlines, want at most the 2 current ones: %v", len(warned), warned)
	}
}
