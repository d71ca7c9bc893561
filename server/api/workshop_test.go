package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
	"nslab/server/store"
)

// workshopEnv is labd's API in process, served over bufconn: sandbox,
// grading and workshop services sharing one store and manager.
type workshopEnv struct {
	st       *store.Store
	mgr      *sandbox.Manager // nil without root: nothing can be built
	sbx      *SandboxServer
	ws       *WorkshopServer
	workshop labsv1.WorkshopServiceClient
	grading  labsv1.GradingServiceClient
}

// callerKey is the metadata a test sets to call as someone: "role subject
// workshop". The auth branch's listeners do this for real; here it only
// puts an api.Caller in the context.
const testCallerMD = "x-test-caller"

func as(ctx context.Context, role, subject, workshop string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, testCallerMD, role+" "+subject+" "+workshop)
}

func testCaller(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(testCallerMD); len(v) == 1 {
		f := strings.SplitN(v[0]+"  ", " ", 3)
		return WithCaller(ctx, &Caller{Role: f[0], Subject: f[1], Workshop: strings.TrimSpace(f[2])})
	}
	return ctx
}

// newWorkshopEnv serves the services; with root, sandboxes are real and
// uidSlots ranges are leased from a random window of the host's uids.
func newWorkshopEnv(t testing.TB, withSandboxes bool, uidSlots, parallel int) *workshopEnv {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "labd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	catalog, err := labs.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	var mgr *sandbox.Manager
	if withSandboxes {
		mgr = testManager(t)
	}
	var k [2]byte
	rand.Read(k[:])
	e := &workshopEnv{st: st, mgr: mgr}
	e.sbx = NewSandboxServer(Config{
		Store: st, Catalog: catalog, Manager: mgr,
		// A window of its own, away from other tests' ranges.
		UIDStart: 1<<31 + uint32(binary.LittleEndian.Uint16(k[:])%60)*256*sandbox.UIDRange, UIDSlots: uidSlots,
		MaxTTL: 2 * time.Hour,
	})
	t.Cleanup(e.sbx.Close)
	grading := NewGradingServer(e.sbx)
	e.ws = NewWorkshopServer(e.sbx, grading, WorkshopConfig{ProvisionParallel: parallel})

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(testCaller(ctx), req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &callerStream{ServerStream: ss, ctx: testCaller(ss.Context())})
		}),
	)
	labsv1.RegisterSandboxServiceServer(srv, e.sbx)
	labsv1.RegisterGradingServiceServer(srv, grading)
	labsv1.RegisterWorkshopServiceServer(srv, e.ws)
	go srv.Serve(lis)
	t.Cleanup(func() {
		e.ws.Close()
		srv.Stop()
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.workshop = labsv1.NewWorkshopServiceClient(conn)
	e.grading = labsv1.NewGradingServiceClient(conn)
	return e
}

// deleteOnCleanup deletes the workshop when the test ends, whatever
// happened, and checks that none of its learners' sandboxes is left.
func (e *workshopEnv) deleteOnCleanup(t *testing.T, ws *labsv1.Workshop) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := e.workshop.DeleteWorkshop(ctx, &labsv1.DeleteWorkshopRequest{Name: ws.GetName()}); err != nil {
			t.Errorf("cleanup: delete %s: %v", ws.GetId(), err)
		}
		e.assertNoSandboxes(t, ws)
	})
}

// assertNoSandboxes: no learner of ws owns a sandbox row, and the manager
// finds no sandbox in the kernel.
func (e *workshopEnv) assertNoSandboxes(t *testing.T, ws *labsv1.Workshop) {
	t.Helper()
	ls, err := e.st.WorkshopLearners(context.Background(), ws.GetId())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if ids, _ := e.st.OwnedSandboxes(context.Background(), l.Subject()); len(ids) > 0 {
			t.Errorf("learner %s still owns %q", l.Name, ids)
		}
	}
	if e.mgr != nil {
		if left := e.mgr.Scan(); len(left) > 0 {
			t.Errorf("sandboxes left in the kernel: %q", left)
		}
	}
}

func roster(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("learner%02d", i)
	}
	return out
}

func wantStatus(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v; want %v", what, err, code)
	}
}

