package main

// The threat suite (issue 5): hostile learners. Learners are root inside
// their nodes and run whatever they like, thirty of them on one host.
// Each TestThreatNN runs one attack the way a learner would — a command
// sent through labd's Exec into a node of a real sandbox — and asserts
// that it fails, and that the host, labd (another RPC still answers
// quickly) and a second learner's sandbox (exec works, its processes are
// the same) do not notice. Every defence tested is the kernel's or
// labd's, never a filter on command names.
//
// Attacks are bounded in time and size (Exec timeouts, `timeout`, dd
// counts) and send traffic only to addresses inside the sandbox, to
// loopback or to the host's own addresses (which a node must not reach).
// The CPU, memory, fork and output floods do not call t.Parallel, so they
// never share the machine with the timing-sensitive tests; the rest run
// in parallel, each with its own labd.
//
// A test of a defence that is missing today calls knownGap first: it is
// skipped with "KNOWN GAP: ...". NSLAB_THREAT_GAPS=1 runs those too (they
// fail until the defence lands). docs/SECURITY.md lists every attack with
// its defence.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
)

// knownGap skips a test whose defence is missing today, unless
// NSLAB_THREAT_GAPS=1 asks to run it anyway.
func knownGap(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("NSLAB_THREAT_GAPS") == "1" {
		t.Logf("KNOWN GAP, running anyway: %s", what)
		return
	}
	t.Skip("KNOWN GAP: " + what)
}

// threat is one labd with two learners' sandboxes: the attacker's, where
// the attacks run, and a victim's, which must not notice them.
type threat struct {
	e        *testEnv
	l        *labd
	grd      labsv1.GradingServiceClient
	att, vic string
	vicPs    map[string]string // node -> its process list before the attack
	vicInits map[int]string    // host pid -> node, of the victim's inits
}

type threatOption func(t *testing.T, e *testEnv) (attackerLab string)

// newThreat starts labd and creates the two sandboxes (hello-link, unless
// an option says otherwise for the attacker). The victim gets a process
// of its own that every attack must leave alone.
func newThreat(t *testing.T, opts ...threatOption) *threat {
	t.Helper()
	e := newTestEnv(t)
	attLab := "hello-link"
	for _, o := range opts {
		if lab := o(t, e); lab != "" {
			attLab = lab
		}
	}
	th := &threat{e: e, l: startLabd(t, e)}
	th.grd = labsv1.NewGradingServiceClient(th.l.conn)
	th.att = th.l.create(t, attLab).GetId()
	th.vic = th.l.create(t, "hello-link").GetId()
	// A long-running process in the victim, which no attack may end. Its
	// duration must parse: a sleep that fails at once would be a zombie
	// in the snapshot below until the node's init reaps it.
	b, _ := hex.DecodeString(randSuffix()[:4])
	th.mustSh(t, th.vic, "h1", fmt.Sprintf("sleep 600.%05d >/dev/null 2>&1 &", int(b[0])<<8|int(b[1])))
	th.vicPs = th.psAll(t, th.vic)
	th.vicInits = th.inits(th.vic)
	return th
}

// visibleState moves labd's database, socket and state directory from
// the test's temp dir (which a node's /tmp tmpfs covers) to a directory
// under /var/lib that nodes see, as they see /var/lib/nslab in
// production: attacks on them then meet the permissions, not a hidden
// path.
func visibleState(t *testing.T, e *testEnv) string {
	dir := "/var/lib/nslab-threat-" + randSuffix()
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e.opts.db = filepath.Join(dir, "db", "labd.db")
	e.opts.socket = filepath.Join(dir, "run", "labd.sock")
	e.opts.stateDir = filepath.Join(dir, "state")
	// Runs after labd has stopped (cleanups run last first).
	t.Cleanup(func() {
		e.destroyAll(t)
		os.RemoveAll(dir)
	})
	return ""
}

// attackerLab gives the attacker a lab of its own, added to --labs.
func attackerLab(id, yaml string) threatOption {
	return func(t *testing.T, e *testEnv) string {
		e.addLab(t, id+".yaml", []byte(yaml))
		return id
	}
}

// execStream runs req to completion on ctx. Unlike labd.exec it needs no
// *testing.T, so attacks can run in the background.
func execStream(ctx context.Context, c labsv1.SandboxServiceClient, req *labsv1.ExecRequest) (execResult, error) {
	stream, err := c.Exec(ctx, req)
	if err != nil {
		return execResult{}, err
	}
	var r execResult
	var out, errb bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.stdout, r.stderr = out.String(), errb.String()
			return r, err
		}
		switch ev := msg.GetEvent().(type) {
		case *labsv1.ExecResponse_Stdout:
			out.Write(ev.Stdout)
		case *labsv1.ExecResponse_Stderr:
			errb.Write(ev.Stderr)
		case *labsv1.ExecResponse_Exit:
			r.exit = ev.Exit
		}
	}
	r.stdout, r.stderr = out.String(), errb.String()
	if r.exit == nil {
		return r, errors.New("stream ended without an exit status")
	}
	return r, nil
}

func shReq(id, node, script string, timeout time.Duration) *labsv1.ExecRequest {
	return &labsv1.ExecRequest{Sandbox: id, Node: node, Command: []string{"sh", "-c", script}, Timeout: durationpb.New(timeout)}
}

// sh runs script with sh -c in a node, killed after 30s; the RPC must work.
func (th *threat) sh(t *testing.T, id, node, script string) execResult {
	t.Helper()
	return th.shIn(t, id, node, script, nil, 30*time.Second)
}

// shIn is sh with stdin and a timeout of its own.
func (th *threat) shIn(t *testing.T, id, node, script string, stdin []byte, timeout time.Duration) execResult {
	t.Helper()
	req := shReq(id, node, script, timeout)
	req.Stdin = stdin
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	r, err := execStream(ctx, th.l.sbx, req)
	if err != nil {
		t.Fatalf("exec %q in %s/%s: %v", script, id, node, err)
	}
	return r
}

func (th *threat) mustSh(t *testing.T, id, node, script string) string {
	t.Helper()
	r := th.sh(t, id, node, script)
	if r.exit.GetCode() != 0 {
		t.Fatalf("exec %q in %s/%s: exit %v\nstdout: %s\nstderr: %s", script, id, node, r.exit, r.stdout, r.stderr)
	}
	return r.stdout
}

// perl runs a Perl program (given on stdin) with args in a node.
func (th *threat) perl(t *testing.T, id, node, prog string, timeout time.Duration, args ...string) execResult {
	t.Helper()
	script := "cat > /tmp/.nslab-threat.pl && exec perl /tmp/.nslab-threat.pl"
	for _, a := range args {
		script += " '" + a + "'"
	}
	return th.shIn(t, id, node, script, []byte(prog), timeout)
}

// background starts script in a node without waiting for it: it keeps
// running after the exec returns (stdio on /dev/null, a session of its
// own), until its own bound ends it or the sandbox goes.
func (th *threat) background(t *testing.T, id, node, name, prog, cmd string) {
	t.Helper()
	// Returns once the command has a session of its own: the exec's
	// process group is killed when the exec ends.
	script := fmt.Sprintf(`cat > /tmp/%[1]s || exit 1
rm -f /tmp/%[1]s.started
setsid sh -c ': > /tmp/%[1]s.started; exec %[2]s' >/tmp/%[1]s.out 2>&1 </dev/null &
while [ ! -e /tmp/%[1]s.started ]; do sleep 0.01; done`, name, cmd)
	if r := th.shIn(t, id, node, script, []byte(prog), 10*time.Second); r.exit.GetCode() != 0 {
		t.Fatalf("start %s in %s/%s: %v %s", name, id, node, r.exit, r.stderr)
	}
}

// psAll lists every node's processes as `ps -e -o pid=,args=` shows them
// (without the ps itself), one string per node.
func (th *threat) psAll(t *testing.T, id string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, node := range []string{"h1", "h2"} {
		start := time.Now()
		r, err := th.l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: node, Command: []string{"ps", "-e", "-o", "pid=,args="}})
		if err != nil || r.exit.GetCode() != 0 {
			t.Errorf("ps in %s/%s: %v %v %s", id, node, err, r.exit, r.stderr)
			continue
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("exec in %s/%s took %s", id, node, d)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[1] != "ps" {
				lines = append(lines, strings.Join(f, " "))
			}
		}
		sort.Strings(lines)
		out[node] = strings.Join(lines, "\n")
	}
	return out
}

// inits maps the host pid of each node init of sandbox id to its node.
func (th *threat) inits(id string) map[int]string {
	out := map[int]string{}
	for pid, argv := range th.e.taggedProcs() {
		if argv[0] == "nslab-init" && argv[2] == id {
			out[pid] = argv[3]
		}
	}
	return out
}

func (th *threat) initPid(t *testing.T, id, node string) int {
	t.Helper()
	for pid, n := range th.inits(id) {
		if n == node {
			return pid
		}
	}
	t.Fatalf("no init for %s/%s", id, node)
	return 0
}

func (th *threat) hubPid(t *testing.T, id string) int {
	t.Helper()
	for pid, argv := range th.e.taggedProcs() {
		if argv[0] == "nslab-hub" && argv[2] == id {
			return pid
		}
	}
	t.Fatalf("no hub for %s", id)
	return 0
}

// assertUnaffected: labd answers quickly, the victim's nodes run
// commands and hold the processes they held, and the host can still
// start a process.
func (th *threat) assertUnaffected(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := healthpb.NewHealthClient(th.l.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("labd health check: %v", err)
	}
	if _, err := th.l.sbx.GetSandbox(ctx, &labsv1.GetSandboxRequest{Name: th.vic}); err != nil {
		t.Errorf("GetSandbox of the victim: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("labd took %s to answer a health check and a GetSandbox", d)
	}
	if got := th.psAll(t, th.vic); !maps.Equal(got, th.vicPs) {
		t.Errorf("the victim's processes changed:\nbefore: %q\nafter:  %q", th.vicPs, got)
	}
	if got := th.inits(th.vic); !maps.Equal(got, th.vicInits) {
		t.Errorf("the victim's inits changed: %v, before %v", got, th.vicInits)
	}
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("the host cannot start a process: %v", err)
	}
}

// cg is a cgroup file of a node (or, with node "", of the sandbox; with
// id "" too, of labd's cgroup parent) in the hierarchy of ctrl.
func (th *threat) cg(ctrl, id, node, file string) string {
	parts := []string{cgroupRoot}
	if !cgroupV2() {
		parts = append(parts, ctrl)
	}
	parts = append(parts, th.e.opts.cgroupParent, id, node, file)
	return filepath.Join(parts...)
}

func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// readInt reads a number from a file; "max" is -1.
func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number", path, s)
	}
	return n
}

