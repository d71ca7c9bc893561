package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nslab/grader"
	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
	"nslab/server/store"
)

// GradingServer serves GradingService over the live sandboxes of a
// SandboxServer.
type GradingServer struct {
	labsv1.UnimplementedGradingServiceServer
	sbx *SandboxServer

	// progress is told of every stored grade (nil: nobody listens).
	progress *Progress
}

// NewGradingServer returns a GradingService sharing sbx's sandboxes.
func NewGradingServer(sbx *SandboxServer) *GradingServer { return &GradingServer{sbx: sbx} }

// liveSandbox returns a READY sandbox's handle and lab, if ctx's caller
// may use it.
func (s *SandboxServer) liveSandbox(ctx context.Context, field, name string) (*sandbox.Sandbox, *labs.Lab, error) {
	sb, _, err := s.openSandbox(ctx, field, name, actUse)
	if err != nil {
		return nil, nil, err
	}
	return sb, sb.Lab, nil
}

// openSandbox returns a READY sandbox's handle and row, if ctx's caller
// may do act to it.
func (s *SandboxServer) openSandbox(ctx context.Context, field, name string, act action) (*sandbox.Sandbox, *store.Sandbox, error) {
	id, err := sandboxID(field, name)
	if err != nil {
		return nil, nil, err
	}
	row, err := s.sandboxRow(ctx, id, act)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	sb := s.live[id]
	s.mu.Unlock()
	if sb == nil {
		return nil, nil, fmt.Errorf("sandbox %s is %s, not READY: %w", id, strings.ToLower(string(row.State)), errPrecondition)
	}
	return sb, row, nil
}

func findExercise(lab *labs.Lab, id string) (*labs.Exercise, error) {
	for i := range lab.Exercises {
		if lab.Exercises[i].ID == id {
			return &lab.Exercises[i], nil
		}
	}
	var ids []string
	for _, e := range lab.Exercises {
		ids = append(ids, e.ID)
	}
	return nil, fmt.Errorf("exercise %q of lab %s (it has: %s): %w", id, lab.ID, strings.Join(ids, ", "), labs.ErrNotFound)
}

