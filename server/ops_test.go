package main

// Issue 8's operations acceptance: restarts lose nothing (kill -9 and
// SIGTERM, with live sandboxes and during a create), a TTL expiry keeps
// grades and leaves nothing, host-wide limits leave no trace of what they
// refuse, metrics, request ids and sandbox events against a real labd.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
)

// netnsOf returns the network namespaces ("net:[inode]") the pids are in.
func netnsOf(pids []int) map[string]bool {
	out := map[string]bool{}
	for _, pid := range pids {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
			out[l] = true
		}
	}
	return out
}

// netnsHolders lists what on the host still holds one of the network
// namespaces: a thread in it or an open descriptor of it. (A sandbox's
// links and bridges live in its namespaces and go with them; nothing of
// a sandbox is ever bind-mounted.)
func netnsHolders(ns map[string]bool) []string {
	var out []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		before := len(out)
		tasks, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "task"))
		for _, tk := range tasks {
			if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "task", tk.Name(), "ns", "net")); err == nil && ns[l] {
				out = append(out, fmt.Sprintf("thread %s/%s in %s", p.Name(), tk.Name(), l))
			}
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && ns[l] {
				out = append(out, fmt.Sprintf("fd %s/%s of %s", p.Name(), fd.Name(), l))
			}
		}
		if len(out) > before { // name the holder
			b, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
			out[before] += fmt.Sprintf(" (process %s: %q)", p.Name(), strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
		}
	}
	return out
}

// sandboxPids lists the hub and node init pids of sandbox id.
func (e *testEnv) sandboxPids(id string) []int {
	var out []int
	for pid, argv := range e.taggedProcs() {
		if argv[2] == id {
			out = append(out, pid)
		}
	}
	return out
}

// query runs one read-only query on e's database, which labd may have
// open.
func (e *testEnv) query(t *testing.T, q string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+e.opts.db+"?mode=ro&_query_only=1&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (e *testEnv) leases(t *testing.T, id string) int {
	return e.query(t, `SELECT COUNT(*) FROM uid_leases WHERE sandbox = ?`, id)
}

// assertGone checks that nothing of sandbox id is on the host: no
// process, cgroup or state dir (assertHostClean), no holder of the
// network namespaces it had (ns), and no uid lease.
func (e *testEnv) assertGone(t *testing.T, id string, ns map[string]bool) {
	t.Helper()
	e.assertHostClean(t, id)
	if h := netnsHolders(ns); len(h) > 0 {
		t.Errorf("network namespaces of %s still held: %q", id, h)
	}
	if n := e.leases(t, id); n != 0 {
		t.Errorf("%d uid leases of %s left", n, id)
	}
}

