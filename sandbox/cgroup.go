package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroups places sandbox processes in <parent>/<sandbox>/<node> under
// every hierarchy that limits them: the v1 pids, memory and cpu
// controllers where they are mounted (as on this kind of machine), or the
// unified v2 hierarchy when that is all there is.
type cgroups struct {
	parent string
	v2     bool
	roots  []string // v1: one per controller; v2: the unified root
}

func newCgroups(parent string) (*cgroups, error) {
	if parent == "" || strings.Contains(parent, "..") || strings.HasPrefix(parent, "/") {
		return nil, fmt.Errorf("cgroup parent %q: must be a relative path without ..", parent)
	}
	cg := &cgroups{parent: parent}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		cg.v2 = true
		cg.roots = []string{cgroupRoot}
		return cg, nil
	}
	for _, c := range []string{"pids", "memory", "cpu"} {
		root := filepath.Join(cgroupRoot, c)
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err == nil {
			cg.roots = append(cg.roots, root)
		}
	}
	if len(cg.roots) == 0 {
		return nil, errors.New("no pids, memory or cpu cgroup hierarchy mounted under /sys/fs/cgroup")
	}
	return cg, nil
}

func (cg *cgroups) dirs(parts ...string) []string {
	out := make([]string, 0, len(cg.roots))
	for _, r := range cg.roots {
		out = append(out, filepath.Join(append([]string{r, cg.parent}, parts...)...))
	}
	return out
}

type cgLimits struct {
	pids      int
	memory    int64
	cpuWeight int // relative share, 1..10000 (v2 weight); 0 = default
}

// create makes the node's cgroup and sets its limits.
func (cg *cgroups) create(sandbox, node string, lim cgLimits) error {
	if cg.v2 {
		// Controllers must be enabled on every ancestor for the leaf to have them.
		p := cgroupRoot
		for _, part := range append(strings.Split(cg.parent, "/"), sandbox) {
			p = filepath.Join(p, part)
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("create cgroup %s: %w", p, err)
			}
			_ = os.WriteFile(filepath.Join(filepath.Dir(p), "cgroup.subtree_control"), []byte("+pids +memory +cpu"), 0)
		}
		_ = os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte("+pids +memory +cpu"), 0)
	}
	for _, d := range cg.dirs(sandbox, node) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	var writes [][2]string
	if cg.v2 {
		d := cg.dirs(sandbox, node)[0]
		if lim.pids > 0 {
			writes = append(writes, [2]string{filepath.Join(d, "pids.max"), strconv.Itoa(lim.pids)})
		}
		if lim.memory > 0 {
			writes = append(writes,
				[2]string{filepath.Join(d, "memory.max"), strconv.FormatInt(lim.memory, 10)},
				[2]string{filepath.Join(d, "memory.swap.max"), "0"})
		}
		if lim.cpuWeight > 0 {
			writes = append(writes, [2]string{filepath.Join(d, "cpu.weight"), strconv.Itoa(lim.cpuWeight)})
		}
	} else {
		for _, r := range cg.roots {
			d := filepath.Join(r, cg.parent, sandbox, node)
			switch filepath.Base(r) {
			case "pids":
				if lim.pids > 0 {
					writes = append(writes, [2]string{filepath.Join(d, "pids.max"), strconv.Itoa(lim.pids)})
				}
			case "memory":
				if lim.memory > 0 {
					writes = append(writes, [2]string{filepath.Join(d, "memory.limit_in_bytes"), strconv.FormatInt(lim.memory, 10)})
					// Optional: only when swap accounting is on.
					if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil {
						writes = append(writes, [2]string{filepath.Join(d, "memory.memsw.limit_in_bytes"), strconv.FormatInt(lim.memory, 10)})
					}
				}
			case "cpu":
				if lim.cpuWeight > 0 {
					// v1 shares: 1024 is the default weight of 100.
					writes = append(writes, [2]string{filepath.Join(d, "cpu.shares"), strconv.Itoa(lim.cpuWeight * 1024 / 100)})
				}
			}
		}
	}
	for _, w := range writes {
		if err := os.WriteFile(w[0], []byte(w[1]), 0); err != nil {
			return fmt.Errorf("set cgroup limit %s=%s: %w", w[0], w[1], err)
		}
	}
	return nil
}

