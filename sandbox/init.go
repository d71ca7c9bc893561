package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Files handed to a node init by labd, in ExtraFiles order.
const (
	initFdListener = 3 // SOCK_SEQPACKET listener for the control channel
	initFdCgroup   = 4 // write-only: the node's memory cgroup, for the fork thread (initGroup)
	initFdGo       = 5 // read end: one byte once labd has placed us in our cgroups; EOF = abort
	initFdReady    = 6 // write end: "ok\n" or the setup error
)

const nodePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nodeHome is root's home in interactive shells when the host's is not
// readable in the node (it normally is not).
const nodeHome = "/run/nslab/root"

// initMain is PID 1 of a node. args: stateDir sandbox node.
func initMain(args []string) int {
	if len(args) != 3 {
		return fatalf("usage: %s STATEDIR SANDBOX NODE", argv0Init)
	}
	// STATEDIR and SANDBOX are in argv for labd to find its inits by.
	node := args[2]
	// Nothing this process was handed — the control listener, the pipes,
	// anything labd itself inherited — may pass on to the commands it
	// runs: a node holding the listener could answer labd's requests.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fatalf("mark descriptors close-on-exec: %v", err)
	}
	// As PID 1 of its pid namespace the kernel already drops signals
	// without a handler (SIGKILL and SIGSTOP from inside the node among
	// them), but the Go runtime installs a handler for every signal and
	// dies of some (SIGABRT, SIGTRAP, SIGSYS...) when they come from
	// kill(2). Relaying all of them to a channel nobody reads keeps a
	// learner's `kill -<any> 1` from ending the node. (signal.Ignore would
	// do, but SIG_IGN survives exec and every command run in the node
	// would inherit it; handled signals are reset.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs)
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
	if err := setupNode(node); err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		return 1
	}
	mnt, err := newNodeThread()
	if err != nil {
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

	r := newReaper(mnt)
	go r.run()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return 1
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: don't spin
			continue
		}
		go serveCtl(r, c.(*net.UnixConn))
	}
}

// setupNode gives the node its hostname and the settings every node
// starts with. Its mount table was built by the spawner before the init
// was released (spawn.go).
func setupNode(node string) error {
	if err := unix.Sethostname([]byte(node)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
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

// nodeThread is the one OS thread of the init that lives in the node's own
// mount namespace, the one its commands get. The init's other threads stay
// in the mount namespace the spawner built, which belongs to the spawner's
// user namespace: the node's root can change nothing there. The node's
// namespace is a copy of it made from the node's user namespace, so the
// kernel locks every mount in it: none can be unmounted, or remounted
// with fewer restrictions, to reveal what is beneath. Every command is
// forked from this thread, and every path a request names is resolved
// here, as the node's processes see it.
type nodeThread struct{ fns chan func() }

func newNodeThread() (*nodeThread, error) {
	t := &nodeThread{fns: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: no other goroutine may run on this thread.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("make the node's mount namespace: %w", err)
			return // the thread ends with the goroutine
		}
		// Commands are born in this thread's cgroups: the node's, while
		// the init itself is charged apart (labd's initGroup). "0", not
		// the tid: the kernel moves the writing thread alone without its
		// global threadgroup lock, which waits out an RCU grace period
		// (see bornInside).
		_, err := unix.Write(initFdCgroup, []byte("0"))
		unix.Close(initFdCgroup)
		if err != nil {
			errc <- fmt.Errorf("join the node's memory cgroup: %w", err)
			return
		}
		errc <- nil
		for f := range t.fns {
			f()
		}
	}()
	return t, <-errc
}

// do runs f on the thread and returns when it has.
func (t *nodeThread) do(f func()) {
	done := make(chan struct{})
	t.fns <- func() {
		defer close(done)
		f()
	}
	<-done
}

// reaper is PID 1's wait loop. Children are started while holding mu and
// the reaper only waits while holding mu, so a child that exits at once
// is never reaped before its waiter is registered.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	sigc    chan os.Signal
	mnt     *nodeThread
}

