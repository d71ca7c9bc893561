package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

func (f *fakeLabd) WatchSandboxes(req *labsv1.WatchSandboxesRequest, stream grpc.ServerStreamingServer[labsv1.WatchSandboxesResponse]) error {
	f.record(req)
	if f.err != nil {
		return f.err
	}
	for _, m := range f.watch {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	if req.GetSandbox() != "" {
		return nil // the one sandbox watched is gone
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func sampleEvents() []*labsv1.WatchSandboxesResponse {
	ts := timestamppb.New(testNow)
	sb := func(st labsv1.Sandbox_State) *labsv1.Sandbox {
		return &labsv1.Sandbox{Name: "sandboxes/s-aaa111", Id: "s-aaa111", Lab: "labs/routed", State: st,
			ExpireTime: timestamppb.New(testNow.Add(time.Hour))}
	}
	return []*labsv1.WatchSandboxesResponse{
		{Type: labsv1.WatchSandboxesResponse_TYPE_STATE_CHANGED, Time: ts, Sandbox: sb(labsv1.Sandbox_STATE_CREATING)},
		{Type: labsv1.WatchSandboxesResponse_TYPE_STATE_CHANGED, Time: ts, Sandbox: sb(labsv1.Sandbox_STATE_READY)},
		{Type: labsv1.WatchSandboxesResponse_TYPE_EXPIRING, Time: ts, Sandbox: sb(labsv1.Sandbox_STATE_READY),
			Expiry: &labsv1.ExpiryWarning{Cause: labsv1.ExpiryWarning_CAUSE_TTL, ExpireTime: ts, Remaining: durationpb.New(5 * time.Minute)}},
		{Type: labsv1.WatchSandboxesResponse_TYPE_EVENTS_LOST, Time: ts, Lost: 7},
		{Type: labsv1.WatchSandboxesResponse_TYPE_CURRENT, Time: ts, Sandbox: sb(labsv1.Sandbox_STATE_READY)},
		{Type: labsv1.WatchSandboxesResponse_TYPE_SYNCED, Time: ts},
		{Type: labsv1.WatchSandboxesResponse_TYPE_STATE_CHANGED, Time: ts, Sandbox: sb(labsv1.Sandbox_STATE_DELETING), Reason: "expired: ttl: its lifetime ended"},
		{Type: labsv1.WatchSandboxesResponse_TYPE_DELETED, Time: ts, Sandbox: sb(labsv1.Sandbox_STATE_DELETING), Reason: "expired: ttl: its lifetime ended"},
	}
}

func TestWatchOne(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{watch: sampleEvents()}
	cfg, _ := serve(t, f)
	r := runCLI(t, cfg, "", "watch", "--current", "s-aaa111")
	at := testNow.Local().Format(time.TimeOnly)
	want := strings.Join([]string{
		"TIME      SANDBOX   EVENT     DETAIL",
		at + "  s-aaa111  CREATING  lab routed",
		at + "  s-aaa111  READY     expires in 1h (" + testNow.Add(time.Hour).Local().Format(time.RFC3339) + ")",
		at + "  s-aaa111  EXPIRING  ttl: deleted in 5m0s unless extended (labctl extend s-aaa111)",
		at + "  -         LOST      7 events missed",
		at + "  s-aaa111  CURRENT   ready, lab routed, expires in 1h (" + testNow.Add(time.Hour).Local().Format(time.RFC3339) + ")",
		at + "  -         SYNCED    the current state is above; events follow",
		at + "  s-aaa111  DELETING  expired: ttl: its lifetime ended",
		at + "  s-aaa111  DELETED   expired: ttl: its lifetime ended",
	}, "\n") + "\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("watch = %d, stdout\n%s\nwant\n%s", r.code, r.stdout, want)
	}
	if r.stderr != "labctl: this watch fell behind and missed 7 events; the current state follows\n" {
		t.Errorf("stderr %q; want the lost-events warning", r.stderr)
	}
	wantReq := &labsv1.WatchSandboxesRequest{Sandbox: "s-aaa111", SendCurrent: true}
	if reqs := f.recorded(); len(reqs) != 1 || !proto.Equal(reqs[0], wantReq) {
		t.Errorf("labd got %v; want %v", reqs, wantReq)
	}
}

// TestWatchAllJSON: every event is one JSON object per line, and Ctrl-C
// ends the watch with 0.
func TestWatchAllJSON(t *testing.T) {
	t.Parallel()
	events := sampleEvents()
	cfg, _ := serve(t, &fakeLabd{watch: events})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	guard := time.AfterFunc(10*time.Second, cancel)
	defer guard.Stop()
	var got bytes.Buffer
	lines := 0
	stdout := writerFunc(func(p []byte) {
		got.Write(p)
		if lines += bytes.Count(p, []byte("\n")); lines == len(events) {
			cancel()
		}
	})
	var stderr bytes.Buffer
	code := run(ctx, []string{"watch", "-o", "json"}, stdout, &stderr, nil, cfg)
	if code != 0 {
		t.Fatalf("watch -o json then Ctrl-C = %d, stderr %q", code, stderr.String())
	}
	out := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
	if len(out) != len(events) {
		t.Fatalf("%d lines, want %d:\n%s", len(out), len(events), got.String())
	}
	for i, line := range out {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if m["type"] != events[i].GetType().String() {
			t.Errorf("line %d type %v, want %s", i, m["type"], events[i].GetType())
		}
	}
}

func TestWatchErrors(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{err: status.Error(codes.NotFound, `watch: sandbox "s-nope": not found`)})
	r := runCLI(t, cfg, "", "watch", "s-nope")
	if r.code != 1 || !strings.Contains(r.stderr, "s-nope") {
		t.Errorf("watch of a missing sandbox = %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, cfg, "", "watch", "s-1", "s-2")
	if r.code != 2 || !strings.Contains(r.stderr, "at most one sandbox ID") {
		t.Errorf("watch with two ids = %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, cfg, "", "watch", "-o", "yaml")
	if r.code != 2 {
		t.Errorf("watch -o yaml = %d, stderr %q", r.code, r.stderr)
	}
}
