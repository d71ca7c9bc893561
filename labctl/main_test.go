package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

// testNow is the clock of every test, so ages are stable.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeLabd stands in for labd's gRPC API so that the CLI's parsing, output
// and exit codes can be tested without a server or root.
type fakeLabd struct {
	labsv1.UnimplementedLabServiceServer
	labsv1.UnimplementedSandboxServiceServer
	labsv1.UnimplementedGradingServiceServer

	labs      []*labsv1.Lab
	sandboxes []*labsv1.Sandbox
	// pageSize > 0 splits lists into pages, to test that labctl follows them.
	pageSize int
	// err, when set, is what every RPC returns.
	err error
	// exec is what Exec streams.
	exec []*labsv1.ExecResponse
	// reports are what Grade returns (those of the exercise asked for).
	reports []*labsv1.GradeReport
	// grades are what ListGrades returns.
	grades []*labsv1.GradeReport
	// steps are what Solve returns.
	steps []*labsv1.SolveStep
	// capture is what Capture streams; with follow it then waits for the
	// client to go away, as live capture does.
	capture []*labsv1.CaptureResponse
	// watch is what WatchSandboxes streams; then it waits for the client
	// to go away, as a watch of every sandbox does.
	watch []*labsv1.WatchSandboxesResponse

	mu       sync.Mutex
	requests []proto.Message
}

func (f *fakeLabd) record(m proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, m)
}

func (f *fakeLabd) recorded() []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// page serves items [token, token+pageSize).
func page[T any](items []T, token string, size int) ([]T, string, error) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", status.Errorf(codes.InvalidArgument, "bad page token %q", token)
		}
		start = n
	}
	if size <= 0 || start+size >= len(items) {
		return items[start:], "", nil
	}
	return items[start : start+size], strconv.Itoa(start + size), nil
}

func (f *fakeLabd) ListLabs(_ context.Context, req *labsv1.ListLabsRequest) (*labsv1.ListLabsResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	labs, next, err := page(f.labs, req.GetPageToken(), f.pageSize)
	if err != nil {
		return nil, err
	}
	return &labsv1.ListLabsResponse{Labs: labs, NextPageToken: next}, nil
}