// labHash identifies the lab content a grade was made against.
func labHash(l *labs.Lab) string {
	b, _ := json.Marshal(l)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Grade grades one exercise or all of them and stores each report.
func (g *GradingServer) Grade(ctx context.Context, req *labsv1.GradeRequest) (*labsv1.GradeResponse, error) {
	sb, sbRow, err := g.sbx.openSandbox(ctx, "sandbox", req.GetSandbox(), actUse)
	if err != nil {
		return nil, toStatus(err)
	}
	lab := sb.Lab
	var exs []*labs.Exercise
	if req.GetExercise() != "" {
		ex, err := findExercise(lab, req.GetExercise())
		if err != nil {
			return nil, toStatus(err)
		}
		exs = append(exs, ex)
	} else {
		for i := range lab.Exercises {
			exs = append(exs, &lab.Exercises[i])
		}
		if len(exs) == 0 {
			return nil, toStatus(fmt.Errorf("lab %s has no exercises: %w", lab.ID, errPrecondition))
		}
	}
	resp := &labsv1.GradeResponse{}
	hash := labHash(lab)
	for _, ex := range exs {
		start := time.Now()
		rep, err := GradeExercise(ctx, sb, ex)
		if err != nil {
			return nil, toStatus(fmt.Errorf("grade %s/%s: %w", sb.ID, ex.ID, err))
		}
		took := time.Since(start)
		g.sbx.cfg.Metrics.graded(lab.ID, took)
		body, err := json.Marshal(rep)
		if err != nil {
			return nil, toStatus(err)
		}
		// The grade belongs to the sandbox's owner, whoever asked for it
		// (an instructor grading a learner's work, say).
		row := &store.Grade{Sandbox: sb.ID, Owner: sbRow.Owner, Lab: lab.ID, LabHash: hash, Exercise: ex.ID, Time: start,
			Score: rep.Score, Max: rep.Max, Passed: rep.Passed, Duration: took, Report: body}
		gid, err := g.sbx.cfg.Store.AddGrade(ctx, row)
		if err != nil {
			return nil, toStatus(err)
		}
		row.ID = gid
		g.progress.publish(ctx, row)
		g.sbx.cfg.Store.RecordEvent(ctx, sb.ID, "graded", fmt.Sprintf("%s: %d/%d", ex.ID, rep.Score, rep.Max))
		resp.Reports = append(resp.Reports, gradeToProto(row, ex.Title, rep))
	}
	return resp, nil
}

// probeTimeout parses a check's timeout, default 1s.
func probeTimeout(s string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return time.Second
}

// runProbe runs the behaviour a check describes, from its node.
func runProbe(ctx context.Context, sb *sandbox.Sandbox, c *labs.Check) (labs.ProbeResult, error) {
	switch {
	case c.Ping != nil:
		return sb.Ping(ctx, c.Ping.From, c.Ping.To, probeTimeout(c.Ping.Timeout))
	case c.TCP != nil:
		return sb.TCPProbe(ctx, c.TCP.From, c.TCP.To, c.TCP.Port, c.TCP.Echo, probeTimeout(c.TCP.Timeout))
	case c.UDP != nil:
		return sb.UDPProbe(ctx, c.UDP.From, c.UDP.To, c.UDP.Port, probeTimeout(c.UDP.Timeout))
	case c.HTTP != nil:
		return sb.HTTPProbe(ctx, c.HTTP.From, c.HTTP.URL, probeTimeout(c.HTTP.Timeout))
	case c.PMTU != nil:
		return sb.PMTUProbe(ctx, c.PMTU.From, c.PMTU.To, 2*time.Second)
	}
	return labs.ProbeResult{}, fmt.Errorf("check %s: no probe for kind %q", c.ID, c.Kind())
}

// generate sends the traffic a packet check asks for.
func generate(ctx context.Context, sb *sandbox.Sandbox, t *labs.Traffic) error {
	var err error
	if t.Ping != "" {
		_, err = sb.Ping(ctx, t.From, t.Ping, time.Second)
	}
	for _, hp := range []struct {
		s   string
		tcp bool
	}{{t.TCP, true}, {t.UDP, false}} {
		if hp.s == "" || err != nil {
			continue
		}
		host, port, perr := splitHostPort(hp.s)
		if perr != nil {
			return perr
		}
		if hp.tcp {
			_, err = sb.TCPProbe(ctx, t.From, host, port, false, time.Second)
		} else {
			_, err = sb.UDPProbe(ctx, t.From, host, port, time.Second)
		}
	}
	return err
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q is not host:port: %w", s, errInvalid)
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("%q is not host:port: %w", s, errInvalid)
	}
	return strings.Trim(s[:i], "[]"), p, nil
}

