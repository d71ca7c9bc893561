package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
	"nslab/server/store"
)

// Limits on Exec requests.
const (
	maxStdin       = 1 << 20
	defaultTimeout = 60 * time.Second
	maxTimeout     = time.Hour
	maxExecOutput  = 64 << 20 // per exec; the rest is drained and dropped
	// maxCommandBytes keeps a request within one control-channel frame.
	maxCommandBytes = 32 << 10
)

var nodeNameRE = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

// checkNodeName refuses what no node can be called before any lookup.
func checkNodeName(field, name string) error {
	if len(name) > 12 || !nodeNameRE.MatchString(name) {
		return invalidField(field, "%q is not a node name", name)
	}
	return nil
}

// Config wires a SandboxServer.
type Config struct {
	Store   *store.Store
	Catalog *labs.Catalog
	Manager *sandbox.Manager
	Logger  *slog.Logger
	// UIDStart and UIDSlots define the host uid ranges leased to nodes:
	// UIDStart + k*65536 for k in [0, UIDSlots).
	UIDStart uint32
	UIDSlots int
	// Lifetimes; zero means the Default of each. TTL is a new sandbox's
	// lifetime unless its request asks for another; MaxTTL bounds that
	// request and how far ExtendSandbox may push an expiry from now;
	// IdleTimeout is how long a sandbox may go without activity.
	TTL, MaxTTL, IdleTimeout time.Duration
	// MaxSandboxesPerOwner is the most sandboxes a caller other than an
	// admin may hold (labd's --max-sandboxes-per-owner); 0 is no limit.
	MaxSandboxesPerOwner int
	// Capacity bounds the sandboxes and nodes the host holds at once.
	Capacity store.Capacity
	// Metrics, if not nil, get the server's measurements and gauges.
	Metrics *Metrics
}

// SandboxServer serves SandboxService. The store is the source of truth;
// live holds the open handles of READY sandboxes.
type SandboxServer struct {
	labsv1.UnimplementedSandboxServiceServer
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	live map[string]*sandbox.Sandbox
	busy map[string]bool // a create or delete is in progress
	// Activity bookkeeping (see lifetime.go), for live sandboxes only.
	touched    map[string]time.Time // when activity was last written
	sessions   map[string]int       // open streams that count as activity
	touchEvery time.Duration        // at most one activity write per sandbox per this

	events   *broadcaster
	warnKick chan struct{} // wakes the expiry warner (a new deadline)
	// base is cancelled by Close: builds still running then are cut
	// short. inflight counts creates and deletes; closing refuses new
	// ones (both under mu).
	base     context.Context
	abort    context.CancelFunc
	inflight sync.WaitGroup
	closing  bool
}

// NewSandboxServer returns a SandboxService. Call Reconcile before serving.
func NewSandboxServer(cfg Config) *SandboxServer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.MaxTTL = cmp.Or(cfg.MaxTTL, DefaultMaxTTL)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	s := &SandboxServer{
		cfg: cfg, log: cfg.Logger,
		live: map[string]*sandbox.Sandbox{}, busy: map[string]bool{},
		touched: map[string]time.Time{}, sessions: map[string]int{},
		touchEvery: touchInterval(cfg.IdleTimeout),
		events:     newBroadcaster(), warnKick: make(chan struct{}, 1),
	}
	s.base, s.abort = context.WithCancel(context.Background())
	if cfg.Metrics != nil {
		if err := cfg.Metrics.reg.Register(newServerCollector(s)); err != nil {
			s.log.Warn("sandbox metrics", "err", err)
		}
	}
	return s
}

// begin registers a create or delete of id, refusing it once Close has
// begun; a true return must be matched by end(id).
func (s *SandboxServer) begin(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return fmt.Errorf("sandbox %s: labd is shutting down: %w", id, errUnavailable)
	case s.busy[id]:
		return fmt.Errorf("sandbox %s is being created or deleted: %w", id, errPrecondition)
	}
	s.busy[id] = true
	s.inflight.Add(1)
	return nil
}