// readKV reads a "key value" per line file (pids.events, memory.stat...).
func readKV(t *testing.T, path string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			out[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return out
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostMissing fails for every path that exists on the host (and removes
// it: an attack that got through must not leave litter).
func hostMissing(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s appeared on the host", p)
			os.RemoveAll(p)
		}
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// hostSysctl reads a sysctl of the host (this process's namespaces).
func hostSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// --- 1-3: resource floods (not parallel) ---

func TestThreat01ForkBomb(t *testing.T) {
	th := newThreat(t)
	pidsMax := readInt(t, th.cg("pids", th.att, "h1", "pids.max"))
	if pidsMax <= 0 {
		t.Fatalf("the node has no pids limit (pids.max %d)", pidsMax)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bomb := make(chan error, 1)
	go func() {
		_, err := execStream(ctx, th.l.sbx, shReq(th.att, "h1", `timeout -s KILL 30 bash -c 'b() { b | b & }; b; wait' 2>/dev/null`, time.Minute))
		bomb <- err
	}()
	events := th.cg("pids", th.att, "h1", "pids.events")
	waitUntil(t, 20*time.Second, "the fork bomb reaching the node's pids limit", func() bool { return readKV(t, events)["max"] > 0 })
	cur := readInt(t, th.cg("pids", th.att, "h1", "pids.current"))
	t.Logf("fork bomb: the node holds %d of %d pids; %d forks refused so far", cur, pidsMax, readKV(t, events)["max"])
	if cur > pidsMax {
		t.Errorf("the node holds %d pids, over its limit of %d", cur, pidsMax)
	}
	th.assertUnaffected(t)

	// The sandbox can still be stopped, bomb and all.
	start := time.Now()
	th.l.delete(t, th.att)
	t.Logf("DeleteSandbox during the fork bomb took %s", time.Since(start).Round(time.Millisecond))
	th.e.assertHostClean(t, th.att)
	select {
	case err := <-bomb:
		t.Logf("the bomb's exec ended with %v", err)
	case <-time.After(30 * time.Second):
		t.Errorf("the bomb's exec still open 30s after its sandbox was deleted")
	}
	th.assertUnaffected(t)

	t.Run("all sandboxes together cannot exhaust the host's pids", func(t *testing.T) {
		pidMax, _ := strconv.ParseInt(hostSysctl(t, "kernel.pid_max"), 10, 64)
		if sb := readInt(t, th.cg("pids", th.vic, "", "pids.max")); sb < 0 {
			t.Errorf("the sandbox cgroup has no pids limit")
		}
		if p := readInt(t, th.cg("pids", "", "", "pids.max")); p < 0 || p > pidMax/2 {
			t.Errorf("labd's cgroup parent allows %d pids (-1: unlimited); the host has %d", p, pidMax)
		}
	})
}

// kmsgTail reads the kernel log from the point where it was opened.
type kmsgTail struct{ fd int }

func openKmsg(t *testing.T) *kmsgTail {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		t.Fatalf("seek /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &kmsgTail{fd}
}

func (k *kmsgTail) lines() []string {
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(k.fd, buf)
		if errors.Is(err, unix.EPIPE) { // overwritten while we were away
			continue
		}
		if err != nil || n <= 0 {
			return out
		}
		rec := string(buf[:n])
		if i := strings.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		out = append(out, strings.TrimRight(rec, "\n"))
	}
}

func vmstat(t *testing.T, key string) int64 {
	t.Helper()
	return readKV(t, "/proc/vmstat")[key]
}

func TestThreat02MemoryHog(t *testing.T) {
	th := newThreat(t)
	limit := func() int64 { return readInt(t, th.cg("memory", th.att, "h1", "memory.max")) }
	oomKills := func() int64 { return readKV(t, th.cg("memory", th.att, "h1", "memory.events"))["oom_kill"] }
	if !cgroupV2() {
		limit = func() int64 { return readInt(t, th.cg("memory", th.att, "h1", "memory.limit_in_bytes")) }
		oomKills = func() int64 { return readKV(t, th.cg("memory", th.att, "h1", "memory.oom_control"))["oom_kill"] }
	}
	lim := limit()
	if lim <= 0 || lim > 1<<40 {
		t.Fatalf("the node has no memory limit (%d)", lim)
	}
	kmsg := openKmsg(t)
	globalBefore := vmstat(t, "oom_kill")
	start := time.Now()
	r := th.shIn(t, th.att, "h1", `exec perl -e 'my @a; while (1) { push @a, "x" x (8 << 20) }'`, nil, 60*time.Second)
	took := time.Since(start)
	if r.exit.GetTimedOut() || r.exit.GetSignal() != "SIGKILL" {
		t.Errorf("the hog ended with %v after %s, want killed (SIGKILL) by the node's OOM killer", r.exit, took)
	}
	t.Logf("memory hog killed after %s; limit %d MiB, %d OOM kills in the node", took.Round(time.Millisecond), lim>>20, oomKills())
	if oomKills() == 0 {
		t.Errorf("the node's memory cgroup counted no OOM kill")
	}
	if !cgroupV2() {
		if peak := readInt(t, th.cg("memory", th.att, "h1", "memory.max_usage_in_bytes")); peak > lim {
			t.Errorf("the node peaked at %d bytes, over its %d limit", peak, lim)
		}
	}
	// Every OOM kill in the window was confined to a memory cgroup, one of
	// them ours: the host's OOM killer (constraint NONE) never ran.
	ours := false
	for _, l := range kmsg.lines() {
		if !strings.Contains(l, "oom-kill:constraint=") {
			continue
		}
		t.Logf("kernel: %s", l)
		if !strings.Contains(l, "constraint=CONSTRAINT_MEMCG") {
			t.Errorf("an OOM kill outside any memory cgroup: %s", l)
		}
		if strings.Contains(l, "/"+th.att+"/h1") {
			ours = true
		}
	}
	if !ours {
		t.Errorf("no OOM kill in the kernel log names %s/h1's cgroup", th.att)
	}
	if d := vmstat(t, "oom_kill") - globalBefore; d < 1 {
		t.Errorf("the host counted %d OOM kills", d)
	}
	// The node itself survives: its init was not the victim.
	th.mustSh(t, th.att, "h1", "true")
	th.assertUnaffected(t)

	t.Run("all sandboxes together cannot exhaust the host's memory", func(t *testing.T) {
		total := readKV(t, "/proc/meminfo")["MemTotal:"] << 10
		file := "memory.limit_in_bytes"
		if cgroupV2() {
			file = "memory.max"
		}
		unlimited := func(n int64) bool { return n < 0 || n >= 1<<62 } // "max", or v1's page-rounded 2^63-1
		if sb := readInt(t, th.cg("memory", th.vic, "", file)); unlimited(sb) {
			t.Errorf("the sandbox cgroup has no memory limit")
		}
		if p := readInt(t, th.cg("memory", "", "", file)); unlimited(p) || p >= total {
			t.Errorf("labd's cgroup parent may use %d bytes; the host has %d", p, total)
		}
	})
}

// cpuBusy samples /proc/stat: the fraction of CPU time not idle between
// two calls.
func cpuTimes(t *testing.T) (busy, total int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:]
	for i, s := range f {
		n, _ := strconv.ParseInt(s, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func TestThreat03CPUHog(t *testing.T) {
	th := newThreat(t)
	n := 2 * runtime.NumCPU()
	// The bound asserted: on this kind of machine (2 vCPUs) a second
	// learner's `true` through Exec, and a labd RPC, stay under 200 ms at
	// the 95th percentile while the first learner keeps every core busy.
	const bound = 200 * time.Millisecond
	measure := func(k int) (execs, rpcs []time.Duration) {
		for range k {
			start := time.Now()
			th.mustSh(t, th.vic, "h1", "true")
			execs = append(execs, time.Since(start))
			start = time.Now()
			if _, err := th.l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: th.vic}); err != nil {
				t.Fatal(err)
			}
			rpcs = append(rpcs, time.Since(start))
		}
		return
	}
	base, _ := measure(10)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hog := make(chan error, 1)
	go func() {
		_, err := execStream(ctx, th.l.sbx, shReq(th.att, "h1", fmt.Sprintf(`for i in $(seq %d); do yes > /dev/null & done; wait`, n), 30*time.Second))
		hog <- err
	}()
	waitUntil(t, 10*time.Second, "the CPU hogs starting", func() bool { return th.nprocs(t, th.att, "h1") >= n+2 })
	time.Sleep(200 * time.Millisecond) // let the scheduler see them
	b0, t0 := cpuTimes(t)
	execs, rpcs := measure(100)
	b1, t1 := cpuTimes(t)
	cancel()
	<-hog
	busy := float64(b1-b0) / float64(t1-t0)
	t.Logf("%d `yes` on %d CPUs (%.0f%% busy): victim exec p50 %s p95 %s (idle machine p95 %s); GetSandbox p95 %s",
		n, runtime.NumCPU(), 100*busy, percentile(execs, 50), percentile(execs, 95), percentile(base, 95), percentile(rpcs, 95))
	if busy < 0.8 {
		t.Errorf("the hog kept the CPUs only %.0f%% busy: the latencies were not measured under load", 100*busy)
	}
	if p := percentile(execs, 95); p > bound {
		t.Errorf("a second sandbox's exec p95 is %s under a CPU hog, over %s", p, bound)
	}
	if p := percentile(rpcs, 95); p > bound {
		t.Errorf("labd's GetSandbox p95 is %s under a CPU hog, over %s", p, bound)
	}
	waitUntil(t, 10*time.Second, "the hogs being killed with their exec", func() bool { return th.nprocs(t, th.att, "h1") == 1 })
	th.assertUnaffected(t)
}

// --- 4-5: namespaces and links ---

// nsLinks reads the namespace links of a host pid.
func nsLinks(t *testing.T, pid int, types ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, typ := range types {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, typ))
		if err != nil {
			t.Fatal(err)
		}
		out[typ] = l
	}
	return out
}

// nodeNamespaces are the namespaces a node has of its own.
var nodeNamespaces = []string{"net", "mnt", "pid", "uts", "ipc", "user"}

func TestThreat04NamespaceEscape(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	own := nsLinks(t, th.initPid(t, th.att, "h1"), nodeNamespaces...)
	host := nsLinks(t, os.Getpid(), nodeNamespaces...)
	other := nsLinks(t, th.initPid(t, th.vic, "h1"), nodeNamespaces...)
	// A node's commands share a mount namespace of their own, made by
	// the init from the one the spawner built for it (spawn.go).
	own["mnt"] = strings.TrimSpace(th.mustSh(t, th.att, "h1", "readlink /proc/self/ns/mnt"))
	other["mnt"] = strings.TrimSpace(th.mustSh(t, th.vic, "h1", "readlink /proc/self/ns/mnt"))
	// checkOwn: every "TYPE LINK" line names one of the node's own.
	checkOwn := func(t *testing.T, out string) {
		t.Helper()
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 || own[f[0]] == "" {
				continue
			}
			n++
			switch f[1] {
			case own[f[0]]:
			case host[f[0]]:
				t.Errorf("reached the host's %s namespace", f[0])
			case other[f[0]]:
				t.Errorf("reached another learner's %s namespace", f[0])
			default:
				t.Errorf("%s namespace %s is not the node's own %s", f[0], f[1], own[f[0]])
			}
		}
		if n == 0 {
			t.Errorf("no namespace seen in %q", out)
		}
	}
	const show = `for n in net mnt pid uts ipc user; do echo "$n $(readlink /proc/self/ns/$n)"; done`

	t.Run("nsenter -t 1 -a", func(t *testing.T) {
		// The init is not dumpable (it runs from a binary the node cannot
		// read): its /proc/1/ns/* are not the node's to open.
		for _, flags := range []string{"-a", "-n -m -p -u -i", "-n", "-m", "-U"} {
			if r := th.sh(t, th.att, "h1", "nsenter -t 1 "+flags+" true"); r.exit.GetCode() == 0 {
				t.Errorf("nsenter -t 1 %s succeeded", flags)
			}
		}
		// Another process of the node leads to the node's own namespaces.
		// -a also asks for the cgroup and time namespaces: those of a
		// command are its own cgroup namespace and the host's time
		// namespace, which the node may not enter, so nsenter fails.
		r := th.sh(t, th.att, "h1", "sleep 30 & p=$!; nsenter -t $p -a sh -c '"+show+"'; rc=$?; kill $p; exit $rc")
		if r.exit.GetCode() == 0 {
			checkOwn(t, r.stdout)
		}
		out := th.mustSh(t, th.att, "h1", "sleep 30 & p=$!; nsenter -t $p -n -m -p -u -i sh -c '"+show+"; hostname'; rc=$?; kill $p; exit $rc")
		checkOwn(t, out)
		if !strings.HasSuffix(out, "h1\n") {
			t.Errorf("nsenter landed on host %q", out)
		}
	})
	t.Run("nsenter --net into every visible process", func(t *testing.T) {
		out := th.mustSh(t, th.att, "h1", `for p in /proc/[0-9]*; do nsenter --net=$p/ns/net readlink /proc/self/ns/net; done | sort -u | sed 's/^/net /'`)
		checkOwn(t, out)
	})
	t.Run("every namespace a node can open is its own", func(t *testing.T) {
		out := th.mustSh(t, th.att, "h1", `for p in /proc/[0-9]*; do for n in net mnt pid uts ipc user; do echo "$n $(readlink $p/ns/$n)"; done; done | sort -u`)
		checkOwn(t, out)
	})
	t.Run("host pids name nothing in a node", func(t *testing.T) {
		for _, pid := range []int{os.Getpid(), th.initPid(t, th.vic, "h1"), th.hubPid(t, th.att)} {
			r := th.sh(t, th.att, "h1", fmt.Sprintf("nsenter --net=/proc/%d/ns/net readlink /proc/self/ns/net", pid))
			if r.exit.GetCode() == 0 {
				checkOwn(t, "net "+r.stdout)
			}
		}
	})
	t.Run("the host's cgroup and time namespaces cannot be entered", func(t *testing.T) {
		// The init is the node's only process in the host's cgroup
		// namespace (and it is not dumpable); every command shares the
		// host's time namespace, owned by the host's user namespace.
		for _, cmd := range []string{"nsenter -t 1 -C true", "sleep 30 & p=$!; nsenter -t $p -T true; rc=$?; kill $p; exit $rc"} {
			if r := th.sh(t, th.att, "h1", cmd); r.exit.GetCode() == 0 {
				t.Errorf("%q succeeded", cmd)
			}
		}
	})
	t.Run("cgroup namespace is the node's own", func(t *testing.T) {
		out := th.mustSh(t, th.att, "h1", "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup")
		if strings.Contains(out, th.att) || strings.Contains(out, th.e.opts.cgroupParent) {
			t.Errorf("a node sees the host's cgroup paths:\n%s", out)
		}
		if hostNs := nsLinks(t, os.Getpid(), "cgroup")["cgroup"]; strings.Contains(out, hostNs) {
			t.Errorf("the node is in the host's cgroup namespace %s", hostNs)
		}
	})
	th.assertUnaffected(t)
}

// netlinkTarget asks rtnetlink to act on interface IFINDEX of the
// namespace that the node knows as NSID (IFLA_TARGET_NETNSID): the way to
// reach the hub side of a veth without naming the hub namespace. It
// prints the errno the kernel answered and exits 0 only if it was done.
const netlinkTarget = `use strict; use warnings; use Socket;
my ($op, $idx, $nsid) = @ARGV;
sub attr { my ($type, $data) = @_; my $len = 4 + length $data;
	return pack("SS", $len, $type) . $data . ("\0" x ((4 - $len % 4) % 4)) }
my %type = (get => 18, down => 19, del => 17, newveth => 16); # RTM_GETLINK SETLINK DELLINK NEWLINK
my $flags = 0x1 | 0x4;                                         # NLM_F_REQUEST | NLM_F_ACK
my $attrs = attr(46, pack("l", $nsid));                        # IFLA_TARGET_NETNSID
my $ifi;
if ($op eq "newveth") {
	$flags |= 0x400 | 0x200;                                   # NLM_F_CREATE | NLM_F_EXCL
	$ifi = pack("CCSlLL", 0, 0, 0, 0, 0, 0);
	$attrs .= attr(3, "nslabevil0\0") . attr(18, attr(1, "veth\0")); # IFLA_IFNAME, IFLA_LINKINFO{KIND}
} else {
	$ifi = pack("CCSlLL", 0, 0, 0, $idx, 0, $op eq "down" ? 1 : 0); # change IFF_UP to 0
}
socket(my $s, 16, SOCK_RAW, 0) or die "netlink socket: $!";     # AF_NETLINK, NETLINK_ROUTE
my $body = $ifi . $attrs;
send($s, pack("LSSLL", 16 + length $body, $type{$op}, $flags, 1, 0) . $body, 0) or die "send: $!";
recv($s, my $buf, 65536, 0);
my ($len, $t) = unpack("LS", $buf);
if ($t == 2) { my $err = -unpack("l", substr($buf, 16, 4)); print "$op: errno $err\n"; exit($err == 0 ? 0 : 1) }
print "$op: answered with message type $t\n";
exit 0;
`

// hubLinks lists the links of a sandbox's hub as the host sees them.
func (th *threat) hubLinks(t *testing.T, id string) string {
	t.Helper()
	out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", th.hubPid(t, id)), "ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in the hub of %s: %v\n%s", id, err, out)
	}
	// A bridge's operational state settles after creation; the rest is
	// what an attack would change.
	return regexp.MustCompile(` state \S+`).ReplaceAllString(string(out), "")
}

