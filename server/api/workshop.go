package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

// MaxRoster is the most learners a workshop may have.
const MaxRoster = 500

var learnerNameRE = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)

// DefaultProvisionParallel is how many sandboxes workshops build at once
// unless told otherwise. A build is kernel work (namespaces, links, forks)
// and already starts its nodes in parallel, so builds at once beyond the
// host's CPUs only queue: on a 2-core host a class of 30 routed sandboxes
// took about 3-3.5 s at every setting from 1 to 8 when the host was quiet
// (BenchmarkWorkshopProvision). At least two keep the CPUs busy through a
// build's sequential steps (the store, its network phase).
func DefaultProvisionParallel() int { return max(2, runtime.NumCPU()) }

// WorkshopConfig tunes a WorkshopServer.
type WorkshopConfig struct {
	// ProvisionParallel bounds how many workshop sandboxes are built at
	// once, over all workshops; 0 means DefaultProvisionParallel().
	ProvisionParallel int
}

// WorkshopServer serves WorkshopService over a SandboxServer's sandboxes.
type WorkshopServer struct {
	labsv1.UnimplementedWorkshopServiceServer
	sbx      *SandboxServer
	st       *store.Store
	progress *Progress
	// builds holds a token for each workshop sandbox being built.
	builds   chan struct{}
	parallel int
	// learners serialises provisioning and deletion per learner subject,
	// so that a learner never gets two sandboxes from racing calls and a
	// deletion waits for a build in progress.
	learners keyedMutex
	closing  chan struct{}
	close    sync.Once
}

// NewWorkshopServer returns a WorkshopService building sandboxes with sbx
// and hearing of every grade grading stores.
func NewWorkshopServer(sbx *SandboxServer, grading *GradingServer, cfg WorkshopConfig) *WorkshopServer {
	n := cmp.Or(cfg.ProvisionParallel, DefaultProvisionParallel())
	p := NewProgress(sbx.cfg.Store)
	grading.progress = p
	return &WorkshopServer{
		sbx: sbx, st: sbx.cfg.Store, progress: p,
		builds: make(chan struct{}, n), parallel: n,
		learners: keyedMutex{m: map[string]*keyedEntry{}},
		closing:  make(chan struct{}),
	}
}

// Close ends every WatchProgress stream, so that a graceful stop does not
// wait for clients that would watch forever.
func (w *WorkshopServer) Close() { w.close.Do(func() { close(w.closing) }) }

// denied is a PermissionDenied status.
func denied(format string, args ...any) error {
	return status.Errorf(codes.PermissionDenied, format, args...)
}

// mayManage reports whether c may see and run workshop ws: an admin (or
// an in-process call) any; an instructor the one their token belongs to
// and those they created.
func mayManage(c *Caller, ws *store.Workshop) bool {
	if c == nil || c.Admin() {
		return true
	}
	return c.Role == store.RoleInstructor &&
		((c.Workshop != "" && c.Workshop == ws.ID) || (c.Subject != "" && c.Subject == ws.Creator))
}

// notLearner refuses learners, who may use WorkshopService only to
// provision their own sandbox.
func notLearner(ctx context.Context, what string) error {
	if c := CallerFrom(ctx); c != nil && !c.Admin() && c.Role != store.RoleInstructor {
		return denied("%s: only admins and instructors may", what)
	}
	return nil
}

// workshopID accepts "workshops/{workshop}" or a bare id.
func workshopID(field, name string) (string, error) {
	id := strings.TrimPrefix(name, "workshops/")
	if id == "" {
		return "", invalidField(field, "required: a workshop id or workshops/{workshop}")
	}
	if !store.ValidWorkshopID(id) {
		return "", invalidField(field, "%q is not a workshop id (like w-3f9a1c)", name)
	}
	return id, nil
}

