// Command bench measures nslab on this machine, side by side with the
// kernel's own floor and with Mininet (issue 6):
//
//   - nslab: CreateSandbox over gRPC on the unix socket until it returns
//     READY, and DeleteSandbox until it returns with the sandbox gone, for
//     star2, star3, star20 and routed;
//   - the floor: the same topologies built by the bench's own minimal
//     netlink builder (floor.go) and torn down again;
//   - Mininet building and stopping the same topologies, when a python3
//     that can import mininet is installed (the bench installs nothing);
//   - exec round trip, grade time of the catalog's largest exercise;
//   - -concurrent N sandboxes created and deleted at once, with labd's
//     and the nodes' memory and the kernel's growth per sandbox;
//   - -cycles N sequential create/delete cycles and what the host did not
//     get back.
//
// It starts its own labd (the binary given by -labd) on a temporary
// socket, database, state directory and cgroup parent, so it never
// touches a running service, and removes everything it made.
//
//	go build -o bin/labd ./server && go run ./bench
//
// It is a top-level package because it drives labd from outside, as a
// client would, and belongs to no other package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"nslab/labs"
)

type options struct {
	labd, labsDir   string
	runs, execs     int
	topologies      []string
	mininetRuns     int
	mininetTopos    []string
	python          string
	concurrent      int
	concurrentLab   string
	cycles          int
	cyclesLab       string
	settle          time.Duration
	judgeHost       bool
	skipComparisons bool
}