// signal sends sig to the labd process and returns once it has exited.
func (p *labdProcess) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if sig == syscall.SIGKILL {
		p.kill(t)
		return
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		t.Fatal(err)
	}
	p.killed = true
	deadline := time.Now().Add(time.Minute)
	for !processGone(p.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("labd (pid %d) alive 1m after %s", p.pid, sig)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLabdRestartLosesNothing is acceptance 4: three sandboxes, a grade
// in one, a long exec running in another; labd is killed (kill -9) or
// stopped (SIGTERM) and started again: all three are READY, exec works
// in each, and the grade is listed.
func TestLabdRestartLosesNothing(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newTestEnv(t)
			e.opts.grace = 2 * time.Second // SIGTERM waits this long on the exec
			proc := startLabdProcess(t, e)
			conn := dial(t, e.opts.socket)
			sbx := labsv1.NewSandboxServiceClient(conn)
			grd := labsv1.NewGradingServiceClient(conn)
			ctx := rpcCtx(t)

			var ids []string
			for range 3 {
				resp, err := sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: "hello-link"})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, resp.GetSandbox().GetId())
			}
			graded, err := grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: ids[0], Exercise: "first-ping"})
			if err != nil {
				t.Fatal(err)
			}
			// A long exec in the second sandbox, running when labd goes.
			execCtx, cancelExec := context.WithCancel(context.Background())
			defer cancelExec()
			long, err := sbx.Exec(execCtx, &labsv1.ExecRequest{Sandbox: ids[1], Node: "h1", Command: []string{"sleep", "60"}})
			if err != nil {
				t.Fatal(err)
			}
			longDone := make(chan error, 1)
			go func() {
				for {
					if _, err := long.Recv(); err != nil {
						longDone <- err
						return
					}
				}
			}()
			pgrep := &labsv1.ExecRequest{Sandbox: ids[1], Node: "h1", Command: []string{"pgrep", "-x", "sleep"}}
			for deadline := time.Now().Add(30 * time.Second); ; {
				st, err := sbx.Exec(ctx, pgrep)
				if err != nil {
					t.Fatal(err)
				}
				if m, err := lastExecMessage(st); err == nil && m.GetExit().GetCode() == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("sleep 60 not running in h1 after 30s")
				}
				time.Sleep(20 * time.Millisecond)
			}

			start := time.Now()
			proc.signal(t, sig)
			t.Logf("labd gone %s after %s (long exec open)", time.Since(start).Round(time.Millisecond), sig)
			select {
			case err := <-longDone:
				t.Logf("the open exec stream ended with: %v", err)
				if errors.Is(err, io.EOF) && sig == syscall.SIGKILL {
					t.Error("the open exec ended cleanly though labd was killed")
				}
			case <-time.After(30 * time.Second):
				t.Error("the open exec stream did not end after labd went")
			}

			start = time.Now()
			l := startLabd(t, e)
			t.Logf("restart after %s took %s", sig, time.Since(start).Round(time.Millisecond))
			all := l.listAll(t)
			for _, id := range ids {
				sb, ok := all[id]
				if !ok || sb.GetState() != labsv1.Sandbox_STATE_READY {
					t.Errorf("after restart %s is %v (%s), want READY", id, sb.GetState(), sb.GetFailureReason())
					continue
				}
				if got := l.mustExec(t, id, "h2", "hostname"); got != "h2\n" {
					t.Errorf("exec hostname in %s/h2 = %q", id, got)
				}
				l.mustExec(t, id, "h1", "ping", "-c1", "-W2", "10.0.0.2")
			}
			if len(all) != 3 {
				t.Errorf("%d sandboxes listed after restart, want 3", len(all))
			}
			if r, err := l.exec(t, pgrep); err == nil {
				t.Logf("after restart, sleep 60 of the cut exec still running in h1: %v", r.exit.GetCode() == 0)
			}
			grades, err := labsv1.NewGradingServiceClient(l.conn).ListGrades(rpcCtx(t), &labsv1.ListGradesRequest{Sandbox: ids[0]})
			if err != nil || len(grades.GetGrades()) != 1 || grades.GetGrades()[0].GetName() != graded.GetReports()[0].GetName() {
				t.Errorf("ListGrades after restart = %v, %v; want the grade made before (%s)", grades, err, graded.GetReports()[0].GetName())
			}
			for _, id := range ids {
				ns := netnsOf(e.sandboxPids(id))
				l.delete(t, id)
				e.assertGone(t, id, ns)
			}
			l.stop()
			proc.waitKeeper(t, 30*time.Second)
		})
	}
}

// lastExecMessage drains an exec stream and returns its exit message.
func lastExecMessage(st grpc.ServerStreamingClient[labsv1.ExecResponse]) (*labsv1.ExecResponse, error) {
	var last *labsv1.ExecResponse
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			if last == nil {
				return nil, errors.New("empty stream")
			}
			return last, nil
		}
		if err != nil {
			return nil, err
		}
		last = m
	}
}

