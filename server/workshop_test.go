package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	labsv1 "nslab/proto/labs/v1"
)

// TestLabdWorkshop drives WorkshopService through labd's socket: a small
// class provisioned up front, a grade seen by a watcher, a report, and a
// deletion that leaves nothing on the host. A watcher still connected
// does not hold up labd's shutdown.
func TestLabdWorkshop(t *testing.T) {
	requireRoot(t)
	e := newTestEnv(t)
	l := startLabd(t, e)
	ws := labsv1.NewWorkshopServiceClient(l.conn)
	ctx := rpcCtx(t)

	resp, err := ws.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "bob", "cy"}, Provision: true})
	if err != nil {
		t.Fatal(err)
	}
	w := resp.GetWorkshop()
	var ids []string
	for _, lr := range w.GetLearners() {
		if lr.GetState() != labsv1.Learner_STATE_READY {
			t.Fatalf("%s is %v: %s", lr.GetId(), lr.GetState(), lr.GetFailureReason())
		}
		ids = append(ids, strings.TrimPrefix(lr.GetSandbox(), "sandboxes/"))
	}

	// The watcher has a connection of its own, which labd's stop below
	// does not close.
	watcher := labsv1.NewWorkshopServiceClient(dial(t, e.opts.socket))
	stream, err := watcher.WatchProgress(ctx, &labsv1.WatchProgressRequest{Name: w.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetKind() != labsv1.WatchProgressResponse_KIND_SNAPSHOT || len(m.GetLearners()) != 3 {
		t.Fatalf("first message %v, %v", m, err)
	}
	g, err := labsv1.NewGradingServiceClient(l.conn).Grade(ctx, &labsv1.GradeRequest{Sandbox: ids[1], Exercise: "follow-the-ttl"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetKind() != labsv1.WatchProgressResponse_KIND_UPDATE || m.GetLearners()[0].GetLearner() != "bob" ||
		m.GetLearners()[0].GetExercises()[0].GetGrade() != g.GetReports()[0].GetName() {
		t.Fatalf("update %v, %v; want bob's %s", m, err, g.GetReports()[0].GetName())
	}

	rep, err := ws.GetWorkshopReport(ctx, &labsv1.GetWorkshopReportRequest{Name: w.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if rows := rep.GetReport().GetLearners(); len(rows) != 3 || !rows[1].GetExercises()[0].GetGraded() || rows[0].GetExercises()[0].GetGraded() {
		t.Errorf("report rows: %v", rows)
	}

	del, err := ws.DeleteWorkshop(ctx, &labsv1.DeleteWorkshopRequest{Name: w.GetName()})
	if err != nil || del.GetDeletedSandboxes() != 3 || del.GetRevokedTokens() != 4 {
		t.Fatalf("DeleteWorkshop = %v, %v", del, err)
	}
	for _, id := range ids {
		e.assertHostClean(t, id)
	}

	start := time.Now()
	l.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("labd took %s to stop with a watcher connected", took)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("the watcher's stream ended with %v; want Unavailable", err)
	}
}
