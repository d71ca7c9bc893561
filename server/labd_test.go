package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
)

// labdChildEnv makes this test binary, re-executed by a test, run as
// labd ("labd", os.Args[1:] are its flags) or as the keeper of such a labd
// ("keeper", see keeperMain): a test can then kill a real labd process
// without building a second binary.
const labdChildEnv = "NSLAB_TEST_LABD"

func TestMain(m *testing.M) {
	sandbox.RunChild() // node inits and hubs are this binary re-executed
	switch os.Getenv(labdChildEnv) {
	case "labd":
		main()
		os.Exit(0)
	case "keeper":
		os.Exit(keeperMain())
	}
	os.Exit(m.Run())
}

// keeperMain starts labd (os.Args[1:] are its flags) as its child,
// prints labd's pid, then reaps every process below it until none is
// left. As a child subreaper it inherits whatever a killed labd orphans,
// so a test leaves no zombies for the host's PID 1 to reap, and knows
// every process of that labd is gone once the keeper exits.
func keeperMain() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "keeper: become subreaper: %v\n", err)
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), labdChildEnv+"=labd") // the last value of a key wins
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "keeper: start labd: %v\n", err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	os.Stdout.Close()
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); errors.Is(err, unix.ECHILD) {
			return 0
		}
	}
}

// Tests that start labd do not run in parallel with each other, though
// every name they use is unique: listenUnix sets the process-wide umask
// to 0117 for a moment, and a sandbox directory another in-process labd
// makes meanwhile, or a labd process forked meanwhile, gets it too (nodes
// then fail with "bind /etc/hosts: permission denied").

// requireRoot skips without root, and fails instead when CI demands root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NSLAB_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root and NSLAB_REQUIRE_ROOT=1")
	}
	t.Skip("needs root: labd builds namespaces, links and cgroups")
}

func randSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

const cgroupRoot = "/sys/fs/cgroup"

// testEnv is one labd's world: socket, database, labs directory, state
// directory and cgroup parent, all unique to the test.
type testEnv struct {
	dir     string // temp dir holding everything below except cgroups
	labsDir string
	opts    options
}

// newTestEnv makes a labd environment whose --labs directory holds copies
// of files (paths relative to the package directory). At cleanup every
// sandbox it still holds is destroyed and its cgroup parent removed; the
// test fails if the host is then not as it was.
func newTestEnv(t *testing.T, files ...string) *testEnv {
	t.Helper()
	requireRoot(t)
	d := t.TempDir()
	// Node processes run as unprivileged host uids and must be able to
	// search every directory down to their files, as in /run/nslab.
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	e := &testEnv{dir: d, labsDir: filepath.Join(d, "labs")}
	if err := os.Mkdir(e.labsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		e.addLab(t, filepath.Base(f), mustRead(t, f))
	}
	var k [2]byte
	rand.Read(k[:])
	e.opts = options{
		socket:       filepath.Join(d, "labd.sock"),
		db:           filepath.Join(d, "labd.db"),
		labsDirs:     []string{e.labsDir},
		stateDir:     filepath.Join(d, "state"),
		cgroupParent: "nslab-test-" + randSuffix(),
		// A uid window of its own, so parallel tests never share a range.
		uidStart: 1<<31 + uint(binary.LittleEndian.Uint16(k[:])%500)*64*sandbox.UIDRange,
		uidSlots: 64,
		logLevel: "warn",
		grace:    10 * time.Second,
		// labd's defaults: parseFlags sets them, these options bypass it.
		maxSandboxes: 500, maxNodes: 2000,
	}
	if len(e.opts.socket) > 100 {
		t.Fatalf("socket path %s is too long for a unix socket", e.opts.socket)
	}
	t.Cleanup(func() { e.cleanHost(t) })
	return e
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *testEnv) addLab(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(e.labsDir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cleanHost removes whatever a failed test left, then checks that nothing
// of this environment is on the host.
func (e *testEnv) cleanHost(t *testing.T) {
	t.Helper()
	e.destroyAll(t)
	for _, d := range e.cgroupParentDirs() {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup: remove cgroup %s: %v", d, err)
		}
	}
	if left := e.cgroupParentDirs(); len(left) > 0 {
		t.Errorf("cgroups left on the host: %q", left)
	}
	if procs := e.taggedProcs(); len(procs) > 0 {
		t.Errorf("processes left on the host: %v", procs)
	}
}

// destroyAll destroys every sandbox that has anything on the host under
// this environment's state dir and cgroup parent.
func (e *testEnv) destroyAll(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(e.opts.stateDir); err == nil {
		m, err := sandbox.NewManager(sandbox.Config{StateDir: e.opts.stateDir, CgroupParent: e.opts.cgroupParent})
		if err != nil {
			t.Errorf("cleanup: %v", err)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			for _, id := range m.Scan() {
				if err := m.Destroy(ctx, id); err != nil {
					t.Errorf("cleanup: destroy %s: %v", id, err)
				}
			}
			cancel()
		}
	}
}

// cgroupParentDirs lists the test's cgroup parent in every hierarchy
// where it exists (v1 controllers and the unified v2 root).
func (e *testEnv) cgroupParentDirs() []string {
	var out []string
	for _, pat := range []string{
		filepath.Join(cgroupRoot, e.opts.cgroupParent),
		filepath.Join(cgroupRoot, "*", e.opts.cgroupParent),
	} {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}

// sandboxCgroups lists the sandbox ids that have a cgroup under the
// test's parent in any hierarchy.
func (e *testEnv) sandboxCgroups() []string {
	var out []string
	for _, d := range e.cgroupParentDirs() {
		entries, _ := os.ReadDir(d)
		for _, ent := range entries {
			if ent.IsDir() && sandbox.ValidID(ent.Name()) && !slices.Contains(out, ent.Name()) {
				out = append(out, ent.Name())
			}
		}
	}
	slices.Sort(out)
	return out
}

// sandboxStateDirs lists <state>/sandboxes/s-*.
func (e *testEnv) sandboxStateDirs() []string {
	m, _ := filepath.Glob(filepath.Join(e.opts.stateDir, "sandboxes", "s-*"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// taggedProcs maps pid -> argv of every nslab-init and nslab-hub process
// whose argv[1] is this environment's state dir.
func (e *testEnv) taggedProcs() map[int][]string {
	out := map[int][]string{}
	for pid, argv := range procArgs() {
		if len(argv) >= 3 && (argv[0] == "nslab-init" || argv[0] == "nslab-hub") && argv[1] == e.opts.stateDir {
			out[pid] = argv
		}
	}
	return out
}

// procArgs maps pid -> argv of every process on the host.
func procArgs() map[int][]string {
	out := map[int][]string{}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		out[pid] = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	return out
}

// hostObjects describes what the host holds of sandbox id; "" if nothing.
func (e *testEnv) hostObjects(id string) string {
	var found []string
	for _, r := range e.cgroupParentDirs() {
		if _, err := os.Stat(filepath.Join(r, id)); err == nil {
			found = append(found, "cgroup "+filepath.Join(r, id))
		}
	}
	if _, err := os.Stat(filepath.Join(e.opts.stateDir, "sandboxes", id)); err == nil {
		found = append(found, "state dir")
	}
	for pid, argv := range procArgs() {
		if slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, id) }) {
			found = append(found, fmt.Sprintf("process %d %q", pid, argv))
		}
	}
	return strings.Join(found, "; ")
}

func (e *testEnv) assertHostClean(t *testing.T, id string) {
	t.Helper()
	if left := e.hostObjects(id); left != "" {
		t.Errorf("sandbox %s left on the host: %s", id, left)
	}
}

// labd is a labd served in-process by run, and a client of it.
type labd struct {
	t       *testing.T
	cancel  context.CancelFunc
	done    chan error
	conn    *grpc.ClientConn
	labs    labsv1.LabServiceClient
	sbx     labsv1.SandboxServiceClient
	stopped sync.Once
}

// startLabd runs labd in-process on e and returns once it serves; it is
// stopped at cleanup if the test has not stopped it.
func startLabd(t *testing.T, e *testEnv) *labd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, e.opts, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("labd stopped before serving: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatal("labd not serving after 2m")
	}
	l := &labd{t: t, cancel: cancel, done: done, conn: dial(t, e.opts.socket)}
	l.labs = labsv1.NewLabServiceClient(l.conn)
	l.sbx = labsv1.NewSandboxServiceClient(l.conn)
	t.Cleanup(l.stop)
	return l
}

// stop shuts labd down as a SIGTERM would and waits for run to return.
func (l *labd) stop() {
	l.stopped.Do(func() {
		l.conn.Close()
		l.cancel()
		select {
		case err := <-l.done:
			if err != nil {
				l.t.Errorf("labd: %v", err)
			}
		case <-time.After(30 * time.Second):
			l.t.Errorf("labd did not stop within 30s of its context being canceled")
		}
	})
}

func dial(t *testing.T, socket string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func rpcCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
}

func (l *labd) create(t *testing.T, lab string) *labsv1.Sandbox {
	t.Helper()
	start := time.Now()
	resp, err := l.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		t.Fatalf("CreateSandbox(%s): %v", lab, err)
	}
	t.Logf("CreateSandbox(%s) = %s in %s", lab, resp.GetSandbox().GetId(), time.Since(start).Round(time.Millisecond))
	return resp.GetSandbox()
}

