package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// meminfo is /proc/meminfo in KiB, by field name.
type meminfo map[string]int64

func readMeminfo() (meminfo, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	return parseKiBFields(b), nil
}

// parseKiBFields parses "Name:   123 kB" lines (meminfo, smaps_rollup,
// status) into KiB; lines of another shape are skipped.
func parseKiBFields(b []byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 || len(f) > 2 || len(f) == 2 && f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}

// procInfo is what the bench needs to know about one process.
type procInfo struct {
	pid, ppid int
	argv      []string
}

// listProcs reads every process's ppid and argv. Processes that exit
// while it reads are skipped.
func listProcs() map[int]procInfo {
	out := map[int]procInfo{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := procPPid(pid)
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out[pid] = procInfo{pid: pid, ppid: ppid, argv: strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")}
	}
	return out
}

func procPPid(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}

// labdTree sorts labd's descendants by role: the hub holders labd
// re-executes itself as (argv[0] nslab-hub, with its state dir as
// argv[1]), its spawner (nslab-spawn), the node inits the spawner starts
// (nslab-init, state dir), and everything below a node init (the node's
// services and commands).
type labdTree struct {
	hubs, spawners, inits, inNodes, other []int
}

func classify(labdPid int, stateDir string) labdTree {
	procs := listProcs()
	var t labdTree
	// A process's role is decided by its nearest classified ancestor.
	role := map[int]string{labdPid: "labd"}
	var roleOf func(pid int, depth int) string
	roleOf = func(pid, depth int) string {
		if r, ok := role[pid]; ok {
			return r
		}
		p, ok := procs[pid]
		if !ok || pid <= 1 || depth > 64 {
			return ""
		}
		r := ""
		switch parent := roleOf(p.ppid, depth+1); parent {
		case "labd", "spawner":
			r = "other"
			switch {
			case parent == "labd" && len(p.argv) >= 1 && p.argv[0] == "nslab-spawn":
				r = "spawner"
			case len(p.argv) >= 2 && p.argv[1] == stateDir && p.argv[0] == "nslab-hub":
				r = "hub"
			case len(p.argv) >= 2 && p.argv[1] == stateDir && p.argv[0] == "nslab-init":
				r = "init"
			}
		case "init", "node":
			r = "node"
		case "hub", "other":
			r = "other"
		}
		role[pid] = r
		return r
	}
	for pid := range procs {
		switch roleOf(pid, 0) {
		case "hub":
			t.hubs = append(t.hubs, pid)
		case "init":
			t.inits = append(t.inits, pid)
		case "spawner":
			t.spawners = append(t.spawners, pid)
		case "node":
			t.inNodes = append(t.inNodes, pid)
		case "other":
			if pid != labdPid {
				t.other = append(t.other, pid)
			}
		}
	}
	return t
}

// vmRSS is a process's resident set in KiB (VmRSS of /proc/PID/status).
func vmRSS(pid int) (int64, error) { return statusKiB(pid, "VmRSS") }

// vmHWM is a process's peak resident set since it started, in KiB.
func vmHWM(pid int) (int64, error) { return statusKiB(pid, "VmHWM") }

func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	v, ok := parseKiBFields(b)[field]
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
	}
	return v, nil
}

// ussPss reads /proc/PID/smaps_rollup: USS = Private_Clean +
// Private_Dirty (memory only this process maps), PSS = each page divided
// by the number of processes sharing it. Both in KiB.
func ussPss(pid int) (uss, pss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	m := parseKiBFields(b)
	p, ok := m["Pss"]
	if !ok {
		return 0, 0, fmt.Errorf("/proc/%d/smaps_rollup: no Pss", pid)
	}
	return m["Private_Clean"] + m["Private_Dirty"], p, nil
}

// hostLinks counts the links in the bench's own (the host's) network
// namespace.
func hostLinks() (int, error) {
	ls, err := netlink.LinkList()
	return len(ls), err
}

// netnsInodes is the set of network namespaces that some process or
// thread on the host is in (distinct nsfs inodes of /proc/*/task/*/ns/net).
// Namespaces held only by an open fd or a bind mount are not counted.
func netnsInodes() map[string]bool {
	out := map[string]bool{}
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/ns/net")
	for _, t := range tasks {
		if l, err := os.Readlink(t); err == nil {
			out[l] = true
		}
	}
	return out
}

// labdFds counts the fds of pid: those that refer to a network
// namespace, those on the database (the files of db: the database, its
// WAL and shared memory) and all others.
func labdFds(pid int, db string) (nsfds, dbfds, rest int) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		switch {
		case err == nil && strings.HasPrefix(l, "net:["):
			nsfds++
		case err == nil && (l == db || l == db+"-wal" || l == db+"-shm"):
			dbfds++
		default:
			rest++
		}
	}
	return nsfds, dbfds, rest
}

// cgroupDirs counts the directories below parent in every hierarchy of
// cgroupRoots, parent itself excluded.
func cgroupDirs(parent string) int {
	n := 0
	for _, root := range cgroupRoots() {
		base := filepath.Join(root, parent)
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != base {
				n++
			}
			return nil
		})
	}
	return n
}

// cgroupRoots are the hierarchies labd puts sandboxes in: the unified
// one when /sys/fs/cgroup is cgroup v2, else the v1 pids, memory and cpu
// controllers that are mounted.
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var out []string
	for _, c := range []string{"pids", "memory", "cpu"} {
		p := filepath.Join("/sys/fs/cgroup", c)
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func readlinkf(format string, args ...any) (string, error) {
	return os.Readlink(fmt.Sprintf(format, args...))
}

// threads is the number of threads of pid (0 if it is gone).
func threads(pid int) int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(entries)
}