func TestThreat05LinkEscape(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	hub, vicHub := th.hubLinks(t, th.att), th.hubLinks(t, th.vic)
	peer := strings.TrimSpace(th.mustSh(t, th.att, "h1", "cat /sys/class/net/eth0/iflink"))
	nsid := strings.TrimSpace(th.mustSh(t, th.att, "h1", `ip -o link show eth0 | sed -n 's/.*link-netnsid \([0-9]*\).*/\1/p'`))
	if nsid == "" {
		t.Fatal("eth0 shows no link-netnsid")
	}
	refused := []struct{ name, script string }{
		{"ip link set eth0 netns <a pid outside the node>", fmt.Sprintf("ip link set eth0 netns %d", os.Getpid())},
		{"ip link add with the peer in the hub (link-netnsid)", "ip link add nslabx0 link-netnsid " + nsid + " type veth peer name nslabx1"},
		{"read the hub's links (target netnsid)", "perl - get " + peer + " " + nsid},
		{"set the hub side down (target netnsid)", "perl - down " + peer + " " + nsid},
		{"delete the hub side (target netnsid)", "perl - del " + peer + " " + nsid},
		{"create a link in the hub (target netnsid)", "perl - newveth 0 " + nsid},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			var stdin []byte
			if strings.HasPrefix(tc.script, "perl -") {
				stdin = []byte(netlinkTarget)
			}
			r := th.shIn(t, th.att, "h1", tc.script, stdin, 10*time.Second)
			t.Logf("%s: exit %d: %s%s", tc.script, r.exit.GetCode(), r.stdout, r.stderr)
			if r.exit.GetCode() == 0 {
				t.Errorf("%q succeeded", tc.script)
			}
		})
	}
	// "netns 1" names the node's own init: the link stays where it is.
	th.sh(t, th.att, "h1", "ip link set eth0 netns 1")
	th.mustSh(t, th.att, "h1", "ip link show eth0 && ping -c1 -W2 10.0.0.2")
	if got := th.hubLinks(t, th.att); got != hub {
		t.Errorf("the hub's links changed:\nbefore:\n%s\nafter:\n%s", hub, got)
	}
	// Allowed: a learner may delete their own link, which takes its hub
	// end along; only their own sandbox loses the link.
	th.mustSh(t, th.att, "h1", "ip link del eth0")
	if got := th.hubLinks(t, th.vic); got != vicHub {
		t.Errorf("another sandbox's hub changed:\nbefore:\n%s\nafter:\n%s", vicHub, got)
	}
	th.assertUnaffected(t)
}

// --- 6-8: files and mounts ---

func TestThreat06HostFiles(t *testing.T) {
	t.Parallel()
	th := newThreat(t, func(t *testing.T, e *testEnv) string { return visibleState(t, e) })
	mark := "nslab-threat-" + randSuffix()
	dbDir := filepath.Dir(th.e.opts.db)
	targets := []string{
		"/" + mark, "/etc/" + mark, "/usr/" + mark, "/usr/bin/" + mark, "/root/" + mark,
		"/var/lib/" + mark, "/var/lib/nslab/" + mark, filepath.Join(dbDir, mark),
		filepath.Join(th.e.opts.stateDir, mark), filepath.Join(th.e.opts.stateDir, "sandboxes", th.att, mark),
	}
	var script strings.Builder
	for _, p := range targets {
		fmt.Fprintf(&script, "(echo pwned > %s) 2>/dev/null && echo 'WROTE %s'\n", p, p)
	}
	script.WriteString(`mkdir -p /var/lib/nslab 2>/dev/null && echo 'WROTE mkdir /var/lib/nslab'
chmod 666 /etc/passwd 2>/dev/null && echo 'WROTE chmod /etc/passwd'
chown 0:0 /usr/bin/passwd 2>/dev/null && echo 'WROTE chown /usr/bin/passwd'
ln /etc/passwd /tmp/passwd-link 2>/dev/null && echo 'WROTE hard link to /etc/passwd'
truncate -s 0 /etc/hostname.nslab-threat 2>/dev/null && echo 'WROTE truncate'
true`)
	out := th.mustSh(t, th.att, "h1", script.String())
	if strings.Contains(out, "WROTE") {
		t.Errorf("a node changed host files:\n%s", out)
	}
	hostMissing(t, append(targets, "/var/lib/nslab/"+mark)...)
	if _, err := os.Stat("/var/lib/nslab"); err == nil {
		t.Logf("/var/lib/nslab exists on this host (not made by this test)")
	}

	// Secrets: only files that exist on the host make a meaningful test.
	var secrets []string
	for _, p := range []string{"/etc/shadow", "/etc/gshadow", th.e.opts.db, th.e.opts.db + "-wal", th.e.opts.db + "-shm", "/root/.ssh/authorized_keys", "/root/.bash_history"} {
		if _, err := os.Stat(p); err == nil {
			secrets = append(secrets, p)
		}
	}
	if !slices.Contains(secrets, th.e.opts.db) {
		t.Fatalf("labd's database %s is not there to attack", th.e.opts.db)
	}
	script.Reset()
	for _, p := range secrets {
		fmt.Fprintf(&script, "head -c1 %s >/dev/null 2>&1 && echo 'READ %s'\n", p, p)
	}
	for _, d := range []string{dbDir, th.e.opts.stateDir, filepath.Join(th.e.opts.stateDir, "sandboxes")} {
		fmt.Fprintf(&script, "ls %s >/dev/null 2>&1 && echo 'LISTED %s'\n", d, d)
	}
	script.WriteString("true")
	out = th.mustSh(t, th.att, "h1", script.String())
	if strings.Contains(out, "READ") || strings.Contains(out, "LISTED") {
		t.Errorf("a node read host secrets:\n%s", out)
	}
	t.Logf("refused: writes to %d host paths, reads of %q", len(targets), secrets)
	th.assertUnaffected(t)
}

func statfsFree(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func TestThreat07FillTmpfs(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	name := "nslab-fill-" + randSuffix()
	caps := []struct {
		dir  string
		size int64
	}{{"/tmp", 64 << 20}, {"/var/tmp", 64 << 20}, {"/dev/shm", 64 << 20}, {"/run", 16 << 20}}
	disk0, shm0 := statfsFree(t, "/var/tmp"), statfsFree(t, "/dev/shm")
	var hostPaths []string
	for _, c := range caps {
		p := filepath.Join(c.dir, name)
		hostPaths = append(hostPaths, p)
		r := th.shIn(t, th.att, "h1", fmt.Sprintf("dd if=/dev/zero of=%s bs=1M count=%d 2>&1; stat -c %%s %s", p, c.size>>20+36, p), nil, 60*time.Second)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		size, _ := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		t.Logf("%s: %d MiB written, then: %s", c.dir, size>>20, lines[0])
		if !strings.Contains(r.stdout, "No space left on device") {
			t.Errorf("filling %s did not end with ENOSPC:\n%s", c.dir, r.stdout)
		}
		if size > c.size || size < c.size-(4<<20) {
			t.Errorf("%s took %d bytes, want its cap of %d", c.dir, size, c.size)
		}
	}
	th.mustSh(t, th.att, "h1", "true") // the node is still usable
	hostMissing(t, hostPaths...)
	disk1, shm1 := statfsFree(t, "/var/tmp"), statfsFree(t, "/dev/shm")
	t.Logf("host free space: disk %d -> %d MiB, /dev/shm %d -> %d MiB", disk0>>20, disk1>>20, shm0>>20, shm1>>20)
	// Others share this host: allow some drift, never the 208 MiB written.
	if disk0-disk1 > 128<<20 || shm0-shm1 > 64<<20 {
		t.Errorf("the host lost free space while a node filled its tmpfs")
	}
	th.mustSh(t, th.att, "h1", "rm -f /tmp/"+name+" /var/tmp/"+name+" /dev/shm/"+name+" /run/"+name)
	th.assertUnaffected(t)

	t.Run("unmounting a node's tmpfs does not reach the host's directory", func(t *testing.T) {
		// The tmpfs directories were mounted by the spawner, in a mount
		// namespace of its user namespace; the node's is a copy made
		// from the node's user namespace, where the kernel locks them.
		out := th.mustSh(t, th.att, "h1", fmt.Sprintf(`for d in /var/tmp /dev/shm /tmp /run; do
  for i in 1 2 3; do umount $d 2>/dev/null && echo "UNMOUNTED $d"; umount -l $d 2>/dev/null && echo "DETACHED $d"; done
done
for d in /var/tmp /dev/shm; do dd if=/dev/zero of=$d/%[1]s bs=1M count=4 2>/dev/null; done
grep -E ' /(var/tmp|dev/shm) ' /proc/self/mounts`, name))
		t.Logf("after umount and umount -l, three times each:\n%s", out)
		if strings.Contains(out, "UNMOUNTED") || strings.Contains(out, "DETACHED") {
			t.Errorf("a node unmounted its tmpfs:\n%s", out)
		}
		hostMissing(t, "/var/tmp/"+name, "/dev/shm/"+name)
		th.mustSh(t, th.att, "h1", "rm -f /var/tmp/"+name+" /dev/shm/"+name)
	})
}

// hostMounts is the host's mount table (mount point, type and options)
// where the attacks aim: the paths they mount over and the filesystem
// types they try. Other mounts may change under other tests meanwhile.
func hostMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pre, post, _ := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 1 {
			continue
		}
		mp, typ := f[4], g[0]
		aimed := slices.Contains([]string{"/", "/etc", "/usr", "/mnt", "/proc", "/sys", "/tmp", "/var/tmp", "/dev/shm", "/run", "/dev", "/dev/pts"}, mp) ||
			slices.Contains([]string{"debugfs", "tracefs", "bpf", "securityfs", "cgroup", "cgroup2", "ext4"}, typ)
		if aimed {
			out = append(out, mp+" "+typ+" "+f[5])
		}
	}
	sort.Strings(out)
	return out
}