// listAll returns every sandbox ListSandboxes reports, by id.
func (l *labd) listAll(t *testing.T) map[string]*labsv1.Sandbox {
	t.Helper()
	out := map[string]*labsv1.Sandbox{}
	token := ""
	for {
		resp, err := l.sbx.ListSandboxes(rpcCtx(t), &labsv1.ListSandboxesRequest{PageSize: 100, PageToken: token})
		if err != nil {
			t.Fatalf("ListSandboxes: %v", err)
		}
		for _, s := range resp.GetSandboxes() {
			out[s.GetId()] = s
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

type execResult struct {
	stdout, stderr string
	exit           *labsv1.ExitStatus
}

// exec runs a command through the Exec stream. The exit status must be
// the last message.
func (l *labd) exec(t *testing.T, req *labsv1.ExecRequest) (execResult, error) {
	t.Helper()
	stream, err := l.sbx.Exec(rpcCtx(t), req)
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
			return r, err
		}
		if r.exit != nil {
			t.Errorf("exec %q: message %v after the exit status", req.GetCommand(), msg)
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
		t.Errorf("exec %q: stream ended without an exit status", req.GetCommand())
		r.exit = &labsv1.ExitStatus{Code: -1}
	}
	return r, nil
}

func (l *labd) mustExec(t *testing.T, id, node string, argv ...string) string {
	t.Helper()
	r, err := l.exec(t, &labsv1.ExecRequest{Sandbox: "sandboxes/" + id, Node: node, Command: argv})
	if err != nil {
		t.Fatalf("exec %q in %s/%s: %v", argv, id, node, err)
	}
	if r.exit.GetCode() != 0 {
		t.Fatalf("exec %q in %s/%s: exit %v\nstdout: %s\nstderr: %s", argv, id, node, r.exit, r.stdout, r.stderr)
	}
	return r.stdout
}

func (l *labd) delete(t *testing.T, id string) {
	t.Helper()
	if _, err := l.sbx.DeleteSandbox(rpcCtx(t), &labsv1.DeleteSandboxRequest{Name: "sandboxes/" + id}); err != nil {
		t.Fatalf("DeleteSandbox(%s): %v", id, err)
	}
}

func TestLabdHealthAndReflection(t *testing.T) {
	l := startLabd(t, newTestEnv(t))
	hc := healthpb.NewHealthClient(l.conn)
	for _, svc := range []string{"", "labs.v1.LabService", "labs.v1.SandboxService"} {
		resp, err := hc.Check(rpcCtx(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, want SERVING", svc, resp.GetStatus())
		}
	}
	_, err := hc.Check(rpcCtx(t), &healthpb.HealthCheckRequest{Service: "labs.v1.Nope"})
	wantCode(t, "health of an unknown service", err, codes.NotFound)

	stream, err := reflectionpb.NewServerReflectionClient(l.conn).ServerReflectionInfo(rpcCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"labs.v1.LabService", "labs.v1.SandboxService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %q, missing %q", names, want)
		}
	}
	stream.CloseSend()
}

func TestLabdLabs(t *testing.T) {
	e := newTestEnv(t, "../labs/testdata/star3.yaml")
	l := startLabd(t, e)
	resp, err := l.labs.ListLabs(rpcCtx(t), &labsv1.ListLabsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, lab := range resp.GetLabs() {
		ids = append(ids, lab.GetId())
	}
	for _, want := range []string{"hello-link", "routed", "star3"} {
		if !slices.Contains(ids, want) {
			t.Errorf("ListLabs = %q, missing %q", ids, want)
		}
	}

	tests := []struct {
		name   string
		code   codes.Code
		id     string
		nodes  int
		source string
	}{
		{name: "labs/routed", id: "routed", nodes: 4},
		{name: "routed", id: "routed", nodes: 4},
		{name: "labs/star3", id: "star3", nodes: 3, source: filepath.Join(e.labsDir, "star3.yaml")},
		{name: "labs/nope", code: codes.NotFound},
		{name: "nope", code: codes.NotFound},
		{name: "", code: codes.InvalidArgument},
		{name: "labs/a/b", code: codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := l.labs.GetLab(rpcCtx(t), &labsv1.GetLabRequest{Name: tc.name})
			wantCode(t, fmt.Sprintf("GetLab(%q)", tc.name), err, tc.code)
			if tc.code != codes.OK {
				return
			}
			lab := resp.GetLab()
			if lab.GetId() != tc.id || lab.GetName() != "labs/"+tc.id || len(lab.GetNodes()) != tc.nodes {
				t.Errorf("GetLab(%q) = %s (%s) with %d nodes, want %s with %d", tc.name, lab.GetId(), lab.GetName(), len(lab.GetNodes()), tc.id, tc.nodes)
			}
			if tc.source != "" && lab.GetSource() != tc.source {
				t.Errorf("source = %q, want %q", lab.GetSource(), tc.source)
			}
		})
	}
}

func TestLabdSandboxLifecycle(t *testing.T) {
	e := newTestEnv(t)
	l := startLabd(t, e)
	sb := l.create(t, "labs/routed")
	id := sb.GetId()
	if sb.GetState() != labsv1.Sandbox_STATE_READY || sb.GetName() != "sandboxes/"+id || sb.GetLab() != "labs/routed" {
		t.Fatalf("created %v", sb)
	}
	if len(sb.GetNodes()) != 4 || len(sb.GetLinks()) != 3 {
		t.Errorf("created sandbox has %d nodes and %d links, want 4 and 3", len(sb.GetNodes()), len(sb.GetLinks()))
	}

	t.Run("get", func(t *testing.T) {
		resp, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: "sandboxes/" + id})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetSandbox()
		if got.GetState() != labsv1.Sandbox_STATE_READY || got.GetReadyTime() == nil {
			t.Errorf("state %v, ready time %v", got.GetState(), got.GetReadyTime())
		}
		// What the kernel holds now, per node: interface -> addresses.
		want := map[string]map[string][]string{
			"h1": {"eth0": {"10.0.1.10/24", "fd00:1::10/64"}},
			"r1": {"eth0": {"10.0.1.1/24", "fd00:1::1/64"}, "eth1": {"10.0.12.1/24", "fd00:12::1/64"}},
			"r2": {"eth0": {"10.0.12.2/24", "fd00:12::2/64"}, "eth1": {"10.0.2.1/24", "fd00:2::1/64"}},
			"h2": {"eth0": {"10.0.2.10/24", "fd00:2::10/64"}},
		}
		if len(got.GetNodes()) != len(want) {
			t.Errorf("%d nodes, want %d", len(got.GetNodes()), len(want))
		}
		for _, n := range got.GetNodes() {
			wantIfs, ok := want[n.GetName()]
			if !ok {
				t.Errorf("unexpected node %q", n.GetName())
				continue
			}
			if len(n.GetInterfaces()) != len(wantIfs) {
				t.Errorf("node %s: interfaces %v, want %v", n.GetName(), n.GetInterfaces(), wantIfs)
			}
			for _, ifc := range n.GetInterfaces() {
				addrs := slices.Sorted(slices.Values(ifc.GetAddresses()))
				if !slices.Equal(addrs, wantIfs[ifc.GetName()]) {
					t.Errorf("%s %s: addresses %q, want %q", n.GetName(), ifc.GetName(), addrs, wantIfs[ifc.GetName()])
				}
				if !ifc.GetUp() || ifc.GetMtu() != 1500 || ifc.GetMac() == "" || ifc.GetLink() == "" {
					t.Errorf("%s %s: up %v mtu %d mac %q link %q", n.GetName(), ifc.GetName(), ifc.GetUp(), ifc.GetMtu(), ifc.GetMac(), ifc.GetLink())
				}
			}
		}
	})

	t.Run("exec", func(t *testing.T) {
		tests := []struct {
			name           string
			node           string
			argv           []string
			stdin          string
			env            map[string]string
			dir            string
			timeout        time.Duration
			stdout, stderr string // checked when not "-"
			code           int32
			signal         string
			timedOut       bool
		}{
			{name: "ping across two routers", node: "h1", argv: []string{"ping", "-c1", "-W2", "10.0.2.10"}, stdout: "-", stderr: "-"},
			{name: "ping6 across two routers", node: "h1", argv: []string{"ping", "-c1", "-W2", "fd00:2::10"}, stdout: "-", stderr: "-"},
			{name: "hostname", node: "h1", argv: []string{"hostname"}, stdout: "h1\n"},
			{name: "hostname of r2", node: "r2", argv: []string{"hostname"}, stdout: "r2\n"},
			{name: "stdout stderr and code", node: "h1", argv: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, stdout: "out\n", stderr: "err\n", code: 7},
			{name: "stdin", node: "h2", argv: []string{"cat"}, stdin: "to h2\n", stdout: "to h2\n"},
			{name: "env", node: "h2", argv: []string{"sh", "-c", `printf %s "$GREETING"`}, env: map[string]string{"GREETING": "hi"}, stdout: "hi"},
			{name: "working dir", node: "h2", argv: []string{"pwd"}, dir: "/tmp", stdout: "/tmp\n"},
			{name: "root of the node", node: "r1", argv: []string{"id", "-u"}, stdout: "0\n"},
			{name: "killed by a signal", node: "h1", argv: []string{"sh", "-c", "kill -9 $$"}, stdout: "-", stderr: "-", code: 128 + 9, signal: "SIGKILL"},
			{name: "timeout", node: "h1", argv: []string{"sleep", "30"}, timeout: 300 * time.Millisecond, stdout: "-", stderr: "-", code: -1, signal: "-", timedOut: true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				req := &labsv1.ExecRequest{
					Sandbox: "sandboxes/" + id, Node: tc.node, Command: tc.argv, Stdin: []byte(tc.stdin), Env: tc.env, WorkingDir: tc.dir,
				}
				if tc.timeout > 0 {
					req.Timeout = durationpb.New(tc.timeout)
				}
				start := time.Now()
				r, err := l.exec(t, req)
				if err != nil {
					t.Fatal(err)
				}
				if (tc.code >= 0 && r.exit.GetCode() != tc.code) || (tc.signal != "-" && r.exit.GetSignal() != tc.signal) || r.exit.GetTimedOut() != tc.timedOut {
					t.Errorf("exit %v, want code %d signal %q timed out %v\nstdout: %s\nstderr: %s", r.exit, tc.code, tc.signal, tc.timedOut, r.stdout, r.stderr)
				}
				if tc.stdout != "-" && r.stdout != tc.stdout {
					t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
				}
				if tc.stderr != "-" && r.stderr != tc.stderr {
					t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
				}
				if tc.timedOut && time.Since(start) > 10*time.Second {
					t.Errorf("a %s timeout took %s", tc.timeout, time.Since(start))
				}
			})
		}
	})

	t.Run("exec errors", func(t *testing.T) {
		tests := []struct {
			name string
			req  *labsv1.ExecRequest
			code codes.Code
		}{
			{"unknown node", &labsv1.ExecRequest{Sandbox: id, Node: "h9", Command: []string{"true"}}, codes.NotFound},
			{"bad sandbox id", &labsv1.ExecRequest{Sandbox: "sandboxes/bogus", Node: "h1", Command: []string{"true"}}, codes.InvalidArgument},
			{"unknown sandbox", &labsv1.ExecRequest{Sandbox: "sandboxes/s-zzzzzz", Node: "h1", Command: []string{"true"}}, codes.NotFound},
			{"no command", &labsv1.ExecRequest{Sandbox: id, Node: "h1"}, codes.InvalidArgument},
			{"no node", &labsv1.ExecRequest{Sandbox: id, Command: []string{"true"}}, codes.InvalidArgument},
			{"stdin over 1 MiB", &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"cat"}, Stdin: make([]byte, 1<<20+1)}, codes.InvalidArgument},
			{"timeout over an hour", &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"true"}, Timeout: durationpb.New(2 * time.Hour)}, codes.InvalidArgument},
			{"negative timeout", &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"true"}, Timeout: durationpb.New(-time.Second)}, codes.InvalidArgument},
			{"bad env name", &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"true"}, Env: map[string]string{"A=B": "c"}}, codes.InvalidArgument},
			{"program not found", &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"/nonexistent/prog"}}, codes.OK},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r, err := l.exec(t, tc.req)
				wantCode(t, "Exec", err, tc.code)
				if tc.code == codes.OK && r.exit.GetCode() == 0 {
					t.Errorf("exit %v, want non-zero", r.exit)
				}
			})
		}
	})

	t.Run("list", func(t *testing.T) {
		got, ok := l.listAll(t)[id]
		if !ok || got.GetState() != labsv1.Sandbox_STATE_READY || got.GetLab() != "labs/routed" {
			t.Errorf("ListSandboxes: %s = %v (listed %v)", id, got, ok)
		}
		_, err := l.sbx.ListSandboxes(rpcCtx(t), &labsv1.ListSandboxesRequest{PageToken: "not-a-token"})
		wantCode(t, "ListSandboxes with a bad page token", err, codes.InvalidArgument)
	})

	t.Run("get errors", func(t *testing.T) {
		_, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: "sandboxes/s-zzzzzz"})
		wantCode(t, "GetSandbox of an unknown id", err, codes.NotFound)
		_, err = l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: "sandboxes/../etc"})
		wantCode(t, "GetSandbox of a bad id", err, codes.InvalidArgument)
		_, err = l.sbx.DeleteSandbox(rpcCtx(t), &labsv1.DeleteSandboxRequest{Name: "s-BAD"})
		wantCode(t, "DeleteSandbox of a bad id", err, codes.InvalidArgument)
	})

	if left := e.hostObjects(id); left == "" {
		t.Fatalf("sandbox %s is READY but nothing of it is on the host", id)
	}
	start := time.Now()
	l.delete(t, id)
	t.Logf("DeleteSandbox(%s) took %s", id, time.Since(start).Round(time.Millisecond))
	_, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: "sandboxes/" + id})
	wantCode(t, "GetSandbox after delete", err, codes.NotFound)
	if _, ok := l.listAll(t)[id]; ok {
		t.Errorf("ListSandboxes still shows %s after delete", id)
	}
	_, err = l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"true"}})
	wantCode(t, "Exec after delete", err, codes.NotFound)
	e.assertHostClean(t, id)
	l.delete(t, id) // idempotent
}

