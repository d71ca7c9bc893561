package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

func (f *fakeLabd) Grade(_ context.Context, req *labsv1.GradeRequest) (*labsv1.GradeResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	if req.GetExercise() == "" {
		return &labsv1.GradeResponse{Reports: f.reports}, nil
	}
	for _, r := range f.reports {
		if r.GetExercise() == req.GetExercise() {
			return &labsv1.GradeResponse{Reports: []*labsv1.GradeReport{r}}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "exercise %q not found", req.GetExercise())
}

func (f *fakeLabd) ListGrades(_ context.Context, req *labsv1.ListGradesRequest) (*labsv1.ListGradesResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	var grades []*labsv1.GradeReport
	for _, g := range f.grades {
		if req.GetExercise() == "" || g.GetExercise() == req.GetExercise() {
			grades = append(grades, g)
		}
	}
	grades, next, err := page(grades, req.GetPageToken(), f.pageSize)
	if err != nil {
		return nil, err
	}
	return &labsv1.ListGradesResponse{Grades: grades, NextPageToken: next}, nil
}

func (f *fakeLabd) Solve(_ context.Context, req *labsv1.SolveRequest) (*labsv1.SolveResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	return &labsv1.SolveResponse{Steps: f.steps}, nil
}

func (f *fakeLabd) Capture(req *labsv1.CaptureRequest, stream grpc.ServerStreamingServer[labsv1.CaptureResponse]) error {
	f.record(req)
	if f.err != nil {
		return f.err
	}
	for _, m := range f.capture {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	if req.GetFollow() {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return nil
}

func sampleReports() []*labsv1.GradeReport {
	return []*labsv1.GradeReport{
		{
			Exercise: "forward", ExerciseTitle: "Turn on forwarding", Score: 5, MaxScore: 5, Passed: true,
			Results: []*labsv1.CheckResult{
				{Check: "fwd", Kind: "sysctl", Description: "r1 forwards IPv4", Passed: true, Points: 2, MaxPoints: 2, Message: "net.ipv4.ip_forward is 1"},
				// labd keeps a passed hidden check's description; labctl must not show it.
				{Check: "secret", Kind: "probe", Description: "h2 answers on port 8080", Hidden: true, Passed: true, Points: 3, MaxPoints: 3},
			},
		},
		{
			Exercise: "route", ExerciseTitle: "Route h1 to h2", Score: 1, MaxScore: 6,
			Results: []*labsv1.CheckResult{
				{Check: "addr", Kind: "address", Description: "h1 has 10.0.1.2/24", Passed: true, Points: 1, MaxPoints: 1},
				{
					Check: "reach", Kind: "probe", Description: "h1 reaches h2", MaxPoints: 3,
					Message:  "ping from h1 to 10.0.2.2 got no reply",
					Evidence: []string{"h1: 10.0.2.0/24 via 10.0.1.9", "3 packets sent, 0 received"},
					Hint:     "which router does h1 know?",
				},
				{Check: "hid", Kind: "route", Hidden: true, MaxPoints: 2, Message: "a hidden check failed"},
			},
		},
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		reports    []*labsv1.GradeReport
		err        error
		wantCode   int
		wantStdout string
		wantStderr string
		wantReq    *labsv1.GradeRequest
	}{
		{
			name:     "every exercise, one failed",
			args:     []string{"check", "s-1"},
			reports:  sampleReports(),
			wantCode: 1,
			wantStdout: "" +
				"forward — Turn on forwarding\n" +
				"  ✓ r1 forwards IPv4 (2/2)\n" +
				"  ✓ hidden check (3/3)\n" +
				"  score: 5/5\n" +
				"\n" +
				"route — Route h1 to h2\n" +
				"  ✓ h1 has 10.0.1.2/24 (1/1)\n" +
				"  ✗ h1 reaches h2 (0/3)\n" +
				"    ping from h1 to 10.0.2.2 got no reply\n" +
				"    seen: h1: 10.0.2.0/24 via 10.0.1.9\n" +
				"    seen: 3 packets sent, 0 received\n" +
				"    hint: which router does h1 know?\n" +
				"  ✗ hidden check (0/2)\n" +
				"    a hidden check failed\n" +
				"  score: 1/6\n" +
				"\n" +
				"total: 6/11 (1 of 2 exercises passed)\n",
			wantReq: &labsv1.GradeRequest{Sandbox: "s-1"},
		},
		{
			name:    "one exercise, passed",
			args:    []string{"check", "sandboxes/s-1", "forward"},
			reports: sampleReports(),
			wantStdout: "" +
				"forward — Turn on forwarding\n" +
				"  ✓ r1 forwards IPv4 (2/2)\n" +
				"  ✓ hidden check (3/3)\n" +
				"  score: 5/5\n",
			wantReq: &labsv1.GradeRequest{Sandbox: "sandboxes/s-1", Exercise: "forward"},
		},
		{
			name:     "ascii",
			args:     []string{"check", "s-1", "route", "--ascii"},
			reports:  sampleReports(),
			wantCode: 1,
			wantStdout: "" +
				"route — Route h1 to h2\n" +
				"  PASS h1 has 10.0.1.2/24 (1/1)\n" +
				"  FAIL h1 reaches h2 (0/3)\n" +
				"    ping from h1 to 10.0.2.2 got no reply\n" +
				"    seen: h1: 10.0.2.0/24 via 10.0.1.9\n" +
				"    seen: 3 packets sent, 0 received\n" +
				"    hint: which router does h1 know?\n" +
				"  FAIL hidden check (0/2)\n" +
				"    a hidden check failed\n" +
				"  score: 1/6\n",
		},
		{
			name: "multi-line message, no title, no description",
			args: []string{"check", "s-1"},
			reports: []*labsv1.GradeReport{{
				Exercise: "x", MaxScore: 1,
				Results: []*labsv1.CheckResult{{Check: "c1", MaxPoints: 1, Message: "line one\nline two\n", Hint: "try\nharder"}},
			}},
			wantCode: 1,
			wantStdout: "" +
				"x\n" +
				"  ✗ c1 (0/1)\n" +
				"    line one\n" +
				"    line two\n" +
				"    hint: try\n" +
				"          harder\n" +
				"  score: 0/1\n",
		},
		{
			name:       "no exercises",
			args:       []string{"check", "s-1"},
			wantCode:   1,
			wantStderr: "labctl: grade sandbox s-1: labd graded no exercises\n",
		},
		{
			name:       "unknown exercise",
			args:       []string{"check", "s-1", "nope"},
			reports:    sampleReports(),
			wantCode:   1,
			wantStderr: "labctl: grade exercise nope in s-1: exercise \"nope\" not found; `labctl status s-1` lists the exercises\n",
		},
		{
			name:       "sandbox not ready",
			args:       []string{"check", "s-1"},
			err:        status.Error(codes.FailedPrecondition, "sandbox s-1 is creating"),
			wantCode:   1,
			wantStderr: "labctl: grade sandbox s-1: sandbox s-1 is creating\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{reports: tc.reports, err: tc.err}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", tc.args...)
			if r.code != tc.wantCode || r.stdout != tc.wantStdout || r.stderr != tc.wantStderr {
				t.Errorf("labctl %s\n= %d, stderr %q, stdout\n%s\nwant %d, stderr %q, stdout\n%s",
					strings.Join(tc.args, " "), r.code, r.stderr, r.stdout, tc.wantCode, tc.wantStderr, tc.wantStdout)
			}
			if tc.wantReq == nil {
				return
			}
			if reqs := f.recorded(); len(reqs) != 1 || !proto.Equal(reqs[0], tc.wantReq) {
				t.Errorf("labd got %v\nwant %v", reqs, tc.wantReq)
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{reports: sampleReports()})
	for _, tc := range []struct {
		args     []string
		want     *labsv1.GradeResponse
		wantCode int
	}{
		{[]string{"check", "-o", "json", "s-1"}, &labsv1.GradeResponse{Reports: sampleReports()}, 1},
		{[]string{"check", "s-1", "forward", "-o", "json"}, &labsv1.GradeResponse{Reports: sampleReports()[:1]}, 0},
	} {
		r := runCLI(t, cfg, "", tc.args...)
		var got labsv1.GradeResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != tc.wantCode || r.stderr != "" {
			t.Fatalf("labctl %s = %d, %v, stderr %q; want %d; output:\n%s", strings.Join(tc.args, " "), r.code, err, r.stderr, tc.wantCode, r.stdout)
		}
		if !proto.Equal(&got, tc.want) {
			t.Errorf("labctl %s decodes to %v; want %v", strings.Join(tc.args, " "), &got, tc.want)
		}
	}
}

func TestGrades(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(-d)) }
	local := func(d time.Duration) string { return testNow.Add(-d).Local().Format("2006-01-02 15:04:05") }
	grades := []*labsv1.GradeReport{
		{Name: "sandboxes/s-1/grades/3", Exercise: "route", Score: 6, MaxScore: 6, Passed: true, GradeTime: at(time.Minute)},
		{Name: "sandboxes/s-1/grades/2", Exercise: "route", Score: 1, MaxScore: 6, GradeTime: at(5 * time.Minute)},
		{Name: "sandboxes/s-1/grades/1", Exercise: "forward", Score: 5, MaxScore: 5, Passed: true, GradeTime: at(time.Hour)},
	}
	f := &fakeLabd{grades: grades, pageSize: 2}
	cfg, _ := serve(t, f)

	r := runCLI(t, cfg, "", "grades", "s-1")
	want := "" +
		"TIME                 EXERCISE  SCORE  PASSED\n" +
		local(time.Minute) + "  route     6/6    yes\n" +
		local(5*time.Minute) + "  route     1/6    no\n" +
		local(time.Hour) + "  forward   5/5    yes\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("grades = %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}

	r = runCLI(t, cfg, "", "grades", "s-1", "forward")
	want = "" +
		"TIME                 EXERCISE  SCORE  PASSED\n" +
		local(time.Hour) + "  forward   5/5    yes\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("grades s-1 forward = %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}

	r = runCLI(t, cfg, "", "grades", "-o", "json", "s-1")
	var got labsv1.ListGradesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("grades -o json = %d, %v; output:\n%s", r.code, err, r.stdout)
	}
	if want := (&labsv1.ListGradesResponse{Grades: grades}); !proto.Equal(&got, want) {
		t.Errorf("grades -o json decodes to %v; want %v", &got, want)
	}

	// Every page asks for the same sandbox and exercise.
	for _, m := range f.recorded() {
		if req := m.(*labsv1.ListGradesRequest); req.GetSandbox() != "s-1" {
			t.Errorf("labd got %v; want sandbox s-1 on every page", req)
		}
	}
}

