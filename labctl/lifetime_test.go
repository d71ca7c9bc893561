package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

// fakeMaxTTL is the fake labd's --max-ttl.
const fakeMaxTTL = 24 * time.Hour

// ExtendSandbox pushes the sandbox's expire_time back as labd does,
// capped at fakeMaxTTL from testNow; only READY sandboxes.
func (f *fakeLabd) ExtendSandbox(_ context.Context, req *labsv1.ExtendSandboxRequest) (*labsv1.ExtendSandboxResponse, error) {
	f.record(req)
	if f.err != nil {
		return nil, f.err
	}
	for _, sb := range f.sandboxes {
		if sb.GetId() != lastSegment(req.GetName()) {
			continue
		}
		if sb.GetState() != labsv1.Sandbox_STATE_READY {
			return nil, status.Errorf(codes.FailedPrecondition, "extend sandbox %q: it is %s, not READY", sb.GetId(), stateName(sb.GetState()))
		}
		by := time.Hour
		if req.GetDuration() != nil {
			by = req.GetDuration().AsDuration()
		}
		out := proto.Clone(sb).(*labsv1.Sandbox)
		to, capped := sb.GetExpireTime().AsTime().Add(by), false
		if limit := testNow.Add(fakeMaxTTL); to.After(limit) {
			to, capped = limit, true
		}
		out.ExpireTime = timestamppb.New(to)
		return &labsv1.ExtendSandboxResponse{Sandbox: out, Capped: capped}, nil
	}
	return nil, status.Errorf(codes.NotFound, "sandbox %q not found", req.GetName())
}

// lifetimeSandboxes are READY sandboxes whose expiry (and idle expiry)
// are the given times from testNow.
func lifetimeSandboxes() []*labsv1.Sandbox {
	in := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(d)) }
	sb := func(id string, expire, idle time.Duration) *labsv1.Sandbox {
		return &labsv1.Sandbox{
			Name: "sandboxes/" + id, Id: id, Lab: "labs/routed", State: labsv1.Sandbox_STATE_READY,
			CreateTime: in(-time.Minute), ReadyTime: in(-time.Minute),
			ExpireTime: in(expire), IdleExpireTime: in(idle),
			Nodes: []*labsv1.Node{{Name: "h1"}},
		}
	}
	return []*labsv1.Sandbox{
		sb("s-fresh1", 3*time.Hour+59*time.Minute, 59*time.Minute+30*time.Second),
		sb("s-late11", 4*time.Minute+30*time.Second, 50*time.Minute),
		sb("s-idle11", 3*time.Hour, 3*time.Minute),
		sb("s-long11", 23*time.Hour, 5*time.Hour),
		{Name: "sandboxes/s-fail11", Id: "s-fail11", Lab: "labs/routed", State: labsv1.Sandbox_STATE_FAILED,
			CreateTime: in(-time.Hour)},
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // prefix
		wantStderr string
		wantReq    *labsv1.ExtendSandboxRequest
	}{
		{
			name:       "default duration",
			args:       []string{"extend", "s-fresh1"},
			wantStdout: "s-fresh1 expires in 4h59m (",
			wantReq:    &labsv1.ExtendSandboxRequest{Name: "s-fresh1"},
		},
		{
			name:       "a duration",
			args:       []string{"extend", "sandboxes/s-late11", "30m"},
			wantStdout: "s-late11 expires in 34m (",
			wantReq:    &labsv1.ExtendSandboxRequest{Name: "sandboxes/s-late11", Duration: durationpb.New(30 * time.Minute)},
		},
		{
			name:       "capped",
			args:       []string{"extend", "s-long11", "2h"},
			wantStdout: "s-long11 expires in 24h (",
			wantStderr: "labctl: capped: labd keeps a sandbox at most its maximum lifetime (labd --max-ttl) from now\n",
			wantReq:    &labsv1.ExtendSandboxRequest{Name: "s-long11", Duration: durationpb.New(2 * time.Hour)},
		},
		{
			name:       "not found",
			args:       []string{"extend", "s-nope11"},
			wantCode:   1,
			wantStderr: "labctl: sandbox s-nope11 not found; `labctl ls` lists yours\n",
		},
		{
			name:       "not ready",
			args:       []string{"extend", "s-fail11", "1h"},
			wantCode:   1,
			wantStderr: "labctl: extend sandbox s-fail11: extend sandbox \"s-fail11\": it is failed, not READY\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{sandboxes: lifetimeSandboxes()}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", tc.args...)
			if r.code != tc.wantCode || !strings.HasPrefix(r.stdout, tc.wantStdout) || (tc.wantStdout == "") != (r.stdout == "") || r.stderr != tc.wantStderr {
				t.Errorf("labctl %s\n= %d, stdout %q, stderr %q\nwant %d, stdout %q..., stderr %q",
					strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if tc.wantReq != nil {
				if reqs := f.recorded(); len(reqs) != 1 || !proto.Equal(reqs[0], tc.wantReq) {
					t.Errorf("labd got %v; want %v", reqs, tc.wantReq)
				}
			}
		})
	}
}

