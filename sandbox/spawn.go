package sandbox

import (
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

// Node inits are started by a helper process of labd's, the spawner
// ("nslab-spawn", one per Manager, started with the first node). It runs
// in a user namespace of its own that maps every host id to itself, so it
// acts as root over files, but holds capabilities only over that
// namespace and what descends from it: every node's user namespace. This
// buys three things labd's own host-root process cannot have:
//
//   - Per-node namespace limits. The kernel counts the namespaces made
//     anywhere below a user namespace against its owner, one level up.
//     Each node's user namespace is created with the node's own host uid
//     as its owner, so every namespace made in the node, by any of its
//     65536 uids, is counted against that uid in the spawner's namespace,
//     whose user.max_*_namespaces only the spawner can write. At the
//     host level they all count against the overflow uid, not root's.
//   - Mounts the node cannot peel. For each node the spawner builds the
//     mount table in a mount namespace owned by its own user namespace:
//     tmpfs over /tmp, /var/tmp, /dev/shm and /run, a devpts, the node's
//     /etc/hosts and /etc/hostname, a proc of the node's pid namespace and
//     a sysfs of its network namespace. The init's commands live in a
//     copy of it made from the node's user namespace, where the kernel
//     locks every mount it copied (MNT_LOCKED): none can be unmounted or
//     made writable, so nothing of the host beneath is ever revealed.
//   - An init the node cannot trace: the init runs from a copy of this
//     binary that only root may read (mode 0711), so the kernel makes it
//     non-dumpable with its memory owned by the spawner's namespace.
const argv0Spawn = "nslab-spawn"

// Files handed to the spawner, in ExtraFiles order.
const spawnFdConn = 3 // SOCK_SEQPACKET: requests from labd

// secbitNoSetuidFixup keeps a thread's capabilities when its effective
// uid leaves 0 (linux/securebits.h).
const secbitNoSetuidFixup = 1 << 2

// Namespace limits per node (each node's own namespaces included).
const (
	// DefaultNodeNamespaces is Config.NodeNamespaces when unset.
	DefaultNodeNamespaces = 32
	// Every command runs in a cgroup namespace of its own, so these are
	// bounded by the node's pids limit (at most 4096) rather than here.
	nodeCgroupNamespaces = 8192
)

// spawnRequest asks the spawner to start one node init. Descriptors come
// with it: the reply socket, the init's log (stdout and stderr), then the
// init's extra files (control listener, cgroup file, go and ready pipes).
type spawnRequest struct {
	Exe  string   `json:"exe"`
	Argv []string `json:"argv"`
	UID  uint32   `json:"uid"` // host uid (and gid) of the node's root
	Dir  string   `json:"dir"` // the node's state dir: hosts, hostname
	// Join is how many of the last descriptors sent are cgroup tasks
	// files: the starting thread joins them (threadJoin) before it
	// forks, so the init is born in its cgroups. They are not the init's.
	Join int `json:"join,omitempty"`
}

// spawnReply answers a spawnRequest with the init's host pid.
type spawnReply struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// spawner is labd's handle on its spawner process.
type spawner struct {
	mu   sync.Mutex
	conn *net.UnixConn // nil until started, and again after it broke
	exe  string        // the init binary: a copy of this one only root may read
}

// initExe makes (once per Manager) the copy of this binary that node inits
// run from: owned by root, mode 0711, so a node may execute it but not
// read it. Exec of a file the new process cannot read makes it
// non-dumpable (the kernel's would_dump), which keeps the node's root
// from tracing its init or reading its memory and descriptors.
func (m *Manager) initExe() (string, error) {
	dst := filepath.Join(m.stateDir, argv0Init)
	var st unix.Statfs_t
	if err := unix.Statfs(m.stateDir, &st); err == nil && st.Flags&unix.ST_NOEXEC != 0 {
		return "", fmt.Errorf("state dir %s is on a noexec mount: node inits run from a copy of labd's binary there", m.stateDir)
	}
	src, err := os.Open(m.exe)
	if err != nil {
		return "", fmt.Errorf("open own binary: %w", err)
	}
	defer src.Close()
	// While the copy is open for writing, no other goroutine may fork: a
	// child between fork and exec would hold the descriptor, and exec of
	// the copy would fail with ETXTBSY.
	syscall.ForkLock.RLock()
	tmp, err := func() (string, error) {
		f, err := os.CreateTemp(m.stateDir, argv0Init+".*.tmp")
		if err != nil {
			return "", err
		}
		_, cerr := io.Copy(f, src)
		if err := f.Close(); cerr == nil {
			cerr = err
		}
		return f.Name(), cerr
	}()
	syscall.ForkLock.RUnlock()
	if err == nil {
		err = os.Chmod(tmp, 0o711) // root's, executable by all, readable by none else
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return "", fmt.Errorf("copy own binary to %s: %w", dst, err)
	}
	return dst, nil
}

// spawnConn returns the connection to a running spawner, starting one
// (and the init binary) if there is none.
func (m *Manager) spawnConn() (*net.UnixConn, string, error) {
	s := &m.spawn
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, s.exe, nil
	}
	if s.exe == "" {
		exe, err := m.initExe()
		if err != nil {
			return nil, "", err
		}
		s.exe = exe
	}
	conn, err := m.startSpawner()
	if err != nil {
		return nil, "", err
	}
	s.conn = conn
	return conn, s.exe, nil
}