// TestLabdRestartAfterShutdownCutsBuild: a labd stopped (as by SIGTERM)
// with no grace while a 20-node sandbox is being built cuts the build
// short: its run returns only once the half-built sandbox is torn down
// and recorded FAILED, which the next start lists.
func TestLabdRestartAfterShutdownCutsBuild(t *testing.T) {
	e := newTestEnv(t, "../labs/testdata/star20.yaml")
	e.opts.grace = 0
	l := startLabd(t, e)
	created := make(chan error, 1)
	go func() {
		_, err := l.sbx.CreateSandbox(context.Background(), &labsv1.CreateSandboxRequest{Lab: "star20"})
		created <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for len(e.taggedProcs()) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("build not under way after 1m")
		}
		time.Sleep(100 * time.Microsecond)
	}
	ids := e.sandboxStateDirs()
	if len(ids) != 1 {
		t.Fatalf("state dirs %q, want the one being built", ids)
	}
	id := ids[0]
	ns := netnsOf(e.sandboxPids(id))
	start := time.Now()
	l.stop()
	t.Logf("labd stopped %s after the shutdown began, mid-build", time.Since(start).Round(time.Millisecond))
	if err := <-created; err == nil {
		t.Fatal("CreateSandbox succeeded though labd stopped during it")
	}
	// Torn down before run returned, not at the next start.
	e.assertGone(t, id, ns)

	l = startLabd(t, e)
	sb := l.get(t, id)
	if sb.GetState() != labsv1.Sandbox_STATE_FAILED || sb.GetFailureReason() != "labd stopped while it was being built" || len(sb.GetNodes()) != 0 {
		t.Errorf("after restart %s is %v (%q) with %d nodes; want FAILED, labd stopped while it was being built, no nodes",
			id, sb.GetState(), sb.GetFailureReason(), len(sb.GetNodes()))
	}
	if sb.GetExpireTime() == nil {
		t.Error("a FAILED sandbox without an expire_time is kept forever")
	}
	l.delete(t, id)
	if all := l.listAll(t); len(all) != 0 {
		t.Errorf("listed after deleting the FAILED sandbox: %v", all)
	}
}

// TestLabdHostLimits is acceptance 2's host-wide half: a create past
// --max-nodes or --max-sandboxes is refused with ResourceExhausted naming
// the limit and the count, and leaves no trace: no row, event or lease,
// no process, cgroup, state dir or namespace.
func TestLabdHostLimits(t *testing.T) {
	e := newTestEnv(t)
	e.addLab(t, "solo.yaml", []byte(`id: solo
title: One node
summary: A single node, for limit tests.
level: beginner
topics: [test]
nodes:
  - name: h1
`))
	e.opts.maxSandboxes = 2
	e.opts.maxNodes = 3
	l := startLabd(t, e)

	type trace struct {
		listed                      []string
		rows, events, leases, nodes int
		cgroups, dirs, procs, netns string
	}
	snapshot := func() trace {
		var tr trace
		for id := range l.listAll(t) {
			tr.listed = append(tr.listed, id)
		}
		slices.Sort(tr.listed)
		tr.rows = e.query(t, `SELECT COUNT(*) FROM sandboxes`)
		tr.events = e.query(t, `SELECT COUNT(*) FROM events`)
		tr.leases = e.query(t, `SELECT COUNT(*) FROM uid_leases`)
		tr.nodes = e.query(t, `SELECT COUNT(*) FROM nodes`)
		tr.cgroups = fmt.Sprint(e.sandboxCgroups())
		tr.dirs = fmt.Sprint(e.sandboxStateDirs())
		var pids []int
		for pid := range e.taggedProcs() {
			pids = append(pids, pid)
		}
		slices.Sort(pids)
		tr.procs = fmt.Sprint(pids)
		ns := slices.Sorted(func(yield func(string) bool) {
			for n := range netnsOf(pids) {
				if !yield(n) {
					return
				}
			}
		})
		tr.netns = fmt.Sprint(ns)
		return tr
	}
	refused := func(lab, limit string) {
		t.Helper()
		before := snapshot()
		_, err := l.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: lab})
		wantCode(t, "CreateSandbox past --max-"+limit, err, codes.ResourceExhausted)
		msg := status.Convert(err).Message()
		if !strings.Contains(msg, "--max-"+limit) || !strings.Contains(msg, "in use") {
			t.Errorf("refusal %q does not name --max-%s and the count", msg, limit)
		}
		t.Logf("refused: %s", msg)
		if after := snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("the refused create left a trace:\nbefore %+v\nafter  %+v", before, after)
		}
	}

	a := l.create(t, "hello-link").GetId() // 1 sandbox, 2 nodes
	refused("hello-link", "nodes")         // 4 nodes > 3
	b := l.create(t, "solo").GetId()       // 2 sandboxes, 3 nodes
	refused("solo", "sandboxes")           // 3 sandboxes > 2
	refused("hello-link", "sandboxes")     // both limits: sandboxes is checked first
	l.delete(t, b)
	c := l.create(t, "solo").GetId() // room again
	for _, id := range []string{a, c} {
		l.delete(t, id)
		e.assertHostClean(t, id)
	}
}