func newReaper(mnt *nodeThread) *reaper {
	r := &reaper{waiters: map[int]chan unix.WaitStatus{}, sigc: make(chan os.Signal, 1), mnt: mnt}
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

// start forks and execs argv with the given stdio in a session of its
// own; with ctty, files[0] (a pty slave) becomes the session's
// controlling terminal. The returned channel yields its wait status once.
// The command is forked from the node's mount thread, into the node's
// mount namespace.
func (r *reaper) start(req *wireRequest, files []uintptr, ctty bool) (pid int, wait <-chan unix.WaitStatus, err error) {
	r.mnt.do(func() { pid, wait, err = r.startHere(req, files, ctty) })
	return pid, wait, err
}

func (r *reaper) startHere(req *wireRequest, files []uintptr, ctty bool) (int, <-chan unix.WaitStatus, error) {
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
	env := mergeEnv(os.Environ(), req.Env)
	dir := req.Dir
	if dir == "" {
		dir = "/"
	}
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		// A session of its own, so the whole group can be signalled.
		// A cgroup namespace rooted at the node's own cgroup, so
		// /proc/self/cgroup names nothing of the host's tree.
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: ctty, Ctty: 0, Unshareflags: syscall.CLONE_NEWCGROUP},
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

// mergeEnv returns base with add applied, a later KEY=VALUE replacing an
// earlier one: with duplicates, getenv would see the first and bash the
// last.
func mergeEnv(base, add []string) []string {
	out := make([]string, 0, len(base)+len(add))
	at := map[string]int{}
	for _, list := range [][]string{base, add} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := at[k]; ok {
				out[i] = kv
				continue
			}
			at[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
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
	case "pty":
		servePty(r, c, &req)
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
	pid, wait, err := r.start(req, []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])}, false)
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
	supervise(c, pid, wait, func(sig unix.Signal) { unix.Kill(-pid, sig) }, nil)
}

// supervise passes kill requests on c to kill, calls kill(SIGKILL)
// when c goes away, and once the command has exited runs ended (if any)
// and reports the exit on c.
func supervise(c *net.UnixConn, pid int, wait <-chan unix.WaitStatus, kill func(unix.Signal), ended func()) {
	go func() {
		for {
			var k wireRequest
			if _, err := readMsg(c, &k); err != nil {
				kill(unix.SIGKILL)
				return
			}
			if k.Op == "kill" {
				sig := unix.Signal(k.Signal)
				if sig == 0 {
					sig = unix.SIGKILL
				}
				kill(sig)
			}
		}
	}()
	ws := <-wait
	if ended != nil {
		ended()
	}
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
	// Paths as the node's processes see them, in its mount namespace.
	// O_NONBLOCK: the node owns the path, and opening a FIFO it put
	// there must not hold the thread every command is forked from.
	var logf, null *os.File
	var err error
	r.mnt.do(func() {
		if logf, err = os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NONBLOCK, 0o644); err != nil {
			err = fmt.Errorf("open log %s: %v", logPath, err)
			return
		}
		if null, err = os.Open("/dev/null"); err != nil {
			logf.Close()
			err = fmt.Errorf("open /dev/null: %v", err)
		}
	})
	if err != nil {
		writeMsg(c, wireReply{Error: err.Error(), Code: 126})
		return
	}
	defer logf.Close()
	defer null.Close()
	pid, wait, err := r.start(req, []uintptr{null.Fd(), logf.Fd(), logf.Fd()}, false)
	if err != nil {
		writeMsg(c, execFailure(req.Argv[0], err))
		return
	}
	go func() {
		ws := <-wait
		// Record the end in the service's own log, where a learner will
		// look. Raw, non-blocking calls: whatever the node has put at that
		// path by now, the mount thread must not wait on it.
		msg := fmt.Sprintf("nslab: %s (pid %d) ended: %v\n", req.Argv[0], pid, describeWait(ws))
		r.mnt.do(func() {
			if fd, err := unix.Open(logPath, unix.O_WRONLY|unix.O_APPEND|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
				unix.Write(fd, []byte(msg))
				unix.Close(fd)
			}
		})
	}()
	writeMsg(c, wireReply{Pid: pid})
}

