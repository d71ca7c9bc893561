package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"nslab/labs"
)

// Errors callers can test for with errors.Is.
var (
	// ErrUnsupported: the lab needs a kernel feature this host lacks.
	ErrUnsupported = errors.New("unsupported by this kernel")
	// ErrNodeNotFound: no such node in the sandbox.
	ErrNodeNotFound = errors.New("node not found")
	// ErrGone: the sandbox's processes are no longer running.
	ErrGone = errors.New("sandbox processes are gone")
)

const hubCgroup = "_hub"

// Config is what a Manager needs to know about the host.
type Config struct {
	// NodeBinary, if set, is the binary hubs, the spawner, node inits and
	// services run from (see CheckNodeBinary, which NewManager applies);
	// otherwise they run from this process's own binary.
	NodeBinary string
	// StateDir holds sandboxes/<id>/ (control sockets, /etc/hosts files,
	// logs). Default /run/nslab.
	StateDir string
	// CgroupParent is the cgroup under which <id>/<node> groups are made.
	// Default "nslab".
	CgroupParent string
	// Per-node defaults when a lab sets no limits.
	DefaultPids   int   // default 1024
	DefaultMemory int64 // bytes, default 512 MiB
	// Host-wide caps on everything under CgroupParent, so that all
	// sandboxes together cannot exhaust the host: default half of
	// kernel.pid_max, and three quarters of the host's memory.
	MaxPids   int
	MaxMemory int64
	// NodeNamespaces caps the namespaces of each kind (network, user,
	// pid, ...) a node may hold at once, its own included, whichever of
	// its uids makes them. Default 32.
	NodeNamespaces int
	Logger         *slog.Logger
}

// Manager builds and destroys sandboxes. Everything it made is found
// again from the id; the only state it keeps is which sandboxes it built
// or adopted itself, for which Destroy can skip looking for strays.
type Manager struct {
	stateDir string
	exe      string   // what hubs, the spawner and node inits run: /proc/self/exe, or nodeBin's /proc/self/fd path
	nodeBin  *os.File // Config.NodeBinary, open for the Manager's life
	cg       *cgroups
	cfg      Config
	log      *slog.Logger
	spawn    spawner // starts node inits (spawn.go)
	// whole holds the ids of sandboxes this Manager built or adopted:
	// every process they have is in their cgroups.
	whole sync.Map
	// starts bounds the hub and node processes starting at once, over
	// every build.
	starts chan struct{}
}

// NewManager checks the host and returns a Manager.
func NewManager(cfg Config) (m *Manager, err error) {
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/nslab"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "nslab"
	}
	if cfg.DefaultPids == 0 {
		cfg.DefaultPids = 1024
	}
	if cfg.DefaultMemory == 0 {
		cfg.DefaultMemory = 512 << 20
	}
	if cfg.NodeNamespaces == 0 {
		cfg.NodeNamespaces = DefaultNodeNamespaces
	}
	if cfg.NodeNamespaces < 2 {
		return nil, fmt.Errorf("NodeNamespaces %d: must be at least 2 (a node's own and one more)", cfg.NodeNamespaces)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Before anything is made on the host: a refused binary leaves nothing.
	exe := "/proc/self/exe"
	var nodeBin *os.File
	if cfg.NodeBinary != "" {
		p, err := filepath.Abs(cfg.NodeBinary)
		if err != nil {
			return nil, err
		}
		// Held for the Manager's life: every start execs this file.
		f, err := openNodeBinary(p)
		if err != nil {
			return nil, err
		}
		nodeBin = f
		exe = fdPath(f)
		defer func() {
			if m == nil {
				f.Close()
			}
		}()
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cfg.StateDir = abs
	// Node inits (unprivileged host uids) must traverse to their own files;
	// everything sensitive below is 0600/0700.
	if err := os.MkdirAll(filepath.Join(abs, "sandboxes"), 0o711); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	for _, d := range []string{abs, filepath.Join(abs, "sandboxes")} {
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("state dir %s: %w", abs, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return nil, fmt.Errorf("state dir %s: %s has mode %o: node processes run as unprivileged uids and must be able to search every parent directory", abs, d, fi.Mode().Perm())
		}
		if d == "/" {
			break
		}
	}
	cg, err := newCgroups(cfg.CgroupParent)
	if err != nil {
		return nil, err
	}
	if cfg.MaxPids == 0 {
		cfg.MaxPids = 16384
		if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				cfg.MaxPids = n / 2
			}
		}
	}
	if cfg.MaxMemory == 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err == nil {
			cfg.MaxMemory = int64(si.Totalram) * int64(si.Unit) / 4 * 3
		} else {
			cfg.MaxMemory = 8 << 30
		}
	}
	if err := cg.limitGroup(cgLimits{pids: cfg.MaxPids, memory: cfg.MaxMemory}); err != nil {
		return nil, err
	}
	return &Manager{stateDir: abs, exe: exe, nodeBin: nodeBin, cg: cg, cfg: cfg, log: cfg.Logger,
		starts: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}, nil
}