func TestLabdRefusesMissingFeature(t *testing.T) {
	requireRoot(t)
	if sandbox.Features()["netem"] {
		t.Skip("this kernel has netem; the test needs a feature the kernel lacks")
	}
	e := newTestEnv(t)
	e.addLab(t, "needs-netem.yaml", []byte(`id: needs-netem
title: Needs netem
requires: [netem]
nodes:
  - name: h1
    interfaces:
      - name: eth0
        addresses: [10.0.0.1/24]
  - name: h2
    interfaces:
      - name: eth0
        addresses: [10.0.0.2/24]
links:
  - endpoints: [h1:eth0, h2:eth0]
`))
	l := startLabd(t, e)
	_, err := l.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: "labs/needs-netem"})
	wantCode(t, "CreateSandbox(needs-netem)", err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "netem") {
		t.Errorf("message %q does not name netem", msg)
	}
	if all := l.listAll(t); len(all) > 0 {
		t.Errorf("ListSandboxes after a refused create: %v", all)
	}
	if cg, dirs, procs := e.sandboxCgroups(), e.sandboxStateDirs(), e.taggedProcs(); len(cg)+len(dirs)+len(procs) > 0 {
		t.Errorf("a refused create left cgroups %q, state dirs %q, processes %v", cg, dirs, procs)
	}
}