func TestThreat08Mounts(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	host0 := hostMounts(t)
	vic0 := th.mustSh(t, th.vic, "h1", "cut -d' ' -f5- /proc/self/mountinfo")
	// In its own mount namespace a node may mount over anything: that is
	// how `ip netns` works. None of it may show outside.
	allowed := th.mustSh(t, th.att, "h1", `set -e
mount -t tmpfs none /etc && touch /etc/nslab-threat && umount /etc
mount --bind /tmp /mnt && umount /mnt
unshare -m sh -c 'mkdir -p /tmp/newroot/old && mount --bind /tmp/newroot /tmp/newroot && cd /tmp/newroot && pivot_root . old && echo pivoted'
echo done`)
	t.Logf("allowed in the node's own namespace: %s", strings.Join(strings.Fields(allowed), " "))
	refused := []string{
		"mount -o remount,rw /",
		"mount -t debugfs none /mnt",
		"mount -t tracefs none /mnt",
		"mount -t bpf none /mnt",
		"mount -t securityfs none /mnt",
		"mount /dev/vda /mnt",
		"mount -t ext4 /dev/vda /mnt",
		"umount /",
	}
	var script strings.Builder
	for _, c := range refused {
		fmt.Fprintf(&script, "%s >/dev/null 2>&1 && echo 'DONE %s'\n", c, c)
	}
	script.WriteString("true")
	if out := th.mustSh(t, th.att, "h1", script.String()); out != "" {
		t.Errorf("a node did what it may not:\n%s", out)
	}
	// In its own cgroup namespace a node may mount cgroupfs: it shows the
	// node's own subtree, whose files belong to host root — nothing in it
	// can be changed or created.
	cgScript := `for fs in "-t cgroup2" "-t cgroup -o pids"; do
	  mkdir -p /tmp/cg && mount $fs none /tmp/cg 2>/dev/null || continue
	  for f in /tmp/cg/pids.max /tmp/cg/memory.max /tmp/cg/cgroup.procs; do [ -e $f ] && (echo 1 > $f) 2>/dev/null && echo "WROTE $f"; done
	  mkdir /tmp/cg/escape 2>/dev/null && echo "MADE a cgroup"
	  umount /tmp/cg
	done; true`
	if out := th.mustSh(t, th.att, "h1", cgScript); out != "" {
		t.Errorf("a node changed its cgroups:\n%s", out)
	}
	if got := hostMounts(t); !slices.Equal(got, host0) {
		t.Errorf("the host's mount table changed:\nbefore %q\nafter  %q", host0, got)
	}
	if got := th.mustSh(t, th.vic, "h1", "cut -d' ' -f5- /proc/self/mountinfo"); got != vic0 {
		t.Errorf("another sandbox's mount table changed:\nbefore:\n%s\nafter:\n%s", vic0, got)
	}

	t.Run("peeling off the node's /proc, /sys and tmpfs reveals nothing of the host", func(t *testing.T) {
		// Something of the host's to look for beneath the node's mounts.
		mark := "nslab-peel-" + randSuffix()
		for _, d := range []string{"/var/tmp", "/dev/shm"} {
			if err := os.WriteFile(filepath.Join(d, mark), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(filepath.Join(d, mark)) })
		}
		peel := `for i in 1 2 3; do
  for m in /proc /sys /var/tmp /dev/shm /tmp /run /dev/pts /dev/ptmx /etc/hosts /etc/hostname; do
    umount $m 2>/dev/null && echo "UNMOUNTED $m"; umount -l $m 2>/dev/null && echo "DETACHED $m"
  done
done
mount -o remount,rw /sys 2>/dev/null && echo "REMOUNTED /sys rw"
mount -o remount,suid,dev /tmp 2>/dev/null && echo "REMOUNTED /tmp suid,dev"
mount --bind / /mnt 2>/dev/null && echo "BOUND / without its submounts"
mount --make-rprivate / && mount --rbind / /mnt && for m in /mnt/proc /mnt/sys /mnt/var/tmp; do umount -l $m 2>/dev/null && echo "DETACHED copy $m"; done
echo "init $(cat /proc/1/comm)"
echo "pids $(ls /proc | grep -c '^[0-9]')"
echo "cgroups $(ls /sys/fs/cgroup | wc -l)"
echo "links $(ls /sys/class/net | tr '\n' ' ')"
ls /var/tmp /dev/shm /mnt/var/tmp /mnt/dev/shm 2>/dev/null | grep -c ` + mark + ` | sed 's/^/host files /'
`
		for _, where := range []struct{ name, script string }{
			{"in a mount namespace of its own", "unshare -m sh -c '" + strings.ReplaceAll(peel, "'", `'"'"'`) + "'"},
			{"in the node's namespace", peel + "umount -l /mnt 2>/dev/null; true"},
		} {
			out := th.mustSh(t, th.att, "h1", where.script)
			t.Logf("%s: %s", where.name, strings.Join(strings.Fields(out), " "))
			for _, bad := range []string{"UNMOUNTED", "DETACHED", "REMOUNTED", "BOUND"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s, a node did what it may not:\n%s", where.name, out)
				}
			}
			if !strings.Contains(out, "init nslab-init") {
				t.Errorf("%s, the node's /proc shows another pid 1:\n%s", where.name, out)
			}
			var pids int
			fmt.Sscanf(out[strings.Index(out, "pids "):], "pids %d", &pids)
			if pids > 16 {
				t.Errorf("%s, the node's /proc shows %d processes: not only its own", where.name, pids)
			}
			if !strings.Contains(out, "cgroups 0") {
				t.Errorf("%s, the node's /sys shows the host's cgroup tree:\n%s", where.name, out)
			}
			if !strings.Contains(out, "links eth0 lo \n") {
				t.Errorf("%s, the node's /sys shows links not its own:\n%s", where.name, out)
			}
			if !strings.Contains(out, "host files 0") {
				t.Errorf("%s, the node sees the host's /var/tmp or /dev/shm:\n%s", where.name, out)
			}
		}
		th.mustSh(t, th.att, "h1", "true") // still usable
	})
	th.assertUnaffected(t)
}

// --- 9-10: the kernel's global knobs ---

const rebootAndModules = `use strict; use warnings;
my @calls = (
	["reboot(RESTART)", 169, 0xfee1dead, 672274793, 0x01234567, 0],
	["reboot(CAD_OFF)", 169, 0xfee1dead, 672274793, 0, 0],
	["reboot(POWER_OFF)", 169, 0xfee1dead, 672274793, 0x4321fedc, 0],
	["kexec_load", 246, 0, 0, 0, 0],
	["kexec_file_load", 320, -1, -1, 0, 0],
	["init_module", 175, 0, 0, 0, 0],
	["finit_module", 313, -1, 0, 0, 0],
	["delete_module", 176, "nslab_threat_nonexistent", 0, 0, 0],
);
for my $c (@calls) {
	my ($name, $nr, @args) = @$c;
	$! = 0;
	my $r = syscall($nr, @args);
	printf "%s %s\n", $name, $r == -1 ? "refused: $!" : "RETURNED $r";
}
`

func TestThreat09RebootKexecModules(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	init0 := th.initPid(t, th.att, "h1")
	start0, err := procStart(init0)
	if err != nil {
		t.Fatal(err)
	}
	mods0, _ := os.ReadFile("/proc/modules")
	sysrq0 := hostSysctl(t, "kernel.sysrq")

	r := th.perl(t, th.att, "h1", rebootAndModules, 10*time.Second)
	t.Logf("system calls:\n%s%s", r.stdout, r.stderr)
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.Contains(l, "refused: Operation not permitted") {
			t.Errorf("not refused with EPERM: %s", l)
		}
	}
	// The tools, and sysrq. A missing defence must not take the CI host
	// down, so the trigger is 'h' (print help), which needs the same
	// permission as 'b' (reboot) or 'c' (crash).
	out := th.mustSh(t, th.att, "h1", `reboot -f >/dev/null 2>&1 && echo 'DONE reboot -f'
modprobe dummy >/dev/null 2>&1 && echo 'DONE modprobe'
insmod /nonexistent/nslab.ko >/dev/null 2>&1 && echo 'DONE insmod'
(echo h > /proc/sysrq-trigger) 2>/dev/null && echo 'DONE sysrq-trigger'
(echo 1 > /proc/sys/kernel/sysrq) 2>/dev/null && echo 'DONE kernel.sysrq'
true`)
	if out != "" {
		t.Errorf("a node did what it may not:\n%s", out)
	}
	// The node is still there, with the same init.
	th.mustSh(t, th.att, "h1", "true")
	if start, err := procStart(init0); err != nil || start != start0 {
		t.Errorf("the node's init %d is gone or was replaced (%v)", init0, err)
	}
	if mods, _ := os.ReadFile("/proc/modules"); !bytes.Equal(mods, mods0) {
		t.Errorf("the host's modules changed")
	}
	if s := hostSysctl(t, "kernel.sysrq"); s != sysrq0 {
		t.Errorf("host kernel.sysrq changed from %s to %s", sysrq0, s)
	}
	th.assertUnaffected(t)
}

// procStart is a host process's start time in clock ticks.
func procStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", errors.New("malformed stat")
	}
	return f[19], nil
}

