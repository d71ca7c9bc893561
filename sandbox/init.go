package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Files handed to a node init by labd, in ExtraFiles order.
const (
	initFdListener = 3 // SOCK_SEQPACKET listener for the control channel
	initFdGo       = 4 // read end: one byte once labd has placed us in our cgroups; EOF = abort
	initFdReady    = 5 // write end: "ok\n" or the setup error
)

// Node filesystem limits. tmpfs pages are also charged to the node's
// memory cgroup, so these only keep one directory from taking all of it.
var nodeTmpfs = []struct {
	path, opts string
}{
	{"/tmp", "size=64m,mode=1777"},
	{"/var/tmp", "size=64m,mode=1777"},
	{"/dev/shm", "size=64m,mode=1777"},
	{"/run", "size=16m,mode=755"},
}

const nodePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initMain is PID 1 of a node. args: stateDir sandbox node.
func initMain(args []string) int {
	if len(args) != 3 {
		return fatalf("usage: %s STATEDIR SANDBOX NODE", argv0Init)
	}
	stateDir, sandbox, node := args[0], args[1], args[2]
	// As PID 1 of its pid namespace the kernel already drops signals
	// without a handler, but the Go runtime installs handlers for these;
	// ignoring them keeps a learner's `kill 1` from ending the node.
	// (signal.Ignore would do, but SIG_IGN survives exec and every command
	// run in the node would inherit it; handled signals are reset.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)
	go func() {
		for range sigs {
		}
	}()

	goPipe := os.NewFile(initFdGo, "go")
	b := make([]byte, 1)
	if n, _ := goPipe.Read(b); n != 1 {
		return 1 // labd went away before we were placed in our cgroups
	}
	goPipe.Close()

	ready := os.NewFile(initFdReady, "ready")
	if err := setupNode(filepath.Join(stateDir, "sandboxes", sandbox, node), node); err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		return 1
	}
	os.Clearenv()
	os.Setenv("PATH", nodePath)
	os.Setenv("HOME", "/root")
	os.Setenv("HOSTNAME", node)
	os.Setenv("TERM", "xterm-256color")
	os.Chdir("/")

	if err := installSeccomp(); err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		return 1
	}
	ln, err := net.FileListener(os.NewFile(initFdListener, "ctl"))
	if err != nil {
		fmt.Fprintf(ready, "control socket: %v\n", err)
		return 1
	}
	fmt.Fprintf(ready, "ok\n")
	ready.Close()

	r := newReaper()
	go r.run()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return 1
			}
			continue
		}
		go serveCtl(r, c.(*net.UnixConn))
	}
}

// setupNode gives the node its own hostname, /proc, /sys, devpts, tmpfs
// directories and /etc/hosts. It runs as root of the node's user
// namespace, so nothing here can affect the host's mounts.
func setupNode(dir, node string) error {
	if err := unix.Sethostname([]byte(node)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Bind the node's own files before /run or /tmp (where the state
	// directory may live) are covered by tmpfs.
	for _, f := range []string{"hosts", "hostname"} {
		if _, err := os.Stat("/etc/" + f); err != nil {
			continue
		}
		if err := unix.Mount(filepath.Join(dir, f), "/etc/"+f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /etc/%s: %w", f, err)
		}
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// A sysfs of the node's own network namespace, so /sys/class/net shows
	// its interfaces. Read-only: nothing in it is the node's to change.
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	for _, t := range nodeTmpfs {
		if _, err := os.Stat(t.path); err != nil {
			continue
		}
		if err := unix.Mount("tmpfs", t.path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, t.opts); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", t.path, err)
		}
	}
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := unix.Mount("/dev/pts/ptmx", "/dev/ptmx", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /dev/ptmx: %w", err)
	}
	// Interfaces arrive fully addressed and unique by construction, so
	// duplicate address detection would only hold every link-local
	// address (and with it neighbour discovery on routers) for a second.
	// A lab that teaches DAD turns it back on with a sysctl.
	for _, k := range []string{"default", "all"} {
		p := "/proc/sys/net/ipv6/conf/" + k + "/accept_dad"
		if err := os.WriteFile(p, []byte("0"), 0); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	if err := os.MkdirAll("/run/nslab", 0o755); err != nil {
		return fmt.Errorf("create /run/nslab: %w", err)
	}
	return nil
}

// reaper is PID 1's wait loop. Children are started while holding mu and
// the reaper only waits while holding mu, so a child that exits at once
// is never reaped before its waiter is registered.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	sigc    chan os.Signal
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]chan unix.WaitStatus{}, sigc: make(chan os.Signal, 1)}
	signal.Notify(r.sigc, unix.SIGCHLD)
	return r
}