func (m *Manager) sandboxDir(id string) string {
	return filepath.Join(m.stateDir, "sandboxes", id)
}

// Sandbox is a live sandbox: its hub and node processes.
type Sandbox struct {
	ID      string
	Lab     *labs.Lab
	hub     *proc
	nodes   map[string]*proc
	capture *Capture // nil until StartCapture
	probes  probeLog // flows of the grader's own probes

	// use guards the namespace fds: readers (inspect, snapshot, probes,
	// xdp) hold it shared while they use them; Close takes it exclusively,
	// so an fd is never closed — and its number reused — under a reader.
	use    sync.RWMutex
	closed bool

	// routes holds a NETLINK_ROUTE handle per node, opened once (by the
	// build, or at first use) and closed with the sandbox.
	routesMu sync.Mutex
	routes   map[string]*netlink.Handle
}

// keepHandle files h as node's route handle, to be closed by Close.
func (s *Sandbox) keepHandle(node string, h *netlink.Handle) {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	if s.routes == nil {
		s.routes = map[string]*netlink.Handle{}
	}
	if old := s.routes[node]; old != nil {
		old.Close()
	}
	s.routes[node] = h
}

// routeHandle returns a NETLINK_ROUTE handle in the namespace of node p.
// Callers hold the sandbox (hold) while they use it. The handle has no
// socket of any other family, so nothing asked of it can fall through to
// labd's own namespace.
func (s *Sandbox) routeHandle(p *proc) (*netlink.Handle, error) {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	if h := s.routes[p.name]; h != nil {
		return h, nil
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(p.nsFd()), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if s.routes == nil {
		s.routes = map[string]*netlink.Handle{}
	}
	s.routes[p.name] = h
	return h, nil
}

// hold keeps the sandbox's handles open until release is called; after
// Close it fails with ErrGone.
func (s *Sandbox) hold() (release func(), err error) {
	s.use.RLock()
	if s.closed {
		s.use.RUnlock()
		return nil, fmt.Errorf("sandbox %s: %w", s.ID, ErrGone)
	}
	return s.use.RUnlock, nil
}

// NodeProc identifies a node's init process on the host.
type NodeProc struct {
	Name      string
	Pid       int
	StartTime uint64
}

// Nodes returns the node init processes, in lab order.
func (s *Sandbox) Nodes() []NodeProc {
	var out []NodeProc
	for _, n := range s.Lab.Nodes {
		if p := s.nodes[n.Name]; p != nil {
			out = append(out, NodeProc{Name: n.Name, Pid: p.pid, StartTime: p.start})
		}
	}
	return out
}

// Close releases the handles a Sandbox holds; the sandbox keeps running.
func (s *Sandbox) Close() {
	s.use.Lock()
	defer s.use.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.capture != nil {
		s.capture.Close()
	}
	s.routesMu.Lock()
	for _, h := range s.routes {
		h.Close()
	}
	s.routes = nil
	s.routesMu.Unlock()
	s.hub.close()
	for _, p := range s.nodes {
		p.close()
	}
}

// Build makes a sandbox from a validated lab. uidBases gives each node's
// host uid range (leased by the caller). On any failure everything already
// made is destroyed before Build returns.
func (m *Manager) Build(ctx context.Context, lab *labs.Lab, id string, uidBases map[string]uint32) (_ *Sandbox, err error) {
	if !validID(id) {
		return nil, fmt.Errorf("sandbox id %q: malformed", id)
	}
	if missing := m.Missing(lab.Requires); len(missing) > 0 {
		return nil, fmt.Errorf("lab %s requires %s: %w", lab.ID, strings.Join(missing, ", "), ErrUnsupported)
	}
	for _, n := range lab.Nodes {
		if uidBases[n.Name] == 0 {
			return nil, fmt.Errorf("node %s: no uid range leased", n.Name)
		}
	}
	sb := &Sandbox{ID: id, Lab: lab, nodes: map[string]*proc{}}
	defer Phase(ctx, "build")()
	defer func() {
		if err != nil {
			sb.Close()
			// Roll back with a fresh context: the caller's may be what failed.
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if derr := m.Destroy(dctx, id); derr != nil {
				m.log.Error("rollback failed", "sandbox", id, "err", derr)
			}
		}
	}()
	end := Phase(ctx, "statedir+cgroup")
	if err := os.MkdirAll(m.sandboxDir(id), 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", m.sandboxDir(id), err)
	}
	// Explicitly, whatever labd's umask: node inits must traverse it.
	if err := os.Chmod(m.sandboxDir(id), 0o711); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", m.sandboxDir(id), err)
	}
	hosts := hostsFile(lab)
	// The sandbox as a whole: its nodes' limits summed, plus the hub.
	total := cgLimits{pids: 64, memory: 64 << 20}
	for _, n := range lab.Nodes {
		total.pids += m.cfg.DefaultPids
		if n.Limits.Pids > 0 {
			total.pids += n.Limits.Pids - m.cfg.DefaultPids
		}
		total.memory += m.cfg.DefaultMemory + initMemory
		if n.Limits.MemoryBytes > 0 {
			total.memory += n.Limits.MemoryBytes - m.cfg.DefaultMemory
		}
	}
	if err := m.cg.limitGroup(total, id); err != nil {
		return nil, err
	}
	end()

	if err := m.build(ctx, sb, uidBases, hosts); err != nil {
		return nil, err
	}
	m.whole.Store(id, true)
	return sb, nil
}

