package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// labdReadConns is the size of labd's database read pool (store.readConns).
const labdReadConns = 4

// hostState is what a create/delete cycle must give back.
type hostState struct {
	at         int // cycles done
	links      int // links in the host's network namespace
	netns      int // distinct network namespaces of every task on the host
	ownNetns   int // distinct network namespaces of labd's descendants
	labdNsFds  int // labd's fds that refer to a network namespace
	labdDBFds  int // labd's fds on its database files
	labdFds    int // all of labd's other fds
	labdProcs  int // labd's hub, node and in-node processes
	cgroups    int // directories below labd's cgroup parent, all hierarchies
	labdRSS    int64
	labdThread int
	mem        meminfo
}

func snapshot(l *labdProc, at int) (hostState, error) {
	s := hostState{at: at}
	var err error
	if s.links, err = hostLinks(); err != nil {
		return s, fmt.Errorf("list host links: %w", err)
	}
	s.netns = len(netnsInodes())
	tree := classify(l.pid(), l.stateDir)
	own := map[string]bool{}
	for _, set := range [][]int{tree.hubs, tree.inits, tree.inNodes, tree.other} {
		for _, pid := range set {
			if ns, err := readlinkf("/proc/%d/ns/net", pid); err == nil {
				own[ns] = true
			}
		}
	}
	s.ownNetns = len(own)
	s.labdProcs = len(tree.hubs) + len(tree.inits) + len(tree.inNodes)
	s.labdNsFds, s.labdDBFds, s.labdFds = labdFds(l.pid(), l.db)
	s.cgroups = cgroupDirs(l.cgParent)
	if s.labdRSS, err = vmRSS(l.pid()); err != nil {
		return s, fmt.Errorf("labd: %w", err)
	}
	s.labdThread = threads(l.pid())
	if s.mem, err = readMeminfo(); err != nil {
		return s, err
	}
	return s, nil
}

type cyclesResult struct {
	lab              string
	n                int
	total            time.Duration
	creates, deletes []time.Duration
	states           []hostState // start, checkpoints, end (after settle)
	settle           time.Duration
	settleWhy        string
	// judgeHost counts growth of the host-wide quantities as a leak too;
	// only meaningful on a host where nothing else is running.
	judgeHost bool
}

// benchCycles runs n create/delete cycles of lab one after another and
// snapshots the host at the start (after warm-up cycles, so that labd's
// one-time allocations are not counted as growth), every n/4 cycles, and
// at the end once memory came back (waiting at most settle).
func benchCycles(ctx context.Context, l *labdProc, lab string, n, warmup int, settle time.Duration) (*cyclesResult, error) {
	for range warmup {
		if _, _, _, err := l.cycle(ctx, lab); err != nil {
			return nil, err
		}
	}
	r := &cyclesResult{lab: lab, n: n}
	s, err := snapshot(l, 0)
	if err != nil {
		return nil, err
	}
	r.states = append(r.states, s)
	every := max(1, n/4)
	t0 := time.Now()
	for i := 1; i <= n; i++ {
		c, d, _, err := l.cycle(ctx, lab)
		if err != nil {
			return nil, fmt.Errorf("cycle %d: %w", i, err)
		}
		r.creates, r.deletes = append(r.creates, c), append(r.deletes, d)
		if i%every == 0 && i < n {
			if s, err = snapshot(l, i); err != nil {
				return nil, err
			}
			r.states = append(r.states, s)
		}
	}
	r.total = time.Since(t0)
	// Namespaces are freed asynchronously: let the last ones go.
	if _, r.settle, r.settleWhy, err = waitMemoryBack(ctx, r.states[0].mem, settle); err != nil {
		return nil, err
	}
	if s, err = snapshot(l, n); err != nil {
		return nil, err
	}
	r.states = append(r.states, s)
	return r, nil
}

// leakRow is one compared quantity. Counts must come back exactly;
// memory may grow by at most tol (KiB: 15625 and 62500 are 16 and 64
// decimal MB) before it counts as growth.
type leakRow struct {
	name       string
	start, end int64
	kib        bool // a memory size in KiB, else a count
	tol        int64
	hostWide   bool // other processes on the host move it too
	fallIsGrow bool // MemAvailable: less of it is growth
}

func (r *cyclesResult) rows() []leakRow {
	a, b := r.states[0], r.states[len(r.states)-1]
	return []leakRow{
		{name: "labd's hub/node processes", start: int64(a.labdProcs), end: int64(b.labdProcs)},
		{name: "cgroups below labd's parent", start: int64(a.cgroups), end: int64(b.cgroups)},
		{name: "netns of labd's processes", start: int64(a.ownNetns), end: int64(b.ownNetns)},
		{name: "labd fds on a netns", start: int64(a.labdNsFds), end: int64(b.labdNsFds)},
		{name: "labd fds (but the database's)", start: int64(a.labdFds), end: int64(b.labdFds)},
		// database/sql opens pooled reader connections as reads overlap
		// (each the database and its WAL), up to the pool's size.
		{name: "labd fds on its database", start: int64(a.labdDBFds), end: int64(b.labdDBFds), tol: 2 * labdReadConns},
		{name: "labd threads", start: int64(a.labdThread), end: int64(b.labdThread), tol: 4},
		{name: "labd VmRSS", start: a.labdRSS, end: b.labdRSS, kib: true, tol: 15625},
		{name: "host links (host netns)", start: int64(a.links), end: int64(b.links), hostWide: true},
		{name: "host netns (distinct, of all tasks)", start: int64(a.netns), end: int64(b.netns), hostWide: true},
		{name: "host MemAvailable", start: a.mem["MemAvailable"], end: b.mem["MemAvailable"], kib: true, tol: 62500, hostWide: true, fallIsGrow: true},
		{name: "host Slab", start: a.mem["Slab"], end: b.mem["Slab"], kib: true, tol: 15625, hostWide: true},
	}
}

// growth is how much the quantity grew (for MemAvailable: fell).
func (row leakRow) growth() int64 {
	if row.fallIsGrow {
		return row.start - row.end
	}
	return row.end - row.start
}

func (row leakRow) grew() bool { return row.growth() > row.tol }

func (row leakRow) fmt(v int64) string {
	if row.kib {
		return fmt.Sprintf("%.1f MB", float64(v)*1024/1e6)
	}
	return fmt.Sprint(v)
}

// leaks names the judged quantities that grew, and the host-wide ones
// that grew but are not judged.
func (r *cyclesResult) leaks() (grew, hostOnly []string) {
	for _, row := range r.rows() {
		switch {
		case !row.grew():
		case row.hostWide && !r.judgeHost:
			hostOnly = append(hostOnly, fmt.Sprintf("%s grew by %s", row.name, row.fmt(row.growth())))
		default:
			grew = append(grew, row.name)
		}
	}
	return grew, hostOnly
}

func (r *cyclesResult) verdict() string {
	grew, hostOnly := r.leaks()
	v := "no leak"
	if len(grew) > 0 {
		v = "grew: " + strings.Join(grew, ", ")
	}
	if len(hostOnly) > 0 {
		v += "; host-wide, not judged (other processes share this host; -judge-host on a quiet one): " + strings.Join(hostOnly, ", ")
	}
	return v
}
