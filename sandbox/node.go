package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// UIDRange is how many host ids each node maps: root inside is the base.
const UIDRange = 65536

// proc is a sandbox child process on the host: a node init or the hub.
type proc struct {
	name  string
	pid   int
	start uint64
	netns *os.File // /proc/<pid>/ns/net, held open while the sandbox is in use
	ctl   string   // node control socket path; "" for the hub
}

func (p *proc) nsFd() int { return int(p.netns.Fd()) }

func (p *proc) close() {
	if p != nil && p.netns != nil {
		p.netns.Close()
	}
}

// childSpec says how to start a sandbox child process.
type childSpec struct {
	argv     []string
	cgSand   string
	cgName   string
	limits   cgLimits
	attr     *syscall.SysProcAttr // for a child labd starts itself (the hub)
	node     *spawnRequest        // for a node init, started by the spawner
	extra    []*os.File           // placed before the go and ready pipes
	logPath  string
	ctlPath  string
	deadline time.Time
}

// startChild starts this binary as a sandbox child, places it in its
// cgroup before it does anything, and waits for it to report ready.
func (m *Manager) startChild(ctx context.Context, cs childSpec) (_ *proc, err error) {
	goR, goW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer goR.Close()
	defer goW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	defer readyW.Close()
	logf, err := os.OpenFile(cs.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cs.logPath, err)
	}
	defer logf.Close()

	phase := "start.hub."
	if cs.node != nil {
		phase = "start.node."
	}
	end := Phase(ctx, phase+"cgroup")
	if err := m.cg.create(cs.cgSand, cs.cgName, cs.limits); err != nil {
		return nil, err
	}
	extra := append([]*os.File{}, cs.extra...)
	if cs.node != nil {
		tasks, err := m.cg.initGroup(cs.cgSand, cs.cgName)
		if err != nil {
			return nil, err
		}
		defer tasks.Close()
		extra = append(extra, tasks)
	}
	extra = append(extra, goR, readyW)
	// Born inside its cgroups where the hierarchy allows it (see
	// bornInside): the starting thread joins them and forks.
	var tasks []*os.File
	if m.cg.bornInside() {
		if tasks, err = m.cg.tasksFiles(cs.cgSand, cs.cgName, cs.node != nil); err != nil {
			return nil, err
		}
		defer closeFiles(tasks)
	}
	end()
	end = Phase(ctx, phase+"spawn")
	var pid int
	if cs.node != nil {
		req := *cs.node
		req.Argv = cs.argv
		req.Join = len(tasks)
		if pid, err = m.spawnNode(req, logf, append(extra, tasks...), cs.deadline); err != nil {
			return nil, fmt.Errorf("start %s: %w", cs.argv[0], err)
		}
	} else {
		cmd := &exec.Cmd{
			Path:        m.exe,
			Args:        cs.argv,
			Env:         []string{"PATH=" + nodePath},
			Dir:         "/",
			Stdout:      logf,
			Stderr:      logf,
			ExtraFiles:  extra,
			SysProcAttr: cs.attr,
		}
		started := make(chan error, 1)
		go func() {
			// A thread of its own, thrown away afterwards (never
			// unlocked): it joins the child's cgroups to fork it there.
			runtime.LockOSThread()
			if err := threadJoin(tasks); err != nil {
				started <- err
				return
			}
			started <- cmd.Start()
		}()
		if err := <-started; err != nil {
			return nil, fmt.Errorf("start %s: %w", cs.argv[0], err)
		}
		// The child is ours to reap; after a labd restart it is the host init's.
		go cmd.Wait()
		pid = cmd.Process.Pid
	}
	defer func() {
		if err != nil {
			unix.Kill(pid, unix.SIGKILL)
		}
	}()
	end()
	goR.Close()
	readyW.Close()
	end = Phase(ctx, phase+"join")
	join := m.cg.join
	if cs.node != nil {
		join = m.cg.joinInit
	}
	if tasks == nil {
		if err := join(cs.cgSand, cs.cgName, pid); err != nil {
			return nil, err
		}
	}
	if _, err := goW.Write([]byte{1}); err != nil {
		return nil, fmt.Errorf("release %s: %w", cs.argv[0], err)
	}
	goW.Close()
	end()

	end = Phase(ctx, phase+"ready")
	readyR.SetReadDeadline(cs.deadline)
	line, rerr := bufio.NewReader(readyR).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		if line == "" && rerr != nil {
			line = rerr.Error()
			if b, _ := os.ReadFile(cs.logPath); len(b) > 0 {
				line += ": " + lastLines(string(b), 5)
			}
		}
		return nil, fmt.Errorf("%s did not start: %s", cs.argv[0], line)
	}
	end()
	start, err := procStartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("%s: read start time: %w", cs.argv[0], err)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("%s: open netns: %w", cs.argv[0], err)
	}
	return &proc{name: cs.cgName, pid: pid, start: start, netns: ns, ctl: cs.ctlPath}, nil
}