// hostsFile names every node of the lab by each of its addresses.
func hostsFile(lab *labs.Lab) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, n := range lab.Nodes {
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil {
					fmt.Fprintf(&b, "%s\t%s\n", p.Addr(), n.Name)
				}
			}
		}
	}
	return b.Bytes()
}

// Destroy kills every process of the sandbox, which takes its namespaces,
// links and bridges with it, and removes its cgroups and state directory.
// Destroying a sandbox that is already gone is not an error.
func (m *Manager) Destroy(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("sandbox id %q: malformed", id)
	}
	defer Phase(ctx, "destroy")()
	// A hub or init is outside its cgroups only between its start and
	// its join, inside a Build; one that fails to join is killed there,
	// and one whose labd dies meanwhile exits when it reads EOF where it
	// waits for labd's go-ahead. So a sandbox this Manager built or
	// adopted has every process in its cgroups, and only others (orphans
	// found by Scan after a restart) need the walk over /proc, whose cost
	// grows with every process on the host.
	if _, whole := m.whole.LoadAndDelete(id); !whole {
		end := Phase(ctx, "destroy.strays")
		for _, pid := range m.strayProcs(id) {
			unix.Kill(pid, unix.SIGKILL)
		}
		end()
	}
	// Nothing reads the state directory once the processes are told to
	// die: remove it while they exit.
	dirErr := make(chan error, 1)
	go func() {
		defer Phase(ctx, "destroy.statedir")()
		if err := os.RemoveAll(m.sandboxDir(id)); err != nil {
			dirErr <- fmt.Errorf("remove state of %s: %w", id, err)
		}
		close(dirErr)
	}()
	var errs []error
	end := Phase(ctx, "destroy.cgroups")
	if err := m.cg.destroy(id, time.Until(deadlineOf(ctx, 30*time.Second))); err != nil {
		errs = append(errs, err)
	}
	end()
	if err := <-dirErr; err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// strayProcs finds this instance's hub and init processes of sandbox id