// TestWorkshopValidation: a bad request is InvalidArgument naming the
// field, and creates nothing: no workshop, no token.
func TestWorkshopValidation(t *testing.T) {
	e := newWorkshopEnv(t, false, 16, 0)
	ctx := t.Context()
	long := strings.Repeat("a", 65)
	tests := []struct {
		name  string
		req   *labsv1.CreateWorkshopRequest
		field string
	}{
		{"no learners", &labsv1.CreateWorkshopRequest{Lab: "routed"}, "learners"},
		{"too many learners", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: roster(501)}, "learners"},
		{"upper case", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "Bob"}}, "learners[1]"},
		{"space", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann lee"}}, "learners[0]"},
		{"slash", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "x", "a/b"}}, "learners[2]"},
		{"empty name", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", ""}}, "learners[1]"},
		{"65 bytes", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{long}}, "learners[0]"},
		{"duplicate", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "bob", "ann"}}, "learners[2]"},
		{"unknown lab", &labsv1.CreateWorkshopRequest{Lab: "labs/no-such-lab", Learners: []string{"ann"}}, "lab"},
		{"malformed lab", &labsv1.CreateWorkshopRequest{Lab: "labs/a/b", Learners: []string{"ann"}}, "lab"},
		{"no lab", &labsv1.CreateWorkshopRequest{Learners: []string{"ann"}}, "lab"},
		{"ttl too long", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann"}, Ttl: durationpb.New(3 * time.Hour)}, "ttl"},
		{"negative ttl", &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann"}, Ttl: durationpb.New(-time.Second)}, "ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Provision = true
			_, err := e.workshop.CreateWorkshop(ctx, tc.req)
			wantStatus(t, "CreateWorkshop", err, codes.InvalidArgument)
			v := fieldViolations(t, err)
			if _, ok := v[tc.field]; !ok || len(v) != 1 {
				t.Errorf("violations %q; want one on %q (%v)", v, tc.field, err)
			}
		})
	}
	// A name of exactly 64 bytes and every allowed character is fine.
	resp, err := e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "labs/routed", Learners: []string{long[:64], "a.b_c-9"}})
	if err != nil {
		t.Fatalf("valid roster: %v", err)
	}
	// Nothing but that one workshop and its three tokens was written.
	list, err := e.workshop.ListWorkshops(ctx, &labsv1.ListWorkshopsRequest{ShowDeleted: true})
	if err != nil || len(list.GetWorkshops()) != 1 || list.GetWorkshops()[0].GetId() != resp.GetWorkshop().GetId() {
		t.Errorf("workshops = %v, %v; want only %s", list.GetWorkshops(), err, resp.GetWorkshop().GetId())
	}
	if toks, _ := e.st.ListTokens(ctx, ""); len(toks) != 3 {
		t.Errorf("%d tokens; want 3 (two learners and the instructor)", len(toks))
	}
	for _, name := range []string{"", "w-1", "workshops/w-ZZZZZZ", "sandboxes/s-000000"} {
		_, err := e.workshop.GetWorkshop(ctx, &labsv1.GetWorkshopRequest{Name: name})
		wantStatus(t, "GetWorkshop "+name, err, codes.InvalidArgument)
		if _, ok := fieldViolations(t, err)["name"]; !ok {
			t.Errorf("GetWorkshop(%q): no violation on name: %v", name, err)
		}
	}
	for _, name := range []string{"w-000000", "workshops/w-000000/learners", "workshops/w-000000/learners/Ann", "workshops/x/learners/ann"} {
		_, err := e.workshop.ProvisionSandbox(ctx, &labsv1.ProvisionSandboxRequest{Name: name})
		wantStatus(t, "ProvisionSandbox "+name, err, codes.InvalidArgument)
	}
	_, err = e.workshop.GetWorkshop(ctx, &labsv1.GetWorkshopRequest{Name: "w-000000"})
	wantStatus(t, "GetWorkshop of a missing workshop", err, codes.NotFound)
}