// workshop returns the workshop name names if the caller may manage it.
// One the caller may not manage is NotFound, as if it did not exist.
func (w *WorkshopServer) workshop(ctx context.Context, field, name string) (*store.Workshop, error) {
	id, err := workshopID(field, name)
	if err != nil {
		return nil, err
	}
	if err := notLearner(ctx, "workshops/"+id); err != nil {
		return nil, err
	}
	ws, err := w.st.GetWorkshop(ctx, id)
	if err != nil {
		return nil, err
	}
	if !mayManage(CallerFrom(ctx), ws) {
		return nil, fmt.Errorf("workshop %q: %w", id, store.ErrNotFound)
	}
	return ws, nil
}

// checkRoster validates learner names before anything is written.
func checkRoster(names []string) error {
	if len(names) == 0 {
		return invalidField("learners", "required: 1 to %d learner names", MaxRoster)
	}
	if len(names) > MaxRoster {
		return invalidField("learners", "%d learners; a workshop may have at most %d", len(names), MaxRoster)
	}
	seen := make(map[string]int, len(names))
	for i, n := range names {
		field := fmt.Sprintf("learners[%d]", i)
		if !learnerNameRE.MatchString(n) {
			return invalidField(field, "%q is not a learner name: want 1-64 bytes of a-z, 0-9, '.', '_' and '-'", n)
		}
		if j, dup := seen[n]; dup {
			return invalidField(field, "%q is already learners[%d]", n, j)
		}
		seen[n] = i
	}
	return nil
}

// workshopLab returns the lab a workshop request names, refusing one the
// catalog lacks (InvalidArgument on field) or this kernel cannot run.
func (w *WorkshopServer) workshopLab(field, name string) (*labs.Lab, error) {
	id, err := labID(field, name)
	if err != nil {
		return nil, err
	}
	lab, err := w.sbx.cfg.Catalog.Get(id)
	if errors.Is(err, labs.ErrNotFound) {
		return nil, invalidField(field, "no lab %q in the catalog (ListLabs lists them)", id)
	}
	if err != nil {
		return nil, err
	}
	if err := w.runnable(lab); err != nil {
		return nil, err
	}
	return lab, nil
}

// runnable refuses a lab that needs what this kernel lacks.
func (w *WorkshopServer) runnable(lab *labs.Lab) error {
	if missing := w.sbx.cfg.Manager.Missing(lab.Requires); len(missing) > 0 {
		return fmt.Errorf("lab %s cannot run here: it requires %s, which this kernel lacks: %w",
			lab.ID, strings.Join(missing, ", "), errPrecondition)
	}
	return nil
}