func TestSolve(t *testing.T) {
	t.Parallel()
	steps := []*labsv1.SolveStep{
		{Node: "r1", Run: "sysctl -w net.ipv4.ip_forward=1", Output: []byte("net.ipv4.ip_forward = 1\n")},
		{Node: "h1", Run: "ip route add 10.0.2.0/24 via 10.0.1.1"},
		{Node: "h1", Run: "ping -c1 -W1 10.0.2.2\necho done\n", Output: []byte("1 received\ndone")},
	}
	tests := []struct {
		name       string
		args       []string
		steps      []*labsv1.SolveStep
		err        error
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:  "every step succeeds",
			args:  []string{"solve", "s-1", "route"},
			steps: steps,
			wantStdout: "" +
				"r1$ sysctl -w net.ipv4.ip_forward=1\n" +
				"  net.ipv4.ip_forward = 1\n" +
				"h1$ ip route add 10.0.2.0/24 via 10.0.1.1\n" +
				"h1$ ping -c1 -W1 10.0.2.2\n" +
				"> echo done\n" +
				"  1 received\n" +
				"  done\n",
		},
		{
			name:       "labd reports a failed step",
			args:       []string{"solve", "s-1", "route"},
			err:        status.Error(codes.FailedPrecondition, "step 2 on h1 exited with 2: RTNETLINK answers: File exists"),
			wantCode:   1,
			wantStderr: "labctl: solve exercise route in s-1: step 2 on h1 exited with 2: RTNETLINK answers: File exists\n",
		},
		{
			name:       "a failed step in a successful response",
			args:       []string{"solve", "s-1", "route"},
			steps:      []*labsv1.SolveStep{{Node: "r1", Run: "false", ExitCode: 1}},
			wantCode:   1,
			wantStdout: "r1$ false\n  (exit status 1)\n",
			wantStderr: "labctl: solve exercise route in s-1: step 1 on r1 exited with 1\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{steps: tc.steps, err: tc.err}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", tc.args...)
			if r.code != tc.wantCode || r.stdout != tc.wantStdout || r.stderr != tc.wantStderr {
				t.Errorf("labctl %s\n= %d, stderr %q, stdout\n%s\nwant %d, stderr %q, stdout\n%s",
					strings.Join(tc.args, " "), r.code, r.stderr, r.stdout, tc.wantCode, tc.wantStderr, tc.wantStdout)
			}
			want := &labsv1.SolveRequest{Sandbox: "s-1", Exercise: "route"}
			if reqs := f.recorded(); len(reqs) != 1 || !proto.Equal(reqs[0], want) {
				t.Errorf("labd got %v; want %v", reqs, want)
			}
		})
	}

	cfg, _ := serve(t, &fakeLabd{steps: steps})
	r := runCLI(t, cfg, "", "solve", "s-1", "route", "-o", "json")
	var got labsv1.SolveResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || !proto.Equal(&got, &labsv1.SolveResponse{Steps: steps}) {
		t.Errorf("solve -o json = %d, %v:\n%s", r.code, err, r.stdout)
	}
}