func (f *fakeLabd) GetLab(_ context.Context, req *labsv1.GetLabRequest) (*labsv1.GetLabResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	for _, l := range f.labs {
		if l.GetId() == lastSegment(req.GetName()) {
			return &labsv1.GetLabResponse{Lab: l}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "lab %q not found", req.GetName())
}

func (f *fakeLabd) CreateSandbox(_ context.Context, req *labsv1.CreateSandboxRequest) (*labsv1.CreateSandboxResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	return &labsv1.CreateSandboxResponse{Sandbox: &labsv1.Sandbox{
		Name:  "sandboxes/s-7f3a9c",
		Id:    "s-7f3a9c",
		Lab:   "labs/" + lastSegment(req.GetLab()),
		State: labsv1.Sandbox_STATE_READY,
		Nodes: []*labsv1.Node{{Name: "h1"}, {Name: "r1"}},
	}}, nil
}

func (f *fakeLabd) GetSandbox(_ context.Context, req *labsv1.GetSandboxRequest) (*labsv1.GetSandboxResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	for _, sb := range f.sandboxes {
		if sb.GetId() == lastSegment(req.GetName()) {
			return &labsv1.GetSandboxResponse{Sandbox: sb}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "sandbox %q not found", req.GetName())
}

func (f *fakeLabd) ListSandboxes(_ context.Context, req *labsv1.ListSandboxesRequest) (*labsv1.ListSandboxesResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	sbs, next, err := page(f.sandboxes, req.GetPageToken(), f.pageSize)
	if err != nil {
		return nil, err
	}
	return &labsv1.ListSandboxesResponse{Sandboxes: sbs, NextPageToken: next}, nil
}

func (f *fakeLabd) DeleteSandbox(_ context.Context, req *labsv1.DeleteSandboxRequest) (*labsv1.DeleteSandboxResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	if strings.Contains(req.GetName(), "busy") {
		return nil, status.Error(codes.FailedPrecondition, "sandbox is being created")
	}
	return &labsv1.DeleteSandboxResponse{}, nil
}

func (f *fakeLabd) Exec(req *labsv1.ExecRequest, stream grpc.ServerStreamingServer[labsv1.ExecResponse]) error {
	f.record(req)
	if f.err != nil {
		return f.err
	}
	for _, m := range f.exec {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeLabd) register(s *grpc.Server) {
	labsv1.RegisterLabServiceServer(s, f)
	labsv1.RegisterSandboxServiceServer(s, f)
	labsv1.RegisterGradingServiceServer(s, f)
}

// serve runs f over bufconn and returns a config whose dialer reaches it.
// The dialer records the --addr it was given.
func serve(t *testing.T, f *fakeLabd) (config, *string) {
	t.Helper()
	cfg, dialed, _ := serveServer(t, f)
	return cfg, dialed
}

// serveServer is serve that also returns the server, for tests that stop
// it under a running command.
func serveServer(t *testing.T, f *fakeLabd) (config, *string, *grpc.Server) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	f.register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	var dialed string
	cfg := config{
		dial: func(addr string) (*grpc.ClientConn, error) {
			dialed = addr
			return grpc.NewClient("passthrough:///bufnet",
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
		},
		getenv:   func(string) string { return "" },
		now:      func() time.Time { return testNow },
		terminal: func(io.Writer) bool { return false },
	}
	return cfg, &dialed, srv
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, cfg config, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, strings.NewReader(stdin), cfg)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func sampleSandboxes() []*labsv1.Sandbox {
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(-d)) }
	return []*labsv1.Sandbox{
		{
			Name: "sandboxes/s-aaa111", Id: "s-aaa111", Lab: "labs/routed",
			State: labsv1.Sandbox_STATE_READY, CreateTime: at(5 * time.Second), ReadyTime: at(3 * time.Second),
			Nodes: []*labsv1.Node{
				{Name: "h1", Interfaces: []*labsv1.Interface{{Name: "eth0", Addresses: []string{"10.0.1.2/24"}, Mtu: 1500, Up: true, Mac: "02:00:00:00:01:02", Link: "l1"}}},
				{Name: "r1", Interfaces: []*labsv1.Interface{
					{Name: "eth0", Addresses: []string{"10.0.1.1/24"}, Mtu: 1500, Up: true, Mac: "02:00:00:00:01:01", Link: "l1"},
					{Name: "eth1", Mtu: 1400, Link: "l2"},
				}},
			},
			Links: []*labsv1.Link{{Name: "l1", Endpoints: []string{"h1:eth0", "r1:eth0"}}, {Name: "l2", Endpoints: []string{"r1:eth1"}}},
		},
		{Name: "sandboxes/s-bbb222", Lab: "labs/nat", State: labsv1.Sandbox_STATE_CREATING, CreateTime: at(3*time.Minute + 10*time.Second)},
		{Name: "sandboxes/s-ccc333", Id: "s-ccc333", Lab: "labs/firewall", State: labsv1.Sandbox_STATE_FAILED, CreateTime: at(2*time.Hour + time.Minute), FailureReason: "kernel lacks netem"},
	}
}

func sampleLabs() []*labsv1.Lab {
	return []*labsv1.Lab{
		{
			Name: "labs/routed", Id: "routed", Title: "Route between two subnets", Level: "beginner",
			Topics: []string{"routing", "ipv4"}, Minutes: 20, Summary: "Make h1 reach h2 through r1.",
			Nodes: []*labsv1.LabNode{
				{Name: "h1", Interfaces: []*labsv1.LabInterface{{Name: "eth0", Addresses: []string{"10.0.1.2/24"}}}},
				{Name: "r1", Services: []string{"sshd"}, Interfaces: []*labsv1.LabInterface{
					{Name: "eth0", Addresses: []string{"10.0.1.1/24"}},
					{Name: "eth1", Addresses: []string{"10.0.2.1/24"}, Mtu: 1400},
				}},
			},
			Links: []*labsv1.LabLink{{Name: "l1", Endpoints: []string{"h1:eth0", "r1:eth0"}}},
			Exercises: []*labsv1.Exercise{
				{Id: "forward", Title: "Turn on forwarding", Checks: []*labsv1.ExerciseCheck{
					{Id: "fwd", Kind: "sysctl", Description: "r1 forwards IPv4", Points: 2},
					{Id: "secret", Kind: "probe", Points: 3, Hidden: true},
				}},
				{Id: "route", Title: "Route h1 to h2", Checks: []*labsv1.ExerciseCheck{{Points: 1}, {Points: 3}, {Points: 2}}},
			},
		},
		{Name: "labs/nat", Title: "Masquerade", Level: "intermediate", Minutes: 30, Nodes: []*labsv1.LabNode{{Name: "a"}}},
	}
}

func TestStartPrintsOnlyID(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{}
	cfg, _ := serve(t, f)
	for _, lab := range []string{"routed", "labs/routed"} {
		r := runCLI(t, cfg, "", "start", lab)
		if r.code != 0 || r.stdout != "s-7f3a9c\n" || r.stderr != "" {
			t.Errorf("start %s = %d, stdout %q, stderr %q; want 0, %q, nothing", lab, r.code, r.stdout, r.stderr, "s-7f3a9c\n")
		}
	}
	got := f.recorded()
	if len(got) != 2 || got[0].(*labsv1.CreateSandboxRequest).GetLab() != "routed" || got[1].(*labsv1.CreateSandboxRequest).GetLab() != "labs/routed" {
		t.Errorf("labd got %v; want the lab names sent as given", got)
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	out := func(s string) *labsv1.ExecResponse {
		return &labsv1.ExecResponse{Event: &labsv1.ExecResponse_Stdout{Stdout: []byte(s)}}
	}
	errOut := func(s string) *labsv1.ExecResponse {
		return &labsv1.ExecResponse{Event: &labsv1.ExecResponse_Stderr{Stderr: []byte(s)}}
	}
	exit := func(st *labsv1.ExitStatus) *labsv1.ExecResponse {
		return &labsv1.ExecResponse{Event: &labsv1.ExecResponse_Exit{Exit: st}}
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		stream     []*labsv1.ExecResponse
		wantCode   int
		wantStdout string
		wantStderr string
		wantReq    *labsv1.ExecRequest
	}{
		{
			name:       "streams and exit code",
			args:       []string{"exec", "s-aaa111", "h1", "--", "sh", "-c", "echo out; echo err >&2; exit 7"},
			stream:     []*labsv1.ExecResponse{out("out\n"), errOut("err\n"), out("more\n"), exit(&labsv1.ExitStatus{Code: 7})},
			wantCode:   7,
			wantStdout: "out\nmore\n",
			wantStderr: "err\n",
			wantReq:    &labsv1.ExecRequest{Sandbox: "s-aaa111", Node: "h1", Command: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}},
		},
		{
			name:       "flags before and after positionals",
			args:       []string{"exec", "-e", "A=1", "sandboxes/s-aaa111", "-w", "/tmp", "r1", "--timeout", "5s", "-e", "B=x=y", "-i", "--", "cat", "-n"},
			stdin:      "hello\n",
			stream:     []*labsv1.ExecResponse{out("     1\thello\n"), exit(&labsv1.ExitStatus{})},
			wantStdout: "     1\thello\n",
			wantReq: &labsv1.ExecRequest{
				Sandbox: "sandboxes/s-aaa111", Node: "r1", Command: []string{"cat", "-n"}, Stdin: []byte("hello\n"),
				Env: map[string]string{"A": "1", "B": "x=y"}, WorkingDir: "/tmp", Timeout: durationpb.New(5 * time.Second),
			},
		},
		{
			name:    "without -- the rest is the command",
			args:    []string{"exec", "s-aaa111", "h1", "ip", "-br", "-4", "addr"},
			stream:  []*labsv1.ExecResponse{exit(&labsv1.ExitStatus{})},
			wantReq: &labsv1.ExecRequest{Sandbox: "s-aaa111", Node: "h1", Command: []string{"ip", "-br", "-4", "addr"}},
		},
		{
			name:       "timed out",
			args:       []string{"exec", "--timeout", "1s", "s-aaa111", "h1", "sleep", "9"},
			stream:     []*labsv1.ExecResponse{exit(&labsv1.ExitStatus{Code: 137, Signal: "SIGKILL", TimedOut: true})},
			wantCode:   137,
			wantStderr: "labctl: command timed out\n",
		},
		{
			name:       "stream ends without exit status",
			args:       []string{"exec", "s-aaa111", "h1", "true"},
			wantCode:   1,
			wantStderr: "labctl: exec in s-aaa111 node h1: labd ended the stream without an exit status\n",
		},
		{
			name:       "stdin over 1 MiB",
			args:       []string{"exec", "-i", "s-aaa111", "h1", "cat"},
			stdin:      strings.Repeat("x", maxStdin+1),
			wantCode:   1,
			wantStderr: "labctl: exec in s-aaa111 node h1: stdin is larger than 1 MiB, the most exec -i sends\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{exec: tc.stream}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, tc.stdin, tc.args...)
			if r.code != tc.wantCode || r.stdout != tc.wantStdout || r.stderr != tc.wantStderr {
				t.Errorf("labctl %s\n= %d, stdout %q, stderr %q\nwant %d, stdout %q, stderr %q",
					strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if tc.wantReq == nil {
				return
			}
			// The GetSandbox before it is exec's expiry warning.
			reqs := slices.DeleteFunc(f.recorded(), func(m proto.Message) bool { _, ok := m.(*labsv1.GetSandboxRequest); return ok })
			if len(reqs) != 1 || !proto.Equal(reqs[0], tc.wantReq) {
				t.Errorf("labd got %v\nwant %v", reqs, tc.wantReq)
			}
		})
	}
}

// TestExecInterleaves checks that output is written as it arrives: the
// order of stdout and stderr writes follows the stream.
func TestExecInterleaves(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{exec: []*labsv1.ExecResponse{
		{Event: &labsv1.ExecResponse_Stdout{Stdout: []byte("1")}},
		{Event: &labsv1.ExecResponse_Stderr{Stderr: []byte("2")}},
		{Event: &labsv1.ExecResponse_Stdout{Stdout: []byte("3")}},
		{Event: &labsv1.ExecResponse_Exit{Exit: &labsv1.ExitStatus{}}},
	}}
	cfg, _ := serve(t, f)
	var log []string
	stdout := writerFunc(func(p []byte) { log = append(log, "out:"+string(p)) })
	stderr := writerFunc(func(p []byte) { log = append(log, "err:"+string(p)) })
	code := run(context.Background(), []string{"exec", "s-1", "h1", "x"}, stdout, stderr, nil, cfg)
	if want := []string{"out:1", "err:2", "out:3"}; code != 0 || !slices.Equal(log, want) {
		t.Errorf("exec = %d, writes %q; want 0, %q", code, log, want)
	}
}

type writerFunc func([]byte)

func (w writerFunc) Write(p []byte) (int, error) { w(p); return len(p), nil }

func TestLs(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{sandboxes: sampleSandboxes(), pageSize: 2}
	cfg, _ := serve(t, f)

	r := runCLI(t, cfg, "", "ls")
	want := "" +
		"ID        LAB       STATE     NODES  AGE  EXPIRES\n" +
		"s-aaa111  routed    ready     2      5s   -\n" +
		"s-bbb222  nat       creating  0      3m   -\n" +
		"s-ccc333  firewall  failed    0      2h   -\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("ls = %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}

	r = runCLI(t, cfg, "", "ls", "-q")
	if want := "s-aaa111\ns-bbb222\ns-ccc333\n"; r.code != 0 || r.stdout != want {
		t.Errorf("ls -q = %d, %q; want 0, %q", r.code, r.stdout, want)
	}

	r = runCLI(t, cfg, "", "ls", "-o", "json")
	var got labsv1.ListSandboxesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("ls -o json = %d, %v; output:\n%s", r.code, err, r.stdout)
	}
	if want := (&labsv1.ListSandboxesResponse{Sandboxes: sampleSandboxes()}); !proto.Equal(&got, want) {
		t.Errorf("ls -o json decodes to %v; want %v", &got, want)
	}
	// protojson varies the spaces after a colon on purpose; only the
	// indentation is ours.
	if !strings.Contains(r.stdout, "\n  \"sandboxes\":") {
		t.Errorf("ls -o json is not indented:\n%s", r.stdout)
	}
}