func TestThreat10Sysctls(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	plus := func(key string, d int64) string {
		n, _ := strconv.ParseInt(hostSysctl(t, key), 10, 64)
		return strconv.FormatInt(n+d, 10)
	}
	same := func(key string) string { return hostSysctl(t, key) }
	// Global knobs. A write the kernel took would change the host, so the
	// values are the current ones (the refusal is a permission check on
	// open, whatever the value) except where the kernel checks the value
	// instead: those get a different one, restored below if it landed.
	refused := []struct{ key, value string }{
		{"kernel.core_pattern", same("kernel.core_pattern")},
		{"kernel.modprobe", same("kernel.modprobe")},
		{"kernel.sysrq", same("kernel.sysrq")},
		{"kernel.panic", same("kernel.panic")},
		{"kernel.randomize_va_space", same("kernel.randomize_va_space")},
		{"kernel.hostname", same("kernel.hostname")}, // via /proc/sys: owned by host root (sethostname works, below)
		{"vm.swappiness", same("vm.swappiness")},
		{"vm.overcommit_memory", same("vm.overcommit_memory")},
		{"vm.drop_caches", "1"},
		{"fs.file-max", same("fs.file-max")},
		{"fs.protected_symlinks", same("fs.protected_symlinks")},
		{"net.core.rmem_max", plus("net.core.rmem_max", 4096)},
		{"net.core.wmem_max", plus("net.core.wmem_max", 4096)},
		{"net.core.wmem_default", plus("net.core.wmem_default", 4096)},
		{"net.core.netdev_max_backlog", plus("net.core.netdev_max_backlog", 1)},
		{"net.core.bpf_jit_enable", same("net.core.bpf_jit_enable")},
		{"net.netfilter.nf_conntrack_max", plus("net.netfilter.nf_conntrack_max", -1)},
		{"net.ipv4.tcp_mem", same("net.ipv4.tcp_mem")},
		{"net.ipv4.neigh.default.gc_thresh3", plus("net.ipv4.neigh.default.gc_thresh3", 1)},
	}
	// Per network namespace: the node's own, and what labs teach.
	perNet := []struct{ key, value string }{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
		{"net.ipv4.conf.eth0.rp_filter", "2"},
		{"net.ipv4.tcp_congestion_control", "reno"},
		{"net.core.somaxconn", "1000"},
		{"net.ipv4.ip_local_port_range", "40000 50000"},
		{"net.ipv4.tcp_rmem", "4096 100000 5000000"},
		{"net.unix.max_dgram_qlen", "20"},
	}
	// Per other namespaces the node owns: allowed, and nobody else's.
	perOther := []struct{ key, value string }{
		{"kernel.shmmax", "12345678"}, // IPC namespace
		{"kernel.msgmax", "9000"},     // IPC namespace
		{"kernel.pid_max", "4000000"}, // pid namespace (6.14+; bounded by the host's)
		{"user.max_net_namespaces", "100"},
	}
	keys := func(kvs ...[]struct{ key, value string }) []string {
		var out []string
		for _, kv := range kvs {
			for _, x := range kv {
				out = append(out, x.key)
			}
		}
		return out
	}
	all := keys(refused, perNet, perOther)
	host0, vic0 := map[string]string{}, map[string]string{}
	for _, k := range all {
		host0[k] = hostSysctl(t, k)
	}
	readNode := func(id string) map[string]string {
		out := map[string]string{}
		for _, l := range strings.Split(th.mustSh(t, id, "h1", "sysctl -e "+strings.Join(all, " ")+" 2>/dev/null; true"), "\n") {
			if k, v, ok := strings.Cut(l, " = "); ok {
				out[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		return out
	}
	vic0 = readNode(th.vic)
	t.Cleanup(func() {
		for _, k := range all {
			if v := hostSysctl(t, k); v != host0[k] {
				t.Errorf("host %s changed from %q to %q; restoring", k, host0[k], v)
				os.WriteFile("/proc/sys/"+strings.ReplaceAll(k, ".", "/"), []byte(host0[k]), 0)
			}
		}
	})

	// Written through /proc/sys: sysctl(8) exits 0 on some refusals.
	write := func(key, value string) execResult {
		return th.sh(t, th.att, "h1", fmt.Sprintf("printf '%%s\\n' '%s' > /proc/sys/%s", value, strings.ReplaceAll(key, ".", "/")))
	}
	for _, kv := range refused {
		if r := write(kv.key, kv.value); r.exit.GetCode() == 0 {
			t.Errorf("a node wrote %s=%s", kv.key, kv.value)
		}
	}
	for _, kv := range perNet {
		if r := write(kv.key, kv.value); r.exit.GetCode() != 0 {
			t.Errorf("a node could not write its own %s: %s", kv.key, r.stderr)
		}
	}
	for _, kv := range perOther {
		r := write(kv.key, kv.value)
		t.Logf("%s=%s in a node: exit %d %s", kv.key, kv.value, r.exit.GetCode(), strings.TrimSpace(r.stderr))
	}
	th.mustSh(t, th.att, "h1", "hostname nslab-threat-evil") // UTS namespace: the node's own name
	if h, _ := os.Hostname(); h == "nslab-threat-evil" {
		t.Errorf("a node renamed the host")
	}
	got := readNode(th.att)
	for _, kv := range perNet {
		if got[kv.key] != kv.value {
			t.Errorf("the node's %s reads %q after writing %q", kv.key, got[kv.key], kv.value)
		}
	}
	for _, k := range all {
		if v := hostSysctl(t, k); v != host0[k] {
			t.Errorf("host %s changed from %q to %q", k, host0[k], v)
		}
	}
	if v := readNode(th.vic); !maps.Equal(v, vic0) {
		t.Errorf("another sandbox's sysctls changed:\nbefore %v\nafter  %v", vic0, v)
	}
	th.assertUnaffected(t)
}

// --- 11-13: reaching out ---

// hostAddrs lists the host's own addresses, link-local ones excepted.
func hostAddrs(t *testing.T) []netip.Addr {
	t.Helper()
	out, err := exec.Command("ip", "-o", "addr").Output()
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		p, err := netip.ParsePrefix(f[3])
		if err != nil || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		addrs = append(addrs, p.Addr())
	}
	return addrs
}

// countingListener accepts and counts connections until closed.
func countingListener(t *testing.T, network, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln, &n
}

func TestThreat11NoRouteOut(t *testing.T) {
	t.Parallel()
	th := newThreat(t, func(t *testing.T, e *testEnv) string { return visibleState(t, e) })
	labNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")} // hello-link's
	addrs := hostAddrs(t)
	for _, lo := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
		if !slices.Contains(addrs, lo) {
			addrs = append(addrs, lo)
		}
	}
	type target struct {
		addr    netip.Addr
		port    int
		accepts *atomic.Int32
	}
	var targets []target
	for _, a := range addrs {
		ln, n := countingListener(t, "tcp", netip.AddrPortFrom(a, 0).String())
		targets = append(targets, target{a, ln.Addr().(*net.TCPAddr).Port, n})
	}
	abstract := "nslab-threat-" + randSuffix()
	_, abstractAccepts := countingListener(t, "unix", "@"+abstract)

	// The learner's best try: default routes out of the only interface.
	var script strings.Builder
	script.WriteString("ip route add default dev eth0; ip -6 route add default dev eth0\n")
	for _, tg := range targets {
		fmt.Fprintf(&script, "(timeout 3 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null && echo 'CONNECTED %s %d') &\n", tg.addr, tg.port, tg.addr, tg.port)
		inLab := slices.ContainsFunc(labNets, func(p netip.Prefix) bool { return p.Contains(tg.addr) })
		if !inLab && !tg.addr.IsLoopback() {
			fmt.Fprintf(&script, "(ping -c1 -W2 %s >/dev/null 2>&1 && echo 'PONG %s') &\n", tg.addr, tg.addr)
		}
	}
	sockets := map[string]string{
		"ABSTRACT-CONNECT:" + abstract:     "the host's abstract socket",
		"UNIX-CONNECT:" + th.e.opts.socket: "labd's socket",
		"UNIX-CONNECT:" + filepath.Join(th.e.opts.stateDir, "sandboxes", th.att, "h1", "ctl.sock"): "the node's own control socket",
		"UNIX-CONNECT:" + filepath.Join(th.e.opts.stateDir, "sandboxes", th.vic, "h1", "ctl.sock"): "another node's control socket",
	}
	for addr, what := range sockets {
		fmt.Fprintf(&script, "(timeout 3 socat -u /dev/null '%s' 2>/dev/null && echo 'CONNECTED %s') &\n", addr, what)
	}
	script.WriteString("wait")
	start := time.Now()
	out := th.mustSh(t, th.att, "h1", script.String())
	t.Logf("tried %d host addresses (%v) and %d unix sockets from a node in %s", len(targets), addrs, len(sockets), time.Since(start).Round(time.Millisecond))
	if out != "" {
		t.Errorf("a node reached outside its sandbox:\n%s", out)
	}
	for _, tg := range targets {
		if n := tg.accepts.Load(); n > 0 {
			t.Errorf("the host's listener on %s:%d accepted %d connections from a node", tg.addr, tg.port, n)
		}
	}
	if n := abstractAccepts.Load(); n > 0 {
		t.Errorf("the host's abstract socket accepted %d connections from a node", n)
	}
	// 127.0.0.1 in a node is the node's own loopback.
	th.mustSh(t, th.att, "h1", `(socat -u TCP-LISTEN:7007,bind=127.0.0.1 - > /tmp/lo.out &) ; sleep 0.2; echo own-loopback | socat -u - TCP:127.0.0.1:7007; sleep 0.1; grep -q own-loopback /tmp/lo.out`)
	th.assertUnaffected(t)
}

func TestThreat12SignalsAndPtrace(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	// A node sees its own processes only: labd, the host's and other
	// nodes' processes have no pid it could name.
	out := th.mustSh(t, th.att, "h2", `for p in /proc/[0-9]*; do echo "${p#/proc/} $(cat $p/comm 2>/dev/null)"; done`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && !slices.Contains([]string{"nslab-init", "nslab-tcp-echo", "nslab-http", "sh", "cat"}, f[1]) {
			t.Errorf("node h2 sees a process that is not its own: %s", l)
		}
	}
	// By their host pids: in the node those name nothing (or another
	// process of the node's own).
	for _, pid := range []int{os.Getpid(), th.initPid(t, th.vic, "h1"), th.hubPid(t, th.vic)} {
		r := th.perl(t, th.att, "h1", `use strict; my $pid = shift;
$! = 0; my $r = kill(0, $pid); print "kill: ", ($r ? "SIGNALLED" : "refused: $!"), "\n";
$! = 0; $r = syscall(101, 0x4206, $pid + 0, 0, 0); print "ptrace(SEIZE): ", ($r == 0 ? "ATTACHED" : "refused: $!"), "\n";
`, 10*time.Second, strconv.Itoa(pid))
		if strings.Contains(r.stdout, "SIGNALLED") || strings.Contains(r.stdout, "ATTACHED") {
			t.Errorf("host pid %d from a node:\n%s", pid, r.stdout)
		}
	}
	// Kill everything it can: only the node's own processes go.
	th.sh(t, th.att, "h1", "kill -KILL -1; sleep 0.1")
	th.mustSh(t, th.att, "h1", "true")
	th.assertUnaffected(t)

	t.Run("commands inherit no descriptor of the init", func(t *testing.T) {
		out := th.mustSh(t, th.att, "h1", "ls -l /proc/$$/fd")
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) >= 9 && f[8] != "0" && f[8] != "1" && f[8] != "2" {
				t.Errorf("a command holds descriptor %s", strings.Join(f[8:], " "))
			}
		}
	})
	t.Run("the node's init cannot be traced or robbed of descriptors", func(t *testing.T) {
		// The init runs from a copy of labd's binary that the node cannot
		// read (mode 0711), so the kernel made it non-dumpable, its memory
		// owned by the spawner's user namespace: everything that needs
		// ptrace access to it is refused to the node's root.
		r := th.perl(t, th.att, "h1", initAttacks, 20*time.Second)
		t.Logf("%s%s", r.stdout, r.stderr)
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if !strings.Contains(l, "refused") && l != "prlimit(1) read: allowed" {
				t.Errorf("a node got at its init: %s", l)
			}
		}
		if n := strings.Count(r.stdout, "refused"); n != 22 || r.exit.GetCode() != 0 {
			t.Errorf("%d of 22 attacks ran (exit %v)", n, r.exit)
		}
		// What the node runs is dumpable again (exec of a binary it can
		// read): learners still trace their own programs.
		out := th.mustSh(t, th.att, "h1", `strace -f -e trace=execve sh -c 'exec true' 2>&1 | grep -c execve; sleep 30 & p=$!; gdb -batch -p $p -ex 'info inferiors' 2>&1 | grep -c "process $p"; kill $p`)
		if f := strings.Fields(out); len(f) != 2 || f[0] == "0" || f[1] == "0" {
			t.Errorf("strace or gdb of a node's own program failed: %q", out)
		}
	})
	t.Run("no signal ends the node's init", func(t *testing.T) {
		before := th.initPid(t, th.att, "h2")
		// Every signal, SIGKILL and SIGSTOP included (the kernel drops
		// those for PID 1 of a pid namespace when they come from inside
		// it); the Go runtime would die of SIGABRT, SIGTRAP, SIGSYS...
		// were they not all relayed to a channel the init drains.
		out := th.mustSh(t, th.att, "h2", `n=0; for s in $(seq 1 64); do kill -s $s 1 2>/dev/null && n=$((n+1)); done; echo "$n signals sent"; sleep 0.3`)
		t.Logf("%s", strings.TrimSpace(out))
		if after := th.initPid(t, th.att, "h2"); after != before {
			t.Errorf("the init of h2 changed from pid %d to %d", before, after)
		}
		th.mustSh(t, th.att, "h2", "true")
		if st := mustReadStatus(t, before); !strings.Contains(st, "State:\tS") && !strings.Contains(st, "State:\tR") {
			t.Errorf("the init of h2 is not running:\n%s", st)
		}
	})
	t.Run("a node cannot hold labd's exec forever", func(t *testing.T) {
		th.hijack(t)
	})
}

// initAttacks tries, from a node, everything that needs ptrace access to
// its init (PID 1), and a few ways to end it without a signal. One line
// per attack: "refused: <errno>" or what it got.
const initAttacks = `use strict; use warnings;
sub try { my ($name, $ok, $what) = @_; print "$name: ", ($ok ? "GOT $what" : "refused: $!"), "\n" }
$! = 0; my $pidfd = syscall(434, 1, 0); # pidfd_open (allowed: it only names the process)
for my $fd (0 .. 5) { $! = 0; my $r = syscall(438, $pidfd, $fd, 0); try("pidfd_getfd($fd)", $r >= 0, "fd $r") }
$! = 0; try("ptrace(ATTACH)", syscall(101, 16, 1, 0, 0) == 0, "attached");
$! = 0; try("ptrace(SEIZE)", syscall(101, 0x4206, 1, 0, 0) == 0, "seized");
for my $f ("mem", "environ", "auxv") { my $h; $! = 0; try("open /proc/1/$f", open($h, "<", "/proc/1/$f") && defined(sysread($h, my $b, 64)), "contents") }
$! = 0; try("list /proc/1/fd", opendir(my $d, "/proc/1/fd"), "listing");
for my $l ("exe", "root", "cwd", "ns/net", "ns/mnt") { $! = 0; my $t = readlink("/proc/1/$l"); try("readlink /proc/1/$l", defined $t, $t // "") }
my ($o, $c);
$! = 0; try("write /proc/1/oom_score_adj", open($o, ">", "/proc/1/oom_score_adj") && syswrite($o, "1000") && close($o), "written");
$! = 0; try("write /proc/1/comm", open($c, ">", "/proc/1/comm") && syswrite($c, "x") && close($c), "written");
my $buf = "\0" x 16;
my $local = pack("QQ", unpack("Q", pack("p", $buf)), 16);
my $remote = pack("QQ", 0x400000, 16);
$! = 0; try("process_vm_readv", syscall(310, 1, $local, 1, $remote, 1, 0) >= 0, "memory");
my ($cpu, $as) = (pack("QQ", 1, 1), pack("QQ", 1 << 20, 1 << 20));
$! = 0; try("prlimit(1, RLIMIT_CPU)", syscall(302, 1, 0, $cpu, 0) == 0, "limit set");
$! = 0; try("prlimit(1, RLIMIT_AS)", syscall(302, 1, 9, $as, 0) == 0, "limit set");
my $old = "\0" x 16;
$! = 0; my $r = syscall(302, 1, 7, 0, $old); # reading limits stays allowed
print "prlimit(1) read: ", ($r == 0 ? "allowed" : "REFUSED $!"), "\n";
`