func TestLabdRejectsInvalidLabs(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		file  string
		wants []string
	}{
		{"unknown-node.yaml", []string{"links[1].endpoints[1]", `unknown node "h9"`}},
		{"duplicate-address.yaml", []string{"nodes[1].interfaces[0].addresses[0]", "duplicate address 10.0.0.1"}},
		{"bad-cidr.yaml", []string{"nodes[1].interfaces[0].addresses[0]", `"10.0.0.300/24" is not a valid CIDR`}},
		{"long-ifname.yaml", []string{"nodes[1].interfaces[0].name", "longer than 15 bytes"}},
		{"unknown-feature.yaml", []string{"requires[1]", `unknown feature "teleport"`}},
		{"non-net-sysctl.yaml", []string{`nodes[0].sysctls["kernel.hostname"]`, "net.*"}},
	}
	fixtures, err := filepath.Glob("../labs/testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		fixtures = slices.DeleteFunc(fixtures, func(f string) bool { return filepath.Base(f) == tc.file })
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, "../labs/testdata/invalid/"+tc.file)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			served := false
			err := run(ctx, e.opts, func() { served = true; cancel() })
			if served || err == nil {
				t.Fatalf("labd served with an invalid lab (err %v)", err)
			}
			for _, want := range append([]string{filepath.Join(e.labsDir, tc.file) + ": "}, tc.wants...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
			for _, p := range []string{e.opts.socket, e.opts.db, e.opts.stateDir} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused start left %s behind (stat: %v)", p, err)
				}
			}
			if c, err := net.Dial("unix", e.opts.socket); err == nil {
				c.Close()
				t.Errorf("something listens on %s", e.opts.socket)
			}
			if dirs := e.cgroupParentDirs(); len(dirs) > 0 {
				t.Errorf("a refused start made cgroups %q", dirs)
			}
		})
	}
	if len(fixtures) > 0 {
		t.Errorf("invalid fixtures without a test case: %q", fixtures)
	}
}

