package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	labsv1 "nslab/proto/labs/v1"
)

// concResult is what -concurrent measured.
type concResult struct {
	lab           string
	n, ok         int
	nodes         int // per sandbox
	createWall    time.Duration
	creates       []time.Duration // each call, successful ones
	deleteWall    time.Duration
	createErrs    map[string]int // "Code: message" -> count
	deleteErrs    map[string]int
	before, after meminfo
	afterDelete   meminfo // right after the last delete returned
	settled       meminfo // once memory came back or stopped coming back
	settle        time.Duration
	settleWhy     string

	labdRSSBefore, labdRSS int64 // KiB, labd's own process
	labdRSSAfter           int64 // KiB, once the deletes returned
	labdPeakCreate         int64 // KiB, VmHWM once the creates returned
	labdPeak               int64 // KiB, VmHWM once the deletes returned
	labdThreads            int   // labd's threads with the sandboxes
	labdThreadsAfter       int   // and once the deletes returned
	hubs                   memSet
	inits                  memSet // node processes: one init per node
	inNodes                memSet // services and commands inside the nodes
	spawners               memSet // labd's spawner (starts node inits)
	others                 memSet // any other child of labd
	// Left after every delete returned: labd's hub/node processes and
	// cgroups below its parent.
	leftProcs, leftCgroups int
}

// memSet is RSS, USS and PSS (KiB) of a set of processes.
type memSet struct {
	rss, uss, pss []int64
}

func measureSet(pids []int) memSet {
	var m memSet
	for _, pid := range pids {
		r, err := vmRSS(pid)
		if err != nil {
			continue // exited meanwhile
		}
		u, p, err := ussPss(pid)
		if err != nil {
			continue
		}
		m.rss, m.uss, m.pss = append(m.rss, r), append(m.uss, u), append(m.pss, p)
	}
	return m
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func errKey(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}

// benchConcurrent creates n sandboxes of lab at once through gRPC, one
// call per goroutine, measures labd and the host once all have returned,
// then deletes them all at once and measures what the host got back.
func benchConcurrent(ctx context.Context, l *labdProc, lab string, n int, settle time.Duration) (*concResult, error) {
	r := &concResult{lab: lab, n: n, createErrs: map[string]int{}, deleteErrs: map[string]int{}}
	var err error
	if r.before, err = readMeminfo(); err != nil {
		return nil, err
	}
	if r.labdRSSBefore, err = vmRSS(l.pid()); err != nil {
		return nil, fmt.Errorf("labd: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var (
		mu    sync.Mutex
		names []string
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			resp, err := l.sbx.CreateSandbox(cctx, &labsv1.CreateSandboxRequest{Lab: lab})
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				r.createErrs[errKey(err)]++
			case resp.GetSandbox().GetState() != labsv1.Sandbox_STATE_READY:
				r.createErrs["returned in state "+resp.GetSandbox().GetState().String()]++
				names = append(names, resp.GetSandbox().GetName())
			default:
				r.creates = append(r.creates, d)
				r.nodes = len(resp.GetSandbox().GetNodes())
				names = append(names, resp.GetSandbox().GetName())
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r.createWall = time.Since(t0)
	r.ok = len(r.creates)

	tree := classify(l.pid(), l.stateDir)
	r.hubs, r.inits, r.inNodes, r.others = measureSet(tree.hubs), measureSet(tree.inits), measureSet(tree.inNodes), measureSet(tree.other)
	r.spawners = measureSet(tree.spawners)
	if r.labdRSS, err = vmRSS(l.pid()); err != nil {
		return nil, fmt.Errorf("labd: %w", err)
	}
	if r.labdPeakCreate, err = vmHWM(l.pid()); err != nil {
		return nil, fmt.Errorf("labd: %w", err)
	}
	r.labdThreads = threads(l.pid())
	if r.after, err = readMeminfo(); err != nil {
		return nil, err
	}

	t1 := time.Now()
	for _, name := range names {
		wg.Go(func() {
			if _, err := l.sbx.DeleteSandbox(cctx, &labsv1.DeleteSandboxRequest{Name: name}); err != nil {
				mu.Lock()
				r.deleteErrs[errKey(err)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.deleteWall = time.Since(t1)
	if r.afterDelete, err = readMeminfo(); err != nil {
		return nil, err
	}
	if r.labdRSSAfter, err = vmRSS(l.pid()); err != nil {
		return nil, fmt.Errorf("labd: %w", err)
	}
	if r.labdPeak, err = vmHWM(l.pid()); err != nil {
		return nil, fmt.Errorf("labd: %w", err)
	}
	r.labdThreadsAfter = threads(l.pid())
	left := classify(l.pid(), l.stateDir)
	r.leftProcs = len(left.hubs) + len(left.inits) + len(left.inNodes)
	r.leftCgroups = cgroupDirs(l.cgParent)
	// The kernel frees a namespace asynchronously after its last
	// process exits, hundreds of them over seconds: wait until the
	// memory is back, or stops coming back.
	if r.settled, r.settle, r.settleWhy, err = waitMemoryBack(ctx, r.before, settle); err != nil {
		return nil, err
	}
	return r, nil
}

// perSandbox is the growth of meminfo field k from before to after,
// per created sandbox, in KiB (negative for MemAvailable means it fell).
func (r *concResult) perSandbox(k string) float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(r.after[k]-r.before[k]) / float64(r.ok)
}

// waitMemoryBack polls /proc/meminfo until MemAvailable is within 64 MB
// of before and Slab within 32 MB (MemAvailable alone counts reclaimable
// slab as available), or until neither moved by more than 8 MB in the
// last 3 s, or limit passed. It returns the last reading, how long it
// waited and which of these ended the wait.
func waitMemoryBack(ctx context.Context, before meminfo, limit time.Duration) (meminfo, time.Duration, string, error) {
	const ( // KiB for 64, 32 and 8 decimal MB, the unit printed
		backKiB   = 62500
		slabKiB   = 31250
		stillKiB  = 7812
		stillSpan = 3 * time.Second
		every     = 500 * time.Millisecond
	)
	start := time.Now()
	var hist []meminfo
	for {
		m, err := readMeminfo()
		if err != nil {
			return nil, 0, "", err
		}
		waited := time.Since(start)
		if before["MemAvailable"]-m["MemAvailable"] <= backKiB && m["Slab"]-before["Slab"] <= slabKiB {
			return m, waited, "MemAvailable back within 64 MB and Slab within 32 MB", nil
		}
		hist = append(hist, m)
		if n := int(stillSpan / every); len(hist) > n {
			old := hist[len(hist)-1-n]
			if abs(m["MemAvailable"]-old["MemAvailable"]) <= stillKiB && abs(m["Slab"]-old["Slab"]) <= stillKiB {
				return m, waited, "memory stopped coming back", nil
			}
		}
		if waited >= limit {
			return m, waited, "-settle limit reached", nil
		}
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return nil, 0, "", ctx.Err()
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