// sampleCapture is a capture stream; the data need not be real pcapng,
// labctl copies it byte for byte.
func sampleCapture() ([]*labsv1.CaptureResponse, []byte) {
	chunks := []*labsv1.CaptureResponse{
		{Data: []byte("\x0a\x0d\x0d\x0a\x1c\x00\x00\x00section")},
		{Data: []byte("packet one")},
		{Dropped: 2}, // a chunk may carry only the count
		{Data: []byte("packet two\x00\xff"), Dropped: 3},
	}
	var all []byte
	for _, c := range chunks {
		all = append(all, c.GetData()...)
	}
	return chunks, all
}

func TestCapture(t *testing.T) {
	t.Parallel()
	chunks, want := sampleCapture()

	t.Run("to a file", func(t *testing.T) {
		t.Parallel()
		f := &fakeLabd{capture: chunks}
		cfg, _ := serve(t, f)
		path := filepath.Join(t.TempDir(), "out.pcapng")
		r := runCLI(t, cfg, "", "capture", "s-1", "--link", "l1", "--node", "h1", "--since", "30s", "-w", path)
		if r.code != 0 || r.stdout != "" || r.stderr != "labctl: the capture dropped 3 packets\n" {
			t.Errorf("capture -w = %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("capture wrote %q, %v; want %q", got, err, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&^0o644 != 0 {
			t.Errorf("capture file: %v, %v; want mode 0644 (less the umask)", fi, err)
		}
		wantReq := &labsv1.CaptureRequest{Sandbox: "s-1", Link: "l1", Node: "h1", Since: durationpb.New(30 * time.Second)}
		if reqs := f.recorded(); len(reqs) != 1 || !proto.Equal(reqs[0], wantReq) {
			t.Errorf("labd got %v; want %v", reqs, wantReq)
		}
	})

	t.Run("to stdout", func(t *testing.T) {
		t.Parallel()
		cfg, _ := serve(t, &fakeLabd{capture: chunks[:2]})
		r := runCLI(t, cfg, "", "capture", "-w", "-", "s-1")
		if r.code != 0 || r.stdout != string(want[:len(want)-len("packet two\x00\xff")]) || r.stderr != "" {
			t.Errorf("capture to stdout = %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("refused leaves the file alone", func(t *testing.T) {
		t.Parallel()
		cfg, _ := serve(t, &fakeLabd{err: status.Error(codes.NotFound, `sandbox "s-nope" not found`)})
		path := filepath.Join(t.TempDir(), "keep.pcapng")
		if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, cfg, "", "capture", "s-nope", "-w", path)
		if r.code != 1 || r.stderr != "labctl: sandbox s-nope not found; `labctl ls` lists yours\n" {
			t.Errorf("capture of a missing sandbox = %d, stderr %q", r.code, r.stderr)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != "keep" {
			t.Errorf("a refused capture left %q, %v in the file; want it untouched", got, err)
		}
	})

	t.Run("file cannot be created", func(t *testing.T) {
		t.Parallel()
		cfg, _ := serve(t, &fakeLabd{capture: chunks})
		path := filepath.Join(t.TempDir(), "no", "such", "dir.pcapng")
		r := runCLI(t, cfg, "", "capture", "s-1", "-w", path)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "labctl: capture sandbox s-1: create "+path+": ") {
			t.Errorf("capture to %s = %d, stderr %q", path, r.code, r.stderr)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s: %v; want not exist", path, err)
		}
	})
}

// TestCaptureFollow: with -f the stream runs until Ctrl-C, which ends
// labctl with 0 once everything that arrived has been written.
func TestCaptureFollow(t *testing.T) {
	t.Parallel()
	chunks, want := sampleCapture()
	f := &fakeLabd{capture: chunks}
	cfg, _ := serve(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	guard := time.AfterFunc(10*time.Second, cancel) // fail rather than hang
	defer guard.Stop()

	var got []byte
	stdout := writerFunc(func(p []byte) {
		got = append(got, p...)
		if len(got) >= len(want) {
			cancel() // Ctrl-C once the live stream has delivered it all
		}
	})
	var stderr bytes.Buffer
	code := run(ctx, []string{"capture", "s-1", "-f"}, stdout, &stderr, nil, cfg)
	if code != 0 || !bytes.Equal(got, want) || stderr.String() != "labctl: the capture dropped 3 packets\n" {
		t.Errorf("capture -f then Ctrl-C = %d, wrote %q, stderr %q; want 0, %q", code, got, stderr.String(), want)
	}
	if reqs := f.recorded(); len(reqs) != 1 || !reqs[0].(*labsv1.CaptureRequest).GetFollow() {
		t.Errorf("labd got %v; want follow set", reqs)
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	regular, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for name, w := range map[string]io.Writer{"buffer": &bytes.Buffer{}, "regular file": regular, "/dev/null": null} {
		if isTerminal(w) {
			t.Errorf("isTerminal(%s) = true", name)
		}
	}

	// A terminal is a character device to Stat; /dev/zero is one that
	// every Linux test machine has.
	zero, err := os.OpenFile("/dev/zero", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/zero to stand in for a terminal: %v", err)
	}
	defer zero.Close()
	if !isTerminal(zero) {
		t.Fatal("isTerminal(/dev/zero) = false; want a character device taken for a terminal")
	}
	f := &fakeLabd{}
	cfg, _ := serve(t, f)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"capture", "s-1"}, zero, &stderr, nil, cfg)
	if code != 2 || !strings.Contains(stderr.String(), "will not write binary pcapng to a terminal; use -w FILE or a pipe") {
		t.Errorf("capture to a terminal = %d, stderr %q; want 2 and advice", code, stderr.String())
	}
	if n := len(f.recorded()); n != 0 {
		t.Errorf("a refused capture called labd %d times", n)
	}
}