func TestStartTTL(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{}
	cfg, _ := serve(t, f)
	r := runCLI(t, cfg, "", "start", "--ttl", "8h", "routed")
	if r.code != 0 || r.stdout != "s-7f3a9c\n" {
		t.Fatalf("start --ttl 8h = %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	want := &labsv1.CreateSandboxRequest{Lab: "routed", Ttl: durationpb.New(8 * time.Hour)}
	if reqs := f.recorded(); len(reqs) != 1 || !proto.Equal(reqs[0], want) {
		t.Errorf("labd got %v; want %v", reqs, want)
	}
	for _, bad := range []string{"0s", "-1h", "later"} {
		if r := runCLI(t, cfg, "", "start", "--ttl", bad, "routed"); r.code != 2 {
			t.Errorf("start --ttl %s = %d, %q; want a usage error", bad, r.code, r.stderr)
		}
	}
}

func TestExtendJSON(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{sandboxes: lifetimeSandboxes()})
	r := runCLI(t, cfg, "", "extend", "-o", "json", "s-fresh1", "2h")
	var got labsv1.ExtendSandboxResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("extend -o json = %d, %v:\n%s", r.code, err, r.stdout)
	}
	if want := testNow.Add(5*time.Hour + 59*time.Minute); !got.GetSandbox().GetExpireTime().AsTime().Equal(want) || got.GetCapped() {
		t.Errorf("extend -o json = %v; want expire_time %s, not capped", &got, want)
	}
}

func TestExtendUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"extend"},
		{"extend", "s-fresh1", "soon"},
		{"extend", "s-fresh1", "-5m"},
		{"extend", "s-fresh1", "0s"},
		{"extend", "s-fresh1", "1h", "extra"},
		{"extend", "-q", "s-fresh1"},
		{"extend", "-o", "yaml", "s-fresh1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", args...)
			if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "for usage.\n") {
				t.Errorf("labctl %q = %d, stdout %q, stderr %q; want 2 and a usage hint", args, r.code, r.stdout, r.stderr)
			}
			if n := len(f.recorded()); n != 0 {
				t.Errorf("a usage error called labd %d times", n)
			}
		})
	}
}

