package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

// waitGone polls until the sandbox is no longer listed, failing after
// within. (It lists rather than gets: GetSandbox inspects a live sandbox's
// namespaces, which races with its teardown in the sandbox package.)
func (l *labd) waitGone(t *testing.T, id string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if _, listed := l.listAll(t)[id]; !listed {
			_, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: id})
			wantCode(t, "GetSandbox of a sandbox no longer listed", err, codes.NotFound)
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("sandbox %s still there %s later", id, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *labd) get(t *testing.T, id string) *labsv1.Sandbox {
	t.Helper()
	resp, err := l.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: id})
	if err != nil {
		t.Fatalf("GetSandbox(%s): %v", id, err)
	}
	return resp.GetSandbox()
}

// events reads a sandbox's audit trail from e's database; labd must be
// stopped.
func (e *testEnv) events(t *testing.T, id string) []store.Event {
	t.Helper()
	st, err := store.Open(t.Context(), e.opts.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// wantExpiredEvent checks that the sandbox's events end with "expired"
// (its message starting with reason) and then "deleted".
func wantExpiredEvent(t *testing.T, evs []store.Event, reason string) {
	t.Helper()
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	n := len(evs)
	if n < 2 || evs[n-2].Kind != "expired" || !strings.HasPrefix(evs[n-2].Message, reason+":") || evs[n-1].Kind != "deleted" {
		t.Errorf("events %q (%+v); want expired (%s: ...) then deleted", kinds, evs, reason)
		return
	}
	t.Logf("expired event: %q", evs[n-2].Message)
}

func near(a, b time.Time, tol time.Duration) bool {
	d := a.Sub(b)
	return d >= -tol && d <= tol
}

// TestLabdTTLExpires: with --ttl 2s a sandbox is deleted by the reaper
// soon after it expires, nothing of it stays on the host, and its grades
// are still listed.
func TestLabdTTLExpires(t *testing.T) {
	e := newTestEnv(t)
	e.opts.ttl = 2 * time.Second
	e.opts.reapEvery = 200 * time.Millisecond
	l := startLabd(t, e)
	grd := labsv1.NewGradingServiceClient(l.conn)

	sb := l.create(t, "hello-link")
	id := sb.GetId()
	ready := sb.GetReadyTime().AsTime()
	if exp := sb.GetExpireTime(); exp == nil || !near(exp.AsTime(), ready.Add(2*time.Second), time.Second) {
		t.Errorf("expire_time %v; want about ready_time %s + 2s", exp, ready)
	}
	if sb.GetIdleExpireTime() == nil || !sb.GetIdleExpireTime().AsTime().After(sb.GetExpireTime().AsTime()) {
		t.Errorf("idle_expire_time %v; want about an hour from now", sb.GetIdleExpireTime())
	}
	if _, err := grd.Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: id, Exercise: "first-ping"}); err != nil {
		t.Fatal(err)
	}
	// Activity does not postpone a TTL.
	l.mustExec(t, id, "h1", "true")

	took := l.waitGone(t, id, 10*time.Second)
	t.Logf("sandbox %s gone %s after its creation returned (ttl 2s)", id, took.Round(10*time.Millisecond))
	if took < time.Second {
		t.Errorf("sandbox gone after %s; its ttl is 2s", took)
	}
	e.assertHostClean(t, id)
	grades, err := grd.ListGrades(rpcCtx(t), &labsv1.ListGradesRequest{Sandbox: id})
	if err != nil || len(grades.GetGrades()) != 1 {
		t.Errorf("ListGrades of the expired sandbox = %v, %v; want its grade kept", grades, err)
	}
	_, err = l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"true"}})
	wantCode(t, "Exec in an expired sandbox", err, codes.NotFound)
	l.stop()
	wantExpiredEvent(t, e.events(t, id), "ttl")
}