func TestLabdRestartReadopts(t *testing.T) {
	e := newTestEnv(t)
	l := startLabd(t, e)
	id := l.create(t, "hello-link").GetId()
	l.mustExec(t, id, "h1", "ping", "-c1", "-W2", "10.0.0.2")
	l.stop()

	start := time.Now()
	l = startLabd(t, e)
	t.Logf("restart with one live sandbox took %s", time.Since(start).Round(time.Millisecond))
	resp, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: id})
	if err != nil {
		t.Fatal(err)
	}
	sb := resp.GetSandbox()
	if sb.GetState() != labsv1.Sandbox_STATE_READY {
		t.Fatalf("after restart %s is %v (%s), want READY", id, sb.GetState(), sb.GetFailureReason())
	}
	// Interfaces come from the kernel only for a sandbox labd holds open.
	for _, n := range sb.GetNodes() {
		if len(n.GetInterfaces()) != 1 {
			t.Errorf("after restart node %s has interfaces %v", n.GetName(), n.GetInterfaces())
		}
	}
	if got := l.mustExec(t, id, "h2", "hostname"); got != "h2\n" {
		t.Errorf("hostname = %q, want h2", got)
	}
	l.mustExec(t, id, "h1", "ping", "-c1", "-W2", "10.0.0.2")
	l.delete(t, id)
	e.assertHostClean(t, id)
}

// labdProcess is a labd running as a separate process, under a keeper
// (see keeperMain).
type labdProcess struct {
	pid        int           // labd's
	keeperDone chan struct{} // closed when the keeper has exited
	killed     bool
}

