package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	labsv1 "nslab/proto/labs/v1"
)

// labdProc is the labd the bench started for itself: its own socket,
// database, state directory and cgroup parent, all removed by stop.
type labdProc struct {
	cmd      *exec.Cmd
	tmp      string
	stateDir string
	db       string // labd's --db
	cgParent string
	conn     *grpc.ClientConn
	sbx      labsv1.SandboxServiceClient
}

func startLabd(ctx context.Context, bin, labsDir string) (_ *labdProc, err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("labd binary %s: %w (build it with: go build -o bin/labd ./server)", bin, err)
	}
	tmp, err := os.MkdirTemp("", "nslab-bench-")
	if err != nil {
		return nil, err
	}
	// Node inits run as unprivileged uids and must traverse to their state.
	if err := os.Chmod(tmp, 0o711); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	l := &labdProc{tmp: tmp, stateDir: filepath.Join(tmp, "state"), db: filepath.Join(tmp, "labd.db"), cgParent: "nslab-bench-" + filepath.Base(tmp)[len("nslab-bench-"):]}
	defer func() {
		if err != nil {
			l.stop()
		}
	}()
	sock := filepath.Join(tmp, "labd.sock")
	l.cmd = exec.Command(bin, "--socket", sock, "--db", l.db,
		"--state-dir", l.stateDir, "--labs", labsDir,
		"--cgroup-parent", l.cgParent, "--log-level", "warn")
	l.cmd.Stderr = os.Stderr
	// Its own process group: Ctrl-C reaches the bench alone, which then
	// deletes the sandboxes before it stops labd.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.cmd.Start(); err != nil {
		l.cmd = nil
		return l, fmt.Errorf("start labd: %w", err)
	}
	l.conn, err = grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return l, err
	}
	l.sbx = labsv1.NewSandboxServiceClient(l.conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := l.sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{})
		if err == nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return l, fmt.Errorf("labd did not come up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *labdProc) pid() int { return l.cmd.Process.Pid }

// stop deletes every sandbox the bench left (after a failure), stops
// labd and removes its files and its (empty) cgroup parent.
func (l *labdProc) stop() error {
	var errs []error
	if l.sbx != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var names []string
		for tok := ""; ; {
			list, err := l.sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{PageToken: tok})
			if err != nil {
				errs = append(errs, fmt.Errorf("list leftover sandboxes: %w", err))
				break
			}
			for _, s := range list.GetSandboxes() {
				names = append(names, s.GetName())
			}
			if tok = list.GetNextPageToken(); tok == "" {
				break
			}
		}
		for _, n := range names {
			if _, err := l.sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: n}); err != nil {
				errs = append(errs, fmt.Errorf("delete leftover sandbox %s: %w", n, err))
			}
		}
		cancel()
	}
	if l.conn != nil {
		l.conn.Close()
	}
	if l.cmd != nil {
		l.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { l.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			l.cmd.Process.Kill()
			<-done
			errs = append(errs, errors.New("labd did not stop within 30s of SIGTERM; killed"))
		}
	}
	// Whatever labd could not delete (or left when it died) goes here:
	// its hub and node processes by their state dir, then the cgroups.
	if n := l.killStrays(); n > 0 {
		errs = append(errs, fmt.Errorf("killed %d hub/node processes labd left behind", n))
	}
	for _, root := range cgroupRoots() {
		if err := removeTree(filepath.Join(root, l.cgParent)); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup parent: %w", err))
		}
	}
	if err := os.RemoveAll(l.tmp); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killStrays SIGKILLs every hub holder and node init of this labd's
// state dir and waits (up to 10s) until they are gone.
func (l *labdProc) killStrays() int {
	strays := func() []int {
		var out []int
		for pid, p := range listProcs() {
			if len(p.argv) >= 2 && (p.argv[0] == "nslab-init" || p.argv[0] == "nslab-hub") && p.argv[1] == l.stateDir {
				out = append(out, pid)
			}
		}
		return out
	}
	killed := map[int]bool{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids := strays()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed[pid] = true
			}
		}
	}
	return len(killed)
}

// removeTree removes an (empty) cgroup directory and its children,
// deepest first; a missing one is not an error.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}

// cycle creates a sandbox of lab and deletes it, timing both calls.
func (l *labdProc) cycle(ctx context.Context, lab string) (create, del time.Duration, nodes int, err error) {
	t0 := time.Now()
	resp, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("create %s: %w", lab, err)
	}
	create = time.Since(t0)
	sb := resp.GetSandbox()
	if sb.GetState() != labsv1.Sandbox_STATE_READY {
		err = fmt.Errorf("create %s: returned in state %s, not READY", lab, sb.GetState())
	}
	t1 := time.Now()
	if _, derr := l.sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: sb.GetName()}); derr != nil {
		return 0, 0, 0, errors.Join(err, fmt.Errorf("delete %s: %w", sb.GetName(), derr))
	}
	return create, time.Since(t1), len(sb.GetNodes()), err
}