// TestWorkshopAccess: learners may not manage workshops, instructors only
// theirs; a foreign workshop looks missing to an instructor.
func TestWorkshopAccess(t *testing.T) {
	e := newWorkshopEnv(t, false, 16, 0)
	ctx := t.Context()
	resp, err := e.workshop.CreateWorkshop(as(ctx, "instructor", "prof", ""), &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	ws := resp.GetWorkshop()
	other, err := e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"cy"}})
	if err != nil {
		t.Fatal(err)
	}
	if ws.GetCreator() != "prof" || other.GetWorkshop().GetCreator() != "" {
		t.Errorf("creators %q and %q", ws.GetCreator(), other.GetWorkshop().GetCreator())
	}
	ann := as(ctx, "learner", ws.GetId()+"/ann", ws.GetId())
	name := &labsv1.GetWorkshopRequest{Name: ws.GetName()}
	_, err = e.workshop.GetWorkshop(ann, name)
	wantStatus(t, "learner GetWorkshop", err, codes.PermissionDenied)
	_, err = e.workshop.ListWorkshops(ann, &labsv1.ListWorkshopsRequest{})
	wantStatus(t, "learner ListWorkshops", err, codes.PermissionDenied)
	_, err = e.workshop.CreateWorkshop(ann, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"x"}})
	wantStatus(t, "learner CreateWorkshop", err, codes.PermissionDenied)
	_, err = e.workshop.DeleteWorkshop(ann, &labsv1.DeleteWorkshopRequest{Name: ws.GetName()})
	wantStatus(t, "learner DeleteWorkshop", err, codes.PermissionDenied)
	_, err = e.workshop.GetWorkshopReport(ann, &labsv1.GetWorkshopReportRequest{Name: ws.GetName()})
	wantStatus(t, "learner GetWorkshopReport", err, codes.PermissionDenied)
	stream, err := e.workshop.WatchProgress(ann, &labsv1.WatchProgressRequest{Name: ws.GetName()})
	if err == nil {
		_, err = stream.Recv()
	}
	wantStatus(t, "learner WatchProgress", err, codes.PermissionDenied)
	_, err = e.workshop.ProvisionSandbox(ann, &labsv1.ProvisionSandboxRequest{Name: ws.GetName() + "/learners/bob"})
	wantStatus(t, "ann provisions bob's", err, codes.PermissionDenied)

	// The instructor token the workshop came with, and its creator.
	for _, c := range []context.Context{as(ctx, "instructor", store.InstructorSubject(ws.GetId()), ws.GetId()), as(ctx, "instructor", "prof", "")} {
		if _, err := e.workshop.GetWorkshop(c, name); err != nil {
			t.Errorf("instructor GetWorkshop: %v", err)
		}
		list, err := e.workshop.ListWorkshops(c, &labsv1.ListWorkshopsRequest{})
		if err != nil || len(list.GetWorkshops()) != 1 || list.GetWorkshops()[0].GetId() != ws.GetId() {
			t.Errorf("instructor ListWorkshops = %v, %v; want only %s", list.GetWorkshops(), err, ws.GetId())
		}
		_, err = e.workshop.GetWorkshop(c, &labsv1.GetWorkshopRequest{Name: other.GetWorkshop().GetName()})
		wantStatus(t, "instructor GetWorkshop of another", err, codes.NotFound)
		_, err = e.workshop.ProvisionSandbox(c, &labsv1.ProvisionSandboxRequest{Name: other.GetWorkshop().GetName() + "/learners/cy"})
		wantStatus(t, "instructor provisions in another", err, codes.NotFound)
	}
	// An admin sees both.
	list, err := e.workshop.ListWorkshops(as(ctx, "admin", "root", ""), &labsv1.ListWorkshopsRequest{})
	if err != nil || len(list.GetWorkshops()) != 2 {
		t.Errorf("admin ListWorkshops = %d, %v", len(list.GetWorkshops()), err)
	}
	_, err = e.workshop.ProvisionSandbox(ctx, &labsv1.ProvisionSandboxRequest{Name: ws.GetName() + "/learners/dee"})
	wantStatus(t, "provision a learner not on the roster", err, codes.NotFound)
}