// join moves pid into the node's cgroup in every hierarchy.
func (cg *cgroups) join(sandbox, node string, pid int) error {
	for _, d := range cg.dirs(sandbox, node) {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// bornInside reports whether children start in their cgroups (see
// threadJoin) rather than being moved there by pid after they start.
//
// On cgroup v1, moving another process by pid (cgroup.procs) takes the
// kernel's global threadgroup lock for writing, which waits out an RCU
// grace period: measured here 10 ms for the three hierarchies of one
// process, serialised over every concurrent start. Moving the calling
// thread alone (writing 0 to tasks) skips that lock; a process forked by
// that thread is born in the same cgroups. v2 has no tasks file in a
// domain cgroup, and CLONE_INTO_CGROUP would be its way: there the
// children are still moved by pid.
func (cg *cgroups) bornInside() bool { return !cg.v2 }

// tasksFiles opens, write-only, the tasks file of sandbox/name in every
// hierarchy; for a node's init (init true), memory's is that of the
// init's own group (initGroup).
func (cg *cgroups) tasksFiles(sandbox, name string, init bool) ([]*os.File, error) {
	var out []*os.File
	for _, r := range cg.roots {
		d := filepath.Join(r, cg.parent, sandbox, name)
		if init && r == cg.memoryRoot() && cg.splitMemory() {
			d = filepath.Join(r, cg.parent, sandbox, initCgroup(name))
		}
		f, err := os.OpenFile(filepath.Join(d, "tasks"), os.O_WRONLY, 0)
		if err != nil {
			closeFiles(out)
			return nil, fmt.Errorf("open cgroup %s: %w", d, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// threadJoin moves the calling thread, and only it, into the cgroups
// whose tasks files are given (tasksFiles). The caller must have locked
// the thread and must throw it away afterwards (never unlock it): it
// stays in those cgroups, and whatever it forks starts there.
func threadJoin(tasks []*os.File) error {
	for _, f := range tasks {
		if _, err := unix.Write(int(f.Fd()), []byte("0")); err != nil {
			return fmt.Errorf("join cgroup %s: %w", f.Name(), err)
		}
	}
	return nil
}

// procs lists every pid in the sandbox's cgroups. With all, it reads
// every hierarchy; otherwise only the first, which holds every process of
// the sandbox too (join places a process in all of them before it runs,
// and its descendants inherit them) and is the cheapest to walk: the pids
// controller has a handful of files per group, memory dozens.
func (cg *cgroups) procs(sandbox string, all bool) []int {
	seen := map[int]bool{}
	var out []int
	dirs := cg.dirs(sandbox)
	if !all {
		dirs = dirs[:1]
	}
	var walk func(d string)
	walk = func(d string) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			return
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				walk(filepath.Join(d, e.Name()))
			}
		}
	}
	for _, d := range dirs {
		walk(d)
	}
	return out
}

// destroy kills every process of the sandbox and removes its cgroups. It
// is idempotent: a sandbox without cgroups is already destroyed.
func (cg *cgroups) destroy(sandbox string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	all := false // after an EBUSY, look in every hierarchy
	for {
		for {
			pids := cg.procs(sandbox, all)
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sandbox %s: %d processes still alive after SIGKILL", sandbox, len(pids))
			}
			if cg.killWait(sandbox, pids, deadline) == 0 {
				// None could be signalled: each was exiting, or left the
				// cgroup, between the listing and its pidfd. Let them go.
				time.Sleep(time.Millisecond)
			}
		}
		// A group whose last task has just exited may report EBUSY for
		// a moment; one that stays busy after that holds a process the
		// first hierarchy did not show, which the next pass finds.
		until := deadline
		if soon := time.Now().Add(100 * time.Millisecond); !all && soon.Before(deadline) {
			until = soon
		}
		var errs []error
		busy := false
		for _, d := range cg.dirs(sandbox) {
			if err := rmdirTree(d, until); err != nil {
				busy = busy || errors.Is(err, unix.EBUSY)
				errs = append(errs, err)
			}
		}
		if !busy || all || time.Now().After(deadline) {
			return errors.Join(errs...)
		}
		all = true
	}
}

// killWait SIGKILLs pids and waits until they have exited or the
// deadline passes. A pid is signalled through a pidfd opened while the
// process is still in the sandbox's cgroup, so a pid reused by an
// unrelated process after the listing is never signalled; the exits are
// awaited with poll(2) on the pidfds rather than by re-reading the cgroup.
// Killing a node's init ends its whole pid namespace: the kernel reaps
// every process in it before the init itself exits.
func (cg *cgroups) killWait(sandbox string, pids []int, deadline time.Time) (killed int) {
	member := "/" + filepath.Join(cg.parent, sandbox) + "/"
	var fds []unix.PollFd
	defer func() {
		for _, f := range fds {
			unix.Close(int(f.Fd))
		}
	}()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // already gone
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil || !strings.Contains(string(b), member) {
			unix.Close(fd) // exited, and its pid went to someone else
			continue
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
			unix.Close(fd)
			continue
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	killed = len(fds)
	for len(fds) > 0 {
		wait := time.Until(deadline)
		if wait <= 0 {
			return killed
		}
		n, err := unix.Poll(fds, int(min(wait, time.Second).Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return killed
		}
		if n <= 0 {
			continue
		}
		left := fds[:0]
		for _, f := range fds {
			if f.Revents != 0 { // POLLIN: exited; POLLHUP/ERR: gone
				unix.Close(int(f.Fd))
				continue
			}
			left = append(left, f)
		}
		fds = left
	}
	return killed
}

// rmdirTree removes a cgroup directory and its children, deepest first.
// A cgroup whose last task has just exited can briefly report EBUSY.
func rmdirTree(dir string, deadline time.Time) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// sandboxes lists the sandbox ids that have a cgroup under the parent.
func (cg *cgroups) sandboxes() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range cg.roots {
		entries, _ := os.ReadDir(filepath.Join(r, cg.parent))
		for _, e := range entries {
			if e.IsDir() && validID(e.Name()) && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// procsOf lists the pids in one group of a sandbox.
func (cg *cgroups) procsOf(sandbox, name string) []int {
	b, err := os.ReadFile(filepath.Join(cg.dirs(sandbox, name)[0], "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// limitGroup makes <parent>/<parts...> (for no parts: the parent itself)
// and caps its pids and memory: the sum of what is below it may not
// outgrow it, whatever each node's own limit says.
func (cg *cgroups) limitGroup(lim cgLimits, parts ...string) error {
	for _, d := range cg.dirs(parts...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	if cg.v2 {
		_ = os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+pids +memory +cpu"), 0)
		d := cg.dirs(parts...)[0]
		_ = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+pids +memory +cpu"), 0)
		if err := os.WriteFile(filepath.Join(d, "pids.max"), []byte(strconv.Itoa(lim.pids)), 0); err != nil {
			return fmt.Errorf("limit pids of %s: %w", d, err)
		}
		if err := os.WriteFile(filepath.Join(d, "memory.max"), []byte(strconv.FormatInt(lim.memory, 10)), 0); err != nil {
			return fmt.Errorf("limit memory of %s: %w", d, err)
		}
		return nil
	}
	for _, r := range cg.roots {
		d := filepath.Join(append([]string{r, cg.parent}, parts...)...)
		var file, val string
		switch filepath.Base(r) {
		case "pids":
			file, val = "pids.max", strconv.Itoa(lim.pids)
		case "memory":
			file, val = "memory.limit_in_bytes", strconv.FormatInt(lim.memory, 10)
		default:
			continue
		}
		if err := os.WriteFile(filepath.Join(d, file), []byte(val), 0); err != nil {
			return fmt.Errorf("set %s of %s: %w", file, d, err)
		}
	}
	return nil
}