// cycleWatched is cycle with the delete also timed until the kernel has
// destroyed every namespace of the sandbox (its hub and its nodes), as
// the watcher sees it.
func (l *labdProc) cycleWatched(ctx context.Context, lab string, w *watcher) (create, delCall, delGone time.Duration, nodes int, err error) {
	t0 := time.Now()
	resp, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("create %s: %w", lab, err)
	}
	create = time.Since(t0)
	sb := resp.GetSandbox()
	if sb.GetState() != labsv1.Sandbox_STATE_READY {
		err = fmt.Errorf("create %s: returned in state %s, not READY", lab, sb.GetState())
	}
	// Not timed: plant a sentinel in each of the sandbox's namespaces.
	var names []string
	if err == nil {
		names, err = l.plantIn(sb.GetId(), len(sb.GetNodes()), w)
	}
	t1 := time.Now()
	if _, derr := l.sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: sb.GetName()}); derr != nil {
		return 0, 0, 0, 0, errors.Join(err, fmt.Errorf("delete %s: %w", sb.GetName(), derr))
	}
	delCall = time.Since(t1)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	last, err := w.waitGone(names, 30*time.Second)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("delete %s: %w", sb.GetName(), err)
	}
	return create, delCall, last.Sub(t1), len(sb.GetNodes()), nil
}

// plantIn plants the watcher's sentinels in the hub and every node of
// sandbox id, found by the argv labd gives their processes.
func (l *labdProc) plantIn(id string, nodes int, w *watcher) ([]string, error) {
	var fds []int
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	for pid, p := range listProcs() {
		if len(p.argv) >= 3 && (p.argv[0] == "nslab-hub" || p.argv[0] == "nslab-init") && p.argv[1] == l.stateDir && p.argv[2] == id {
			fd, err := syscall.Open(fmt.Sprintf("/proc/%d/ns/net", pid), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("sandbox %s: open netns of %s (pid %d): %w", id, p.argv[0], pid, err)
			}
			fds = append(fds, fd)
		}
	}
	if len(fds) != nodes+1 {
		return nil, fmt.Errorf("sandbox %s: found %d hub/node processes, want %d", id, len(fds), nodes+1)
	}
	return w.plant(fds)
}

// execRTT times `true` in node h1 of a fresh sandbox of lab.
func (l *labdProc) execRTT(ctx context.Context, lab string, n int) ([]time.Duration, error) {
	resp, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", lab, err)
	}
	defer l.sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: resp.GetSandbox().GetName()})
	node := resp.GetSandbox().GetNodes()[0].GetName()
	var rtts []time.Duration
	for range n {
		t0 := time.Now()
		st, err := l.sbx.Exec(ctx, &labsv1.ExecRequest{Sandbox: resp.GetSandbox().GetId(), Node: node, Command: []string{"true"}})
		if err != nil {
			return nil, fmt.Errorf("exec true in %s: %w", node, err)
		}
		for {
			m, err := st.Recv()
			if err != nil {
				return nil, fmt.Errorf("exec true in %s: %w", node, err)
			}
			if x := m.GetExit(); x != nil {
				if x.GetCode() != 0 {
					return nil, fmt.Errorf("exec true in %s: exit code %d", node, x.GetCode())
				}
				break
			}
		}
		rtts = append(rtts, time.Since(t0))
	}
	return rtts, nil
}

type gradeResult struct {
	lab, exercise string
	checks        int
	times         []time.Duration
}

// grade times Grade of the catalog's largest exercise (most checks),
// each run on a fresh sandbox where the exercise's reference solution has
// just run, as a learner grades once they are done: grading the same
// sandbox again and again would run into what some exercises check,
// such as a rate limit.
func (l *labdProc) grade(ctx context.Context, runs int) (*gradeResult, error) {
	labc := labsv1.NewLabServiceClient(l.conn)
	grd := labsv1.NewGradingServiceClient(l.conn)
	list, err := labc.ListLabs(ctx, &labsv1.ListLabsRequest{PageSize: 1000})
	if err != nil {
		return nil, err
	}
	g := &gradeResult{}
	for _, lb := range list.GetLabs() {
		for _, e := range lb.GetExercises() {
			if len(e.GetChecks()) > g.checks {
				g.lab, g.exercise, g.checks = lb.GetId(), e.GetId(), len(e.GetChecks())
			}
		}
	}
	if g.exercise == "" {
		return nil, errors.New("no exercise with checks in the catalog")
	}
	once := func() (time.Duration, error) {
		resp, err := l.sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: g.lab})
		if err != nil {
			return 0, fmt.Errorf("create %s: %w", g.lab, err)
		}
		defer l.sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: resp.GetSandbox().GetName()})
		id := resp.GetSandbox().GetId()
		if _, err := grd.Solve(ctx, &labsv1.SolveRequest{Sandbox: id, Exercise: g.exercise}); err != nil {
			return 0, fmt.Errorf("solve %s/%s: %w", g.lab, g.exercise, err)
		}
		t0 := time.Now()
		r, err := grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: id, Exercise: g.exercise})
		if err != nil {
			return 0, fmt.Errorf("grade %s/%s: %w", g.lab, g.exercise, err)
		}
		d := time.Since(t0)
		for _, rep := range r.GetReports() {
			if rep.GetPassed() {
				continue
			}
			var failed []string
			for _, c := range rep.GetResults() {
				if !c.GetPassed() {
					failed = append(failed, fmt.Sprintf("%s (%s)", c.GetCheck(), c.GetMessage()))
				}
			}
			return 0, fmt.Errorf("grade %s/%s after its solution did not pass: %s", g.lab, rep.GetExercise(), strings.Join(failed, "; "))
		}
		return d, nil
	}
	for range runs {
		d, err := once()
		if err != nil {
			return nil, err
		}
		g.times = append(g.times, d)
	}
	return g, nil
}