func (r *reaper) run() {
	for range r.sigc {
		r.mu.Lock()
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			if ch, ok := r.waiters[pid]; ok {
				delete(r.waiters, pid)
				ch <- ws
			}
		}
		r.mu.Unlock()
	}
}

// start forks and execs argv with the given stdio; the returned channel
// yields its wait status once.
func (r *reaper) start(req *wireRequest, files []uintptr) (int, <-chan unix.WaitStatus, error) {
	path := req.Argv[0]
	if req.Self {
		path = "/proc/self/exe"
	} else if !strings.Contains(path, "/") {
		lp, err := exec.LookPath(path)
		if err != nil {
			return 0, nil, err
		}
		path = lp
	}
	env := os.Environ()
	env = append(env, req.Env...)
	dir := req.Dir
	if dir == "" {
		dir = "/"
	}
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		// A session of its own, so the whole group can be signalled.
		Sys: &syscall.SysProcAttr{Setsid: true},
	}
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, req.Argv, attr)
	if err != nil {
		return 0, nil, err
	}
	r.waiters[pid] = ch
	return pid, ch, nil
}

func serveCtl(r *reaper, c *net.UnixConn) {
	defer c.Close()
	var req wireRequest
	fds, err := readMsg(c, &req)
	if err != nil {
		return
	}
	if req.Op != "exec" {
		defer closeFds(fds)
	}
	switch req.Op {
	case "ping":
		writeMsg(c, wireReply{Pid: os.Getpid()})
	case "exec":
		if len(req.Argv) == 0 || len(fds) != 3 {
			closeFds(fds)
			writeMsg(c, wireReply{Error: "exec needs a command and three descriptors", Code: 126})
			return
		}
		serveExec(r, c, &req, fds) // takes ownership of fds
	case "spawn":
		serveSpawn(r, c, &req)
	default:
		writeMsg(c, wireReply{Error: fmt.Sprintf("unknown op %q", req.Op), Code: 126})
	}
}

func execFailure(argv0 string, err error) wireReply {
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, unix.ENOENT) {
		code = 127
	}
	return wireReply{Error: fmt.Sprintf("exec %q: %v", argv0, err), Code: code}
}

func serveExec(r *reaper, c *net.UnixConn, req *wireRequest, fds []int) {
	pid, wait, err := r.start(req, []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])})
	// Our copies of the command's stdio must close now, or the reader on
	// the other side would never see EOF.
	closeFds(fds)
	if err != nil {
		writeMsg(c, execFailure(req.Argv[0], err))
		return
	}
	if err := writeMsg(c, wireReply{Pid: pid}); err != nil {
		unix.Kill(-pid, unix.SIGKILL)
		<-wait
		return
	}
	// Kill requests, or the connection going away, end the command.
	go func() {
		for {
			var k wireRequest
			if _, err := readMsg(c, &k); err != nil {
				unix.Kill(-pid, unix.SIGKILL)
				return
			}
			if k.Op == "kill" {
				sig := unix.Signal(k.Signal)
				if sig == 0 {
					sig = unix.SIGKILL
				}
				unix.Kill(-pid, sig)
			}
		}
	}()
	ws := <-wait
	rep := wireReply{Exited: true, Pid: pid}
	if ws.Signaled() {
		rep.Signal = int(ws.Signal())
		rep.Code = 128 + rep.Signal
	} else {
		rep.Code = ws.ExitStatus()
	}
	writeMsg(c, rep)
}

func serveSpawn(r *reaper, c *net.UnixConn, req *wireRequest) {
	if len(req.Argv) == 0 {
		writeMsg(c, wireReply{Error: "spawn needs a command", Code: 126})
		return
	}
	logPath := req.Log
	if logPath == "" {
		logPath = "/dev/null"
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		writeMsg(c, wireReply{Error: fmt.Sprintf("open log %s: %v", logPath, err), Code: 126})
		return
	}
	defer logf.Close()
	null, err := os.Open("/dev/null")
	if err != nil {
		writeMsg(c, wireReply{Error: fmt.Sprintf("open /dev/null: %v", err), Code: 126})
		return
	}
	defer null.Close()
	pid, wait, err := r.start(req, []uintptr{null.Fd(), logf.Fd(), logf.Fd()})
	if err != nil {
		writeMsg(c, execFailure(req.Argv[0], err))
		return
	}
	go func() {
		ws := <-wait
		// Record the end in the service's own log, where a learner will look.
		if f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			w := bufio.NewWriter(f)
			fmt.Fprintf(w, "nslab: %s (pid %d) ended: %v\n", req.Argv[0], pid, describeWait(ws))
			w.Flush()
			f.Close()
		}
	}()
	writeMsg(c, wireReply{Pid: pid})
}

func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}