// dropSpawner forgets a spawner whose connection failed, so the next node
// start makes a new one.
func (m *Manager) dropSpawner(conn *net.UnixConn) {
	s := &m.spawn
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == conn {
		s.conn.Close()
		s.conn = nil
	}
}

// Close stops the Manager's helper process; sandboxes keep running. A
// Manager may start nodes again after Close (it starts a new helper).
func (m *Manager) Close() {
	s := &m.spawn
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close() // the spawner exits on EOF
		s.conn = nil
	}
}

// startSpawner starts the spawner in a user namespace of its own owned by
// the overflow uid: every node's namespaces are counted, at the host
// level, against that uid and not against root's (labd's).
func (m *Manager) startSpawner() (*net.UnixConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawner socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "spawn"), os.NewFile(uintptr(fds[1]), "spawn")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, err
	}
	conn := fc.(*net.UnixConn)
	owner := overflowUID()
	all := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1<<32 - 1}}
	cmd := &exec.Cmd{
		Path:       m.exe,
		Args:       []string{argv0Spawn, strconv.Itoa(m.cfg.NodeNamespaces)},
		Env:        []string{"PATH=" + nodePath},
		Dir:        "/",
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{theirs},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:                 unix.CLONE_NEWUSER,
			UidMappings:                all,
			GidMappings:                all,
			GidMappingsEnableSetgroups: true,
			Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		},
	}
	if err := asOwner(owner, cmd.Start); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start %s: %w", argv0Spawn, err)
	}
	go cmd.Wait()
	var rep spawnReply
	fds2, err := readMsg(conn, &rep)
	closeFds(fds2)
	if err == nil && rep.Error != "" {
		err = errors.New(rep.Error)
	}
	if err != nil {
		conn.Close()
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start: %w", argv0Spawn, err)
	}
	return conn, nil
}

func overflowUID() int {
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return 65534
}

// asOwner runs start on a thread of its own whose effective uid is uid,
// with every capability kept (SECBIT_NO_SETUID_FIXUP): a user namespace
// created from that thread is owned by uid, and the thread can still
// write its id maps. The thread is never reused: it ends with the
// goroutine.
func asOwner(uid int, start func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // for good: this thread's credentials are odd
		errc <- func() error {
			if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, secbitNoSetuidFixup, 0, 0, 0, 0); e != 0 {
				return fmt.Errorf("keep capabilities: %w", e)
			}
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
				return fmt.Errorf("set effective uid %d: %w", uid, e)
			}
			return start()
		}()
	}()
	return <-errc
}

// spawnNode asks the spawner to start a node init; files are the init's
// extra files (fds 3...). It waits for the answer until deadline.
func (m *Manager) spawnNode(req spawnRequest, log *os.File, files []*os.File, deadline time.Time) (int, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		conn, exe, err := m.spawnConn()
		if err != nil {
			return 0, err
		}
		req.Exe = exe
		pid, err := spawnOnce(conn, req, log, files, deadline)
		if err == nil {
			return pid, nil
		}
		var se spawnError
		if errors.As(err, &se) || errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err // the spawner answered, or the caller gave up
		}
		// The spawner is gone (it crashed, or was killed): start another.
		m.dropSpawner(conn)
		lastErr = err
	}
	return 0, lastErr
}