// TestLabdIdleTimeout: activity (exec, grade, an open exec stream)
// postpones the idle expiry; without it the sandbox is deleted.
func TestLabdIdleTimeout(t *testing.T) {
	e := newTestEnv(t)
	const idle = 2 * time.Second
	e.opts.idleTimeout = idle
	e.opts.reapEvery = 100 * time.Millisecond
	l := startLabd(t, e)
	grd := labsv1.NewGradingServiceClient(l.conn)

	// Untouched, a sandbox goes once it has been idle.
	lazy := l.create(t, "hello-link").GetId()
	took := l.waitGone(t, lazy, 10*time.Second)
	t.Logf("untouched sandbox %s gone after %s (idle timeout %s)", lazy, took.Round(10*time.Millisecond), idle)
	e.assertHostClean(t, lazy)

	sb := l.create(t, "hello-link")
	id := sb.GetId()
	first := sb.GetIdleExpireTime().AsTime()
	if !near(first, sb.GetReadyTime().AsTime().Add(idle), time.Second) {
		t.Errorf("idle_expire_time %s; want about ready_time %s + %s", first, sb.GetReadyTime().AsTime(), idle)
	}

	// Calls for twice the idle timeout keep it.
	end := time.Now().Add(2 * idle)
	for i := 0; time.Now().Before(end); i++ {
		if i%2 == 0 {
			l.mustExec(t, id, "h1", "true")
		} else if _, err := grd.Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: id, Exercise: "first-ping"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(idle / 5)
	}
	later := l.get(t, id).GetIdleExpireTime().AsTime()
	if !later.After(first.Add(idle)) {
		t.Errorf("idle_expire_time %s after activity; want later than %s", later, first.Add(idle))
	}

	// An open stream is activity for as long as it lasts.
	r, err := l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"sleep", "4"}})
	if err != nil || r.exit.GetCode() != 0 {
		t.Fatalf("sleep 4 (longer than the idle timeout): %v, %v", r.exit, err)
	}
	if got := l.get(t, id); got.GetState() != labsv1.Sandbox_STATE_READY {
		t.Fatalf("after a long exec %s is %v", id, got.GetState())
	}

	// Left alone, it goes.
	took = l.waitGone(t, id, 10*time.Second)
	t.Logf("sandbox %s gone %s after its last activity", id, took.Round(10*time.Millisecond))
	e.assertHostClean(t, id)
	l.stop()
	wantExpiredEvent(t, e.events(t, lazy), "idle")
	wantExpiredEvent(t, e.events(t, id), "idle")
}