// startHub starts the process that holds the sandbox's hub netns.
func (m *Manager) startHub(ctx context.Context, id string) (*proc, error) {
	dir := m.sandboxDir(id)
	return m.startChild(ctx, childSpec{
		argv:     []string{argv0Hub, m.stateDir, id},
		cgSand:   id,
		cgName:   hubCgroup,
		limits:   cgLimits{pids: 64, memory: 64 << 20}, // a Go runtime needs a few threads
		attr:     &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Setsid: true},
		logPath:  filepath.Join(dir, "hub.log"),
		deadline: deadlineOf(ctx, 30*time.Second),
	})
}

func deadlineOf(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// startNode starts a node's init in its own namespaces.
func (m *Manager) startNode(ctx context.Context, id, node string, uidBase uint32, hosts []byte, lim cgLimits) (_ *proc, err error) {
	end := Phase(ctx, "start.node.files")
	defer func() {
		if end != nil {
			end()
		}
	}()
	dir := filepath.Join(m.sandboxDir(id), node)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o711); err != nil { // whatever the umask
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	// The node's root owns its /etc/hosts and /etc/hostname, as on a real host.
	for name, content := range map[string][]byte{"hosts": hosts, "hostname": []byte(node + "\n")} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Chown(p, int(uidBase), int(uidBase)); err != nil {
			return nil, fmt.Errorf("chown %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			return nil, fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	ctlPath := filepath.Join(dir, "ctl.sock")
	os.Remove(ctlPath)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: ctlPath, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", ctlPath, err)
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	// Only host root may drive a node; its own root is an unprivileged uid here.
	if err := os.Chmod(ctlPath, 0o600); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", ctlPath, err)
	}
	lnf, err := ln.File()
	if err != nil {
		return nil, err
	}
	defer lnf.Close()
	end()
	end = nil
	return m.startChild(ctx, childSpec{
		argv:     []string{argv0Init, m.stateDir, id, node},
		cgSand:   id,
		cgName:   node,
		limits:   lim,
		node:     &spawnRequest{UID: uidBase, Dir: dir},
		extra:    []*os.File{lnf}, // then the cgroup file (initGroup)
		logPath:  filepath.Join(dir, "init.log"),
		ctlPath:  ctlPath,
		deadline: deadlineOf(ctx, 30*time.Second),
	})
}

// initMemory is what a node's init may use (on the host: the Go runtime
// and its requests' buffers), charged apart from the node's own limit.
const initMemory = 64 << 20

// initCgroup names the memory cgroup of a node's init, beside the node's
// own (node names start with a letter).
func initCgroup(node string) string { return "_init-" + node }

// splitMemory reports whether a node's init is charged apart from its
// commands: with a v1 memory hierarchy, where a thread can be in another
// memory cgroup than its process.
func (cg *cgroups) splitMemory() bool {
	return !cg.v2 && cg.memoryRoot() != ""
}

func (cg *cgroups) memoryRoot() string {
	for _, r := range cg.roots {
		if filepath.Base(r) == "memory" {
			return r
		}
	}
	return ""
}

// initGroup prepares the memory cgroup of a node's init and returns the
// file through which the init's fork thread joins the node's memory
// cgroup (v1 "tasks": one thread, opened here by host root, which is the
// credential the kernel checks). The init process is charged to its own
// group; every command it forks from that thread is born in the node's,
// as is every kernel object they make. When the node's memory is full,
// the OOM killer looks at the node's processes only, never at the init:
// the node cannot lose its init to links or routes it made. Without the
// split (cgroup v2), the file is /dev/null and all share the node's group.
func (cg *cgroups) initGroup(sandbox, node string) (*os.File, error) {
	if !cg.splitMemory() {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	d := filepath.Join(cg.memoryRoot(), cg.parent, sandbox, initCgroup(node))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", d, err)
	}
	lim := strconv.Itoa(initMemory)
	for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
		p := filepath.Join(d, f)
		if err := os.WriteFile(p, []byte(lim), 0); err != nil && !(f != "memory.limit_in_bytes" && errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("set cgroup limit %s=%s: %w", p, lim, err)
		}
	}
	p := filepath.Join(cg.memoryRoot(), cg.parent, sandbox, node, "tasks")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return f, nil
}

// joinInit places a node's init: in the node's cgroup for every
// controller but memory, where it goes to its own group (initGroup).
func (cg *cgroups) joinInit(sandbox, node string, pid int) error {
	for _, r := range cg.roots {
		d := filepath.Join(r, cg.parent, sandbox, node)
		if r == cg.memoryRoot() && cg.splitMemory() {
			d = filepath.Join(r, cg.parent, sandbox, initCgroup(node))
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// ExecRequest is a command to run as root of a node.
type ExecRequest struct {
	Argv      []string
	Env       []string // KEY=VALUE, added to the node's default environment
	Dir       string
	Stdin     io.Reader // nil = empty
	Timeout   time.Duration
	MaxOutput int64 // bytes of stdout+stderr passed on; the rest is drained and dropped
}

// ExitStatus is how a command ended.
type ExitStatus struct {
	Code            int
	Signal          string // e.g. "SIGKILL" when killed by a signal
	TimedOut        bool
	OutputTruncated bool
}

// Stream numbers passed to an OutputFunc.
const (
	Stdout = 1
	Stderr = 2
)

// OutputFunc receives output chunks in order, never concurrently. A
// blocking OutputFunc applies back-pressure all the way to the command.
type OutputFunc func(stream int, p []byte) error

// exitGrace is how long output is still read after the command exited,
// for data a background child keeps writing into the inherited pipes.
const exitGrace = 100 * time.Millisecond

func (p *proc) dial() (*net.UnixConn, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: p.ctl, Net: "unixpacket"})
	if err != nil {
		return nil, p.gone(fmt.Errorf("node %s: connect to init: %w", p.name, err))
	}
	return c, nil
}

// gone classifies a failure to talk to the init: when the init is no
// longer the process we started (exited, a zombie, or its pid reused),
// the error is ErrGone, which callers report as the sandbox being lost
// rather than as an internal error.
func (p *proc) gone(err error) error {
	st, serr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	start, terr := procStartTime(p.pid)
	if serr != nil || terr != nil || start != p.start || strings.Contains(string(st), ") Z ") {
		return fmt.Errorf("%w: init of node %s (pid %d) has exited", ErrGone, p.name, p.pid)
	}
	return err
}

// exec runs req in the node and streams its output to out.
func (p *proc) exec(ctx context.Context, req ExecRequest, out OutputFunc) (ExitStatus, error) {
	if len(req.Argv) == 0 {
		return ExitStatus{}, errors.New("exec: empty command")
	}
	c, err := p.dial()
	if err != nil {
		return ExitStatus{}, err
	}
	defer c.Close()
	inR, inW, err := os.Pipe()
	if err != nil {
		return ExitStatus{}, err
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		return ExitStatus{}, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		outW.Close()
		return ExitStatus{}, err
	}
	defer errR.Close()
	werr := writeMsg(c, wireRequest{Op: "exec", Argv: req.Argv, Env: req.Env, Dir: req.Dir},
		int(inR.Fd()), int(outW.Fd()), int(errW.Fd()))
	inR.Close()
	outW.Close()
	errW.Close()
	if werr != nil {
		return ExitStatus{}, p.gone(fmt.Errorf("node %s: send exec: %w", p.name, werr))
	}
	// The first reply comes at once from a healthy init; never wait for
	// it past the caller's context or a bound, whatever the node does.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	stopWatch := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	var rep wireReply
	var rfds []int
	rfds, err = readMsg(c, &rep)
	closeFds(rfds) // a reply never carries descriptors; a hostile node's are dropped
	stopWatch()
	c.SetReadDeadline(time.Time{})
	if err != nil {
		if ctx.Err() != nil {
			return ExitStatus{}, ctx.Err()
		}
		return ExitStatus{}, p.gone(fmt.Errorf("node %s: exec reply: %w", p.name, err))
	}
	if rep.Error != "" {
		msg := []byte("nslab: " + rep.Error + "\n")
		if err := out(Stderr, msg); err != nil {
			return ExitStatus{}, err
		}
		return ExitStatus{Code: rep.Code}, nil
	}

	go func() {
		if req.Stdin != nil {
			io.Copy(inW, req.Stdin)
		}
		inW.Close()
	}()

	var (
		mu        sync.Mutex
		sent      int64
		truncated bool
		outErr    error
	)
	emit := func(stream int, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		if outErr != nil {
			return
		}
		if req.MaxOutput > 0 && sent+int64(len(b)) > req.MaxOutput {
			b = b[:max(0, req.MaxOutput-sent)]
			truncated = true
		}
		if len(b) == 0 {
			return
		}
		sent += int64(len(b))
		outErr = out(stream, b)
	}
	var readers sync.WaitGroup
	for _, s := range []struct {
		f  *os.File
		id int
	}{{outR, Stdout}, {errR, Stderr}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.f.Read(buf)
				if n > 0 {
					emit(s.id, buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
	}

	exitc := make(chan wireReply, 1)
	go func() {
		var r wireReply
		fds, err := readMsg(c, &r)
		closeFds(fds)
		if err != nil {
			r = wireReply{Exited: false, Error: err.Error()}
		}
		exitc <- r
	}()

	var timer <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timer = t.C
	}
	var st ExitStatus
	var final wireReply
wait:
	for {
		select {
		case final = <-exitc:
			break wait
		case <-timer:
			st.TimedOut = true
			timer = nil
			writeMsg(c, wireRequest{Op: "kill", Signal: int(unix.SIGKILL)})
		case <-ctx.Done():
			// Closing the channel makes the init kill the command.
			c.Close()
			final = <-exitc
			readers.Wait()
			return ExitStatus{}, ctx.Err()
		}
	}
	if !final.Exited {
		return ExitStatus{}, p.gone(fmt.Errorf("node %s: lost the command: %s", p.name, final.Error))
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(exitGrace):
		outR.SetReadDeadline(time.Now())
		errR.SetReadDeadline(time.Now())
		<-done
	}
	st.Code = final.Code
	if final.Signal != 0 {
		st.Signal = unix.SignalName(unix.Signal(final.Signal))
	}
	mu.Lock()
	st.OutputTruncated = truncated
	err = outErr
	mu.Unlock()
	return st, err
}

// spawn starts a long-running process in the node, detached from the
// caller; its output goes to logPath inside the node.
func (p *proc) spawn(argv []string, self bool, logPath string) (int, error) {
	c, err := p.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := writeMsg(c, wireRequest{Op: "spawn", Argv: argv, Self: self, Log: logPath}); err != nil {
		return 0, fmt.Errorf("node %s: send spawn: %w", p.name, err)
	}
	var rep wireReply
	fds, err := readMsg(c, &rep)
	closeFds(fds)
	if err != nil {
		return 0, fmt.Errorf("node %s: spawn reply: %w", p.name, err)
	}
	if rep.Error != "" {
		return 0, fmt.Errorf("node %s: %s", p.name, rep.Error)
	}
	return rep.Pid, nil
}

// ping checks that the init answers on its control socket.
func (p *proc) ping() error {
	c, err := p.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := writeMsg(c, wireRequest{Op: "ping"}); err != nil {
		return err
	}
	var rep wireReply
	fds, err := readMsg(c, &rep)
	closeFds(fds)
	return err
}

// lastLines returns up to n final lines of s, joined by " | ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
