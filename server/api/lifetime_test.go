package api

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

func TestActivitySandbox(t *testing.T) {
	tests := []struct {
		req  any
		want string
	}{
		{&labsv1.ExecRequest{Sandbox: "sandboxes/s-aaa111"}, "s-aaa111"},
		{&labsv1.CaptureRequest{Sandbox: "s-aaa111"}, "s-aaa111"},
		{&labsv1.AttachXDPRequest{Sandbox: "s-aaa111"}, "s-aaa111"},
		{&labsv1.GradeRequest{Sandbox: "s-aaa111"}, "s-aaa111"},
		{&labsv1.SolveRequest{Sandbox: "sandboxes/s-aaa111"}, "s-aaa111"},
		{&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Start{Start: &labsv1.ShellStart{Sandbox: "sandboxes/s-aaa111"}}}, "s-aaa111"},
		{&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Stdin{Stdin: []byte("ls\n")}}, ""},
		{&labsv1.GetSandboxRequest{Name: "s-aaa111"}, ""},
	}
	for _, tc := range tests {
		if got := activitySandbox(tc.req); got != tc.want {
			t.Errorf("activitySandbox(%T %v) = %q; want %q", tc.req, tc.req, got, tc.want)
		}
	}
}

func TestRequestTTL(t *testing.T) {
	s := NewSandboxServer(Config{TTL: time.Hour, MaxTTL: 2 * time.Hour})
	tests := []struct {
		name    string
		ttl     *durationpb.Duration
		want    time.Duration
		wantErr bool
	}{
		{name: "unset: the default", want: time.Hour},
		{name: "zero: the default", ttl: durationpb.New(0), want: time.Hour},
		{name: "asked for", ttl: durationpb.New(90 * time.Minute), want: 90 * time.Minute},
		{name: "the maximum", ttl: durationpb.New(2 * time.Hour), want: 2 * time.Hour},
		{name: "over the maximum", ttl: durationpb.New(2*time.Hour + time.Second), wantErr: true},
		{name: "negative", ttl: durationpb.New(-time.Second), wantErr: true},
		{name: "malformed", ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.requestTTL(&labsv1.CreateSandboxRequest{Lab: "routed", Ttl: tc.ttl})
			if tc.wantErr {
				if status.Code(toStatus(err)) != codes.InvalidArgument || fieldViolations(t, toStatus(err))["ttl"] == "" {
					t.Errorf("requestTTL(%v) = %v, %v; want InvalidArgument on ttl", tc.ttl, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("requestTTL(%v) = %v, %v; want %v", tc.ttl, got, err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	s := NewSandboxServer(Config{})
	if s.cfg.TTL != DefaultTTL || s.cfg.MaxTTL != DefaultMaxTTL || s.cfg.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("defaults: ttl %s, max %s, idle %s", s.cfg.TTL, s.cfg.MaxTTL, s.cfg.IdleTimeout)
	}
	for idle, want := range map[time.Duration]time.Duration{
		time.Hour:       5 * time.Second,
		2 * time.Second: 200 * time.Millisecond,
	} {
		if got := touchInterval(idle); got != want {
			t.Errorf("touchInterval(%s) = %s; want %s", idle, got, want)
		}
	}
}

// fakeStream is a server stream whose client sends msgs.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*labsv1.ShellRequest
}

func (f *fakeStream) Context() context.Context     { return f.ctx }
func (f *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) SendMsg(any) error            { return nil }
func (f *fakeStream) RecvMsg(m any) error {
	next := f.msgs[0]
	f.msgs = f.msgs[1:]
	proto.Merge(m.(*labsv1.ShellRequest), next)
	return nil
}

// TestActivityInterceptors: the interceptors write activity for the RPCs
// that count, at most once per touchEvery, and an open stream counts as a
// session until it ends.
func TestActivityInterceptors(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "labd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const id = "s-aaa111"
	if _, err := st.CreateSandbox(ctx, id, "routed", "", []string{"h1"}, 1<<20, 4); err != nil {
		t.Fatal(err)
	}
	if err := st.SetState(ctx, id, store.StateReady, ""); err != nil {
		t.Fatal(err)
	}
	s := NewSandboxServer(Config{Store: st, IdleTimeout: time.Hour})
	s.live[id] = nil // live as far as activity is concerned
	activity := func() time.Time {
		t.Helper()
		sb, err := st.GetSandbox(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return sb.LastActivity
	}
	ok := func(context.Context, any) (any, error) { return nil, nil }

	before := time.Now()
	s.UnaryActivity(ctx, &labsv1.GradeRequest{Sandbox: id}, &grpc.UnaryServerInfo{FullMethod: labsv1.GradingService_Grade_FullMethodName}, ok)
	first := activity()
	if first.Before(before) {
		t.Fatalf("after Grade, last activity %s; want at least %s", first, before)
	}
	s.UnaryActivity(ctx, &labsv1.SolveRequest{Sandbox: id}, &grpc.UnaryServerInfo{FullMethod: labsv1.GradingService_Solve_FullMethodName}, ok)
	if got := activity(); !got.Equal(first) {
		t.Errorf("a second call within %s wrote activity again (%s, then %s)", s.touchEvery, first, got)
	}
	s.mu.Lock()
	s.touched[id] = time.Time{} // as if touchEvery had passed
	s.mu.Unlock()
	s.UnaryActivity(ctx, &labsv1.GetSandboxRequest{Name: id}, &grpc.UnaryServerInfo{FullMethod: labsv1.SandboxService_GetSandbox_FullMethodName}, ok)
	if got := activity(); !got.Equal(first) {
		t.Errorf("GetSandbox counted as activity")
	}

	stream := &fakeStream{ctx: ctx, msgs: []*labsv1.ShellRequest{
		{Event: &labsv1.ShellRequest_Start{Start: &labsv1.ShellStart{Sandbox: "sandboxes/" + id, Node: "h1"}}},
		{Event: &labsv1.ShellRequest_Stdin{Stdin: []byte("x")}},
	}}
	err = s.StreamActivity(nil, stream, &grpc.StreamServerInfo{FullMethod: labsv1.SandboxService_Shell_FullMethodName},
		func(_ any, ss grpc.ServerStream) error {
			for range 2 {
				if err := ss.RecvMsg(&labsv1.ShellRequest{}); err != nil {
					return err
				}
			}
			s.mu.Lock()
			n := s.sessions[id]
			s.mu.Unlock()
			if n != 1 {
				t.Errorf("during a shell, %d sessions; want 1", n)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if got := activity(); !got.After(first) {
		t.Errorf("a shell wrote no activity: %s", got)
	}
	if len(s.sessions) != 0 {
		t.Errorf("sessions %v after the shell ended; want none", s.sessions)
	}

	// A sandbox that is not live is not touched.
	delete(s.live, id)
	s.mu.Lock()
	s.touched = map[string]time.Time{}
	s.mu.Unlock()
	last := activity()
	s.UnaryActivity(ctx, &labsv1.GradeRequest{Sandbox: id}, &grpc.UnaryServerInfo{FullMethod: labsv1.GradingService_Grade_FullMethodName}, ok)
	if got := activity(); !got.Equal(last) || len(s.touched) != 0 {
		t.Errorf("activity written for a sandbox that is not live")
	}
}