// GradeExercise collects what the exercise's checks need and grades them.
// Order matters: state and the packet ring are read before any probe
// runs, so the grader's own traffic never satisfies a packet check; a
// packet check that generates traffic is judged on a second look at the
// ring taken after its traffic.
func GradeExercise(ctx context.Context, sb *sandbox.Sandbox, ex *labs.Exercise) (*grader.Report, error) {
	needs := grader.Plan(ex)
	obs := &grader.Observations{
		Now:      time.Now(),
		States:   map[string]*labs.NodeState{},
		Probes:   map[string]labs.ProbeResult{},
		Commands: map[string]grader.CommandResult{},
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for node, n := range needs.StateNodes {
		g.Go(func() error {
			st, err := sb.Snapshot(gctx, node, sandbox.SnapshotOptions{
				Sysctls: n.Sysctls, NFT: n.NFT, Sockets: n.Sockets, Conntrack: n.Conntrack, Neighbors: n.Neighbors,
			})
			if err != nil {
				return fmt.Errorf("read state of %s: %w", node, err)
			}
			mu.Lock()
			obs.States[node] = st
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if needs.Packets {
		obs.Packets = sb.Packets(time.Time{})
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range needs.Probes {
		if p.Check.Packets != nil {
			continue // generated below, one at a time
		}
		g.Go(func() error {
			res, err := runProbe(gctx, sb, &p.Check)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return err
				}
				res = labs.ProbeResult{Kind: p.Check.Kind(), Outcome: "error", Detail: err.Error()}
			}
			mu.Lock()
			obs.Probes[p.CheckID] = res
			mu.Unlock()
			return nil
		})
	}
	for _, c := range needs.Commands {
		g.Go(func() error {
			res := runCommand(gctx, sb, c.Node, c.Run)
			mu.Lock()
			obs.Commands[c.CheckID] = res
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep := grader.Grade(ex, obs)
	// Packet checks that generate their own traffic.
	regraded := false
	for i := range ex.Checks {
		c := &ex.Checks[i]
		if c.Packets == nil || c.Packets.Generate == nil {
			continue
		}
		before := time.Now()
		if err := generate(ctx, sb, c.Packets.Generate); err != nil && errors.Is(err, context.Canceled) {
			return nil, err
		}
		obs2 := *obs
		obs2.Now = time.Now()
		// Only what the generated traffic caused: older packets (earlier
		// grades' traffic, say) must not decide a check that generates.
		obs2.Packets = nil
		for _, p := range waitPackets(sb, before) {
			if !p.Time.Before(before) {
				obs2.Packets = append(obs2.Packets, p)
			}
		}
		for j := range rep.Results {
			if rep.Results[j].CheckID == c.ID {
				rep.Results[j] = grader.Evaluate(c, &obs2)
				regraded = true
			}
		}
	}
	if regraded {
		rep.Score, rep.Passed = 0, true
		for _, r := range rep.Results {
			rep.Score += r.Points
			rep.Passed = rep.Passed && r.Passed
		}
		grader.RedactAnswers(ex, rep)
	}
	return rep, nil
}

// waitPackets gives the capture reader a moment to file what was just
// sent, then returns the ring.
func waitPackets(sb *sandbox.Sandbox, since time.Time) []labs.Packet {
	deadline := time.Now().Add(200 * time.Millisecond)
	n := -1
	for {
		ps := sb.Packets(time.Time{})
		fresh := 0
		for _, p := range ps {
			if !p.Time.Before(since) {
				fresh++
			}
		}
		// Stop once the count of fresh packets has settled.
		if (fresh > 0 && fresh == n) || time.Now().After(deadline) {
			return ps
		}
		n = fresh
		time.Sleep(5 * time.Millisecond) // the capture reader runs asynchronously
	}
}

func runCommand(ctx context.Context, sb *sandbox.Sandbox, node, run string) grader.CommandResult {
	var out, errb strings.Builder
	st, err := sb.Exec(ctx, node, sandbox.ExecRequest{
		Argv: []string{"sh", "-c", run}, Timeout: 10 * time.Second, MaxOutput: 256 << 10,
	}, func(stream int, b []byte) error {
		if stream == sandbox.Stdout {
			out.Write(b)
		} else {
			errb.Write(b)
		}
		return nil
	})
	res := grader.CommandResult{Exit: st.Code, Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		res.Err = err.Error()
	} else if st.TimedOut {
		res.Err = "timed out after 10s"
	}
	return res
}

func gradeToProto(row *store.Grade, title string, rep *grader.Report) *labsv1.GradeReport {
	out := &labsv1.GradeReport{
		Name: fmt.Sprintf("sandboxes/%s/grades/%d", row.Sandbox, row.ID), Exercise: row.Exercise, ExerciseTitle: title,
		Score: int32(rep.Score), MaxScore: int32(rep.Max), Passed: rep.Passed,
		GradeTime: timestamppb.New(row.Time), LabHash: row.LabHash, DurationMs: row.Duration.Milliseconds(),
	}
	for _, r := range rep.Results {
		out.Results = append(out.Results, &labsv1.CheckResult{
			Check: r.CheckID, Kind: r.Kind, Description: r.Description, Passed: r.Passed,
			Points: int32(r.Points), MaxPoints: int32(r.Max), Message: r.Message, Evidence: r.Evidence,
			Hint: r.Hint, Hidden: r.Hidden,
		})
	}
	return out
}

// ListGrades returns a sandbox's stored grades, newest first. It works
// for deleted sandboxes too: grades are kept, with the owner they were
// made for. Callers other than admins see the grades they may see (by
// that owner), and NotFound when they may see neither the sandbox nor any
// of its grades.
func (g *GradingServer) ListGrades(ctx context.Context, req *labsv1.ListGradesRequest) (*labsv1.ListGradesResponse, error) {
	id, err := sandboxID("sandbox", req.GetSandbox())
	if err != nil {
		return nil, toStatus(err)
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	scope := scopeOf(CallerFrom(ctx))
	rows, next, err := g.sbx.cfg.Store.ListGradesIn(ctx, scope, id, req.GetExercise(), size, req.GetPageToken())
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			err = invalidField("page_token", "not a token this server issued")
		}
		return nil, toStatus(err)
	}
	if !scope.All && len(rows) == 0 && req.GetPageToken() == "" {
		// None to show: is that "no grades yet" or "not yours"?
		if _, err := g.sbx.sandboxRow(ctx, id, actRead); err != nil {
			return nil, toStatus(err)
		}
	}
	resp := &labsv1.ListGradesResponse{NextPageToken: next}
	for _, row := range rows {
		var rep grader.Report
		if err := json.Unmarshal(row.Report, &rep); err != nil {
			return nil, toStatus(fmt.Errorf("decode grade %d: %w", row.ID, err))
		}
		title := row.Exercise
		if lab, err := g.sbx.cfg.Catalog.Get(row.Lab); err == nil {
			if ex, err := findExercise(lab, row.Exercise); err == nil {
				title = ex.Title
			}
		}
		resp.Grades = append(resp.Grades, gradeToProto(row, title, &rep))
	}
	return resp, nil
}

// Solve runs an exercise's reference solution, step by step, stopping at
// the first step that fails.
func (g *GradingServer) Solve(ctx context.Context, req *labsv1.SolveRequest) (*labsv1.SolveResponse, error) {
	sb, _, err := g.sbx.openSandbox(ctx, "sandbox", req.GetSandbox(), actSolve)
	if err != nil {
		return nil, toStatus(err)
	}
	lab := sb.Lab
	if req.GetExercise() == "" {
		return nil, toStatus(invalidField("exercise", "required"))
	}
	ex, err := findExercise(lab, req.GetExercise())
	if err != nil {
		return nil, toStatus(err)
	}
	steps, err := RunSteps(ctx, sb, ex.Solution)
	resp := &labsv1.SolveResponse{Steps: steps}
	if err != nil {
		return nil, toStatus(err)
	}
	g.sbx.cfg.Store.RecordEvent(ctx, sb.ID, "solved", ex.ID)
	return resp, nil
}

// RunSteps runs solution steps in order; a step that exits non-zero ends
// the run with an error naming it.
func RunSteps(ctx context.Context, sb *sandbox.Sandbox, steps []labs.Step) ([]*labsv1.SolveStep, error) {
	var out []*labsv1.SolveStep
	for i, st := range steps {
		if x := st.XDP; x != nil {
			status, err := sb.AttachXDP(ctx, st.Node, x.Interface, x.Object, x.Section, x.Detach)
			if err != nil {
				return out, fmt.Errorf("step %d on %s (xdp %s): %w", i+1, st.Node, x.Interface, err)
			}
			out = append(out, &labsv1.SolveStep{Node: st.Node, Run: fmt.Sprintf("labctl xdp attach %s %s %s", st.Node, x.Interface, x.Object), Output: []byte(status)})
			continue
		}
		var buf strings.Builder
		res, err := sb.Exec(ctx, st.Node, sandbox.ExecRequest{
			Argv: []string{"sh", "-c", st.Run}, Timeout: time.Minute, MaxOutput: 64 << 10,
		}, func(_ int, b []byte) error { buf.Write(b); return nil })
		if err != nil {
			return out, fmt.Errorf("step %d on %s: %w", i+1, st.Node, err)
		}
		out = append(out, &labsv1.SolveStep{Node: st.Node, Run: st.Run, ExitCode: int32(res.Code), Output: []byte(buf.String())})
		if res.Code != 0 {
			return out, fmt.Errorf("step %d on %s (%s) exited %d: %s: %w", i+1, st.Node, st.Run, res.Code,
				strings.TrimSpace(buf.String()), errPrecondition)
		}
	}
	return out, nil
}