// spawnError is a failure the spawner reported (as opposed to losing it).
type spawnError struct{ msg string }

func (e spawnError) Error() string { return e.msg }

func spawnOnce(conn *net.UnixConn, req spawnRequest, log *os.File, files []*os.File, deadline time.Time) (int, error) {
	// A socket pair per request: the spawner answers on its end, so
	// concurrent node starts never see each other's replies.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("spawn socket: %w", err)
	}
	replyF := os.NewFile(uintptr(pair[0]), "spawn-reply")
	defer replyF.Close()
	fds := []int{pair[1], int(log.Fd())}
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	werr := writeMsg(conn, req, fds...)
	unix.Close(pair[1])
	runtime.KeepAlive(log)
	runtime.KeepAlive(files)
	if werr != nil {
		return 0, fmt.Errorf("send to %s: %w", argv0Spawn, werr)
	}
	fc, err := net.FileConn(replyF)
	if err != nil {
		return 0, err
	}
	rc := fc.(*net.UnixConn)
	defer rc.Close()
	rc.SetReadDeadline(deadline)
	var rep spawnReply
	rfds, err := readMsg(rc, &rep)
	closeFds(rfds)
	if err != nil {
		return 0, fmt.Errorf("reply from %s: %w", argv0Spawn, err)
	}
	if rep.Error != "" {
		return 0, spawnError{rep.Error}
	}
	return rep.Pid, nil
}

// spawnMain is the spawner process. args: namespaces-per-node.
func spawnMain(args []string) int {
	conn, err := func() (*net.UnixConn, error) {
		f := os.NewFile(spawnFdConn, "spawn")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}()
	if err != nil {
		return fatalf("connection to labd: %v", err)
	}
	if err := setNamespaceLimits(args); err != nil {
		writeMsg(conn, spawnReply{Error: err.Error()})
		return 1
	}
	if err := writeMsg(conn, spawnReply{}); err != nil {
		return 1
	}
	for {
		var req spawnRequest
		fds, err := readMsg(conn, &req)
		if err != nil {
			var oe *net.OpError
			if errors.Is(err, net.ErrClosed) || errors.As(err, &oe) {
				return 0 // labd closed its end, or went away
			}
			continue // a malformed request: labd's bug, already logged there
		}
		go serveSpawnRequest(req, fds)
	}
}