// CreateWorkshop makes a workshop, its tokens and, if asked, every
// learner's sandbox.
func (w *WorkshopServer) CreateWorkshop(ctx context.Context, req *labsv1.CreateWorkshopRequest) (*labsv1.CreateWorkshopResponse, error) {
	if err := notLearner(ctx, "create workshop"); err != nil {
		return nil, err
	}
	lab, err := w.workshopLab("lab", req.GetLab())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := checkRoster(req.GetLearners()); err != nil {
		return nil, toStatus(err)
	}
	// The same rule as a sandbox's own TTL; unset or zero is stored as 0,
	// "the server's default", so that it follows the server's setting when
	// a sandbox is provisioned later.
	var ttl time.Duration
	if d := req.GetTtl(); d.GetSeconds() != 0 || d.GetNanos() != 0 {
		if ttl, err = w.sbx.requestTTL(&labsv1.CreateSandboxRequest{Ttl: d}); err != nil {
			return nil, toStatus(err)
		}
	}
	var (
		ws  *store.Workshop
		sec *store.WorkshopSecrets
	)
	for range 5 { // a fresh id on the rare collision
		ws, sec, err = w.st.CreateWorkshop(ctx, store.NewWorkshop{
			ID: store.NewWorkshopID(), Lab: lab.ID, Creator: ownerOf(ctx), TTL: ttl, Learners: req.GetLearners(),
		})
		if !errors.Is(err, store.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	w.sbx.log.Info("workshop created", "workshop", ws.ID, "lab", lab.ID, "learners", ws.Learners, "creator", ws.Creator)
	if req.GetProvision() {
		// The class is waiting for these: they are built even if this
		// caller goes away (DeleteWorkshop stops what has not started).
		start := time.Now()
		failed := w.provisionAll(context.WithoutCancel(ctx), ws, req.GetLearners())
		w.sbx.log.Info("workshop provisioned", "workshop", ws.ID, "learners", ws.Learners, "failed", failed,
			"parallel", w.parallel, "took", time.Since(start))
	}
	out, err := w.workshopProto(ctx, ws, true)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &labsv1.CreateWorkshopResponse{Workshop: out, InstructorTokenSecret: sec.Instructor}
	for i, name := range req.GetLearners() {
		resp.LearnerTokens = append(resp.LearnerTokens, &labsv1.LearnerToken{Learner: name, Secret: sec.Learners[i]})
	}
	return resp, nil
}

// provisionAll builds the sandboxes of names, at most w.parallel at a time
// over all workshops, and returns how many failed. A learner's failure is
// recorded with them and does not stop the others.
func (w *WorkshopServer) provisionAll(ctx context.Context, ws *store.Workshop, names []string) int {
	next := make(chan string)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for range min(w.parallel, len(names)) {
		wg.Go(func() {
			for name := range next {
				if _, _, err := w.provision(ctx, ws.ID, name); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for _, n := range names {
		next <- n
	}
	close(next)
	wg.Wait()
	return failed
}

// provision builds learner name's sandbox unless they have one CREATING or
// READY, which it returns instead (created false).
func (w *WorkshopServer) provision(ctx context.Context, wsID, name string) (*labsv1.Sandbox, bool, error) {
	subject := store.LearnerSubject(wsID, name)
	defer w.learners.lock(subject)()
	// Read again under the lock: the workshop may have been deleted, or a
	// racing call may have built the sandbox, while this one waited.
	ws, err := w.st.GetWorkshop(ctx, wsID)
	if err != nil {
		return nil, false, err
	}
	if !ws.Deleted.IsZero() {
		return nil, false, fmt.Errorf("workshop %s is deleted: %w", wsID, errPrecondition)
	}
	l, err := w.st.GetLearner(ctx, wsID, name)
	if err != nil {
		return nil, false, err
	}
	if c := l.Current; c != nil && (c.State == store.StateCreating || c.State == store.StateReady) {
		sb, err := w.sbx.GetSandbox(ctx, &labsv1.GetSandboxRequest{Name: c.ID})
		if err != nil {
			return nil, false, err
		}
		return sb.GetSandbox(), false, nil
	}
	sb, err := w.build(ctx, ws, subject)
	if err != nil {
		if rerr := w.st.SetLearnerSandbox(context.WithoutCancel(ctx), wsID, name, "", err.Error()); rerr != nil {
			w.sbx.log.Error("record failed provisioning", "workshop", wsID, "learner", name, "err", rerr)
		}
		w.sbx.log.Warn("learner sandbox failed", "workshop", wsID, "learner", name, "err", err)
		return nil, false, err
	}
	if err := w.st.SetLearnerSandbox(context.WithoutCancel(ctx), wsID, name, sb.GetId(), ""); err != nil {
		return nil, false, err
	}
	return sb, true, nil
}

// build makes one learner sandbox once a build slot is free.
func (w *WorkshopServer) build(ctx context.Context, ws *store.Workshop, owner string) (*labsv1.Sandbox, error) {
	lab, err := w.sbx.cfg.Catalog.Get(ws.Lab)
	if err != nil {
		return nil, fmt.Errorf("lab of workshop %s: %w", ws.ID, err)
	}
	if err := w.runnable(lab); err != nil {
		return nil, err
	}
	ttl := ws.TTL
	if ttl == 0 {
		ttl = w.sbx.cfg.TTL
	}
	ttl = min(ttl, w.sbx.cfg.MaxTTL) // the server's maximum may have shrunk since
	select {
	case w.builds <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-w.builds }()
	return w.sbx.create(ctx, lab, ttl, owner)
}

// learnerName parses "workshops/{workshop}/learners/{learner}".
func learnerName(field, name string) (ws, learner string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "workshops" || parts[2] != "learners" {
		return "", "", invalidField(field, "%q is not workshops/{workshop}/learners/{learner}", name)
	}
	if !store.ValidWorkshopID(parts[1]) {
		return "", "", invalidField(field, "%q is not a workshop id (like w-3f9a1c)", parts[1])
	}
	if !learnerNameRE.MatchString(parts[3]) {
		return "", "", invalidField(field, "%q is not a learner name", parts[3])
	}
	return parts[1], parts[3], nil
}

// ProvisionSandbox builds one learner's sandbox on demand. Besides those
// who manage the workshop, the learner may ask for their own.
func (w *WorkshopServer) ProvisionSandbox(ctx context.Context, req *labsv1.ProvisionSandboxRequest) (*labsv1.ProvisionSandboxResponse, error) {
	wsID, name, err := learnerName("name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	c := CallerFrom(ctx)
	self := c != nil && c.Role == store.RoleLearner && c.Workshop == wsID && c.Subject == store.LearnerSubject(wsID, name)
	switch {
	case self:
	case c != nil && c.Role == store.RoleLearner:
		return nil, denied("provision %s: a learner may provision only their own sandbox", req.GetName())
	default:
		if _, err := w.workshop(ctx, "name", "workshops/"+wsID); err != nil {
			return nil, toStatus(err)
		}
	}
	if _, err := w.st.GetLearner(ctx, wsID, name); err != nil {
		return nil, toStatus(err)
	}
	sb, created, err := w.provision(ctx, wsID, name)
	if err != nil {
		return nil, toStatus(fmt.Errorf("provision %s: %w", req.GetName(), err))
	}
	l, err := w.st.GetLearner(ctx, wsID, name)
	if err != nil {
		return nil, toStatus(err)
	}
	return &labsv1.ProvisionSandboxResponse{Learner: learnerToProto(l), Sandbox: sb, Created: created}, nil
}

// GetWorkshop returns a workshop with its roster.
func (w *WorkshopServer) GetWorkshop(ctx context.Context, req *labsv1.GetWorkshopRequest) (*labsv1.GetWorkshopResponse, error) {
	ws, err := w.workshop(ctx, "name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := w.workshopProto(ctx, ws, true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &labsv1.GetWorkshopResponse{Workshop: out}, nil
}

// ListWorkshops lists the workshops the caller may manage, newest first.
func (w *WorkshopServer) ListWorkshops(ctx context.Context, req *labsv1.ListWorkshopsRequest) (*labsv1.ListWorkshopsResponse, error) {
	if err := notLearner(ctx, "list workshops"); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	f := store.WorkshopFilter{ShowDeleted: req.GetShowDeleted()}
	if c := CallerFrom(ctx); c != nil && !c.Admin() {
		f.Scoped, f.ID, f.Creator = true, c.Workshop, c.Subject
	}
	rows, next, err := w.st.ListWorkshops(ctx, f, size, req.GetPageToken())
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			err = invalidField("page_token", "not a token this server issued")
		}
		return nil, toStatus(err)
	}
	resp := &labsv1.ListWorkshopsResponse{NextPageToken: next}
	for _, ws := range rows {
		out, err := w.workshopProto(ctx, ws, false)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Workshops = append(resp.Workshops, out)
	}
	return resp, nil
}

// DeleteWorkshop revokes a workshop's tokens and deletes its learners'
// sandboxes; the roster and grades stay for the report.
func (w *WorkshopServer) DeleteWorkshop(ctx context.Context, req *labsv1.DeleteWorkshopRequest) (*labsv1.DeleteWorkshopResponse, error) {
	ws, err := w.workshop(ctx, "name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	// Marked deleted first: no provisioning starts after this, and each
	// learner's lock below waits out the one in progress.
	ws, revoked, err := w.st.DeleteWorkshop(ctx, ws.ID)
	if err != nil {
		return nil, toStatus(err)
	}
	learners, err := w.st.WorkshopLearners(ctx, ws.ID)
	if err != nil {
		return nil, toStatus(err)
	}
	// Teardown goes on if the caller goes away: half a class's sandboxes
	// left running would be worse than a late answer.
	dctx := context.WithoutCancel(ctx)
	next := make(chan *store.Learner)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		deleted int
		errs    []error
	)
	for range min(w.parallel, len(learners)) {
		wg.Go(func() {
			for l := range next {
				n, err := w.deleteLearnerSandboxes(dctx, l)
				mu.Lock()
				deleted += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, l := range learners {
		next <- l
	}
	close(next)
	wg.Wait()
	w.sbx.log.Info("workshop deleted", "workshop", ws.ID, "revoked_tokens", revoked, "deleted_sandboxes", deleted, "errors", len(errs))
	if err := errors.Join(errs...); err != nil {
		return nil, toStatus(fmt.Errorf("delete workshop %s: %w", ws.ID, err))
	}
	out, err := w.workshopProto(ctx, ws, true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &labsv1.DeleteWorkshopResponse{Workshop: out, RevokedTokens: int32(revoked), DeletedSandboxes: int32(deleted)}, nil
}

// deleteLearnerSandboxes deletes every sandbox a learner owns, waiting for
// any that another call is still building or deleting.
func (w *WorkshopServer) deleteLearnerSandboxes(ctx context.Context, l *store.Learner) (int, error) {
	defer w.learners.lock(l.Subject())()
	ids, err := w.st.OwnedSandboxes(ctx, l.Subject())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := w.deleteSandbox(ctx, id); err != nil {
			return n, fmt.Errorf("learner %s: %w", l.Name, err)
		}
		n++
	}
	return n, nil
}

// deleteSandbox deletes a sandbox, retrying while it is busy (being built
// by a learner's own CreateSandbox, or deleted by the reaper) for as long
// as a build may take.
func (w *WorkshopServer) deleteSandbox(ctx context.Context, id string) error {
	deadline := time.Now().Add(3 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := w.sbx.delete(ctx, id, "workshop deleted")
		if err == nil || !errors.Is(err, errPrecondition) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// GetWorkshopReport returns each learner's sandbox and latest grades.
func (w *WorkshopServer) GetWorkshopReport(ctx context.Context, req *labsv1.GetWorkshopReportRequest) (*labsv1.GetWorkshopReportResponse, error) {
	ws, err := w.workshop(ctx, "name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	learners, err := w.st.WorkshopLearners(ctx, ws.ID)
	if err != nil {
		return nil, toStatus(err)
	}
	grades, err := w.st.LatestGrades(ctx, ws.ID)
	if err != nil {
		return nil, toStatus(err)
	}
	// The lab's exercises in lab order, then any graded exercise the lab
	// no longer has (it changed, or left the catalog), so no grade is
	// silently dropped.
	var exercises []string
	maxOf := map[string]int{}
	if lab, err := w.sbx.cfg.Catalog.Get(ws.Lab); err == nil {
		for _, ex := range lab.Exercises {
			exercises = append(exercises, ex.ID)
			for _, c := range ex.Checks {
				maxOf[ex.ID] += max(c.Points, 1)
			}
		}
	}
	byLearner := map[string]map[string]*store.LearnerGrade{}
	var extra []string
	for _, g := range grades {
		if byLearner[g.Learner] == nil {
			byLearner[g.Learner] = map[string]*store.LearnerGrade{}
		}
		byLearner[g.Learner][g.Exercise] = g
		if !slices.Contains(exercises, g.Exercise) && !slices.Contains(extra, g.Exercise) {
			extra = append(extra, g.Exercise)
		}
	}
	sort.Strings(extra)
	exercises = append(exercises, extra...)
	rep := &labsv1.WorkshopReport{
		Workshop: "workshops/" + ws.ID, Lab: "labs/" + ws.Lab, Exercises: exercises, GenerateTime: timestamppb.Now(),
	}
	for _, l := range learners {
		lp := learnerToProto(l)
		lr := &labsv1.LearnerReport{Learner: l.Name, Sandbox: lp.GetSandbox(), State: lp.GetState(), FailureReason: lp.GetFailureReason()}
		for _, ex := range exercises {
			eg := &labsv1.ExerciseGrade{Exercise: ex, MaxScore: int32(maxOf[ex])}
			if g := byLearner[l.Name][ex]; g != nil {
				if eg, err = exerciseGrade(&g.Grade); err != nil {
					return nil, toStatus(err)
				}
			}
			lr.Exercises = append(lr.Exercises, eg)
			lr.TotalScore += eg.GetScore()
			lr.MaxScore += eg.GetMaxScore()
			if eg.GetPassed() {
				lr.PassedExercises++
			}
		}
		rep.Learners = append(rep.Learners, lr)
	}
	return &labsv1.GetWorkshopReportResponse{Report: rep}, nil
}

var learnerStateToProto = map[store.State]labsv1.Learner_State{
	store.StateCreating: labsv1.Learner_STATE_CREATING,
	store.StateReady:    labsv1.Learner_STATE_READY,
	store.StateDeleting: labsv1.Learner_STATE_DELETING,
	store.StateFailed:   labsv1.Learner_STATE_FAILED,
}

func learnerToProto(l *store.Learner) *labsv1.Learner {
	out := &labsv1.Learner{
		Name: fmt.Sprintf("workshops/%s/learners/%s", l.Workshop, l.Name), Id: l.Name,
		Subject: l.Subject(), Token: l.Token,
	}
	switch {
	case l.Current != nil:
		out.State, out.Sandbox, out.FailureReason = learnerStateToProto[l.Current.State], "sandboxes/"+l.Current.ID, l.Current.Failure
	case l.Failure != "":
		out.State, out.FailureReason = labsv1.Learner_STATE_FAILED, l.Failure
	case l.Sandbox != "":
		out.State, out.Sandbox = labsv1.Learner_STATE_GONE, "sandboxes/"+l.Sandbox
	default:
		out.State = labsv1.Learner_STATE_NO_SANDBOX
	}
	return out
}

// workshopProto converts a workshop, with its roster if withLearners.
func (w *WorkshopServer) workshopProto(ctx context.Context, ws *store.Workshop, withLearners bool) (*labsv1.Workshop, error) {
	out := &labsv1.Workshop{
		Name: "workshops/" + ws.ID, Id: ws.ID, Lab: "labs/" + ws.Lab, CreateTime: timestamppb.New(ws.Created),
		Creator: ws.Creator, InstructorToken: ws.InstructorToken, LearnerCount: int32(ws.Learners),
	}
	if ws.TTL > 0 {
		out.Ttl = durationpb.New(ws.TTL)
	}
	if !ws.Deleted.IsZero() {
		out.DeleteTime = timestamppb.New(ws.Deleted)
	}
	if !withLearners {
		return out, nil
	}
	learners, err := w.st.WorkshopLearners(ctx, ws.ID)
	if err != nil {
		return nil, err
	}
	for _, l := range learners {
		out.Learners = append(out.Learners, learnerToProto(l))
	}
	return out, nil
}

// keyedMutex is a mutex per key, held only while someone uses it.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