func TestLsEmptyJSON(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{})
	r := runCLI(t, cfg, "", "ls", "-o", "json")
	if r.code != 0 || !regexp.MustCompile(`"sandboxes":\s*\[\]`).MatchString(r.stdout) {
		t.Errorf("ls -o json with no sandboxes = %d, %q; want an empty array for jq", r.code, r.stdout)
	}
}

func TestShow(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{sandboxes: sampleSandboxes()})

	r := runCLI(t, cfg, "", "show", "sandboxes/s-aaa111")
	for _, want := range []string{
		"ID:       s-aaa111\n",
		"State:    ready\n",
		"(5s ago)",
		"NODE  INTERFACE  STATE  MTU   MAC                ADDRESSES    LINK\n",
		"h1    eth0       up     1500  02:00:00:00:01:02  10.0.1.2/24  l1\n",
		"      eth1       down   1400  -                  -            l2\n",
		"l1    h1:eth0 r1:eth0\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 0 {
		t.Errorf("show = %d, stderr %q", r.code, r.stderr)
	}

	r = runCLI(t, cfg, "", "show", "s-aaa111", "-o", "json")
	var sb labsv1.Sandbox
	if err := protojson.Unmarshal([]byte(r.stdout), &sb); err != nil || !proto.Equal(&sb, sampleSandboxes()[0]) {
		t.Errorf("show -o json = %d, %v:\n%s", r.code, err, r.stdout)
	}

	r = runCLI(t, cfg, "", "show", "-q", "s-aaa111")
	if r.stdout != "h1\nr1\n" {
		t.Errorf("show -q = %q; want the node names", r.stdout)
	}

	r = runCLI(t, cfg, "", "show", "s-ccc333")
	if !strings.Contains(r.stdout, "Failure:  kernel lacks netem\n") {
		t.Errorf("show of a failed sandbox lacks the reason:\n%s", r.stdout)
	}
}