func main() {
	var o options
	var topos, mnTopos string
	flag.StringVar(&o.labd, "labd", "bin/labd", "labd binary to benchmark")
	flag.StringVar(&o.labsDir, "labs", "labs/testdata", "directory with the star2/star3/star20 labs (added to the embedded catalog)")
	flag.IntVar(&o.runs, "runs", 20, "measured create/delete cycles per topology, for nslab and for the floor (after one warm-up each)")
	flag.IntVar(&o.execs, "execs", 200, "exec round trips")
	flag.StringVar(&topos, "topologies", "star2,star3,star20,routed", "comma-separated lab ids")
	flag.IntVar(&o.mininetRuns, "mininet-runs", 5, "measured Mininet build/stop cycles per topology (0: skip Mininet)")
	flag.StringVar(&mnTopos, "mininet-topologies", "star2,star3,star20,routed", "comma-separated lab ids to build with Mininet")
	flag.StringVar(&o.python, "python", "", "python3 to run Mininet with (default: /usr/bin/python3, then python3 on PATH)")
	flag.IntVar(&o.concurrent, "concurrent", 200, "sandboxes created (then deleted) at once (0: skip)")
	flag.StringVar(&o.concurrentLab, "concurrent-lab", "routed", "lab of the concurrent sandboxes")
	flag.IntVar(&o.cycles, "cycles", 0, "sequential create/delete cycles to check for leaks, e.g. 1000 (0: skip)")
	flag.StringVar(&o.cyclesLab, "cycles-lab", "star3", "lab of the leak cycles")
	flag.DurationVar(&o.settle, "settle", time.Minute, "longest wait, after deleting, for the memory to come back (the kernel frees namespaces asynchronously)")
	flag.BoolVar(&o.judgeHost, "judge-host", false, "count growth of host-wide quantities (host links, namespaces, MemAvailable, Slab) after -cycles as a leak; use on a host where nothing else runs")
	flag.BoolVar(&o.skipComparisons, "only-load", false, "skip the per-topology, exec and grade measurements (run only -concurrent and -cycles)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o.topologies, o.mininetTopos = splitList(topos), splitList(mnTopos)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// topoResult holds every timing of one topology.
type topoResult struct {
	id    string
	nodes int
	// nslab: CreateSandbox until it returns READY; DeleteSandbox until it
	// returns, and until the kernel has destroyed every namespace.
	nsCreate, nsDelete, nsGone []time.Duration
	// floor: build; release of its namespaces (closing their fds), and
	// until the kernel has destroyed them.
	flCreate, flRelease, flGone []time.Duration
	mnCreate, mnStop            []time.Duration
}

type results struct {
	topos    []*topoResult
	mnSkip   string // why Mininet was not measured
	mnPython string
	exec     []time.Duration
	grade    *gradeResult
	conc     *concResult
	cycles   *cyclesResult
}

func (r *results) topo(id string) *topoResult {
	for _, t := range r.topos {
		if t.id == id {
			return t
		}
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, o options) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (labd and the floor build namespaces)")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"-runs", o.runs}, {"-execs", o.execs}, {"-mininet-runs", o.mininetRuns}, {"-concurrent", o.concurrent}, {"-cycles", o.cycles}} {
		if f.v < 0 {
			return fmt.Errorf("%s %d: must not be negative", f.name, f.v)
		}
	}
	if !o.skipComparisons && (o.runs < 1 || o.execs < 1) {
		return errors.New("-runs and -execs must be at least 1 (or use -only-load)")
	}
	catalog, err := labs.NewCatalog(o.labsDir)
	if err != nil {
		return fmt.Errorf("-labs %s: %w", o.labsDir, err)
	}
	need := slices.Concat(o.topologies, o.mininetTopos)
	if o.concurrent > 0 {
		need = append(need, o.concurrentLab)
	}
	if o.cycles > 0 {
		need = append(need, o.cyclesLab)
	}
	for _, id := range need {
		if _, err := catalog.Get(id); err != nil {
			return fmt.Errorf("lab %q: not in the embedded catalog nor in -labs %s", id, o.labsDir)
		}
	}
	printMachine(o)

	l, err := startLabd(ctx, o.labd, o.labsDir)
	if err != nil {
		return err // startLabd cleaned up
	}
	defer func() {
		if l != nil {
			err = errors.Join(err, l.stop())
		}
	}()
	res := &results{}
	if !o.skipComparisons {
		w, err := newWatcher()
		if err != nil {
			return err
		}
		for _, id := range o.topologies {
			lab, _ := catalog.Get(id)
			progress("%s: nslab and floor, 1 warm-up + %d runs each, interleaved", id, o.runs)
			t, err := benchTopology(ctx, l, w, lab, o.runs)
			if err != nil {
				w.close()
				return err
			}
			res.topos = append(res.topos, t)
		}
		w.close()
		if err := benchMininet(ctx, o, catalog, res); err != nil {
			return err
		}
		progress("exec round trip, %d runs", o.execs)
		if res.exec, err = l.execRTT(ctx, "routed", o.execs); err != nil {
			return err
		}
		progress("grade of the largest exercise, %d runs", o.runs)
		if res.grade, err = l.grade(ctx, o.runs); err != nil {
			return err
		}
		printComparison(res, o)
	}
	if o.concurrent > 0 {
		progress("%d concurrent %s sandboxes", o.concurrent, o.concurrentLab)
		if res.conc, err = benchConcurrent(ctx, l, o.concurrentLab, o.concurrent, o.settle); err != nil {
			return err
		}
		printConcurrent(res.conc)
	}
	if o.cycles > 0 {
		if !o.skipComparisons || o.concurrent > 0 {
			// A fresh labd, so that the start is not what the runs before
			// left in its heap and thread pool.
			progress("restarting labd for the leak cycles")
			err := l.stop()
			l = nil
			if err != nil {
				return err
			}
			if l, err = startLabd(ctx, o.labd, o.labsDir); err != nil {
				return err
			}
		}
		progress("%d create/delete cycles of %s", o.cycles, o.cyclesLab)
		if res.cycles, err = benchCycles(ctx, l, o.cyclesLab, o.cycles, 10, o.settle); err != nil {
			return err
		}
		res.cycles.judgeHost = o.judgeHost
		printCycles(res.cycles)
	}
	printTargets(res, o)
	return nil
}

// benchTopology alternates floor and nslab cycles, so that a change in
// the machine's load during the run weighs on both alike.
func benchTopology(ctx context.Context, l *labdProc, w *watcher, lab *labs.Lab, runs int) (*topoResult, error) {
	t := &topoResult{id: lab.ID}
	for i := range runs + 1 { // the first cycle of each is a warm-up
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		f, err := buildFloor(lab)
		if err != nil {
			return nil, fmt.Errorf("floor %s: %w", lab.ID, err)
		}
		fc := time.Since(t0)
		names, err := w.plant(f.nsFds())
		if err != nil {
			f.teardown()
			return nil, fmt.Errorf("floor %s: %w", lab.ID, err)
		}
		t1 := time.Now()
		if err := f.teardown(); err != nil {
			return nil, fmt.Errorf("floor %s: teardown: %w", lab.ID, err)
		}
		fr := time.Since(t1)
		last, err := w.waitGone(names, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("floor %s: teardown: %w", lab.ID, err)
		}
		nc, nd, ng, nodes, err := l.cycleWatched(ctx, lab.ID, w)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			continue
		}
		t.nodes = nodes
		t.flCreate, t.flRelease, t.flGone = append(t.flCreate, fc), append(t.flRelease, fr), append(t.flGone, last.Sub(t1))
		t.nsCreate, t.nsDelete, t.nsGone = append(t.nsCreate, nc), append(t.nsDelete, nd), append(t.nsGone, ng)
	}
	return t, nil
}