// startLabdProcess runs labd on e as a separate process and returns once
// it serves. At cleanup labd is killed if still running, the sandboxes of
// e destroyed, and the keeper must then exit: nothing of that labd is left.
func startLabdProcess(t *testing.T, e *testEnv) *labdProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--socket", e.opts.socket, "--db", e.opts.db, "--state-dir", e.opts.stateDir,
		"--cgroup-parent", e.opts.cgroupParent, "--log-level", e.opts.logLevel,
		"--uid-start", strconv.FormatUint(uint64(e.opts.uidStart), 10), "--uid-slots", strconv.Itoa(e.opts.uidSlots),
		"--shutdown-grace", e.opts.grace.String(),
		"--max-sandboxes", strconv.Itoa(e.opts.maxSandboxes), "--max-nodes", strconv.Itoa(e.opts.maxNodes),
	}
	if e.opts.ttl > 0 {
		args = append(args, "--ttl", e.opts.ttl.String())
	}
	for _, d := range e.opts.labsDirs {
		args = append(args, "--labs", d)
	}
	logPath := filepath.Join(e.dir, "labd-process.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	keeper := exec.Command(exe, args...)
	keeper.Env = append(os.Environ(), labdChildEnv+"=keeper")
	keeper.Stderr = logf
	out, err := keeper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	p := &labdProcess{keeperDone: make(chan struct{})}
	line, _ := io.ReadAll(out) // the keeper closes stdout after the pid
	go func() { keeper.Wait(); close(p.keeperDone) }()
	t.Cleanup(func() {
		if !p.killed && p.pid > 0 {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		e.destroyAll(t)
		select {
		case <-p.keeperDone:
		case <-time.After(30 * time.Second):
			t.Errorf("processes of the labd process still alive 30s after cleanup")
			keeper.Process.Kill()
			<-p.keeperDone
		}
		if t.Failed() {
			t.Logf("labd process log:\n%s", mustRead(t, logPath))
		}
	})
	if p.pid, err = strconv.Atoi(strings.TrimSpace(string(line))); err != nil {
		t.Fatalf("keeper did not report labd's pid (%q): %s", line, mustRead(t, logPath))
	}

	// Poll the socket itself first: a gRPC client that finds no socket
	// backs off for a second before it tries again.
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.Dial("unix", e.opts.socket)
		if err == nil {
			c.Close()
			break
		}
		if processGone(p.pid) {
			t.Fatalf("labd process exited before serving: %s", mustRead(t, logPath))
		}
		if time.Now().After(deadline) {
			t.Fatalf("labd process not listening after 1m: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := healthpb.NewHealthClient(dial(t, e.opts.socket)).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("labd process health: %v %v", resp, err)
	}
	return p
}

// kill SIGKILLs labd and returns once it is dead.
func (p *labdProcess) kill(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.killed = true
	deadline := time.Now().Add(30 * time.Second)
	for !processGone(p.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("labd (pid %d) alive 30s after SIGKILL", p.pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitKeeper fails the test unless every process of the labd process,
// orphans included, has exited and been reaped within d.
func (p *labdProcess) waitKeeper(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.keeperDone:
	case <-time.After(d):
		t.Errorf("processes of the killed labd still alive %s after its sandboxes were deleted", d)
	}
}

// processGone reports whether pid has exited (a zombie counts as gone).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// TestLabdKilledDuringCreate kills labd (SIGKILL, a separate process) at
// several points of a 20-node build, or stops it (SIGTERM, with a short
// grace); a restart lists the half-built sandbox as FAILED (or READY,
// if SIGTERM's grace let the build finish), nothing of a sandbox that is
// not READY is left on the host, and the FAILED one expires.
func TestLabdKilledDuringCreate(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name string
		sig  syscall.Signal
		// when says the build has got far enough to kill labd.
		when func(e *testEnv) bool
	}{
		{"state dir made", syscall.SIGKILL, func(e *testEnv) bool { return len(e.sandboxStateDirs()) > 0 }},
		{"first processes up", syscall.SIGKILL, func(e *testEnv) bool { return len(e.taggedProcs()) >= 2 }},
		// Not all 21 (hub + 20 inits): each node's links and addresses are
		// made as soon as it runs, so once the last init is up the
		// sandbox is a millisecond from READY and the kill would miss.
		{"most processes up", syscall.SIGKILL, func(e *testEnv) bool { return len(e.taggedProcs()) >= 14 }},
		// Short names: the test's temp dir holds unix sockets.
		{"term early", syscall.SIGTERM, func(e *testEnv) bool { return len(e.taggedProcs()) >= 2 }},
		{"term late", syscall.SIGTERM, func(e *testEnv) bool { return len(e.taggedProcs()) >= 14 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			killDuringCreate(t, tc.sig, tc.when)
		})
	}
}

func killDuringCreate(t *testing.T, sig syscall.Signal, when func(e *testEnv) bool) {
	e := newTestEnv(t, "../labs/testdata/star20.yaml")
	// SIGTERM: too little grace for a 20-node build, unless it is nearly
	// done; either outcome must be clean.
	e.opts.grace = 10 * time.Millisecond
	start := time.Now()
	proc := startLabdProcess(t, e)
	t.Logf("labd process serving after %s", time.Since(start).Round(time.Millisecond))
	client := labsv1.NewSandboxServiceClient(dial(t, e.opts.socket))

	created := make(chan error, 1)
	go func() {
		_, err := client.CreateSandbox(context.Background(), &labsv1.CreateSandboxRequest{Lab: "labs/star20"})
		created <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for !when(e) {
		select {
		case err := <-created:
			t.Fatalf("CreateSandbox returned (%v) before the kill point", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("kill point not reached after 1m")
		}
		time.Sleep(100 * time.Microsecond)
	}
	ids := e.sandboxStateDirs()
	var pids []int
	for pid := range e.taggedProcs() {
		pids = append(pids, pid)
	}
	ns := netnsOf(pids)
	proc.signal(t, sig)
	t.Logf("labd %s during the create of %q (its processes were in %d network namespaces); then the host holds cgroups %q, %d processes",
		sig, ids, len(ns), e.sandboxCgroups(), len(e.taggedProcs()))
	select {
	case err := <-created:
		if err == nil {
			t.Fatal("CreateSandbox succeeded though labd was killed during it")
		}
	case <-time.After(time.Minute):
		t.Fatal("CreateSandbox did not return after labd was killed")
	}

	start = time.Now()
	// FAILED sandboxes are kept for a --ttl from the restart: a short one
	// shows them go.
	e.opts.ttl, e.opts.maxTTL, e.opts.reapEvery = 3*time.Second, time.Hour, 100*time.Millisecond
	l := startLabd(t, e)
	t.Logf("restart after %s took %s", sig, time.Since(start).Round(time.Millisecond))
	ready := map[string]bool{}
	listed := l.listAll(t)
	for id, sb := range listed {
		switch sb.GetState() {
		case labsv1.Sandbox_STATE_READY:
			ready[id] = true
		case labsv1.Sandbox_STATE_FAILED:
			if sb.GetFailureReason() != "labd stopped while it was being built" || len(sb.GetNodes()) != 0 || sb.GetExpireTime() == nil {
				t.Errorf("FAILED sandbox %s: reason %q, %d nodes, expire_time %v; want the reason, no nodes, an expiry",
					id, sb.GetFailureReason(), len(sb.GetNodes()), sb.GetExpireTime())
			}
		default:
			t.Errorf("sandbox %s is %v after restart", id, sb.GetState())
		}
	}
	for _, id := range ids {
		if sb, ok := listed[id]; !ok {
			t.Errorf("the half-built sandbox %s is not listed after restart", id)
		} else {
			t.Logf("after restart %s is %v %s", id, sb.GetState(), sb.GetFailureReason())
		}
		if sig == syscall.SIGKILL && listed[id].GetState() != labsv1.Sandbox_STATE_FAILED {
			t.Errorf("after kill -9 mid-build %s is %v, want FAILED", id, listed[id].GetState())
		}
		if !ready[id] && e.leases(t, id) != 0 {
			t.Errorf("FAILED sandbox %s keeps %d uid leases", id, e.leases(t, id))
		}
	}
	var readyNS []int
	for id := range ready {
		readyNS = append(readyNS, e.sandboxPids(id)...)
	}
	for n := range netnsOf(readyNS) {
		delete(ns, n)
	}
	if h := netnsHolders(ns); len(h) > 0 {
		t.Errorf("network namespaces of the half-built sandbox still held: %q", h)
	}
	// Nothing on the host may belong to a sandbox that is not READY.
	var stray []string
	for _, id := range slices.Concat(ids, e.sandboxCgroups(), e.sandboxStateDirs()) {
		if !ready[id] {
			if left := e.hostObjects(id); left != "" {
				stray = append(stray, id+": "+left)
			}
		}
	}
	for pid, argv := range e.taggedProcs() {
		if !ready[argv[2]] {
			stray = append(stray, fmt.Sprintf("process %d %q", pid, argv))
		}
	}
	if len(stray) > 0 {
		t.Errorf("after restart the host holds objects of sandboxes that are not READY:\n%s", strings.Join(stray, "\n"))
	}

	for id, sb := range l.listAll(t) {
		// A FAILED row that the restart made expires at its --ttl; one the
		// stopping labd made (SIGTERM) keeps its own, and is deleted.
		if sb.GetState() == labsv1.Sandbox_STATE_FAILED && time.Until(sb.GetExpireTime().AsTime()) < 10*time.Second {
			took := l.waitGone(t, id, 15*time.Second)
			t.Logf("FAILED %s expired %s after the restart's checks", id, took.Round(10*time.Millisecond))
			continue
		}
		l.delete(t, id)
	}
	if all := l.listAll(t); len(all) > 0 {
		t.Errorf("sandboxes left after deleting all: %v", all)
	}
	if cg, dirs, procs := e.sandboxCgroups(), e.sandboxStateDirs(), e.taggedProcs(); len(cg)+len(dirs)+len(procs) > 0 {
		t.Errorf("after deleting every sandbox the host holds cgroups %q, state dirs %q, processes %v", cg, dirs, procs)
	}
	// Whatever the killed labd had started is gone, and reaped. (After a
	// failure, cleanup destroys what is left before it waits.)
	if !t.Failed() {
		proc.waitKeeper(t, 30*time.Second)
	}
}

func TestLabdRemovesOrphans(t *testing.T) {
	e := newTestEnv(t)
	// A sandbox on the host under this labd's state dir and cgroup parent,
	// with no row in its database: as if the row were lost.
	m, err := sandbox.NewManager(sandbox.Config{StateDir: e.opts.stateDir, CgroupParent: e.opts.cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := labs.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	lab, err := cat.Get("hello-link")
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]uint32{}
	for i, n := range lab.Nodes {
		uids[n.Name] = uint32(e.opts.uidStart) + uint32(i)*sandbox.UIDRange
	}
	id := sandbox.NewID()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := m.Build(ctx, lab, id, uids)
	if err != nil {
		t.Fatalf("build orphan: %v", err)
	}
	sb.Close()
	if e.hostObjects(id) == "" {
		t.Fatalf("built %s but found nothing of it on the host", id)
	}

	l := startLabd(t, e)
	e.assertHostClean(t, id)
	if all := l.listAll(t); len(all) > 0 {
		t.Errorf("ListSandboxes after removing an orphan: %v", all)
	}
}

func TestLabdRestartMarksLostSandboxFailed(t *testing.T) {
	e := newTestEnv(t)
	l := startLabd(t, e)
	id := l.create(t, "hello-link").GetId()
	l.stop()

	// While labd is down, node h1's init dies.
	var victim int
	for pid, argv := range e.taggedProcs() {
		if argv[0] == "nslab-init" && argv[2] == id && argv[3] == "h1" {
			victim = pid
		}
	}
	if victim == 0 {
		t.Fatalf("no init process for %s/h1 among %v", id, e.taggedProcs())
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := e.taggedProcs()[victim]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("init %d still running 30s after SIGKILL", victim)
		}
		time.Sleep(time.Millisecond)
	}

	l = startLabd(t, e)
	resp, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: id})
	if err != nil {
		t.Fatal(err)
	}
	sb := resp.GetSandbox()
	if sb.GetState() != labsv1.Sandbox_STATE_FAILED || !strings.Contains(sb.GetFailureReason(), "h1") {
		t.Errorf("after restart %s is %v with reason %q, want FAILED naming h1", id, sb.GetState(), sb.GetFailureReason())
	}
	// Its other node was torn down with it.
	e.assertHostClean(t, id)
	_, err = l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: "h2", Command: []string{"true"}})
	wantCode(t, "Exec in a FAILED sandbox", err, codes.FailedPrecondition)
	l.delete(t, id)
	_, err = l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: id})
	wantCode(t, "GetSandbox after deleting a FAILED sandbox", err, codes.NotFound)
}