func TestLabs(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{labs: sampleLabs(), pageSize: 1})

	r := runCLI(t, cfg, "", "labs")
	want := "" +
		"TOPIC    ID      TITLE                      LEVEL         MINUTES  EXERCISES\n" +
		"-        nat     Masquerade                 intermediate  30       0\n" +
		"routing  routed  Route between two subnets  beginner      20       2\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("labs = %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}

	r = runCLI(t, cfg, "", "labs", "-q")
	if r.stdout != "routed\nnat\n" {
		t.Errorf("labs -q = %q", r.stdout)
	}

	r = runCLI(t, cfg, "", "labs", "-o", "json")
	var list labsv1.ListLabsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.GetLabs()) != 2 {
		t.Errorf("labs -o json = %d, %v:\n%s", r.code, err, r.stdout)
	}

	r = runCLI(t, cfg, "", "labs", "show", "labs/routed")
	for _, want := range []string{
		"Title:    Route between two subnets\n",
		"Topics:   routing, ipv4\n",
		"Minutes:  20\n",
		"NODE  INTERFACE  MTU   ADDRESSES    SERVICES\n",
		"h1    eth0       -     10.0.1.2/24  -\n",
		"r1    eth0       -     10.0.1.1/24  sshd\n",
		"      eth1       1400  10.0.2.1/24\n",
		"l1    h1:eth0 r1:eth0\n",
		"EXERCISE  TITLE               CHECKS  POINTS\n" +
			"forward   Turn on forwarding  2       5\n" +
			"route     Route h1 to h2      3       6\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("labs show lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runCLI(t, cfg, "", "labs", "show", "routed", "-o", "json")
	var lab labsv1.Lab
	if err := protojson.Unmarshal([]byte(r.stdout), &lab); err != nil || lab.GetId() != "routed" {
		t.Errorf("labs show -o json = %d, %v:\n%s", r.code, err, r.stdout)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{}
	cfg, _ := serve(t, f)

	r := runCLI(t, cfg, "", "stop", "s-aaa111", "sandboxes/s-bbb222")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("stop = %d, %q, %q; want 0 and silence", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, cfg, "", "stop", "-v", "s-aaa111", "s-busy", "s-ccc333")
	if r.code != 1 || r.stdout != "s-aaa111\ns-ccc333\n" ||
		r.stderr != "labctl: stop sandbox s-busy: sandbox is being created\n" {
		t.Errorf("stop -v with a failure = %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := len(f.recorded()); n != 5 {
		t.Errorf("labd got %d deletes; want 5 (one failure does not stop the rest)", n)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	invalid, err := status.New(codes.InvalidArgument, "invalid lab").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "lab", Description: "must not be empty"},
			{Field: "lab", Description: "must match [a-z0-9-]+"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		err        error
		args       []string
		wantStderr string
	}{
		{
			name:       "not found",
			err:        status.Error(codes.NotFound, `sandbox "s-nope" not found`),
			args:       []string{"show", "s-nope"},
			wantStderr: "labctl: sandbox s-nope not found; `labctl ls` lists yours\n",
		},
		{
			name:       "field violations",
			err:        invalid.Err(),
			args:       []string{"start", "Bad Lab"},
			wantStderr: "labctl: start lab Bad Lab: invalid lab\n  lab: must not be empty\n  lab: must match [a-z0-9-]+\n",
		},
		{
			name:       "exec rpc error",
			err:        status.Error(codes.NotFound, `node "h9" not found`),
			args:       []string{"exec", "s-1", "h9", "true"},
			wantStderr: "labctl: node h9 not found in sandbox s-1; `labctl show s-1` lists its nodes\n",
		},
		{
			name:       "list",
			err:        status.Error(codes.PermissionDenied, "not allowed"),
			args:       []string{"ls"},
			wantStderr: "labctl: list sandboxes: not allowed\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := serve(t, &fakeLabd{err: tc.err})
			r := runCLI(t, cfg, "", tc.args...)
			if r.code != 1 || r.stdout != "" || r.stderr != tc.wantStderr {
				t.Errorf("labctl %s = %d, stdout %q, stderr %q; want 1, nothing, %q",
					strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.wantStderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{},
		{"bogus"},
		{"--nope", "ls"},
		{"--addr", "http://labd:80", "ls"},
		{"start"},
		{"start", "a", "b"},
		{"ls", "extra"},
		{"ls", "-o", "yaml"},
		{"ls", "-q", "-o", "json"},
		{"show"},
		{"exec", "s-1", "h1"},
		{"exec", "s-1", "--", "true"},
		{"exec", "s-1", "h1", "--"},
		{"exec", "-e", "NOEQUALS", "s-1", "h1", "true"},
		{"exec", "--timeout", "-1s", "s-1", "h1", "true"},
		{"stop"},
		{"labs", "shw"},
		{"check"},
		{"check", "s-1", "ex", "extra"},
		{"check", "-o", "yaml", "s-1"},
		{"grades"},
		{"grades", "s-1", "-q"},
		{"solve", "s-1"},
		{"solve", "s-1", "ex", "extra"},
		{"capture"},
		{"capture", "s-1", "s-2"},
		{"capture", "s-1", "--since", "-5s"},
		{"capture", "s-1", "-w", ""},
		{"capture", "s-1", "--since", "soon"},
		{"--addr", "labd.example:7443", "--cert", "c.pem", "ls"},
		{"--addr", "labd.example:7443", "--key", "k.pem", "ls"},
		{"--ca-cert", "ca.pem", "ls"}, // TLS flags on the unix socket
		{"--token", "two words", "ls"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", args...)
			if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "labctl: ") || !strings.Contains(r.stderr, "for usage.\n") {
				t.Errorf("labctl %q = %d, stdout %q, stderr %q; want 2 and a usage hint", args, r.code, r.stdout, r.stderr)
			}
			if n := len(f.recorded()); n != 0 {
				t.Errorf("a usage error called labd %d times", n)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{})
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, cfg, "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("labctl %q = %d, stderr %q", args, r.code, r.stderr)
		}
		for _, cmd := range []string{"labs", "labs show", "start", "ls", "show", "exec", "stop", "check", "grades", "solve", "capture", "help"} {
			if !strings.Contains(r.stdout, "\n  "+cmd+" ") {
				t.Errorf("labctl %q does not list %q:\n%s", args, cmd, r.stdout)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"exec", "-h"}, "-timeout"},
		{[]string{"help", "exec"}, "-timeout"},
		{[]string{"check", "-h"}, "-ascii"},
		{[]string{"help", "grades"}, "-o"},
		{[]string{"solve", "--help"}, "-o"},
		{[]string{"capture", "-h"}, "-follow"},
	} {
		cmd := tc.args[0]
		if cmd == "help" {
			cmd = tc.args[1]
		}
		r := runCLI(t, cfg, "", tc.args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: labctl "+cmd+" ") || !strings.Contains(r.stdout, tc.flag) {
			t.Errorf("labctl %q = %d, stdout %q, stderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    string
		args   []string
		wantTo string
	}{
		{"default", "", []string{"ls"}, defaultAddr},
		{"env", "unix:/tmp/x.sock", []string{"ls"}, "unix:/tmp/x.sock"},
		{"flag beats env", "unix:/tmp/x.sock", []string{"--addr", "unix:///tmp/y.sock", "ls"}, "unix:///tmp/y.sock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, dialed := serve(t, &fakeLabd{})
			cfg.getenv = func(k string) string {
				if k == addrEnv {
					return tc.env
				}
				return ""
			}
			if r := runCLI(t, cfg, "", tc.args...); r.code != 0 || *dialed != tc.wantTo {
				t.Errorf("labctl %q = %d (%s) dialed %q; want %q", tc.args, r.code, r.stderr, *dialed, tc.wantTo)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, target string
		local, ok    bool
	}{
		{"unix:///run/nslab/labd.sock", "unix:///run/nslab/labd.sock", true, true},
		{"unix:labd.sock", "unix:labd.sock", true, true},
		{"/run/nslab/labd.sock", "unix:///run/nslab/labd.sock", true, true},
		{"labd.example:7443", "labd.example:7443", false, true},
		{"", "", false, false},
		{"unix://", "", false, false},
		{"https://labd", "", false, false},
	}
	for _, tc := range tests {
		target, local, err := parseAddr(tc.addr)
		if (err == nil) != tc.ok || target != tc.target || local != tc.local {
			t.Errorf("parseAddr(%q) = %q, %v, %v; want %q, %v, ok=%v", tc.addr, target, local, err, tc.target, tc.local, tc.ok)
		}
	}
}

// TestUnixSocket goes through the real dialer: labctl reaches a server on a
// unix socket in both accepted spellings, and says so when nothing listens.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "labd.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	(&fakeLabd{sandboxes: sampleSandboxes()}).register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	cfg := config{getenv: func(string) string { return "" }, now: func() time.Time { return testNow }}
	for _, addr := range []string{"unix://" + sock, "unix:" + sock, sock} {
		r := runCLI(t, cfg, "", "--addr", addr, "ls", "-q")
		if r.code != 0 || r.stdout != "s-aaa111\ns-bbb222\ns-ccc333\n" {
			t.Errorf("ls via %s = %d, %q, %q", addr, r.code, r.stdout, r.stderr)
		}
	}

	missing := "unix://" + filepath.Join(dir, "missing.sock")
	r := runCLI(t, cfg, "", "--addr", missing, "--timeout", "10s", "ls")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "labctl: list sandboxes: ") || !strings.Contains(r.stderr, "is labd running") {
		t.Errorf("ls with no labd = %d, stderr %q", r.code, r.stderr)
	}
}

// TestInterrupt: cancelling the context (Ctrl-C) ends a running exec.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	labsv1.RegisterSandboxServiceServer(srv, hangingExec{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cfg := config{dial: func(string) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
	}}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"exec", "s-1", "h1", "sleep", "inf"}, &stdout, &stderr, nil, cfg) }()
	time.AfterFunc(100*time.Millisecond, cancel)
	select {
	case code := <-done:
		if code != 130 || stderr.String() != "labctl: exec in s-1 node h1: interrupted\n" {
			t.Errorf("interrupted exec = %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec did not end after cancel")
	}
}

type hangingExec struct {
	labsv1.UnimplementedSandboxServiceServer
	labsv1.UnimplementedGradingServiceServer
}

func (hangingExec) Exec(_ *labsv1.ExecRequest, stream grpc.ServerStreamingServer[labsv1.ExecResponse]) error {
	<-stream.Context().Done()
	return stream.Context().Err()
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:     "0s",
		5 * time.Second:  "5s",
		59 * time.Second: "59s",
		3 * time.Minute:  "3m",
		2 * time.Hour:    "2h",
		47 * time.Hour:   "47h",
		72 * time.Hour:   "3d",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q; want %q", d, got, want)
		}
	}
}