// TestExpiryWarning: exec, shell and status warn on stderr when the
// sandbox has less than 5 minutes left; exec and shell, being activity
// themselves, only about its expiry.
func TestExpiryWarning(t *testing.T) {
	t.Parallel()
	exit0 := []*labsv1.ExecResponse{{Event: &labsv1.ExecResponse_Exit{Exit: &labsv1.ExitStatus{}}}}
	const (
		lateWarning = "labctl: warning: sandbox s-late11 expires in 4m30s ("
		lateHint    = "); `labctl extend s-late11` gives it more time\n"
		idleWarning = "labctl: warning: sandbox s-idle11 is idle and will be deleted in 3m ("
		idleHint    = ") unless it is used (exec, shell, check) or extended\n"
	)
	tests := []struct {
		name string
		args []string
		// The warning on stderr: "" for none, else a prefix and suffix.
		warnPrefix, warnSuffix string
	}{
		{name: "exec", args: []string{"exec", "s-late11", "h1", "true"}, warnPrefix: lateWarning, warnSuffix: lateHint},
		{name: "exec -t", args: []string{"exec", "-t", "s-late11", "h1", "true"}, warnPrefix: lateWarning, warnSuffix: lateHint},
		{name: "shell", args: []string{"shell", "s-late11", "h1", "--", "true"}, warnPrefix: lateWarning, warnSuffix: lateHint},
		{name: "status", args: []string{"status", "s-late11"}, warnPrefix: lateWarning, warnSuffix: lateHint},
		{name: "status idle", args: []string{"status", "s-idle11"}, warnPrefix: idleWarning, warnSuffix: idleHint},
		{name: "exec is activity", args: []string{"exec", "s-idle11", "h1", "true"}},
		{name: "plenty of time", args: []string{"exec", "s-fresh1", "h1", "true"}},
		{name: "status, plenty of time", args: []string{"status", "s-fresh1"}},
		{name: "GetSandbox fails", args: []string{"exec", "s-other1", "h1", "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{sandboxes: lifetimeSandboxes(), labs: sampleLabs(), exec: exit0}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", tc.args...)
			if r.code != 0 {
				t.Fatalf("labctl %s = %d, stderr %q", strings.Join(tc.args, " "), r.code, r.stderr)
			}
			if tc.warnPrefix == "" {
				if r.stderr != "" {
					t.Errorf("labctl %s: stderr %q; want no warning", strings.Join(tc.args, " "), r.stderr)
				}
				return
			}
			if !strings.HasPrefix(r.stderr, tc.warnPrefix) || !strings.HasSuffix(r.stderr, tc.warnSuffix) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("labctl %s: stderr %q; want one line %q...%q", strings.Join(tc.args, " "), r.stderr, tc.warnPrefix, tc.warnSuffix)
			}
			if strings.Contains(r.stdout, "warning") {
				t.Errorf("the warning went to stdout: %q", r.stdout)
			}
		})
	}
}

func TestLsShowExpiry(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{sandboxes: lifetimeSandboxes()})
	r := runCLI(t, cfg, "", "ls")
	want := "" +
		"ID        LAB     STATE   NODES  AGE  EXPIRES\n" +
		"s-fresh1  routed  ready   1      1m   59m (idle)\n" +
		"s-late11  routed  ready   1      1m   4m30s\n" +
		"s-idle11  routed  ready   1      1m   3m (idle)\n" +
		"s-long11  routed  ready   1      1m   5h (idle)\n" +
		"s-fail11  routed  failed  0      1h   -\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("ls = %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}

	r = runCLI(t, cfg, "", "show", "s-fresh1")
	for _, want := range []string{"\nExpires:  in 3h59m (", "\nIdle:     expires in 59m (", ") unless used\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestTimeLeft(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Minute:                    "0s",
		0:                               "0s",
		999 * time.Millisecond:          "0s",
		45 * time.Second:                "45s",
		4*time.Minute + 30*time.Second:  "4m30s",
		4 * time.Minute:                 "4m",
		59*time.Minute + 59*time.Second: "59m",
		4 * time.Hour:                   "4h",
		3*time.Hour + 59*time.Minute + 59*time.Second: "3h59m",
		47 * time.Hour: "47h",
		51 * time.Hour: "2d3h",
		72 * time.Hour: "3d",
	} {
		if got := timeLeft(testNow, timestamppb.New(testNow.Add(d))); got != want {
			t.Errorf("timeLeft(%v) = %q; want %q", d, got, want)
		}
	}
}