func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// servePty runs a command on a new pseudo-terminal of the node's own
// devpts, as the leader of a session whose controlling terminal it is, so
// the line discipline turns ^C, ^Z and ^\ into signals for the
// foreground job. labd gets the master with the reply. When the command
// exits or labd goes away, every process left in the session dies with
// it: background jobs too, not only the leader's process group.
func servePty(r *reaper, c *net.UnixConn, req *wireRequest) {
	var master, slave int
	var err error
	// Paths as the node's processes see them, in its mount namespace.
	r.mnt.do(func() { master, slave, err = preparePty(req) })
	if err != nil {
		writeMsg(c, wireReply{Error: err.Error(), Code: 126})
		return
	}
	pid, wait, err := r.start(req, []uintptr{uintptr(slave), uintptr(slave), uintptr(slave)}, true)
	// Only the session may hold the slave: once it is gone, labd reads EIO.
	unix.Close(slave)
	if err != nil {
		unix.Close(master)
		writeMsg(c, execFailure(req.Argv[0], err))
		return
	}
	werr := writeMsg(c, wireReply{Pid: pid}, master)
	unix.Close(master)
	if werr != nil {
		killSession(pid)
		<-wait
		killSession(pid)
		return
	}
	// After the exit has been handled the session id may be free for
	// reuse, so a late kill must not look for it any more.
	var mu sync.Mutex
	done := false
	kill := func(sig unix.Signal) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case done:
		case sig == unix.SIGKILL:
			killSession(pid)
		default:
			unix.Kill(-pid, sig)
		}
	}
	supervise(c, pid, wait, kill, func() {
		mu.Lock()
		defer mu.Unlock()
		killSession(pid)
		done = true
	})
}

// preparePty picks the shell, prompt and home for a pty session and opens
// the pseudo-terminal.
func preparePty(req *wireRequest) (master, slave int, err error) {
	if len(req.Argv) == 0 {
		req.Argv = []string{"sh", "-l"}
		if _, err := exec.LookPath("bash"); err == nil {
			req.Argv = []string{"bash", "-l"}
		}
	}
	has := func(key string) bool {
		return slices.ContainsFunc(req.Env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	}
	if !has("PS1") {
		// The node's name even where no bashrc sets a prompt; only bash
		// knows \w.
		ps1 := "root@" + os.Getenv("HOSTNAME") + "# "
		if filepath.Base(req.Argv[0]) == "bash" {
			ps1 = "root@" + os.Getenv("HOSTNAME") + `:\w# `
		}
		req.Env = append([]string{"PS1=" + ps1}, req.Env...)
	}
	if home := os.Getenv("HOME"); !has("HOME") && unix.Access(home, unix.R_OK|unix.X_OK) != nil {
		// The host's /root belongs to an unmapped owner, and a login
		// shell would complain on entry and exit that it cannot read its
		// profile there. A home of the node's own also keeps history.
		if err := os.MkdirAll(nodeHome, 0o700); err == nil {
			req.Env = append([]string{"HOME=" + nodeHome}, req.Env...)
		}
	}
	return openPty(req.Rows, req.Cols)
}

// openPty opens a pseudo-terminal pair sized rows x cols (when given).
func openPty(rows, cols int) (master, slave int, err error) {
	master, err = unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(master)
		}
	}()
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return -1, -1, fmt.Errorf("unlock pseudo-terminal: %w", err)
	}
	if rows > 0 && cols > 0 {
		ws := &unix.Winsize{Row: uint16(rows), Col: uint16(cols)}
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, ws); err != nil {
			return -1, -1, fmt.Errorf("set terminal size: %w", err)
		}
	}
	// The peer straight from the master needs no path in /dev/pts, which
	// the node's root may have remounted; older kernels lack it.
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER,
		uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno == 0 {
		return master, int(fd), nil
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		return -1, -1, fmt.Errorf("pseudo-terminal number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("open %s: %w", name, err)
	}
	return master, slave, nil
}

// killSession SIGKILLs every process of session sid until none is left.
// Killing the process group alone would miss background jobs, which
// have groups of their own.
func killSession(sid int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		unix.Kill(-sid, unix.SIGKILL)
		left := sessionMembers(sid)
		for _, pid := range left {
			unix.Kill(pid, unix.SIGKILL)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return
		}
		// Killed processes take a moment to become zombies; forks in
		// flight join the session meanwhile.
		time.Sleep(2 * time.Millisecond)
	}
}

// sessionMembers lists the live (not zombie) processes of session sid,
// from the node's /proc.
func sessionMembers(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 4 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if s, err := strconv.Atoi(f[3]); err == nil && s == sid {
			out = append(out, pid)
		}
	}
	return out
}