// mustReadStatus reads /proc/<pid>/status on the host.
func mustReadStatus(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hijacker takes over the control listener a command inherited (fd 3),
// keeps the init from accepting (RLIMIT_NOFILE below what it holds), and
// holds every connection labd makes for SECS seconds. Then it counts the
// connections labd has closed (its exec gave up), restores the init's
// limit, and prints "held H closed C". It exits early with a message when
// there is no listener to take.
const hijacker = `use strict; use warnings; use Socket;
my $secs = shift;
open(my $l, "+<&=", 3) or do { print "no listener on fd 3: $!\n"; exit 0 };
getsockopt($l, SOL_SOCKET, SO_ACCEPTCONN) or do { print "fd 3 is not a listener\n"; exit 0 };
my $n = 4; # fewer than the init holds: every accept fails with EMFILE
open(my $lim, "<", "/proc/1/limits") or die; my ($soft, $hard);
while (<$lim>) { ($soft, $hard) = ($1, $2) if /^Max open files\s+(\d+)\s+(\d+)/ } close $lim;
system("prlimit", "--pid", "1", "--nofile=$n:$hard") == 0 or do { print "prlimit refused\n"; exit 0 };
print "starving the init at $n descriptors\n";
my @held; my $end = time + $secs;
while (time < $end) {
	my $rin = ''; vec($rin, fileno($l), 1) = 1;
	next unless select(my $rout = $rin, undef, undef, 0.05);
	my $c;
	accept($c, $l) and push @held, $c;
}
my $closed = 0;
for my $c (@held) {
	while (1) {
		my $rin = ''; vec($rin, fileno($c), 1) = 1;
		last unless select(my $rout = $rin, undef, undef, 0);
		my $got = sysread($c, my $buf, 65536);
		if (!defined $got || $got == 0) { $closed++; last }
	}
}
system("prlimit", "--pid", "1", "--nofile=$soft:$hard");
printf "held %d closed %d\n", scalar @held, $closed;
`

func (th *threat) hijack(t *testing.T) {
	t.Helper()
	const secs = 5
	th.background(t, th.att, "h1", "hijack.pl", hijacker, fmt.Sprintf("perl /tmp/hijack.pl %d", secs))
	time.Sleep(500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := execStream(ctx, th.l.sbx, shReq(th.att, "h1", "echo not-hijacked", 10*time.Second))
			t.Logf("exec while hijacked: %v", err)
		}()
	}
	wg.Wait()
	time.Sleep(secs * time.Second)
	var out string
	waitUntil(t, 10*time.Second, "the hijacker's report", func() bool {
		r, err := execStream(context.Background(), th.l.sbx, shReq(th.att, "h1", "cat /tmp/hijack.pl.out", 5*time.Second))
		out = r.stdout
		return err == nil && (strings.Contains(out, "held") || strings.Contains(out, "no listener") || strings.Contains(out, "refused") || strings.Contains(out, "not a listener"))
	})
	t.Logf("hijacker: %s", strings.TrimSpace(out))
	var held, closed int
	if _, err := fmt.Sscanf(out[strings.Index(out+"held", "held"):], "held %d closed %d", &held, &closed); err == nil && closed < held {
		t.Errorf("labd left %d of the %d connections a node held open after their Exec calls had ended", held-closed, held)
	}
}

func TestThreat13NestedUserns(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	mark := "/etc/nslab-threat-" + randSuffix()
	out := th.mustSh(t, th.att, "h1", `unshare -U -r sh -c '
echo "uid $(id -u)"
(echo x > `+mark+`) 2>/dev/null && echo WROTE
head -c1 /etc/shadow >/dev/null 2>&1 && echo READ
ip link add nslabv0 type veth peer name nslabv1 2>/dev/null && echo NETADMIN
sysctl -w net.ipv4.ip_forward=1 >/dev/null 2>&1 && echo SYSCTL
mount -t tmpfs none /mnt 2>/dev/null && echo "MOUNT (own mount namespace needed: none asked)"
true'
unshare -U -r -n sh -c 'ip link add v0 type veth peer name v1 && echo own-netns-ok'
unshare -U sh -c 'echo "0 100000 1" > /proc/$$/uid_map' 2>/dev/null && echo MAPPED-FOREIGN-UID
true`)
	t.Logf("nested user namespace: %s", strings.Join(strings.Fields(out), " "))
	if !strings.Contains(out, "uid 0") || !strings.Contains(out, "own-netns-ok") {
		t.Errorf("nested user namespaces do not work as the kernel allows:\n%s", out)
	}
	for _, bad := range []string{"WROTE", "READ", "NETADMIN", "SYSCTL", "MOUNT", "MAPPED"} {
		if strings.Contains(out, bad) {
			t.Errorf("a nested user namespace gained %s:\n%s", bad, out)
		}
	}
	hostMissing(t, mark)
	// Every process under a nested namespace is still one of the node's
	// host uids.
	th.background(t, th.att, "h1", "nest.sh", "", "unshare -U -r unshare -U -r sleep 5")
	base := -1
	var uids []int
	waitUntil(t, 5*time.Second, "the nested sleep", func() bool {
		uids = uids[:0]
		for _, p := range readPids(t, th.cg("pids", th.att, "h1", "cgroup.procs")) {
			if u, err := hostUID(p); err == nil {
				uids = append(uids, u)
			}
		}
		return len(uids) >= 2
	})
	base = hostUIDOf(t, th.initPid(t, th.att, "h1"))
	for _, u := range uids {
		if u < base || u >= base+65536 {
			t.Errorf("a node process runs as host uid %d, outside the node's range %d..%d", u, base, base+65535)
		}
	}
	th.assertUnaffected(t)
}

// nprocs counts the processes (not threads: pids.current counts those)
// in a node's cgroup.
func (th *threat) nprocs(t *testing.T, id, node string) int {
	t.Helper()
	return len(readPids(t, th.cg("pids", id, node, "cgroup.procs")))
}

func readPids(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func hostUID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "Uid:" {
			return strconv.Atoi(f[2]) // effective
		}
	}
	return 0, errors.New("no Uid line")
}

func hostUIDOf(t *testing.T, pid int) int {
	t.Helper()
	u, err := hostUID(pid)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// --- 14-16: labd and the kernel's shared tables ---

// smallNodes is a lab whose nodes have 32 MiB each, so that kernel
// objects meet their bound within a second or two.
const smallNodes = `id: threat-small
title: Threat suite, nodes with 32 MiB
nodes:
  - {name: h1, interfaces: [{name: eth0, addresses: [10.0.0.1/24]}], limits: {memory_bytes: 33554432}}
  - {name: h2, interfaces: [{name: eth0, addresses: [10.0.0.2/24]}], limits: {memory_bytes: 33554432}}
  - {name: h3, interfaces: [{name: eth0, addresses: [10.0.0.3/24]}], limits: {memory_bytes: 33554432}}
  - {name: h4, interfaces: [{name: eth0, addresses: [10.0.0.4/24]}], limits: {memory_bytes: 33554432}}
segments:
  - {name: lan, endpoints: [h1:eth0, h2:eth0, h3:eth0, h4:eth0]}
`

// conntrackFlood makes N conntrack entries in the node's namespace: a
// rule that tracks, then UDP datagrams from one socket to N loopback
// address:port pairs.
const conntrackFlood = `use strict; use Socket;
my $n = shift;
system("nft", "add table inet nslabct; add chain inet nslabct out { type filter hook output priority 0; }; add rule inet nslabct out ct state new counter") == 0 or die "nft";
socket(my $s, PF_INET, SOCK_DGRAM, 0) or die;
for my $i (1 .. $n) {
	send($s, "x", 0, sockaddr_in(1024 + $i % 60000, inet_aton("127.0." . (1 + int($i / 60000)) . ".1")));
}
`

func TestThreat14KernelObjects(t *testing.T) {
	t.Parallel()
	th := newThreat(t, attackerLab("threat-small", smallNodes))
	inits0 := th.inits(th.att)
	usage := func(node string) int64 {
		if cgroupV2() {
			return readInt(t, th.cg("memory", th.att, node, "memory.current"))
		}
		return readInt(t, th.cg("memory", th.att, node, "memory.usage_in_bytes"))
	}
	const limit = 32 << 20
	oomKills := func(node string) int64 {
		if cgroupV2() {
			return readKV(t, th.cg("memory", th.att, node, "memory.events"))["oom_kill"]
		}
		return readKV(t, th.cg("memory", th.att, node, "memory.oom_control"))["oom_kill"]
	}
	peak := func(node string) int64 {
		if cgroupV2() {
			return readInt(t, th.cg("memory", th.att, node, "memory.peak"))
		}
		return readInt(t, th.cg("memory", th.att, node, "memory.max_usage_in_bytes"))
	}
	// Each flood runs in batches (so the tool's own memory stays small)
	// until one fails, and must stop at the node's memory limit: these
	// objects are charged to the memory cgroup of the node that makes
	// them. A batch prints "+N" as it lands.
	floods := []struct {
		name, node, batch string
		batches, per      int
	}{
		{"interfaces", "h1", `seq $((b * 100 + 1)) $((b * 100 + 100)) | sed 's/.*/link add nslab& type veth peer name nslabp&/' | ip -batch -`, 100, 100},
		{"routes", "h2", `awk -v b=$b 'BEGIN { for (i = b * 2000; i < (b + 1) * 2000; i++) printf "route add 10.%d.%d.%d/32 dev eth0\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256 }' | ip -batch -`, 500, 2000},
		{"nftables rules", "h3", `awk -v b=$b 'BEGIN { for (i = 0; i < 400; i++) printf "add rule inet nslabt c udp dport %d counter\n", (b * 400 + i) % 65536 }' | nft -f -`, 500, 400},
	}
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			script := fmt.Sprintf("nft add table inet nslabt; nft add chain inet nslabt c\nfor b in $(seq 0 %d); do { %s; } >/dev/null 2>&1 || { echo stopped; exit 0; }; echo +%d; done", f.batches-1, f.batch, f.per)
			start := time.Now()
			var out string
			r, err := execStream(rpcCtx(t), th.l.sbx, shReq(th.att, f.node, script, 60*time.Second))
			out = r.stdout
			made := strings.Count(out, "+") * f.per
			t.Logf("%s: about %d made in %s, then %q (%v %v); node peak %d MiB of %d, %d OOM kills",
				f.name, made, time.Since(start).Round(time.Millisecond), lastLine(out), r.exit, err, peak(f.node)>>20, limit>>20, oomKills(f.node))
			if made >= f.batches*f.per {
				t.Errorf("%d %s made without meeting the node's memory limit", made, f.name)
			}
			if p := peak(f.node); p > limit {
				t.Errorf("the node peaked at %d bytes, over its %d limit", p, limit)
			}
		})
	}
	th.assertUnaffected(t)

	t.Run("the node's init survives a full node", func(t *testing.T) {
		// The init is charged to a memory cgroup of its own, beside the
		// node's; commands, and the objects they make, to the node's,
		// whose OOM killer therefore never picks the init.
		if got := th.inits(th.att); !maps.Equal(got, inits0) {
			t.Errorf("the attacker's inits changed during the floods: %v, before %v", got, inits0)
		}
		for _, f := range floods {
			if r, err := execStream(rpcCtx(t), th.l.sbx, shReq(th.att, f.node, "true", 10*time.Second)); err != nil || r.exit.GetCode() != 0 {
				t.Errorf("node %s after its %s flood: %v %v", f.node, f.name, err, r.exit)
			}
		}
	})
	t.Run("conntrack tables a node can hold are bounded", func(t *testing.T) {
		// Conntrack entries are not charged to any memory cgroup (the
		// kernel's slab for them is not accounted), and the kernel keeps
		// net.netfilter.nf_conntrack_max global (read-only in every other
		// network namespace, for host root too), counting each namespace's
		// table against it. What bounds a node is how many network
		// namespaces it may hold: sandbox.Config.NodeNamespaces, its own
		// included, whichever of its uids makes them.
		ctMax, _ := strconv.ParseInt(hostSysctl(t, "net.netfilter.nf_conntrack_max"), 10, 64)
		before := usage("h4")
		const n = 50000
		th.perl(t, th.att, "h4", conntrackFlood, 30*time.Second, strconv.Itoa(n))
		count := strings.TrimSpace(th.mustSh(t, th.att, "h4", "cat /proc/sys/net/netfilter/nf_conntrack_count"))
		t.Logf("%s conntrack entries; the node's memory grew by %d KiB (not charged)", count, (usage("h4")-before)>>10)
		if r := th.sh(t, th.att, "h4", "echo 1000 > /proc/sys/net/netfilter/nf_conntrack_max"); r.exit.GetCode() == 0 {
			t.Errorf("a node set its own nf_conntrack_max")
		}
		out := th.mustSh(t, th.att, "h4", `made=0; for i in $(seq 1 64); do ip netns add ct$i 2>/dev/null || break; made=$i; done
echo "made $made"
ip netns add ct-more 2>&1 | tail -1
setpriv --reuid=1000 --regid=1000 --clear-groups unshare -U -r -n true 2>&1 | tail -1
for i in $(seq 1 $made); do ip netns del ct$i; done`)
		t.Logf("%s", out)
		var made int64
		fmt.Sscanf(out, "made %d", &made)
		if made != sandbox.DefaultNodeNamespaces-1 {
			t.Errorf("a node made %d network namespaces beside its own, want %d", made, sandbox.DefaultNodeNamespaces-1)
		}
		if strings.Count(out, "No space left on device") != 2 {
			t.Errorf("the namespace after the bound, by root or by another uid of the node, was not refused with ENOSPC:\n%s", out)
		}
		t.Logf("bound: %d network namespaces x %d entries = %d conntrack entries per node (about %d MiB of host kernel memory at %d bytes each)",
			sandbox.DefaultNodeNamespaces, ctMax, sandbox.DefaultNodeNamespaces*ctMax, sandbox.DefaultNodeNamespaces*ctMax*conntrackEntryBytes>>20, conntrackEntryBytes)
	})
	t.Run("namespaces a node makes are not counted against labd's", func(t *testing.T) {
		// The node's user namespace is owned by the node's own uid, its
		// parent (the spawner's) by the overflow uid: at the host level
		// nothing a node makes counts against root's limits.
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", th.initPid(t, th.att, "h1")))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const (
			nsGetOwnerUID = 0xb704 // _IO(0xb7, 0x4)
			nsGetParent   = 0xb702 // _IO(0xb7, 0x2)
		)
		owner := func(f *os.File) uint32 {
			var uid uint32
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nsGetOwnerUID, uintptr(unsafe.Pointer(&uid))); errno != 0 {
				t.Fatalf("NS_GET_OWNER_UID: %v", errno)
			}
			return uid
		}
		base := uint32(hostUIDOf(t, th.initPid(t, th.att, "h1")))
		if o := owner(f); o != base {
			t.Errorf("the node's user namespace is owned by host uid %d, want the node's own %d", o, base)
		}
		pfd, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nsGetParent, 0)
		if errno != 0 {
			t.Fatalf("NS_GET_PARENT: %v", errno)
		}
		parent := os.NewFile(pfd, "parent")
		defer parent.Close()
		if o := owner(parent); o == 0 {
			t.Errorf("the spawner's user namespace, every node's parent, is owned by root")
		} else {
			t.Logf("node's user namespace owned by %d, its parent by %d", base, o)
		}
	})
}

