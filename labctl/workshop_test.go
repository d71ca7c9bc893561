package main

import (
	"context"
	"encoding/csv"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

// fakeWorkshops stands in for labd's WorkshopService.
type fakeWorkshops struct {
	labsv1.UnimplementedWorkshopServiceServer
	ws     *labsv1.Workshop
	report *labsv1.WorkshopReport
	// watch is what WatchProgress sends before it waits for the client to
	// go away.
	watch []*labsv1.WatchProgressResponse

	mu       sync.Mutex
	requests []proto.Message
}

func (f *fakeWorkshops) record(m proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, m)
}

func (f *fakeWorkshops) CreateWorkshop(_ context.Context, req *labsv1.CreateWorkshopRequest) (*labsv1.CreateWorkshopResponse, error) {
	f.record(req)
	for i, n := range req.GetLearners() {
		if n != strings.ToLower(n) {
			return nil, status.Errorf(codes.InvalidArgument, "learners[%d]: %q is not a learner name", i, n)
		}
	}
	resp := &labsv1.CreateWorkshopResponse{
		Workshop:              &labsv1.Workshop{Name: "workshops/w-3f9a1c", Id: "w-3f9a1c", Lab: "labs/" + lastSegment(req.GetLab())},
		InstructorTokenSecret: "nslab_instructor",
	}
	for i, n := range req.GetLearners() {
		l := &labsv1.Learner{Id: n, State: labsv1.Learner_STATE_NO_SANDBOX}
		if req.GetProvision() {
			l.State, l.Sandbox = labsv1.Learner_STATE_READY, "sandboxes/s-00000"+string(rune('0'+i))
			if n == "bad" {
				l.State, l.Sandbox, l.FailureReason = labsv1.Learner_STATE_FAILED, "", "no uid ranges"
			}
		}
		resp.Workshop.Learners = append(resp.Workshop.Learners, l)
		resp.LearnerTokens = append(resp.LearnerTokens, &labsv1.LearnerToken{Learner: n, Secret: "nslab_" + n})
	}
	return resp, nil
}

func (f *fakeWorkshops) GetWorkshop(_ context.Context, req *labsv1.GetWorkshopRequest) (*labsv1.GetWorkshopResponse, error) {
	f.record(req)
	if lastSegment(req.GetName()) != f.ws.GetId() {
		return nil, status.Errorf(codes.NotFound, "workshop %q: not found", req.GetName())
	}
	return &labsv1.GetWorkshopResponse{Workshop: f.ws}, nil
}

func (f *fakeWorkshops) ListWorkshops(_ context.Context, req *labsv1.ListWorkshopsRequest) (*labsv1.ListWorkshopsResponse, error) {
	f.record(req)
	ws := proto.Clone(f.ws).(*labsv1.Workshop)
	ws.Learners = nil
	return &labsv1.ListWorkshopsResponse{Workshops: []*labsv1.Workshop{ws}}, nil
}

func (f *fakeWorkshops) DeleteWorkshop(_ context.Context, req *labsv1.DeleteWorkshopRequest) (*labsv1.DeleteWorkshopResponse, error) {
	f.record(req)
	return &labsv1.DeleteWorkshopResponse{Workshop: f.ws, RevokedTokens: 4, DeletedSandboxes: 1}, nil
}

func (f *fakeWorkshops) GetWorkshopReport(_ context.Context, req *labsv1.GetWorkshopReportRequest) (*labsv1.GetWorkshopReportResponse, error) {
	f.record(req)
	return &labsv1.GetWorkshopReportResponse{Report: f.report}, nil
}