// TestLabdSecondInstanceRefuses starts a second labd on the socket,
// database and state of one that is building a sandbox: it must refuse
// before it touches anything.
func TestLabdSecondInstanceRefuses(t *testing.T) {
	requireRoot(t)
	e := newTestEnv(t, "../labs/testdata/star20.yaml")
	startLabdProcess(t, e)
	client := labsv1.NewSandboxServiceClient(dial(t, e.opts.socket))
	type result struct {
		sb  *labsv1.Sandbox
		err error
	}
	created := make(chan result, 1)
	go func() {
		resp, err := client.CreateSandbox(context.Background(), &labsv1.CreateSandboxRequest{Lab: "labs/star20"})
		created <- result{resp.GetSandbox(), err}
	}()
	deadline := time.Now().Add(time.Minute)
	for len(e.sandboxStateDirs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no sandbox state dir after 1m")
		}
		time.Sleep(100 * time.Microsecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, e.opts, func() { t.Error("a second labd served on the same socket"); cancel() })
	if err == nil {
		t.Fatal("a second labd started on the same socket, database and state dir")
	}
	t.Logf("second labd: %v", err)
	r := <-created
	if r.err != nil {
		t.Fatalf("the first labd's create failed once a second labd started: %v", r.err)
	}
	r2, err := client.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: r.sb.GetName()})
	if err != nil || r2.GetSandbox().GetState() != labsv1.Sandbox_STATE_READY {
		t.Fatalf("the first labd's sandbox: %v %v", r2, err)
	}
	if _, err := client.DeleteSandbox(rpcCtx(t), &labsv1.DeleteSandboxRequest{Name: r.sb.GetName()}); err != nil {
		t.Fatal(err)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" = must parse
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.socket != "/run/nslab/labd.sock" || o.db != "/var/lib/nslab/labd.db" || o.stateDir != "/run/nslab" ||
				o.cgroupParent != "nslab" || o.uidStart != 1<<30 || o.uidSlots != 4096 || o.logLevel != "info" || len(o.labsDirs) != 0 {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "repeatable labs", args: []string{"--labs", "/a", "--labs", "/b"}, check: func(t *testing.T, o options) {
			if !slices.Equal(o.labsDirs, []string{"/a", "/b"}) {
				t.Errorf("labsDirs = %q", o.labsDirs)
			}
		}},
		{name: "last uid range ends at 2^32-1", args: []string{"--uid-start", "65536", "--uid-slots", "65535"}},
		{name: "positional argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "nope"},
		{name: "uid start 0", args: []string{"--uid-start", "0"}, wantErr: "--uid-start"},
		{name: "window past 2^32", args: []string{"--uid-start", "4294901760", "--uid-slots", "2"}, wantErr: "--uid-start"},
		{name: "negative slots", args: []string{"--uid-slots", "-1"}, wantErr: "--uid-slots"},
		{name: "zero slots", args: []string{"--uid-slots", "0"}, wantErr: "--uid-slots"},
		{name: "per-owner limit defaults to 3, no TCP", check: func(t *testing.T, o options) {
			if o.maxPerOwner != 3 || o.listen != "" {
				t.Errorf("maxPerOwner %d, listen %q", o.maxPerOwner, o.listen)
			}
		}},
		{name: "no per-owner limit", args: []string{"--max-sandboxes-per-owner", "0"}},
		{name: "negative per-owner limit", args: []string{"--max-sandboxes-per-owner", "-1"}, wantErr: "--max-sandboxes-per-owner"},
		{name: "TCP without TLS", args: []string{"--listen", "127.0.0.1:7443"}, wantErr: "--tls-cert and --tls-key"},
		{name: "TCP without a key", args: []string{"--listen", ":7443", "--tls-cert", "c.pem"}, wantErr: "--tls-key"},
		{name: "TLS without TCP", args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, wantErr: "only used with --listen"},
		{name: "client CA without TCP", args: []string{"--tls-client-ca", "ca.pem"}, wantErr: "--tls-client-ca is only used with --listen"},
		{name: "TCP with TLS and mTLS", args: []string{"--listen", ":7443", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"},
			check: func(t *testing.T, o options) {
				if o.listen != ":7443" || o.tlsCert != "c.pem" || o.tlsKey != "k.pem" || o.tlsClientCA != "ca.pem" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "ops defaults", check: func(t *testing.T, o options) {
			if o.metrics != "" || o.maxSandboxes != 500 || o.maxNodes != 2000 || o.grace != 10*time.Second {
				t.Errorf("metrics %q, max-sandboxes %d, max-nodes %d, shutdown-grace %s", o.metrics, o.maxSandboxes, o.maxNodes, o.grace)
			}
		}},
		{name: "ops set", args: []string{"--metrics", "127.0.0.1:9464", "--max-sandboxes", "0", "--max-nodes", "40", "--shutdown-grace", "1m"},
			check: func(t *testing.T, o options) {
				if o.metrics != "127.0.0.1:9464" || o.maxSandboxes != 0 || o.maxNodes != 40 || o.grace != time.Minute {
					t.Errorf("metrics %q, max-sandboxes %d, max-nodes %d, shutdown-grace %s", o.metrics, o.maxSandboxes, o.maxNodes, o.grace)
				}
			}},
		{name: "negative max sandboxes", args: []string{"--max-sandboxes", "-1"}, wantErr: "--max-sandboxes"},
		{name: "negative max nodes", args: []string{"--max-nodes", "-1"}, wantErr: "--max-nodes"},
		{name: "negative grace", args: []string{"--shutdown-grace", "-1s"}, wantErr: "--shutdown-grace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}