// conntrackEntryBytes is the size of a conntrack entry as the kernel's
// slab holds it (struct nf_conn with its extensions; /proc/slabinfo's
// nf_conntrack objsize on this kernel), for the bound stated.
const conntrackEntryBytes = 256

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// rssKiB reads this process's resident and peak resident set (labd runs
// in the test process).
func rssKiB(t *testing.T) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss = n
			case "VmHWM:":
				peak = n
			}
		}
	}
	return rss, peak
}

// resetPeak resets VmHWM to the current resident set.
func resetPeak(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	rss, _ := rssKiB(t)
	return rss
}

func TestThreat15ExecFlood(t *testing.T) {
	th := newThreat(t)

	t.Run("a stream nobody reads", func(t *testing.T) {
		base := resetPeak(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := th.l.sbx.Exec(ctx, shReq(th.att, "h1", "exec yes nslab-flood", 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // yes writes as fast as it may; nobody reads
		th.assertUnaffected(t)
		_, peak := rssKiB(t)
		t.Logf("labd's peak RSS grew by %d MiB while an unread stream was flooded for 2s", (peak-base)>>10)
		if peak-base > 32<<10 {
			t.Errorf("labd's peak RSS grew by %d MiB: the unread output was buffered", (peak-base)>>10)
		}
		cancel()
		waitUntil(t, 5*time.Second, "the flood being killed with its canceled exec", func() bool { return th.nprocs(t, th.att, "h1") == 1 })
	})
	t.Run("a stream read as fast as it comes", func(t *testing.T) {
		base := resetPeak(t)
		var n int64
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		stream, err := th.l.sbx.Exec(ctx, shReq(th.att, "h1", "timeout 4 cat /dev/zero", 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var exit *labsv1.ExitStatus
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n += int64(len(msg.GetStdout()) + len(msg.GetStderr()))
			if e := msg.GetExit(); e != nil {
				exit = e
			}
		}
		_, peak := rssKiB(t)
		t.Logf("4s of cat /dev/zero: %d MiB passed on, exit %v; labd's peak RSS grew by %d MiB", n>>20, exit, (peak-base)>>10)
		if n > 64<<20 || !exit.GetOutputTruncated() {
			t.Errorf("%d bytes passed on (truncated %v); the cap is 64 MiB", n, exit.GetOutputTruncated())
		}
		if peak-base > 128<<10 {
			t.Errorf("labd's peak RSS grew by %d MiB for one exec", (peak-base)>>10)
		}
	})
	t.Run("stdin at the limit", func(t *testing.T) {
		r := th.shIn(t, th.att, "h1", "wc -c", bytes.Repeat([]byte("x"), 1<<20), 30*time.Second)
		if strings.TrimSpace(r.stdout) != strconv.Itoa(1<<20) {
			t.Errorf("1 MiB of stdin arrived as %q bytes", r.stdout)
		}
		_, err := execStream(rpcCtx(t), th.l.sbx, &labsv1.ExecRequest{Sandbox: th.att, Node: "h1", Command: []string{"wc", "-c"}, Stdin: make([]byte, 1<<20+1)})
		wantInvalid(t, err, "stdin")
	})
	th.assertUnaffected(t)
}

// wantInvalid: err is InvalidArgument and names field in its details.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Errorf("got %v, want InvalidArgument naming %s", err, field)
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Errorf("InvalidArgument without a violation of field %q: %v", field, err)
}

func TestThreat16MalformedRequests(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	ctx := rpcCtx(t)
	exec := func(req *labsv1.ExecRequest) error {
		if req.Sandbox == "" {
			req.Sandbox = th.att
		}
		if req.Node == "" {
			req.Node = "h1"
		}
		if req.Command == nil {
			req.Command = []string{"true"}
		}
		r, err := execStream(ctx, th.l.sbx, req)
		if err == nil && r.exit.GetCode() != 0 {
			err = fmt.Errorf("ran, and exited %d: %s", r.exit.GetCode(), r.stderr)
		}
		return err
	}
	create := func(lab string) error {
		_, err := th.l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: lab})
		return err
	}
	get := func(name string) error {
		_, err := th.l.sbx.GetSandbox(ctx, &labsv1.GetSandboxRequest{Name: name})
		return err
	}
	big := strings.Repeat("a", 200<<10)
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string // for InvalidArgument
		gap   string // non-empty: a known gap
	}{
		{name: "lab with ..", call: func() error { return create("labs/../etc") }, code: codes.InvalidArgument, field: "lab"},
		{name: "sandbox name with ..", call: func() error { return get("sandboxes/../../etc") }, code: codes.InvalidArgument, field: "name"},
		{name: "sandbox name with NUL", call: func() error { return get("sandboxes/s-abcdef\x00") }, code: codes.InvalidArgument, field: "name"},
		{name: "unknown sandbox", call: func() error { return get("sandboxes/s-zzzzzz") }, code: codes.NotFound},
		{name: "exec in an unknown sandbox", call: func() error { return exec(&labsv1.ExecRequest{Sandbox: "s-zzzzzz"}) }, code: codes.NotFound},
		{name: "unknown node", call: func() error { return exec(&labsv1.ExecRequest{Node: "h9"}) }, code: codes.NotFound},
		{name: "negative timeout", call: func() error { return exec(&labsv1.ExecRequest{Timeout: durationpb.New(-time.Second)}) }, code: codes.InvalidArgument, field: "timeout"},
		{name: "NUL in an env value", call: func() error { return exec(&labsv1.ExecRequest{Env: map[string]string{"A": "b\x00c"}}) }, code: codes.InvalidArgument, field: "env"},
		{name: "negative page size", call: func() error {
			_, err := th.l.sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{PageSize: -1})
			return err
		}, code: codes.InvalidArgument, field: "page_size"},
		{name: "10 MB command", call: func() error { return exec(&labsv1.ExecRequest{Command: []string{"echo", strings.Repeat("a", 10<<20)}}) },
			code: codes.ResourceExhausted}, // gRPC's 4 MiB message limit answers before labd sees it
		{name: "lab name with NUL", call: func() error { return create("labs/hello-link\x00") }, code: codes.InvalidArgument, field: "lab"},
		{name: "node name with /", call: func() error { return exec(&labsv1.ExecRequest{Node: "../h1"}) }, code: codes.InvalidArgument, field: "node"},
		{name: "NUL in the command", call: func() error { return exec(&labsv1.ExecRequest{Command: []string{"echo", "a\x00b"}}) }, code: codes.InvalidArgument, field: "command"},
		{name: "NUL in the working dir", call: func() error { return exec(&labsv1.ExecRequest{WorkingDir: "/tmp\x00/x"}) }, code: codes.InvalidArgument, field: "working_dir"},
		{name: "200 KiB argument", call: func() error { return exec(&labsv1.ExecRequest{Command: []string{"echo", big}}) }, code: codes.InvalidArgument, field: "command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gap != "" {
				knownGap(t, tc.gap)
			}
			err := tc.call()
			t.Logf("%v", err)
			if tc.code == codes.InvalidArgument {
				wantInvalid(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("got %v, want %v", err, tc.code)
			}
		})
	}
	// Nothing was made: two sandboxes, as before.
	if all := th.l.listAll(t); len(all) != 2 {
		t.Errorf("after malformed requests labd lists %d sandboxes, want 2", len(all))
	}
	if dirs := th.e.sandboxStateDirs(); len(dirs) != 2 {
		t.Errorf("after malformed requests the host holds state dirs %q", dirs)
	}
	th.assertUnaffected(t)
}

// --- 17-19: the grader, terminals, lab files ---

// forge writes hand-built IPv4 packets straight onto an interface
// (AF_PACKET), bypassing the node's own stack: forge IFACE DSTMAC PKT...
// where PKT is tcp,SRC,SPORT,DST,DPORT,FLAGS,SEQ,ACK or
// icmp,SRC,DST,TYPE,ID,SEQ,PAYLOAD.
const forge = `use strict; use warnings; use Socket;
my ($ifname, $dstmac, @pkts) = @ARGV;
sub slurp { open(my $f, "<", $_[0]) or die "$_[0]: $!"; local $/; my $s = <$f>; chomp $s; return $s }
sub csum {
	my $d = shift; $d .= "\0" if length($d) % 2;
	my $s = 0; $s += $_ for unpack("n*", $d);
	$s = ($s >> 16) + ($s & 0xffff) while $s >> 16;
	return ~$s & 0xffff;
}
sub mac { pack("C6", map { hex } split /:/, $_[0]) }
my $ifindex = slurp("/sys/class/net/$ifname/ifindex") + 0;
my $srcmac = slurp("/sys/class/net/$ifname/address");
socket(my $s, 17, SOCK_RAW, 0) or die "packet socket: $!"; # AF_PACKET
my %bit = (F => 1, S => 2, R => 4, P => 8, A => 16);
for my $pkt (@pkts) {
	my ($proto, @f) = split /,/, $pkt;
	my ($l4, $src, $dst, $pn);
	if ($proto eq "tcp") {
		my ($sport, $dport, $flags, $seq, $ack);
		($src, $sport, $dst, $dport, $flags, $seq, $ack) = @f;
		my $fl = 0; $fl |= $bit{$_} for split //, $flags;
		$l4 = pack("nnNNCCnnn", $sport, $dport, $seq, $ack, 5 << 4, $fl, 64240, 0, 0);
		substr($l4, 16, 2) = pack("n", csum(inet_aton($src) . inet_aton($dst) . pack("CCn", 0, 6, length $l4) . $l4));
		$pn = 6;
	} else {
		my ($type, $id, $seq, $payload);
		($src, $dst, $type, $id, $seq, $payload) = @f;
		$l4 = pack("CCnnn", $type, 0, 0, $id, $seq) . ($payload // "");
		substr($l4, 2, 2) = pack("n", csum($l4));
		$pn = 1;
	}
	my $ip = pack("CCnnnCCna4a4", 0x45, 0, 20 + length $l4, int(rand(65535)), 0x4000, 64, $pn, 0, inet_aton($src), inet_aton($dst));
	substr($ip, 10, 2) = pack("n", csum($ip));
	my $frame = mac($dstmac) . mac($srcmac) . pack("n", 0x0800) . $ip . $l4;
	send($s, $frame, 0, pack("SnISCCa8", 17, 0x0800, $ifindex, 1, 0, 6, mac($dstmac))) or die "send: $!";
	print "sent $pkt\n";
	select(undef, undef, undef, 0.05);
}
`

// reflect answers every ICMP echo request its node sends to TARGET with
// an echo reply "from" TARGET, made in the node and looped back into its
// own stack: the target never sees the request. reflect IFACE TARGET SECS.
const reflect = `use strict; use warnings; use Socket;
my ($ifname, $target, $secs) = @ARGV;
sub csum {
	my $d = shift; $d .= "\0" if length($d) % 2;
	my $s = 0; $s += $_ for unpack("n*", $d);
	$s = ($s >> 16) + ($s & 0xffff) while $s >> 16;
	return ~$s & 0xffff;
}
open(my $f, "<", "/sys/class/net/$ifname/ifindex") or die; my $ifindex = <$f> + 0; close $f;
# Outgoing packets reach ETH_P_ALL sockets only.
socket(my $sn, 17, SOCK_DGRAM, 0x0300) or die "packet socket: $!"; # AF_PACKET, htons(ETH_P_ALL)
bind($sn, pack("SnISCCa8", 17, 0x0003, $ifindex, 0, 0, 0, "")) or die "bind: $!";
socket(my $raw, PF_INET, SOCK_RAW, 255) or die "raw socket: $!"; # IPPROTO_RAW: we write the IP header
my $want = inet_aton($target);
$SIG{ALRM} = sub { exit 0 }; alarm $secs;
$| = 1; print "ready\n";
while (1) {
	my $from = recv($sn, my $pkt, 65535, 0);
	next unless defined $from && length($pkt) >= 28;
	next unless unpack("n", substr($from, 2, 2)) == 0x0800 && unpack("C", substr($from, 10, 1)) == 4; # IPv4, PACKET_OUTGOING
	my $ihl = (unpack("C", $pkt) & 15) * 4;
	next unless unpack("C", substr($pkt, 9, 1)) == 1 && substr($pkt, 16, 4) eq $want;
	my $icmp = substr($pkt, $ihl);
	next unless unpack("C", $icmp) == 8;
	my $src = substr($pkt, 12, 4);
	substr($icmp, 0, 1) = pack("C", 0); substr($icmp, 2, 2) = pack("n", 0);
	substr($icmp, 2, 2) = pack("n", csum($icmp));
	my $ip = pack("CCnnnCCna4a4", 0x45, 0, 20 + length $icmp, int(rand(65535)), 0, 64, 1, 0, $want, $src) . $icmp;
	send($raw, $ip, 0, sockaddr_in(0, $src)) or warn "send: $!";
	print "reflected\n";
}
`