func (s *SandboxServer) end(id string) {
	s.mu.Lock()
	delete(s.busy, id)
	s.mu.Unlock()
	s.inflight.Done()
}

// sandboxID accepts "sandboxes/{sandbox}" or a bare id.
func sandboxID(field, name string) (string, error) {
	id := strings.TrimPrefix(name, "sandboxes/")
	if id == "" {
		return "", invalidField(field, "required: a sandbox id or sandboxes/{sandbox}")
	}
	if !sandbox.ValidID(id) {
		return "", invalidField(field, "%q is not a sandbox id (like s-7f3a9c)", name)
	}
	return id, nil
}

// CreateSandbox builds a lab and returns once it is READY. The store row
// (with its uid leases) is written before the kernel is touched, in the
// transaction that checks the host's capacity; a build that fails is
// rolled back and its row removed (kept as FAILED when labd's shutdown
// cut it short).
func (s *SandboxServer) CreateSandbox(ctx context.Context, req *labsv1.CreateSandboxRequest) (*labsv1.CreateSandboxResponse, error) {
	labName, err := labID("lab", req.GetLab())
	if err != nil {
		return nil, toStatus(err)
	}
	ttl, err := s.requestTTL(req)
	if err != nil {
		return nil, toStatus(err)
	}
	lab, err := s.cfg.Catalog.Get(labName)
	if err != nil {
		return nil, toStatus(err)
	}
	if missing := s.cfg.Manager.Missing(lab.Requires); len(missing) > 0 {
		var probs []string
		for i, f := range lab.Requires {
			if slices.Contains(missing, f) {
				probs = append(probs, fmt.Sprintf("%s: requires[%d]: %s is not available in this kernel", lab.Source, i, f))
			}
		}
		return nil, toStatus(fmt.Errorf("lab %s cannot run here: %s: %w", lab.ID, strings.Join(probs, "; "), sandbox.ErrUnsupported))
	}
	sb, err := s.create(ctx, lab, ttl, ownerOf(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &labsv1.CreateSandboxResponse{Sandbox: sb}, nil
}

// create builds lab for owner (see Caller.Subject).
func (s *SandboxServer) create(ctx context.Context, lab *labs.Lab, ttl time.Duration, owner string) (_ *labsv1.Sandbox, err error) {
	start := time.Now()
	defer func() { s.cfg.Metrics.created(lab.ID, time.Since(start), err) }()
	names := make([]string, len(lab.Nodes))
	for i, n := range lab.Nodes {
		names[i] = n.Name
	}
	// Admins are not held to the per-owner limit. It is counted in the
	// transaction that writes the row, with the host's capacity: a
	// refused create writes nothing and builds nothing.
	var lim store.Limits
	if !unrestricted(ctx) {
		lim.PerOwner = s.cfg.MaxSandboxesPerOwner
	}
	ctx, ph := sandbox.WithPhases(ctx)
	var (
		id    string
		nodes []store.Node
	)
	defer func() { s.log.Debug("create phases", "sandbox", id, "lab", lab.ID, "took", ph.Elapsed(), "phases", ph) }()
	end := sandbox.Phase(ctx, "store.insert")
	for range 5 { // a fresh id on the rare collision
		id = sandbox.NewID()
		if err := s.begin(id); err != nil {
			return nil, fmt.Errorf("create sandbox of lab %s: %w", lab.ID, err)
		}
		nodes, err = s.cfg.Store.CreateSandboxLimited(ctx, id, lab.ID, owner, names, s.cfg.UIDStart, s.cfg.UIDSlots, lim,
			store.WithCapacity(s.cfg.Capacity))
		if err != nil {
			s.end(id)
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			break
		}
	}
	end()
	if qe := (*store.QuotaError)(nil); errors.As(err, &qe) {
		who := "owner " + qe.Owner
		if c := CallerFrom(ctx); c != nil && c.Subject == qe.Owner {
			who = c.Role + " " + qe.Owner
		}
		s.log.Info("create refused: per-owner limit", "owner", qe.Owner, "have", qe.Have, "limit", qe.Limit, "lab", lab.ID)
		return nil, withMessage(err, fmt.Sprintf("create sandbox of lab %s: %s has %d sandboxes, the limit (--max-sandboxes-per-owner) is %d",
			lab.ID, who, qe.Have, qe.Limit))
	}
	var le *store.LimitError
	if errors.As(err, &le) {
		err = fmt.Errorf("%w (labd --max-%s)", le, le.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("create sandbox of lab %s: %w", lab.ID, err)
	}
	defer s.end(id)
	log := s.logger(ctx).With("sandbox", id, "lab", lab.ID)
	s.emitState(ctx, id, "")
	bases := map[string]uint32{}
	for _, n := range nodes {
		bases[n.Name] = n.UIDBase
	}
	// The build goes on if the client goes away; what it made is then
	// either READY (and listed) or rolled back. labd's shutdown cuts it
	// short (Close).
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	defer context.AfterFunc(s.base, cancel)()
	sb, err := s.cfg.Manager.Build(bctx, lab, id, bases)
	if err != nil {
		return nil, s.rollback(ctx, id, nil, fmt.Errorf("build sandbox of lab %s: %w", lab.ID, err))
	}
	end = sandbox.Phase(ctx, "store.ready")
	var procs []store.NodeProcess
	for _, np := range sb.Nodes() {
		procs = append(procs, store.NodeProcess{Name: np.Name, Pid: np.Pid, StartTime: np.StartTime})
	}
	// The lifetime starts when the learner can use the sandbox; one
	// transaction records the processes, the expiry, the idle clock,
	// READY and the event.
	now := time.Now()
	took := now.Sub(start)
	if err := s.cfg.Store.MarkReady(bctx, id, procs, now, now.Add(ttl), fmt.Sprintf("built in %s", took.Round(time.Millisecond))); err != nil {
		return nil, s.rollback(ctx, id, sb, fmt.Errorf("mark %s ready: %w", id, err))
	}
	s.mu.Lock()
	s.live[id] = sb
	s.mu.Unlock()
	log.Info("sandbox ready", "nodes", len(lab.Nodes), "took", took)
	end()
	defer sandbox.Phase(ctx, "response")()
	rctx := context.WithoutCancel(ctx)
	row, err := s.cfg.Store.GetSandbox(rctx, id)
	if err != nil {
		return nil, err
	}
	s.emit(EventStateChanged, row, "", nil)
	s.kickWarnings()
	return s.toProto(row, sb), nil
}

// buildCutShort is the failure of a sandbox whose build labd's shutdown
// (or death: see Reconcile) interrupted.
const buildCutShort = "labd stopped while it was being built"

// rollback undoes a create that failed after its row was written: it
// destroys whatever of the sandbox is on the host (sb, if the build
// finished) and removes the row, or, when labd's shutdown cut the build
// short, keeps the row as FAILED, as a restart after kill -9 would. If
// the teardown fails the row is left as it is, for Reconcile to finish at
// the next start. It returns cause, or what the caller should hear.
func (s *SandboxServer) rollback(ctx context.Context, id string, sb *sandbox.Sandbox, cause error) error {
	// A fresh context: the request's may be what failed.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	log := s.logger(ctx).With("sandbox", id)
	if sb != nil {
		sb.Close()
	}
	if err := s.cfg.Manager.Destroy(rctx, id); err != nil {
		log.Error("destroy half-built sandbox; the next start finishes it", "err", err)
		return cause
	}
	if s.base.Err() != nil {
		log.Warn("build cut short by shutdown", "cause", cause)
		s.cfg.Store.RecordEvent(rctx, id, "create-failed", buildCutShort)
		if err := s.cfg.Store.FailSandbox(rctx, id, buildCutShort, time.Now().Add(s.cfg.TTL)); err != nil {
			log.Error("mark half-built sandbox FAILED", "err", err)
		}
		s.emitState(rctx, id, buildCutShort)
		return fmt.Errorf("create sandbox %s: %s: %w", id, buildCutShort, errUnavailable)
	}
	log.Error("create failed", "err", cause)
	s.cfg.Store.RecordEvent(rctx, id, "create-failed", cause.Error())
	row, _ := s.cfg.Store.GetSandbox(rctx, id)
	if err := s.cfg.Store.DeleteSandbox(rctx, id); err != nil {
		log.Error("remove failed sandbox row", "err", err)
		return cause
	}
	s.emit(EventDeleted, row, "build failed: "+cause.Error(), nil)
	return cause
}

// GetSandbox returns a sandbox; for a live one, interfaces as the kernel
// has them now.
func (s *SandboxServer) GetSandbox(ctx context.Context, req *labsv1.GetSandboxRequest) (*labsv1.GetSandboxResponse, error) {
	id, err := sandboxID("name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	row, err := s.cfg.Store.GetSandbox(ctx, id)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.authorize(ctx, row, actRead); err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	sb := s.live[id]
	s.mu.Unlock()
	return &labsv1.GetSandboxResponse{Sandbox: s.toProto(row, sb)}, nil
}

// ListSandboxes lists the sandboxes the caller may see, newest first,
// without kernel detail.
func (s *SandboxServer) ListSandboxes(ctx context.Context, req *labsv1.ListSandboxesRequest) (*labsv1.ListSandboxesResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	rows, next, err := s.cfg.Store.ListSandboxesIn(ctx, scopeOf(CallerFrom(ctx)), size, req.GetPageToken())
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			err = invalidField("page_token", "not a token this server issued")
		}
		return nil, toStatus(err)
	}
	resp := &labsv1.ListSandboxesResponse{NextPageToken: next}
	for _, r := range rows {
		resp.Sandboxes = append(resp.Sandboxes, s.toProto(r, nil))
	}
	return resp, nil
}

// DeleteSandbox tears a sandbox down. For an admin, deleting a missing
// one succeeds (and removes whatever the host still holds under its id);
// anyone else gets NotFound for an id they may not see, missing or not.
func (s *SandboxServer) DeleteSandbox(ctx context.Context, req *labsv1.DeleteSandboxRequest) (*labsv1.DeleteSandboxResponse, error) {
	id, err := sandboxID("name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	if !unrestricted(ctx) {
		if _, err := s.sandboxRow(ctx, id, actUse); err != nil {
			return nil, toStatus(err)
		}
	}
	if err := s.delete(ctx, id, "deleted"); err != nil {
		return nil, toStatus(err)
	}
	return &labsv1.DeleteSandboxResponse{}, nil
}

// delete tears sandbox id down, in any state, for reason (which its
// DELETING and DELETED events carry).
func (s *SandboxServer) delete(ctx context.Context, id, reason string) (err error) {
	if err := s.begin(id); err != nil {
		return err
	}
	defer s.end(id)
	start := time.Now()
	defer func() { s.cfg.Metrics.deleted(time.Since(start), err) }()
	s.mu.Lock()
	sb := s.live[id]
	delete(s.live, id)
	delete(s.touched, id)
	s.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	dctx, ph := sandbox.WithPhases(dctx)
	defer func() { s.log.Debug("delete phases", "sandbox", id, "took", ph.Elapsed(), "phases", ph) }()
	end := sandbox.Phase(dctx, "store.deleting")
	if err := s.cfg.Store.SetState(dctx, id, store.StateDeleting, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	row := s.emitState(dctx, id, reason)
	end()
	if sb != nil {
		// Closing the capture socket waits out an RCU grace period in
		// the kernel (packet_release, 5-10 ms): the handles are released
		// while the processes are killed, and the call returns once both
		// are done, so labd holds nothing of the sandbox by then.
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			sb.Close()
		}()
		defer func() { <-closed }()
	}
	if err := s.cfg.Manager.Destroy(dctx, id); err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	end = sandbox.Phase(dctx, "store.delete")
	if err := s.cfg.Store.DeleteSandboxEvent(dctx, id, "deleted", ""); err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	end()
	s.emit(EventDeleted, row, reason, nil)
	s.logger(ctx).Info("sandbox deleted", "sandbox", id, "reason", reason)
	return nil
}

// Exec runs a command in a node and streams its output.
func (s *SandboxServer) Exec(req *labsv1.ExecRequest, stream labsv1.SandboxService_ExecServer) error {
	ctx := stream.Context()
	id, err := sandboxID("sandbox", req.GetSandbox())
	if err != nil {
		return toStatus(err)
	}
	if req.GetNode() == "" {
		return toStatus(invalidField("node", "required"))
	}
	if len(req.GetCommand()) == 0 || req.GetCommand()[0] == "" {
		return toStatus(invalidField("command", "required: the program and its arguments"))
	}
	if err := checkNodeName("node", req.GetNode()); err != nil {
		return toStatus(err)
	}
	size := len(req.GetWorkingDir())
	for i, a := range req.GetCommand() {
		if strings.ContainsRune(a, 0) {
			return toStatus(invalidField("command", "argument %d contains a NUL byte", i))
		}
		size += len(a) + 1
	}
	if strings.ContainsRune(req.GetWorkingDir(), 0) {
		return toStatus(invalidField("working_dir", "contains a NUL byte"))
	}
	for k, v := range req.GetEnv() {
		size += len(k) + len(v) + 2
	}
	if size > maxCommandBytes {
		return toStatus(invalidField("command", "command, environment and working_dir take %d bytes; at most %d", size, maxCommandBytes))
	}
	if len(req.GetStdin()) > maxStdin {
		return toStatus(invalidField("stdin", "%d bytes is over the %d byte limit", len(req.GetStdin()), maxStdin))
	}
	timeout := defaultTimeout
	if req.GetTimeout() != nil {
		timeout = req.GetTimeout().AsDuration()
		if timeout <= 0 || timeout > maxTimeout {
			return toStatus(invalidField("timeout", "must be between 0 and %s, got %s", maxTimeout, timeout))
		}
	}
	env := make([]string, 0, len(req.GetEnv()))
	for k, v := range req.GetEnv() {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			return toStatus(invalidField("env", "bad variable name %q", k))
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	row, err := s.sandboxRow(ctx, id, actUse)
	if err != nil {
		return toStatus(err)
	}
	s.mu.Lock()
	sb := s.live[id]
	s.mu.Unlock()
	if sb == nil {
		return toStatus(fmt.Errorf("sandbox %s is %s, not READY: %w", id, strings.ToLower(string(row.State)), errPrecondition))
	}
	if !sb.HasNode(req.GetNode()) {
		return toStatus(fmt.Errorf("node %q in sandbox %s: %w", req.GetNode(), id, sandbox.ErrNodeNotFound))
	}
	firstByte, end := s.cfg.Metrics.execStart()
	defer end()
	st, err := sb.Exec(ctx, req.GetNode(), sandbox.ExecRequest{
		Argv: req.GetCommand(), Env: env, Dir: req.GetWorkingDir(),
		Stdin: strings.NewReader(string(req.GetStdin())), Timeout: timeout, MaxOutput: maxExecOutput,
	}, func(stream_ int, b []byte) error {
		firstByte()
		msg := &labsv1.ExecResponse{}
		if stream_ == sandbox.Stdout {
			msg.Event = &labsv1.ExecResponse_Stdout{Stdout: b}
		} else {
			msg.Event = &labsv1.ExecResponse_Stderr{Stderr: b}
		}
		return stream.Send(msg)
	})
	if err != nil {
		return toStatus(fmt.Errorf("exec in %s/%s: %w", id, req.GetNode(), err))
	}
	return stream.Send(&labsv1.ExecResponse{Event: &labsv1.ExecResponse_Exit{Exit: &labsv1.ExitStatus{
		Code: int32(st.Code), Signal: st.Signal, TimedOut: st.TimedOut, OutputTruncated: st.OutputTruncated,
	}}})
}

var stateToProto = map[store.State]labsv1.Sandbox_State{
	store.StateCreating: labsv1.Sandbox_STATE_CREATING,
	store.StateReady:    labsv1.Sandbox_STATE_READY,
	store.StateDeleting: labsv1.Sandbox_STATE_DELETING,
	store.StateFailed:   labsv1.Sandbox_STATE_FAILED,
}

func (s *SandboxServer) toProto(row *store.Sandbox, sb *sandbox.Sandbox) *labsv1.Sandbox {
	out := &labsv1.Sandbox{
		Name: "sandboxes/" + row.ID, Id: row.ID, Lab: "labs/" + row.Lab,
		State: stateToProto[row.State], CreateTime: timestamppb.New(row.Created),
		FailureReason: row.Failure,
	}
	if !row.Ready.IsZero() {
		out.ReadyTime = timestamppb.New(row.Ready)
	}
	// A READY sandbox expires, and a FAILED one (kept to say why); the
	// reaper leaves the others be.
	if (row.State == store.StateReady || row.State == store.StateFailed) && !row.Expire.IsZero() {
		out.ExpireTime = timestamppb.New(row.Expire)
	}
	if row.State == store.StateReady && !row.LastActivity.IsZero() {
		out.IdleExpireTime = timestamppb.New(row.LastActivity.Add(s.cfg.IdleTimeout))
	}
	lab, _ := s.cfg.Catalog.Get(row.Lab)
	if lab != nil {
		for _, seg := range lab.AllSegments() {
			out.Links = append(out.Links, &labsv1.Link{Name: seg.Name, Endpoints: seg.Endpoints})
		}
	}
	var infos map[string]sandbox.NodeInfo
	if sb != nil {
		if ni, err := sb.Inspect(); err == nil {
			infos = map[string]sandbox.NodeInfo{}
			for _, n := range ni {
				infos[n.Name] = n
			}
		} else {
			s.log.Warn("inspect sandbox", "sandbox", row.ID, "err", err)
		}
	}
	for _, n := range row.Nodes {
		pn := &labsv1.Node{Name: n.Name}
		if info, ok := infos[n.Name]; ok {
			for _, i := range info.Interfaces {
				pn.Interfaces = append(pn.Interfaces, &labsv1.Interface{
					Name: i.Name, Addresses: i.Addresses, Mtu: int32(i.MTU), Up: i.Up, Mac: i.MAC, Link: i.Link,
				})
			}
		}
		out.Nodes = append(out.Nodes, pn)
	}
	return out
}

// AttachXDP loads and attaches (or detaches) a learner's XDP object.
func (s *SandboxServer) AttachXDP(ctx context.Context, req *labsv1.AttachXDPRequest) (*labsv1.AttachXDPResponse, error) {
	sb, _, err := s.liveSandbox(ctx, "sandbox", req.GetSandbox())
	if err != nil {
		return nil, toStatus(err)
	}
	switch {
	case req.GetNode() == "":
		return nil, toStatus(invalidField("node", "required"))
	case req.GetInterface() == "":
		return nil, toStatus(invalidField("interface", "required"))
	case req.GetObject() == "" && !req.GetDetach():
		return nil, toStatus(invalidField("object", "required: the compiled object's path inside the node"))
	}
	st, err := sb.AttachXDP(ctx, req.GetNode(), req.GetInterface(), req.GetObject(), req.GetSection(), req.GetDetach())
	if err != nil {
		return nil, toStatus(err)
	}
	s.cfg.Store.RecordEvent(ctx, sb.ID, "xdp", fmt.Sprintf("%s %s: %s", req.GetNode(), req.GetInterface(), st))
	return &labsv1.AttachXDPResponse{Status: st}, nil
}