func benchMininet(ctx context.Context, o options, catalog *labs.Catalog, res *results) error {
	if o.mininetRuns == 0 || len(o.mininetTopos) == 0 {
		res.mnSkip = "-mininet-runs 0"
		return nil
	}
	py, why := mininetPython(o.python)
	if py == "" {
		res.mnSkip = why
		progress("Mininet: %s", why)
		return nil
	}
	res.mnPython = py
	sfx := randSuffix(3)
	var topos []*mnTopo
	for _, id := range o.mininetTopos {
		lab, _ := catalog.Get(id)
		t, err := toMininet(lab, sfx)
		if err != nil {
			return err
		}
		topos = append(topos, t)
	}
	progress("Mininet (%s): %s, 1 warm-up + %d runs each", py, strings.Join(o.mininetTopos, ", "), o.mininetRuns)
	got, err := runMininet(ctx, py, topos, o.mininetRuns)
	if err != nil {
		return err
	}
	for _, id := range o.mininetTopos {
		t := res.topo(id)
		if t == nil {
			t = &topoResult{id: id}
			res.topos = append(res.topos, t)
		}
		t.mnCreate, t.mnStop = got[id][0], got[id][1]
	}
	return nil
}

func printMachine(o options) {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	mem, _ := readMeminfo()
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Printf("nslab bench — %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: %s, %d CPUs (%s), %.1f GiB RAM, kernel %s, %s\n", host, runtime.NumCPU(), cpu,
		float64(mem["MemTotal"])/(1<<20), strings.TrimSpace(string(kernel)), runtime.Version())
	fmt.Printf("load average at start: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	// labd starts its sandboxes' processes from nslab-node beside it when
	// that was built from the same tree (labd --node-binary).
	node := "labd's own binary (no nslab-node beside it)"
	if p := filepath.Join(filepath.Dir(o.labd), "nslab-node"); fileExists(p) {
		if a, b := fingerprint(o.labd), fingerprint(p); a != "" && a == b {
			node = p
		} else {
			node = fmt.Sprintf("labd's own binary (%s was built from other code: %q, labd %q)", p, b, a)
		}
	}
	fmt.Printf("labd: %s; sandbox processes from %s\n", o.labd, node)
	fmt.Printf("%d runs per topology (nslab and floor interleaved), %d Mininet runs; percentiles nearest-rank\n\n",
		o.runs, o.mininetRuns)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// fingerprint asks a labd or nslab-node binary for its build fingerprint
// (what labd compares before it uses nslab-node); "" if it cannot say.
func fingerprint(bin string) string {
	cmd := exec.Command(bin)
	cmd.Args = []string{"nslab-fingerprint"}
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