// checkResult grades an exercise and returns one check's result.
func (th *threat) checkResult(t *testing.T, id, exercise, check string) *labsv1.CheckResult {
	t.Helper()
	resp, err := th.grd.Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: id, Exercise: exercise})
	if err != nil {
		t.Fatalf("Grade %s: %v", exercise, err)
	}
	for _, rep := range resp.GetReports() {
		for _, r := range rep.GetResults() {
			if r.GetCheck() == check {
				t.Logf("check %s/%s: passed %v: %s %q", exercise, check, r.GetPassed(), r.GetMessage(), r.GetEvidence())
				return r
			}
		}
	}
	t.Fatalf("no check %s in exercise %s", check, exercise)
	return nil
}

func TestThreat17FoolTheGrader(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	const (
		dropTCP7 = `nft add table inet f; nft add chain inet f in '{ type filter hook input priority 0; }'; nft add rule inet f in tcp dport 7 drop`
		dropPing = `nft add table inet f; nft add chain inet f in '{ type filter hook input priority 0; }'; nft add rule inet f in icmp type echo-request drop`
		killEcho = `pkill -x nslab-tcp-echo; sleep 0.2; ! pgrep -x nslab-tcp-echo`
	)
	// fresh gives each attack a sandbox of its own (grades look back 5
	// minutes), and h2's MAC.
	fresh := func(t *testing.T) (string, string) {
		id := th.l.create(t, "hello-link").GetId()
		t.Cleanup(func() { th.l.delete(t, id) })
		return id, strings.TrimSpace(th.mustSh(t, id, "h2", "cat /sys/class/net/eth0/address"))
	}
	forgeIn := func(t *testing.T, id, mac string, pkts ...string) {
		t.Helper()
		r := th.perl(t, id, "h1", forge, 20*time.Second, append([]string{"eth0", mac}, pkts...)...)
		if r.exit.GetCode() != 0 {
			t.Fatalf("forge: %v %s %s", r.exit, r.stdout, r.stderr)
		}
	}
	failing := func(t *testing.T, r *labsv1.CheckResult) {
		t.Helper()
		if r.GetPassed() {
			t.Errorf("check %s passed for an attack that did not do the exercise: %s %q", r.GetCheck(), r.GetMessage(), r.GetEvidence())
		}
	}

	t.Run("a handshake forged by one node", func(t *testing.T) {
		id, mac := fresh(t)
		th.mustSh(t, id, "h2", dropTCP7) // h2's stack stays silent
		forgeIn(t, id, mac, "tcp,10.0.0.1,40001,10.0.0.2,7,S,1000,0", "tcp,10.0.0.2,7,10.0.0.1,40001,SA,5000,1001", "tcp,10.0.0.1,40001,10.0.0.2,7,A,1001,5001")
		failing(t, th.checkResult(t, id, "handshake", "three-way"))
	})
	t.Run("an echo reply forged by the pinging node", func(t *testing.T) {
		id, mac := fresh(t)
		th.mustSh(t, id, "h2", dropPing)
		th.sh(t, id, "h1", "ping -c1 -W1 10.0.0.2")
		forgeIn(t, id, mac, "icmp,10.0.0.2,10.0.0.1,0,4242,1,nslab")
		failing(t, th.checkResult(t, id, "first-ping", "echo-reply"))
	})
	t.Run("a canned reply instead of the echo service", func(t *testing.T) {
		id, _ := fresh(t)
		th.mustSh(t, id, "h2", killEcho)
		th.background(t, id, "h2", "canned.sh", "", `timeout 60 socat TCP-LISTEN:7,fork,reuseaddr SYSTEM:"echo hello"`)
		time.Sleep(300 * time.Millisecond)
		failing(t, th.checkResult(t, id, "handshake", "echoes"))
	})
	t.Run("a handshake half forged around a real SYN-ACK", func(t *testing.T) {
		id, mac := fresh(t)
		forgeIn(t, id, mac, "tcp,10.0.0.1,40003,10.0.0.2,7,S,2000,0")
		time.Sleep(200 * time.Millisecond)
		forgeIn(t, id, mac, "tcp,10.0.0.1,40003,10.0.0.2,7,A,2001,99")
		failing(t, th.checkResult(t, id, "handshake", "three-way"))
	})
	// notCrossed: the probe got its forged answer, and the check failed
	// because the hub never saw that answer cross l1 — not for want of
	// an answer at all, which would prove nothing about the defence.
	notCrossed := func(t *testing.T, r *labsv1.CheckResult) {
		t.Helper()
		failing(t, r)
		ev := strings.Join(r.GetEvidence(), "\n")
		for _, want := range []string{"outcome: not-crossed", "never crossed link l1", "the answer came from h1 itself"} {
			if !strings.Contains(ev, want) {
				t.Errorf("check %s: evidence %q lacks %q", r.GetCheck(), ev, want)
			}
		}
	}
	t.Run("ping probe answered inside the pinging node", func(t *testing.T) {
		id, _ := fresh(t)
		th.mustSh(t, id, "h2", dropPing)
		th.background(t, id, "h1", "reflect.pl", reflect, "perl /tmp/reflect.pl eth0 10.0.0.2 30")
		time.Sleep(300 * time.Millisecond)
		notCrossed(t, th.checkResult(t, id, "first-ping", "reachable"))
		if out := th.sh(t, id, "h1", "cat /tmp/reflect.pl.out").stdout; !strings.Contains(out, "reflected") {
			t.Errorf("the reflector never answered, so the attack was not tried: %q", out)
		}
	})
	t.Run("tcp probe redirected to the probing node itself", func(t *testing.T) {
		id, _ := fresh(t)
		th.mustSh(t, id, "h2", killEcho)
		th.mustSh(t, id, "h1", `nft add table ip n; nft add chain ip n out '{ type nat hook output priority -100; }'; nft add rule ip n out tcp dport 7 redirect to :7007`)
		th.background(t, id, "h1", "local-echo.sh", "", "timeout 60 socat TCP-LISTEN:7007,fork,reuseaddr EXEC:cat")
		time.Sleep(300 * time.Millisecond)
		notCrossed(t, th.checkResult(t, id, "handshake", "echoes"))
	})
	th.assertUnaffected(t)
}

// tiocsti tries to push input into terminals: the command's own stdio,
// the controlling terminal, the host's consoles, and another session's
// terminal in the same node.
const tiocsti = `use strict; use warnings; use POSIX ();
my ($TIOCSTI, $TIOCGPTN, $TIOCSPTLCK) = (0x5412, 0x80045430, 0x40045431);
my $c = "x";
my $r = ioctl(STDIN, $TIOCSTI, $c); print "stdin: ", ($r ? "INJECTED" : "refused ($!)"), "\n";
$r = ioctl(STDOUT, $TIOCSTI, $c); print "stdout: ", ($r ? "INJECTED" : "refused ($!)"), "\n";
if (open(my $t, "+<", "/dev/tty")) { print "/dev/tty: OPENED\n" } else { print "/dev/tty: refused ($!)\n" }
for my $d (qw(/dev/console /dev/tty0 /dev/tty1 /dev/ttyS0 /dev/vcs /dev/vcsa /dev/kmsg)) {
	next unless -e $d;
	if (open(my $f, ">", $d)) { print "$d: OPENED\n" } else { print "$d: refused ($!)\n" }
}
open(my $m, "+<", "/dev/ptmx") or die "ptmx: $!";
my $z = pack("l", 0); ioctl($m, $TIOCSPTLCK, $z) or die "unlock: $!";
my $n = pack("L", 0); ioctl($m, $TIOCGPTN, $n) or die "ptn: $!";
my $slave = "/dev/pts/" . unpack("L", $n);
pipe(my $rd, my $wr) or die;
my $pid = fork();
if ($pid == 0) { POSIX::setsid(); open(my $s, "+<", $slave) or die; close $wr; <$rd>; exit 0 }
select(undef, undef, undef, 0.2);
open(my $s, "+<", $slave) or die "slave: $!";
$r = ioctl($s, $TIOCSTI, $c); print "another session's terminal: ", ($r ? "INJECTED" : "refused ($!)"), "\n";
close $wr; waitpid($pid, 0);
`

func TestThreat18TerminalInjection(t *testing.T) {
	t.Parallel()
	th := newThreat(t)
	r := th.perl(t, th.att, "h1", tiocsti, 10*time.Second)
	t.Logf("\n%s%s", r.stdout, r.stderr)
	if r.exit.GetCode() != 0 {
		t.Fatalf("the probe failed: %v", r.exit)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.Contains(l, "refused") {
			t.Errorf("not refused: %s", l)
		}
	}
	th.assertUnaffected(t)
}

func TestThreat19HostileLabFiles(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	node := func(i int) string {
		return fmt.Sprintf("  - {name: n%d, interfaces: [{name: eth0, addresses: [10.%d.%d.%d/8]}]}\n", i, i>>16&255, i>>8&255, i&255+1)
	}
	var nodes strings.Builder
	nodes.WriteString("id: many\ntitle: t\nnodes:\n")
	for i := range 10000 {
		nodes.WriteString(node(i))
	}
	var links strings.Builder
	links.WriteString("id: wide\ntitle: t\nnodes:\n")
	for _, n := range []string{"a", "b"} {
		fmt.Fprintf(&links, "  - name: %s\n    interfaces:\n", n)
		for i := range 10000 {
			fmt.Fprintf(&links, "      - {name: e%d}\n", i)
		}
	}
	links.WriteString("links:\n")
	for i := range 10000 {
		fmt.Fprintf(&links, "  - {endpoints: [a:e%d, b:e%d]}\n", i, i)
	}
	const two = "  - {name: a, interfaces: [{name: eth0, addresses: [10.0.0.1/24]}]%s}\n  - {name: b, interfaces: [{name: eth0, addresses: [10.0.0.2/24]}]}\nlinks: [{endpoints: [a:eth0, b:eth0]}]\n"
	tests := []struct {
		name  string
		files map[string]string // path in --labs -> content
		wants []string
		gap   string
	}{
		{name: "id with ..", files: map[string]string{"evil.yaml": "id: ../../etc\ntitle: t\nnodes:\n" + fmt.Sprintf(two, "")}, wants: []string{"id"}},
		{name: "directory with ..", files: map[string]string{"x..y/lab.yaml": "id: x..y\ntitle: t\nnodes:\n" + fmt.Sprintf(two, "")}, wants: []string{"id"}},
		{name: "node name with ..", files: map[string]string{"evil.yaml": "id: evil\ntitle: t\nnodes:\n  - {name: ../a, interfaces: [{name: eth0}]}\n"}, wants: []string{"nodes[0].name"}},
		{name: "service name with a path", files: map[string]string{"evil.yaml": "id: evil\ntitle: t\nnodes:\n" + fmt.Sprintf(two, ", services: [{kind: tcp-echo, port: 7, name: ../../x}]")}, wants: []string{"nodes[0].services[0].name"}},
		{name: "interface name with a path", files: map[string]string{"evil.yaml": "id: evil\ntitle: t\nnodes:\n  - {name: a, interfaces: [{name: ../e}]}\n"}, wants: []string{"nodes[0].interfaces[0].name"}},
		{name: "10 000 nodes", files: map[string]string{"many.yaml": nodes.String()}, wants: []string{"nodes", "too many nodes"}},
		{name: "10 000 links", files: map[string]string{"wide.yaml": links.String()}, wants: []string{"links"}},
		{name: "absurd limits", files: map[string]string{"evil.yaml": "id: evil\ntitle: t\nnodes:\n" + fmt.Sprintf(two, ", limits: {pids: 1000000000, memory_bytes: 1099511627776}")}, wants: []string{"limits"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.gap != "" {
				knownGap(t, tc.gap)
			}
			e := newTestEnv(t)
			for p, content := range tc.files {
				full := filepath.Join(e.labsDir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			served := false
			err := run(ctx, e.opts, func() { served = true; cancel() })
			if served || err == nil {
				t.Fatalf("labd served with a hostile lab (err %v)", err)
			}
			msg := err.Error()
			if len(msg) > 500 {
				msg = msg[:500] + "..."
			}
			t.Logf("refused in %s: %s", time.Since(start).Round(time.Millisecond), msg)
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q", want)
				}
			}
			for _, p := range []string{e.opts.socket, e.opts.db, e.opts.stateDir} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused start left %s behind", p)
				}
			}
			if dirs := e.cgroupParentDirs(); len(dirs) > 0 {
				t.Errorf("a refused start made cgroups %q", dirs)
			}
		})
	}
}