// TestLabdExtend: ExtendSandbox pushes the expiry back, is capped at
// --max-ttl from now, refuses bad durations and sandboxes that are not
// READY; CreateSandbox's ttl is bounded by --max-ttl; a restart keeps the
// expiry.
func TestLabdExtend(t *testing.T) {
	e := newTestEnv(t)
	e.opts.ttl = time.Hour
	e.opts.maxTTL = 2 * time.Hour
	l := startLabd(t, e)
	ctx := rpcCtx(t)

	_, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: "hello-link", Ttl: durationpb.New(3 * time.Hour)})
	wantCode(t, "CreateSandbox with a ttl over --max-ttl", err, codes.InvalidArgument)
	_, err = l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: "hello-link", Ttl: durationpb.New(-time.Minute)})
	wantCode(t, "CreateSandbox with a negative ttl", err, codes.InvalidArgument)

	resp, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: "hello-link", Ttl: durationpb.New(90 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	sb := resp.GetSandbox()
	id := sb.GetId()
	expire := sb.GetExpireTime().AsTime()
	if !near(expire, sb.GetReadyTime().AsTime().Add(90*time.Minute), time.Second) {
		t.Errorf("expire_time %s; want ready_time %s + the 90m asked for", expire, sb.GetReadyTime().AsTime())
	}

	ext, err := l.sbx.ExtendSandbox(ctx, &labsv1.ExtendSandboxRequest{Name: "sandboxes/" + id, Duration: durationpb.New(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if got := ext.GetSandbox().GetExpireTime().AsTime(); !got.Equal(expire.Add(10*time.Minute)) || ext.GetCapped() {
		t.Errorf("extend by 10m: expire_time %s, capped %v; want %s, not capped", got, ext.GetCapped(), expire.Add(10*time.Minute))
	}
	if len(ext.GetSandbox().GetNodes()) != 2 || ext.GetSandbox().GetState() != labsv1.Sandbox_STATE_READY {
		t.Errorf("extend returned %v; want the READY sandbox", ext.GetSandbox())
	}

	for _, d := range []*durationpb.Duration{durationpb.New(time.Hour), nil} {
		before := time.Now()
		ext, err = l.sbx.ExtendSandbox(ctx, &labsv1.ExtendSandboxRequest{Name: id, Duration: d})
		after := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		got := ext.GetSandbox().GetExpireTime().AsTime()
		if !ext.GetCapped() || got.Before(before.Add(2*time.Hour)) || got.After(after.Add(2*time.Hour)) {
			t.Errorf("extend by %v past --max-ttl: expire_time %s, capped %v; want now + 2h, capped", d.AsDuration(), got, ext.GetCapped())
		}
	}
	if got := l.get(t, id).GetExpireTime().AsTime(); !got.Equal(ext.GetSandbox().GetExpireTime().AsTime()) {
		t.Errorf("GetSandbox expire_time %s; want the extended %s", got, ext.GetSandbox().GetExpireTime().AsTime())
	}

	for _, tc := range []struct {
		name string
		req  *labsv1.ExtendSandboxRequest
		want codes.Code
	}{
		{"zero duration", &labsv1.ExtendSandboxRequest{Name: id, Duration: durationpb.New(0)}, codes.InvalidArgument},
		{"negative duration", &labsv1.ExtendSandboxRequest{Name: id, Duration: durationpb.New(-time.Hour)}, codes.InvalidArgument},
		{"no name", &labsv1.ExtendSandboxRequest{}, codes.InvalidArgument},
		{"bad name", &labsv1.ExtendSandboxRequest{Name: "sandboxes/NOPE!"}, codes.InvalidArgument},
		{"missing", &labsv1.ExtendSandboxRequest{Name: "s-000000"}, codes.NotFound},
	} {
		_, err := l.sbx.ExtendSandbox(ctx, tc.req)
		wantCode(t, "ExtendSandbox: "+tc.name, err, tc.want)
	}

	// A second sandbox is made FAILED behind labd's back; the restart
	// tears it down and re-adopts the first with its expiry.
	other := l.create(t, "hello-link").GetId()
	kept := l.get(t, id)
	l.stop()
	st, err := store.Open(t.Context(), e.opts.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetState(t.Context(), other, store.StateFailed, "made FAILED by the test"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	l = startLabd(t, e)
	_, err = l.sbx.ExtendSandbox(rpcCtx(t), &labsv1.ExtendSandboxRequest{Name: other})
	wantCode(t, "ExtendSandbox of a FAILED sandbox", err, codes.FailedPrecondition)
	e.assertHostClean(t, other)

	got := l.get(t, id)
	if !got.GetExpireTime().AsTime().Equal(kept.GetExpireTime().AsTime()) {
		t.Errorf("after restart expire_time %s; want the same %s", got.GetExpireTime().AsTime(), kept.GetExpireTime().AsTime())
	}
	if !got.GetIdleExpireTime().AsTime().After(kept.GetIdleExpireTime().AsTime()) {
		t.Errorf("after restart idle_expire_time %s; want it restarted (later than %s)", got.GetIdleExpireTime().AsTime(), kept.GetIdleExpireTime().AsTime())
	}
	l.delete(t, id)
	l.delete(t, other)
	e.assertHostClean(t, id)
}

func TestParseLifetimeFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    [3]time.Duration // ttl, max-ttl, idle-timeout
	}{
		{name: "defaults", want: [3]time.Duration{4 * time.Hour, 24 * time.Hour, time.Hour}},
		{name: "set", args: []string{"--ttl", "2s", "--max-ttl", "1h", "--idle-timeout", "90s"}, want: [3]time.Duration{2 * time.Second, time.Hour, 90 * time.Second}},
		{name: "ttl over max", args: []string{"--ttl", "25h"}, wantErr: "--max-ttl"},
		{name: "zero ttl", args: []string{"--ttl", "0"}, wantErr: "--ttl"},
		{name: "negative idle", args: []string{"--idle-timeout", "-1s"}, wantErr: "--idle-timeout"},
		{name: "zero max", args: []string{"--max-ttl", "0s"}, wantErr: "--max-ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags(%q) = %v; want an error naming %s", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]time.Duration{o.ttl, o.maxTTL, o.idleTimeout}; got != tc.want {
				t.Errorf("parseFlags(%q): ttl, max-ttl, idle-timeout = %v; want %v", tc.args, got, tc.want)
			}
		})
	}
}

// TestLabdReaperStopsWithLabd: labd with a busy reaper shuts down
// promptly and completely.
func TestLabdReaperStopsWithLabd(t *testing.T) {
	e := newTestEnv(t)
	e.opts.reapEvery = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- run(ctx, e.opts, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("labd stopped before serving: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatal("labd not serving after 2m")
	}
	time.Sleep(50 * time.Millisecond) // a few passes
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("labd did not stop within 10s")
	}
}