// by their argv, wherever their cgroup is.
func (m *Manager) strayProcs(id string) []int {
	var out []int
	for pid, args := range m.taggedProcs() {
		if args[2] == id {
			out = append(out, pid)
		}
	}
	return out
}

// taggedProcs maps pid -> argv of every hub or init of this state dir.
func (m *Manager) taggedProcs() map[int][]string {
	out := map[int][]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.HasPrefix(b, []byte("nslab-")) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 3 && (args[0] == argv0Init || args[0] == argv0Hub) && args[1] == m.stateDir {
			out[pid] = args
		}
	}
	return out
}

// Scan lists the ids of every sandbox of this instance that has anything
// on the host: a cgroup, a state directory or a hub/init process.
func (m *Manager) Scan() []string {
	seen := map[string]bool{}
	for _, id := range m.cg.sandboxes() {
		seen[id] = true
	}
	entries, _ := os.ReadDir(filepath.Join(m.stateDir, "sandboxes"))
	for _, e := range entries {
		if validID(e.Name()) {
			seen[e.Name()] = true
		}
	}
	for _, args := range m.taggedProcs() {
		if validID(args[2]) {
			seen[args[2]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	return out
}

// Adopt re-attaches to a sandbox built by an earlier run of labd. Every
// node's init must still be the same process (pid and start time) and
// answer on its control socket.
func (m *Manager) Adopt(ctx context.Context, lab *labs.Lab, id string, nodes []NodeProc) (_ *Sandbox, err error) {
	sb := &Sandbox{ID: id, Lab: lab, nodes: map[string]*proc{}}
	defer func() {
		if err != nil {
			sb.Close()
		}
	}()
	open := func(name string, pid int, start uint64, ctl string) (*proc, error) {
		got, err := procStartTime(pid)
		if err != nil || got != start {
			return nil, fmt.Errorf("%s (pid %d): %w", name, pid, ErrGone)
		}
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, ErrGone)
		}
		return &proc{name: name, pid: pid, start: start, netns: ns, ctl: ctl}, nil
	}
	hubPids := m.cg.procsOf(id, hubCgroup)
	if len(hubPids) != 1 {
		return nil, fmt.Errorf("hub: %w", ErrGone)
	}
	st, _ := procStartTime(hubPids[0])
	if sb.hub, err = open("hub", hubPids[0], st, ""); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		p, err := open(n.Name, n.Pid, n.StartTime, filepath.Join(m.sandboxDir(id), n.Name, "ctl.sock"))
		if err != nil {
			return nil, err
		}
		sb.nodes[n.Name] = p
		if err := p.ping(); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", n.Name, ErrGone, err)
		}
	}
	if len(sb.nodes) != len(lab.Nodes) {
		return nil, fmt.Errorf("%d of %d nodes recorded: %w", len(sb.nodes), len(lab.Nodes), ErrGone)
	}
	// The ring starts empty: what crossed the links while labd was down
	// was not seen by anyone.
	if err := sb.StartCapture(0); err != nil {
		return nil, fmt.Errorf("start capture: %w", err)
	}
	m.whole.Store(id, true)
	return sb, nil
}

// Exec runs a command as root of node, inside all of its namespaces and
// its cgroup, streaming output to out.
func (s *Sandbox) Exec(ctx context.Context, node string, req ExecRequest, out OutputFunc) (ExitStatus, error) {
	p := s.nodes[node]
	if p == nil {
		return ExitStatus{}, fmt.Errorf("node %q in sandbox %s: %w", node, s.ID, ErrNodeNotFound)
	}
	return p.exec(ctx, req, out)
}

// HasNode reports whether the sandbox has a node of that name.
func (s *Sandbox) HasNode(node string) bool { return s.nodes[node] != nil }