// setNamespaceLimits caps, per node, the namespaces of each type that the
// node (all of its uids together) may hold at once, its own included.
func setNamespaceLimits(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: %s NAMESPACES-PER-NODE", argv0Spawn)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 2 {
		return fmt.Errorf("namespaces per node %q: must be a number of at least 2", args[0])
	}
	limits := map[string]int{
		"user": n, "net": n, "pid": n, "ipc": n, "uts": n, "time": n,
		// `ip netns exec` makes a mount namespace for each command.
		"mnt":    4 * n,
		"cgroup": nodeCgroupNamespaces,
	}
	for kind, v := range limits {
		p := "/proc/sys/user/max_" + kind + "_namespaces"
		if err := os.WriteFile(p, []byte(strconv.Itoa(v)), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

func serveSpawnRequest(req spawnRequest, fds []int) {
	if len(fds) < 2 {
		closeFds(fds)
		return
	}
	reply := os.NewFile(uintptr(fds[0]), "reply")
	files := make([]*os.File, len(fds)-1)
	for i, fd := range fds[1:] {
		files[i] = os.NewFile(uintptr(fd), "fd")
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	c, err := net.FileConn(reply)
	reply.Close()
	if err != nil {
		return
	}
	rc := c.(*net.UnixConn)
	defer rc.Close()
	// The whole start runs on a thread of its own, which is discarded
	// afterwards: it changes mount namespace, credentials and network
	// namespace.
	type res struct {
		pid int
		cmd *exec.Cmd
		err error
	}
	if req.Join < 0 || req.Join > len(files)-1 {
		writeMsg(rc, spawnReply{Error: fmt.Sprintf("spawn: %d cgroup files of %d descriptors", req.Join, len(files))})
		return
	}
	tasks := files[len(files)-req.Join:]
	resc := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := threadJoin(tasks); err != nil {
			resc <- res{err: err}
			return
		}
		cmd, err := startNodeInit(req, files[0], files[1:len(files)-req.Join])
		if cmd != nil && err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			cmd = nil
		}
		r := res{cmd: cmd, err: err}
		if cmd != nil {
			r.pid = cmd.Process.Pid
		}
		resc <- r
	}()
	r := <-resc
	if r.err != nil {
		writeMsg(rc, spawnReply{Error: r.err.Error()})
		return
	}
	go r.cmd.Wait() // the spawner reaps its inits
	writeMsg(rc, spawnReply{Pid: r.pid})
}

// startNodeInit runs on a locked thread that is thrown away afterwards. It
// gives the thread a mount namespace of its own (owned by the spawner's
// user namespace), starts the init there in new user, network, pid, UTS
// and IPC namespaces, and then builds the node's mount table in it.
func startNodeInit(req spawnRequest, log *os.File, extra []*os.File) (*exec.Cmd, error) {
	if len(req.Argv) == 0 || req.UID == 0 || req.Exe == "" || req.Dir == "" {
		return nil, errors.New("spawn: incomplete request")
	}
	uid := int(req.UID)
	cmd := &exec.Cmd{
		Path:       req.Exe,
		Args:       req.Argv,
		Env:        []string{"PATH=" + nodePath},
		Dir:        "/",
		Stdout:     log,
		Stderr:     log,
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			// No CLONE_NEWNS: the init starts in this thread's mount
			// namespace, which belongs to the spawner's user namespace,
			// and makes its commands' namespace from it (locked).
			Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: UIDRange}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: UIDRange}},
			GidMappingsEnableSetgroups: true,
			// Become root *of the node*: host uid 0 is not mapped inside,
			// so the init holds no host privilege at all.
			Credential: &syscall.Credential{Uid: 0, Gid: 0},
			Setsid:     true,
		},
	}
	// As the node's own uid, so that the node's user namespace is owned
	// by it, and every namespace made for the node (this mount namespace
	// included) is counted against it, not against the spawner's root.
	err := asOwnerHere(uid, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("new mount namespace: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make / private: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", req.Argv[0], err)
		}
		return nil
	})
	if err != nil {
		if cmd.Process != nil {
			return cmd, err
		}
		return nil, err
	}
	return cmd, nodeMounts(req, cmd.Process.Pid)
}

// asOwnerHere is asOwner on the calling (locked) thread, restoring the
// effective uid afterwards.
func asOwnerHere(uid int, start func() error) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, secbitNoSetuidFixup, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("keep capabilities: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
		return fmt.Errorf("set effective uid %d: %w", uid, e)
	}
	err := start()
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 && err == nil {
		err = fmt.Errorf("restore effective uid: %w", e)
	}
	return err
}

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

// nodeMounts builds the node's mount table in the calling thread's mount
// namespace, where the init (pid, on the host) waits: its own /etc/hosts
// and /etc/hostname, tmpfs directories, a devpts, a proc of its pid
// namespace and a sysfs of its network namespace. Everything belongs to
// the node's root; the init copies the table into a mount namespace of
// the node's user namespace, where the kernel locks it.
func nodeMounts(req spawnRequest, pid int) error {
	// The node's own files first: /run or /tmp, where the state directory
	// may live, are covered next.
	for _, f := range []string{"hosts", "hostname"} {
		if _, err := os.Stat("/etc/" + f); err != nil {
			continue
		}
		if err := unix.Mount(filepath.Join(req.Dir, f), "/etc/"+f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /etc/%s: %w", f, err)
		}
	}
	owner := fmt.Sprintf(",uid=%d,gid=%d", req.UID, req.UID)
	for _, t := range nodeTmpfs {
		if _, err := os.Stat(t.path); err != nil {
			continue
		}
		if err := unix.Mount("tmpfs", t.path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, t.opts+owner); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", t.path, err)
		}
	}
	// gid 5 is "tty" in the node's (the host's) /etc/group.
	pts := fmt.Sprintf("newinstance,ptmxmode=0666,mode=0620,gid=%d", req.UID+5)
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, pts); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := unix.Mount("/dev/pts/ptmx", "/dev/ptmx", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /dev/ptmx: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("pidns=/proc/%d/ns/pid", pid)); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// A sysfs shows the network namespace of whoever mounts it. This
	// thread is discarded afterwards, so it need not switch back.
	ns, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of the init: %w", err)
	}
	defer unix.Close(ns)
	if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter the node's network namespace: %w", err)
	}
	// Read-only: nothing in it is the node's to change.
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	return nil
}