// TestWorkshopRouted30 is acceptance 5: a workshop of 30 learners on
// routed with every sandbox built up front; WatchProgress sees a learner's
// new grade within a second of their Grade call; the report has 30 rows;
// deleting the workshop leaves no sandbox.
func TestWorkshopRouted30(t *testing.T) {
	requireRoot(t)
	const n = 30
	e := newWorkshopEnv(t, true, n*4+8, 0)
	ctx := t.Context()

	start := time.Now()
	resp, err := e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{
		Lab: "routed", Learners: roster(n), Provision: true, Ttl: durationpb.New(time.Hour),
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("CreateWorkshop: %v", err)
	}
	ws := resp.GetWorkshop()
	e.deleteOnCleanup(t, ws)
	t.Logf("workshop %s: %d routed sandboxes (4 nodes each) built in %s, %d at a time", ws.GetId(), n, took.Round(time.Millisecond), e.ws.parallel)
	if ws.GetTtl().AsDuration() != time.Hour {
		t.Errorf("workshop ttl %v; want 1h", ws.GetTtl())
	}
	if len(resp.GetLearnerTokens()) != n || resp.GetInstructorTokenSecret() == "" {
		t.Fatalf("%d learner tokens, instructor %q", len(resp.GetLearnerTokens()), resp.GetInstructorTokenSecret())
	}
	sandboxes := map[string]string{} // sandbox -> learner
	for i, l := range ws.GetLearners() {
		if l.GetId() != roster(n)[i] || l.GetState() != labsv1.Learner_STATE_READY || l.GetSandbox() == "" {
			t.Fatalf("learner %d = %v; want %s READY with a sandbox", i, l, roster(n)[i])
		}
		id := strings.TrimPrefix(l.GetSandbox(), "sandboxes/")
		if prev, dup := sandboxes[id]; dup {
			t.Fatalf("%s and %s share sandbox %s", prev, l.GetId(), id)
		}
		sandboxes[id] = l.GetId()
		// Owned by the learner: their token's subject.
		if owner, err := e.st.SandboxOwner(ctx, id); err != nil || owner != ws.GetId()+"/"+l.GetId() {
			t.Errorf("owner of %s = %q, %v", id, owner, err)
		}
		tok, err := e.st.LookupToken(ctx, resp.GetLearnerTokens()[i].GetSecret())
		if err != nil || tok.Subject != l.GetSubject() || tok.Role != store.RoleLearner || tok.ID != l.GetToken() {
			t.Errorf("token of %s = %+v, %v", l.GetId(), tok, err)
		}
	}
	if got := len(e.mgr.Scan()); got != n {
		t.Errorf("the kernel holds %d sandboxes; want %d", got, n)
	}

	// Provisioning again is a no-op for a learner who has one.
	again, err := e.workshop.ProvisionSandbox(ctx, &labsv1.ProvisionSandboxRequest{Name: ws.GetLearners()[3].GetName()})
	if err != nil || again.GetCreated() || again.GetSandbox().GetName() != ws.GetLearners()[3].GetSandbox() {
		t.Errorf("ProvisionSandbox of a provisioned learner = %v, %v; want the same sandbox, not created", again, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.workshop.WatchProgress(wctx, &labsv1.WatchProgressRequest{Name: ws.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetKind() != labsv1.WatchProgressResponse_KIND_SNAPSHOT || len(first.GetLearners()) != n {
		t.Fatalf("first message: %v with %d learners; want a SNAPSHOT of %d", first.GetKind(), len(first.GetLearners()), n)
	}
	updates := make(chan *labsv1.WatchProgressResponse, 16)
	go func() {
		defer close(updates)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			updates <- m
		}
	}()

	learner := ws.GetLearners()[7]
	sb := learner.GetSandbox()
	// grade grades follow-the-ttl in the learner's sandbox and returns how
	// long after the call began, and after it returned, the update came.
	grade := func(wantScore int32) {
		t.Helper()
		called := time.Now()
		g, err := e.grading.Grade(ctx, &labsv1.GradeRequest{Sandbox: sb, Exercise: "follow-the-ttl"})
		returned := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if got := g.GetReports()[0].GetScore(); got != wantScore {
			t.Fatalf("graded %d; want %d", got, wantScore)
		}
		select {
		case m := <-updates:
			seen := time.Now()
			if m.GetKind() != labsv1.WatchProgressResponse_KIND_UPDATE || len(m.GetLearners()) != 1 ||
				m.GetLearners()[0].GetLearner() != learner.GetId() || len(m.GetLearners()[0].GetExercises()) != 1 {
				t.Fatalf("update = %v", m)
			}
			eg := m.GetLearners()[0].GetExercises()[0]
			if eg.GetExercise() != "follow-the-ttl" || eg.GetScore() != wantScore || eg.GetGrade() != g.GetReports()[0].GetName() {
				t.Errorf("update carries %v; want score %d of %s", eg, wantScore, g.GetReports()[0].GetName())
			}
			sinceCall, sinceReturn := seen.Sub(called), seen.Sub(returned)
			t.Logf("WatchProgress saw %s's grade %d/%d %s after the Grade call began (Grade took %s; %s after it returned)",
				learner.GetId(), eg.GetScore(), eg.GetMaxScore(), sinceCall.Round(time.Microsecond),
				returned.Sub(called).Round(time.Microsecond), sinceReturn.Round(time.Microsecond))
			if sinceCall >= time.Second {
				t.Errorf("the update came %s after the Grade call; want under 1s", sinceCall)
			}
		case <-time.After(time.Second):
			t.Fatalf("no update within 1s of Grade returning (called %s before)", time.Since(called))
		}
	}
	grade(2) // fresh: the route and the ping pass, no echo request crossed r2-h2 yet
	if _, err := e.grading.Solve(ctx, &labsv1.SolveRequest{Sandbox: sb, Exercise: "follow-the-ttl"}); err != nil {
		t.Fatal(err)
	}
	grade(4)

	rep, err := e.workshop.GetWorkshopReport(ctx, &labsv1.GetWorkshopReportRequest{Name: ws.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.GetReport()
	if len(r.GetLearners()) != n {
		t.Fatalf("report has %d rows; want %d", len(r.GetLearners()), n)
	}
	if !slices.Equal(r.GetExercises(), []string{"follow-the-ttl", "service-address", "forward-filter", "path-mtu"}[:len(r.GetExercises())]) || r.GetExercises()[0] != "follow-the-ttl" {
		t.Errorf("exercises %q", r.GetExercises())
	}
	var labMax int32
	for _, ex := range r.GetLearners()[0].GetExercises() {
		labMax += ex.GetMaxScore()
	}
	for i, lr := range r.GetLearners() {
		if lr.GetState() != labsv1.Learner_STATE_READY || lr.GetSandbox() != ws.GetLearners()[i].GetSandbox() || lr.GetMaxScore() != labMax {
			t.Errorf("row %d = %v", i, lr)
		}
		want := int32(0)
		if lr.GetLearner() == learner.GetId() {
			want = 4
			ex := lr.GetExercises()[0]
			if !ex.GetGraded() || !ex.GetPassed() || ex.GetScore() != 4 || ex.GetMaxScore() != 4 || len(ex.GetFailedChecks()) != 0 || lr.GetPassedExercises() != 1 {
				t.Errorf("%s's follow-the-ttl = %v, passed %d", lr.GetLearner(), ex, lr.GetPassedExercises())
			}
		} else if lr.GetExercises()[0].GetGraded() {
			t.Errorf("%s was never graded but the report says %v", lr.GetLearner(), lr.GetExercises()[0])
		}
		if lr.GetTotalScore() != want {
			t.Errorf("%s: total %d; want %d", lr.GetLearner(), lr.GetTotalScore(), want)
		}
	}

	// Delete: every sandbox goes, every token is revoked; the report stays.
	start = time.Now()
	del, err := e.workshop.DeleteWorkshop(ctx, &labsv1.DeleteWorkshopRequest{Name: ws.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DeleteWorkshop: %d sandboxes deleted, %d tokens revoked in %s", del.GetDeletedSandboxes(), del.GetRevokedTokens(), time.Since(start).Round(time.Millisecond))
	if del.GetDeletedSandboxes() != n || del.GetRevokedTokens() != n+1 || del.GetWorkshop().GetDeleteTime() == nil {
		t.Errorf("DeleteWorkshop = %d sandboxes, %d tokens, deleted at %v", del.GetDeletedSandboxes(), del.GetRevokedTokens(), del.GetWorkshop().GetDeleteTime())
	}
	e.assertNoSandboxes(t, ws)
	if _, err := e.st.LookupToken(ctx, resp.GetLearnerTokens()[0].GetSecret()); err == nil {
		t.Error("a learner token still works after DeleteWorkshop")
	}
	rep, err = e.workshop.GetWorkshopReport(ctx, &labsv1.GetWorkshopReportRequest{Name: ws.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	for _, lr := range rep.GetReport().GetLearners() {
		if lr.GetState() != labsv1.Learner_STATE_GONE {
			t.Errorf("after delete, %s is %v; want GONE", lr.GetLearner(), lr.GetState())
		}
		if lr.GetLearner() == learner.GetId() && lr.GetTotalScore() != 4 {
			t.Errorf("after delete, %s's total is %d; want the kept 4", lr.GetLearner(), lr.GetTotalScore())
		}
	}
	_, err = e.workshop.ProvisionSandbox(ctx, &labsv1.ProvisionSandboxRequest{Name: learner.GetName()})
	wantStatus(t, "provision in a deleted workshop", err, codes.FailedPrecondition)
}

// TestWorkshopProvisionFailures: one learner's failed build is reported
// with them and the others are built; a learner provisions their own
// sandbox on demand, once.
func TestWorkshopProvisionFailures(t *testing.T) {
	requireRoot(t)
	// Room for two routed sandboxes (4 nodes each) and not a third.
	e := newWorkshopEnv(t, true, 11, 0)
	ctx := t.Context()
	resp, err := e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "bob", "cy", "dee"}, Provision: true})
	if err != nil {
		t.Fatalf("CreateWorkshop: %v", err)
	}
	ws := resp.GetWorkshop()
	e.deleteOnCleanup(t, ws)
	var ready, failed []string
	for _, l := range ws.GetLearners() {
		switch l.GetState() {
		case labsv1.Learner_STATE_READY:
			ready = append(ready, l.GetId())
		case labsv1.Learner_STATE_FAILED:
			failed = append(failed, l.GetId())
			if !strings.Contains(l.GetFailureReason(), "uid range") || l.GetSandbox() != "" {
				t.Errorf("%s failed with %q, sandbox %q; want the uid ranges named", l.GetId(), l.GetFailureReason(), l.GetSandbox())
			}
		default:
			t.Errorf("%s is %v", l.GetId(), l.GetState())
		}
	}
	if len(ready) != 2 || len(failed) != 2 {
		t.Fatalf("ready %q, failed %q; want two of each", ready, failed)
	}
	if got := len(e.mgr.Scan()); got != 2 {
		t.Errorf("%d sandboxes in the kernel; want 2 (failed builds leave nothing)", got)
	}
	// A failed learner provisions their own once the class frees room.
	if _, err := e.workshop.DeleteWorkshop(ctx, &labsv1.DeleteWorkshopRequest{Name: ws.GetName()}); err != nil {
		t.Fatal(err)
	}
	resp, err = e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"eve", "fay"}})
	if err != nil {
		t.Fatal(err)
	}
	ws2 := resp.GetWorkshop()
	e.deleteOnCleanup(t, ws2)
	if st := ws2.GetLearners()[0].GetState(); st != labsv1.Learner_STATE_NO_SANDBOX {
		t.Errorf("before provisioning eve is %v", st)
	}
	eve := as(ctx, "learner", ws2.GetId()+"/eve", ws2.GetId())
	var wg sync.WaitGroup
	results := make([]*labsv1.ProvisionSandboxResponse, 2)
	for i := range results {
		wg.Go(func() {
			r, err := e.workshop.ProvisionSandbox(eve, &labsv1.ProvisionSandboxRequest{Name: ws2.GetLearners()[0].GetName()})
			if err != nil {
				t.Errorf("eve provisions her own: %v", err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Two racing calls: one builds, the other gets that sandbox.
	if results[0].GetCreated() == results[1].GetCreated() || results[0].GetSandbox().GetName() != results[1].GetSandbox().GetName() {
		t.Errorf("racing provisions: created %v and %v, sandboxes %s and %s", results[0].GetCreated(), results[1].GetCreated(),
			results[0].GetSandbox().GetName(), results[1].GetSandbox().GetName())
	}
	if l := results[0].GetLearner(); l.GetState() != labsv1.Learner_STATE_READY || l.GetSandbox() != results[0].GetSandbox().GetName() {
		t.Errorf("eve after provisioning: %v", l)
	}
	_, err = e.workshop.ProvisionSandbox(eve, &labsv1.ProvisionSandboxRequest{Name: ws2.GetLearners()[1].GetName()})
	wantStatus(t, "eve provisions fay's", err, codes.PermissionDenied)
}

// blockingStream is a WatchProgress server stream whose client reads
// nothing until release is closed.
type blockingStream struct {
	grpc.ServerStream
	ctx     context.Context
	release chan struct{}
	msgs    chan *labsv1.WatchProgressResponse
}

func (s *blockingStream) Context() context.Context { return s.ctx }
func (s *blockingStream) Send(m *labsv1.WatchProgressResponse) error {
	<-s.release
	s.msgs <- m
	return nil
}

// TestProgressSlowWatcher: a watcher that does not read never holds up
// publishing (Grade), and once it reads again it is brought up to date by
// a snapshot.
func TestProgressSlowWatcher(t *testing.T) {
	e := newWorkshopEnv(t, false, 16, 0)
	ctx := t.Context()
	resp, err := e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: []string{"ann", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	wsID := resp.GetWorkshop().GetId()
	if _, err := e.st.CreateSandbox(ctx, "s-a00001", "routed", wsID+"/ann", []string{"h1"}, 1<<20, 4); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	stream := &blockingStream{ctx: wctx, release: make(chan struct{}), msgs: make(chan *labsv1.WatchProgressResponse, 1000)}
	done := make(chan error, 1)
	go func() { done <- e.ws.WatchProgress(&labsv1.WatchProgressRequest{Name: wsID}, stream) }()
	defer func() {
		cancel()
		if err := <-done; status.Code(err) != codes.Canceled {
			t.Errorf("WatchProgress ended with %v; want Canceled", err)
		}
	}()
	// Wait until the watcher is subscribed (it is blocked sending its
	// first snapshot).
	deadline := time.Now().Add(5 * time.Second)
	for e.ws.progress.n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	const grades = 4 * progressBuffer
	var slowest time.Duration
	for i := range grades {
		g := &store.Grade{Sandbox: "s-a00001", Owner: wsID + "/ann", Lab: "routed", Exercise: fmt.Sprintf("e%d", i%3), Time: time.Now(), Score: i, Max: 1000, Report: []byte(`{}`)}
		id, err := e.st.AddGrade(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		g.ID = id
		start := time.Now()
		e.ws.progress.publish(ctx, g)
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("slowest of %d publishes to a stuck watcher: %s", grades, slowest)
	if slowest > 100*time.Millisecond {
		t.Errorf("a publish took %s with a stuck watcher", slowest)
	}
	close(stream.release)
	// The watcher's view converges on the latest grade of each exercise.
	latest := map[string]int32{}
	want := map[string]int32{}
	for i := range grades {
		want[fmt.Sprintf("e%d", i%3)] = int32(i)
	}
	sawResync := false
	for deadline := time.After(5 * time.Second); ; {
		select {
		case m := <-stream.msgs:
			if m.GetKind() == labsv1.WatchProgressResponse_KIND_SNAPSHOT {
				clear(latest)
				if len(m.GetLearners()) != 2 {
					t.Fatalf("snapshot of %d learners", len(m.GetLearners()))
				}
				sawResync = sawResync || len(m.GetLearners()[0].GetExercises()) > 0
			}
			for _, lp := range m.GetLearners() {
				for _, ex := range lp.GetExercises() {
					if lp.GetLearner() != "ann" {
						t.Fatalf("grade of %s", lp.GetLearner())
					}
					latest[ex.GetExercise()] = ex.GetScore()
				}
			}
		case <-deadline:
			t.Fatalf("the watcher's view is %v; want %v", latest, want)
		}
		if fmt.Sprint(latest) == fmt.Sprint(want) {
			break
		}
	}
	if !sawResync {
		t.Error("the watcher fell behind but was never sent a fresh snapshot")
	}
}

// BenchmarkWorkshopProvision measures building a class of 30 routed
// sandboxes at several degrees of parallelism (what DefaultProvisionParallel
// was chosen from):
//
//	go test ./server/api -run '^$' -bench WorkshopProvision -benchtime 3x
func BenchmarkWorkshopProvision(b *testing.B) {
	requireRoot(b)
	const n = 30
	for _, parallel := range []int{1, 2, 3, 4, 8} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			e := newWorkshopEnv(b, true, n*4+8, parallel)
			ctx := context.Background()
			for b.Loop() {
				resp, err := e.workshop.CreateWorkshop(ctx, &labsv1.CreateWorkshopRequest{Lab: "routed", Learners: roster(n), Provision: true})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for _, l := range resp.GetWorkshop().GetLearners() {
					if l.GetState() != labsv1.Learner_STATE_READY {
						b.Fatalf("%s is %v: %s", l.GetId(), l.GetState(), l.GetFailureReason())
					}
				}
				if _, err := e.workshop.DeleteWorkshop(ctx, &labsv1.DeleteWorkshopRequest{Name: resp.GetWorkshop().GetName()}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/class")
		})
	}
}