// TestLabdTTLWatchAndCleanup is acceptance 3 with its events: a sandbox
// made with a 5s TTL is warned of (at 2.5s and 1s left), deleted when it
// expires with nothing of it left on the host (processes, namespaces,
// cgroups, state, uid leases), and its grade is still listed. A watcher
// of every sandbox sees it from CREATING to DELETED.
func TestLabdTTLWatchAndCleanup(t *testing.T) {
	e := newTestEnv(t)
	e.opts.reapEvery = 100 * time.Millisecond
	l := startLabd(t, e)
	grd := labsv1.NewGradingServiceClient(l.conn)
	wctx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	// Its own connection: stop closes l's before labd ends the watch.
	watch, err := labsv1.NewSandboxServiceClient(dial(t, e.opts.socket)).WatchSandboxes(wctx, &labsv1.WatchSandboxesRequest{SendCurrent: true})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.GetType() != labsv1.WatchSandboxesResponse_TYPE_SYNCED {
		t.Fatalf("first message %v, %v; want SYNCED (no sandboxes yet)", m, err)
	}
	type seen struct {
		at time.Time
		m  *labsv1.WatchSandboxesResponse
	}
	var (
		mu     sync.Mutex
		events []seen
	)
	watchDone := make(chan error, 1)
	go func() {
		for {
			m, err := watch.Recv()
			if err != nil {
				watchDone <- err
				return
			}
			mu.Lock()
			events = append(events, seen{time.Now(), m})
			mu.Unlock()
		}
	}()

	resp, err := l.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: "hello-link", Ttl: durationpb.New(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	sb := resp.GetSandbox()
	id := sb.GetId()
	expire := sb.GetExpireTime().AsTime()
	if !near(expire, sb.GetReadyTime().AsTime().Add(5*time.Second), time.Second) {
		t.Errorf("expire_time %s; want ready_time + 5s", expire)
	}
	ns := netnsOf(e.sandboxPids(id))
	if len(ns) != 3 { // hub, h1, h2
		t.Errorf("sandbox %s has network namespaces %v; want 3", id, ns)
	}
	if n := e.leases(t, id); n != 2 {
		t.Errorf("%d uid leases of %s, want 2", n, id)
	}
	if _, err := grd.Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: id, Exercise: "first-ping"}); err != nil {
		t.Fatal(err)
	}

	took := l.waitGone(t, id, 15*time.Second)
	t.Logf("sandbox %s gone %s after its creation returned (ttl 5s), %s after its expire_time", id,
		took.Round(10*time.Millisecond), time.Since(expire).Round(10*time.Millisecond))
	if gone := time.Now(); gone.Before(expire) {
		t.Errorf("gone at %s, before its expire_time %s", gone, expire)
	}
	e.assertGone(t, id, ns)
	grades, err := grd.ListGrades(rpcCtx(t), &labsv1.ListGradesRequest{Sandbox: id})
	if err != nil || len(grades.GetGrades()) != 1 {
		t.Errorf("ListGrades of the expired sandbox = %v, %v; want its grade kept", grades, err)
	}

	// The watcher saw the whole life, in order.
	deadline := time.Now().Add(5 * time.Second)
	var kinds []string
	for {
		mu.Lock()
		kinds = kinds[:0]
		for _, s := range events {
			if s.m.GetSandbox().GetId() != id {
				continue
			}
			k := strings.TrimPrefix(s.m.GetType().String(), "TYPE_")
			switch s.m.GetType() {
			case labsv1.WatchSandboxesResponse_TYPE_STATE_CHANGED:
				k = strings.TrimPrefix(s.m.GetSandbox().GetState().String(), "STATE_")
			case labsv1.WatchSandboxesResponse_TYPE_EXPIRING:
				left := s.m.GetExpiry().GetRemaining().AsDuration()
				k = fmt.Sprintf("EXPIRING(%s %.1fs)", strings.TrimPrefix(s.m.GetExpiry().GetCause().String(), "CAUSE_"), left.Seconds())
				if real := time.Until(expire) + time.Since(s.at); real < 0 || real > left+time.Second {
					t.Errorf("warning %s arrived %s before the expiry", k, real)
				}
			case labsv1.WatchSandboxesResponse_TYPE_DELETED:
				if !strings.HasPrefix(s.m.GetReason(), "expired: ttl:") {
					t.Errorf("DELETED with reason %q; want expired: ttl: ...", s.m.GetReason())
				}
			}
			kinds = append(kinds, k)
		}
		mu.Unlock()
		if len(kinds) > 0 && kinds[len(kinds)-1] == "DELETED" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("events of %s: %q", id, kinds)
	want := []string{"CREATING", "READY", "EXPIRING(TTL 2.5s)", "EXPIRING(TTL 1.0s)", "DELETING", "DELETED"}
	if len(kinds) != len(want) {
		t.Fatalf("events %q; want %q", kinds, want)
	}
	for i := range want {
		// Warnings may come a few ms late: compare to a tenth of a second.
		if kinds[i] != want[i] && !(strings.HasPrefix(want[i], "EXPIRING") && strings.HasPrefix(kinds[i], "EXPIRING(TTL")) {
			t.Errorf("event %d %q; want %q (all: %q)", i, kinds[i], want[i], kinds)
		}
	}
	l.stop()
	select {
	case err := <-watchDone:
		if status.Code(err) != codes.Unavailable {
			t.Errorf("watch after labd stopped: %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("watch did not end when labd stopped")
	}
}

// freeAddr returns a loopback address with a free TCP port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestLabdMetrics: with --metrics, /metrics reports the store's sandboxes
// by state, live nodes, capture ring memory and the latencies of create,
// exec, grade and delete; every call returns its x-request-id.
func TestLabdMetrics(t *testing.T) {
	e := newTestEnv(t)
	e.opts.metrics = freeAddr(t)
	l := startLabd(t, e)
	scrape := func() string {
		t.Helper()
		resp, err := http.Get("http://" + e.opts.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		return string(b)
	}
	value := func(text, series string) float64 {
		t.Helper()
		for _, line := range strings.Split(text, "\n") {
			if name, v, ok := strings.Cut(line, " "); ok && name == series {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return f
			}
		}
		t.Errorf("no %s in /metrics", series)
		return -1
	}

	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(rpcCtx(t), "x-request-id", "test-create-1")
	resp, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: "hello-link"}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get("x-request-id"); len(got) != 1 || got[0] != "test-create-1" {
		t.Errorf("x-request-id in the response header %q; want the one sent", got)
	}
	id := resp.GetSandbox().GetId()
	l.mustExec(t, id, "h1", "echo", "hi")
	if _, err := labsv1.NewGradingServiceClient(l.conn).Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: id, Exercise: "first-ping"}); err != nil {
		t.Fatal(err)
	}
	stream, err := l.sbx.Exec(rpcCtx(t), &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := stream.Header(); err != nil || len(h.Get("x-request-id")) != 1 || len(h.Get("x-request-id")[0]) != 16 {
		t.Errorf("exec stream header %v, %v; want a fresh 16-hex x-request-id", h, err)
	}
	lastExecMessage(stream)

	text := scrape()
	for series, want := range map[string]float64{
		`nslab_sandboxes{state="READY"}`:                           1,
		`nslab_sandboxes{state="CREATING"}`:                        0,
		`nslab_nodes`:                                              2,
		`nslab_nodes_live`:                                         2,
		`nslab_capture_ring_bytes`:                                 float64(sandbox.DefaultRingSize * sandbox.CaptureSlotBytes),
		`nslab_create_seconds_count{lab="hello-link",result="ok"}`: 1,
		`nslab_exec_streams_total`:                                 2,
		`nslab_exec_streams_open`:                                  0,
		`nslab_exec_first_byte_seconds_count`:                      1, // "true" writes nothing
		`nslab_exec_seconds_count`:                                 2,
		`nslab_grade_seconds_count{lab="hello-link"}`:              1,
		`nslab_capacity_limit{limit="sandboxes"}`:                  500,
		`nslab_grpc_requests_total{code="OK",method="/labs.v1.SandboxService/CreateSandbox"}`: 1,
	} {
		if got := value(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if v := value(text, `nslab_create_seconds_sum{lab="hello-link",result="ok"}`); v <= 0 || v > 60 {
		t.Errorf("create took %vs by the histogram", v)
	}
	l.delete(t, id)
	text = scrape()
	if got := value(text, `nslab_sandboxes{state="READY"}`); got != 0 {
		t.Errorf("READY after delete = %v", got)
	}
	if got := value(text, `nslab_delete_seconds_count{result="ok"}`); got != 1 {
		t.Errorf("deletes observed %v, want 1", got)
	}
	if got := value(text, `nslab_capture_ring_bytes`); got != 0 {
		t.Errorf("capture ring bytes after delete = %v", got)
	}
}