func (f *fakeWorkshops) WatchProgress(req *labsv1.WatchProgressRequest, stream grpc.ServerStreamingServer[labsv1.WatchProgressResponse]) error {
	f.record(req)
	for _, m := range f.watch {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func serveWorkshops(t *testing.T, f *fakeWorkshops) config {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	labsv1.RegisterWorkshopServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return config{
		dial: func(string) (*grpc.ClientConn, error) {
			return grpc.NewClient("passthrough:///bufnet",
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
		},
		getenv:   func(string) string { return "" },
		now:      func() time.Time { return testNow },
		terminal: func(io.Writer) bool { return false },
	}
}

func sampleWorkshop() *fakeWorkshops {
	ex := func(id string, score, max int32, failed ...*labsv1.FailedCheck) *labsv1.ExerciseGrade {
		return &labsv1.ExerciseGrade{Exercise: id, Graded: true, Score: score, MaxScore: max, Passed: score == max,
			FailedChecks: failed, GradeTime: timestamppb.New(testNow)}
	}
	return &fakeWorkshops{
		ws: &labsv1.Workshop{
			Name: "workshops/w-3f9a1c", Id: "w-3f9a1c", Lab: "labs/routed", Creator: "uid:0", LearnerCount: 2,
			CreateTime: timestamppb.New(testNow.Add(-time.Hour)),
			Learners: []*labsv1.Learner{
				{Id: "ann", State: labsv1.Learner_STATE_READY, Sandbox: "sandboxes/s-aaaaaa", Token: "t-1"},
				{Id: "bob", State: labsv1.Learner_STATE_FAILED, FailureReason: "need 4 uid ranges,\n0 free", Token: "t-2"},
			},
		},
		report: &labsv1.WorkshopReport{
			Workshop: "workshops/w-3f9a1c", Lab: "labs/routed", Exercises: []string{"follow-the-ttl", "forward-filter"},
			Learners: []*labsv1.LearnerReport{
				{Learner: "ann", Sandbox: "sandboxes/s-aaaaaa", State: labsv1.Learner_STATE_READY, TotalScore: 6, MaxScore: 10, PassedExercises: 1,
					Exercises: []*labsv1.ExerciseGrade{ex("follow-the-ttl", 4, 4), ex("forward-filter", 2, 6,
						&labsv1.FailedCheck{Check: "web-blocked", Message: "h1 still reaches\nh2:80"},
						&labsv1.FailedCheck{Check: "echo-works", Message: "refused"})}},
				{Learner: "bob", State: labsv1.Learner_STATE_FAILED, FailureReason: "no uid ranges", MaxScore: 10,
					Exercises: []*labsv1.ExerciseGrade{{Exercise: "follow-the-ttl", MaxScore: 4}, {Exercise: "forward-filter", MaxScore: 6}}},
			},
		},
	}
}

func TestWorkshopCreate(t *testing.T) {
	t.Parallel()
	f := sampleWorkshop()
	cfg := serveWorkshops(t, f)
	r := runCLI(t, cfg, "", "workshop", "create", "routed", "--learners", "ann,bob")
	if r.code != 0 || !strings.Contains(r.stdout, "Workshop w-3f9a1c: lab routed, 2 learners\nInstructor token: nslab_instructor\n") ||
		!regexpMatch(`(?m)^ann\s+no-sandbox\s+-\s+nslab_ann$`, r.stdout) || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("create = %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// A roster file, with comments and blank lines; CSV of the tokens; a
	// learner whose sandbox failed makes it exit 1 after printing.
	dir := t.TempDir()
	roster := filepath.Join(dir, "class.txt")
	os.WriteFile(roster, []byte("# class of 2026\nann\n\n  bad  \n"), 0o600)
	r = runCLI(t, cfg, "", "workshop", "create", "--roster", roster, "--provision", "-o", "csv", "routed")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"role", "learner", "token", "sandbox", "state"},
		{"instructor", "", "nslab_instructor", "", ""},
		{"learner", "ann", "nslab_ann", "s-000000", "ready"},
		{"learner", "bad", "nslab_bad", "", "failed"},
	}
	if r.code != 1 || !slices.EqualFunc(rows, want, slices.Equal) || !strings.Contains(r.stderr, "1 of 2 learners failed (bad)") {
		t.Errorf("create --roster = %d, %q\nstderr: %s", r.code, rows, r.stderr)
	}
	f.mu.Lock()
	last := f.requests[len(f.requests)-1].(*labsv1.CreateWorkshopRequest)
	f.mu.Unlock()
	if !slices.Equal(last.GetLearners(), []string{"ann", "bad"}) || !last.GetProvision() {
		t.Errorf("request = %v", last)
	}
	// The roster on stdin.
	r = runCLI(t, cfg, "cy\ndee\n", "workshop", "create", "routed", "--roster", "-", "-o", "json")
	var resp labsv1.CreateWorkshopResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil || len(resp.GetLearnerTokens()) != 2 {
		t.Errorf("create -o json = %d %v\n%s", r.code, err, r.stdout)
	}
	// The server's field violation reaches the user.
	r = runCLI(t, cfg, "", "workshop", "create", "routed", "--learners", "ann,Bob")
	if r.code != 1 || !strings.Contains(r.stderr, "learners[1]") {
		t.Errorf("bad name = %d, %s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"workshop", "create", "routed"},
		{"workshop", "create", "routed", "--learners", "a", "--roster", roster},
		{"workshop", "create", "routed", "--learners", "a", "-o", "yaml"},
		{"workshop", "create", "--learners", "a"},
		{"workshop", "create", "routed", "--learners", "a", "--ttl", "0s"},
		{"workshop"},
		{"workshop", "frobnicate"},
	} {
		if r := runCLI(t, cfg, "", args...); r.code != 2 {
			t.Errorf("labctl %q = %d, %s; want a usage error", args, r.code, r.stderr)
		}
	}
	if r := runCLI(t, cfg, "", "workshop", "create", "routed", "--roster", filepath.Join(dir, "missing")); r.code != 1 || !strings.Contains(r.stderr, "read roster") {
		t.Errorf("missing roster = %d, %s", r.code, r.stderr)
	}
}

func regexpMatch(re, s string) bool {
	return regexp.MustCompile(re).MatchString(s)
}

func TestWorkshopReport(t *testing.T) {
	t.Parallel()
	cfg := serveWorkshops(t, sampleWorkshop())
	r := runCLI(t, cfg, "", "workshop", "report", "-o", "csv", "w-3f9a1c")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil {
		t.Fatalf("report -o csv = %d, %v, %s", r.code, err, r.stderr)
	}
	want := [][]string{
		{"learner", "sandbox", "state", "total_score", "max_score", "passed_exercises", "failing_checks"},
		{"ann", "s-aaaaaa", "ready", "6", "10", "1", "forward-filter/web-blocked: h1 still reaches h2:80; forward-filter/echo-works: refused"},
		{"bob", "", "failed", "0", "10", "0", ""},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("csv = %q; want %q", rows, want)
	}
	r = runCLI(t, cfg, "", "workshop", "report", "w-3f9a1c")
	if r.code != 0 || !regexpMatch(`(?m)^ann\s+s-aaaaaa\s+ready\s+6/10\s+1/2\s+forward-filter/web-blocked, forward-filter/echo-works$`, r.stdout) ||
		!regexpMatch(`(?m)^bob\s+-\s+failed\s+0/10\s+0/2\s+-$`, r.stdout) {
		t.Errorf("report table:\n%s", r.stdout)
	}
	r = runCLI(t, cfg, "", "workshop", "report", "-o", "json", "w-3f9a1c")
	var rep labsv1.WorkshopReport
	if err := protojson.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.GetLearners()) != 2 {
		t.Errorf("report -o json: %v\n%s", err, r.stdout)
	}
	if r := runCLI(t, cfg, "", "workshop", "report", "-o", "xml", "w-3f9a1c"); r.code != 2 {
		t.Errorf("-o xml = %d", r.code)
	}
}

func TestWorkshopShowLsDelete(t *testing.T) {
	t.Parallel()
	cfg := serveWorkshops(t, sampleWorkshop())
	r := runCLI(t, cfg, "", "workshop", "show", "w-3f9a1c")
	if r.code != 0 || !regexpMatch(`(?m)^bob\s+failed\s+-\s+t-2\s+need 4 uid ranges, 0 free$`, r.stdout) || !strings.Contains(r.stdout, "Learners:  2") {
		t.Errorf("show:\n%s", r.stdout)
	}
	if r := runCLI(t, cfg, "", "workshop", "show", "-q", "w-3f9a1c"); r.stdout != "ann\nbob\n" {
		t.Errorf("show -q = %q", r.stdout)
	}
	if r := runCLI(t, cfg, "", "workshop", "show", "w-000000"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("show missing = %d, %s", r.code, r.stderr)
	}
	r = runCLI(t, cfg, "", "workshop", "ls")
	if r.code != 0 || !regexpMatch(`(?m)^w-3f9a1c\s+routed\s+2\s+1h\s+uid:0\s+-$`, r.stdout) {
		t.Errorf("ls:\n%s", r.stdout)
	}
	if r := runCLI(t, cfg, "", "workshop", "ls", "-q"); r.stdout != "w-3f9a1c\n" {
		t.Errorf("ls -q = %q", r.stdout)
	}
	if r := runCLI(t, cfg, "", "workshop", "delete", "w-3f9a1c"); r.code != 0 || r.stdout != "deleted workshop w-3f9a1c: 1 sandbox deleted, 4 tokens revoked\n" {
		t.Errorf("delete = %d, %q", r.code, r.stdout)
	}
}

func TestWorkshopWatch(t *testing.T) {
	t.Parallel()
	f := sampleWorkshop()
	f.watch = []*labsv1.WatchProgressResponse{
		{Kind: labsv1.WatchProgressResponse_KIND_SNAPSHOT, Learners: []*labsv1.LearnerProgress{
			{Learner: "ann", Exercises: []*labsv1.ExerciseGrade{{Exercise: "follow-the-ttl", Graded: true, Score: 2, MaxScore: 4}}},
			{Learner: "bob"},
		}},
		{Kind: labsv1.WatchProgressResponse_KIND_UPDATE, Learners: []*labsv1.LearnerProgress{
			{Learner: "bob", Exercises: []*labsv1.ExerciseGrade{{Exercise: "forward-filter", Graded: true, Score: 6, MaxScore: 6, Passed: true, GradeTime: timestamppb.New(testNow)}}},
		}},
	}
	cfg := serveWorkshops(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr strings.Builder
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"workshop", "watch", "--ascii", "w-3f9a1c"}, &syncWriter{w: &stdout}, &stderr, nil, cfg)
	}()
	// The update line is the last thing watch prints before it waits.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(readSync(&stdout), "PASS 6/6") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 130 {
		t.Errorf("watch ended with %d after Ctrl-C; want 130", code)
	}
	out := readSync(&stdout)
	if !regexpMatch(`(?m)^LEARNER\s+FOLLOW-THE-TTL\s+FORWARD-FILTER\s+TOTAL$`, out) ||
		!regexpMatch(`(?m)^ann\s+FAIL 2/4\s+-\s+2/10$`, out) || !regexpMatch(`(?m)^bob\s+-\s+-\s+0/10$`, out) ||
		!strings.Contains(out, "bob forward-filter PASS 6/6\n") {
		t.Errorf("watch printed:\n%s", out)
	}
}

// syncWriter lets a test read what a running command has written
// (readSync).
type syncWriter struct{ w *strings.Builder }

var syncMu sync.Mutex

func (s *syncWriter) Write(p []byte) (int, error) {
	syncMu.Lock()
	defer syncMu.Unlock()
	return s.w.Write(p)
}

func readSync(b *strings.Builder) string {
	syncMu.Lock()
	defer syncMu.Unlock()
	return b.String()
}
