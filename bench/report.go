package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// pct is the nearest-rank percentile p of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func msf(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.3f", float64(d.Nanoseconds())/1e6)
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000)
}

func ms(d time.Duration) string { return msf(d) + " ms" }

// p50p95 is "p50 / p95" in ms, or "—" when there is nothing measured.
func p50p95(ds []time.Duration) string {
	if len(ds) == 0 {
		return "—"
	}
	return msf(pct(ds, 50)) + " / " + msf(pct(ds, 95))
}

// ratio of the medians of a over b, "—" if either is missing.
func ratio(a, b []time.Duration) (float64, string) {
	if len(a) == 0 || len(b) == 0 || pct(b, 50) == 0 {
		return 0, "—"
	}
	x := float64(pct(a, 50)) / float64(pct(b, 50))
	return x, fmt.Sprintf("%.2f×", x)
}

// mb formats KiB as decimal megabytes (10^6 bytes), the unit of the
// issue's targets.
func mb(kib float64) string { return fmt.Sprintf("%.2f MB", kib*1024/1e6) }

func newTable() *tabwriter.Writer { return tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0) }

func printComparison(r *results, o options) {
	mnNote := ""
	if r.mnSkip != "" {
		mnNote = " — Mininet: " + r.mnSkip
	}
	fmt.Printf("Create → READY, ms p50 / p95 (nslab, floor: %d runs; Mininet: %d runs)%s\n", o.runs, o.mininetRuns, mnNote)
	tw := newTable()
	fmt.Fprintln(tw, "topology\tnodes\tnslab\tfloor\tnslab/floor\tMininet build+start\tMininet/nslab\t")
	for _, t := range r.topos {
		_, nf := ratio(t.nsCreate, t.flCreate)
		_, mn := ratio(t.mnCreate, t.nsCreate)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.id, nodesOf(t), p50p95(t.nsCreate), p50p95(t.flCreate), nf, p50p95(t.mnCreate), mn)
	}
	tw.Flush()
	fmt.Printf("\nDelete → gone, ms p50 / p95 (\"destroyed\": until the kernel has destroyed every namespace of it)\n")
	tw = newTable()
	fmt.Fprintln(tw, "topology\tnodes\tnslab call returns\tnslab destroyed\tfloor destroyed\tnslab/floor\tMininet stop\tMininet/nslab\t")
	var release []time.Duration
	for _, t := range r.topos {
		_, nf := ratio(t.nsGone, t.flGone)
		_, mn := ratio(t.mnStop, t.nsDelete)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.id, nodesOf(t), p50p95(t.nsDelete), p50p95(t.nsGone), p50p95(t.flGone), nf, p50p95(t.mnStop), mn)
		release = append(release, t.flRelease...)
	}
	tw.Flush()
	if len(release) > 0 {
		fmt.Printf("(the floor's own teardown call, closing its namespace fds, returns in p50 %s, max %s; the rest is the kernel's)\n",
			ms(pct(release, 50)), ms(pct(release, 100)))
	}
	fmt.Printf("\nexec round trip (`true` in a node of routed, %d runs): p50 %s, p95 %s\n", len(r.exec), ms(pct(r.exec, 50)), ms(pct(r.exec, 95)))
	if g := r.grade; g != nil {
		fmt.Printf("grade of the largest exercise (%s/%s, %d checks, solved, %d runs): p50 %s, p95 %s\n",
			g.lab, g.exercise, g.checks, len(g.times), ms(pct(g.times, 50)), ms(pct(g.times, 95)))
	}
	fmt.Println()
}

func nodesOf(t *topoResult) string {
	if t.nodes == 0 {
		return "—"
	}
	return fmt.Sprint(t.nodes)
}

func printConcurrent(c *concResult) {
	fmt.Printf("%d concurrent %s sandboxes (%d nodes each), created and then deleted through gRPC at once\n", c.n, c.lab, c.nodes)
	fmt.Printf("  create: %d of %d READY in %.2f s wall; per call min %s, p50 %s, max %s\n",
		c.ok, c.n, c.createWall.Seconds(), ms(pct(c.creates, 0)), ms(pct(c.creates, 50)), ms(pct(c.creates, 100)))
	printErrs("  create errors", c.createErrs)
	fmt.Printf("  labd (its own process): VmRSS %s idle → %s with the sandboxes → %s once deleted; peak (VmHWM) %s while creating, %s through the deletes; %d threads with them, %d after\n",
		mb(float64(c.labdRSSBefore)), mb(float64(c.labdRSS)), mb(float64(c.labdRSSAfter)),
		mb(float64(c.labdPeakCreate)), mb(float64(c.labdPeak)), c.labdThreads, c.labdThreadsAfter)
	set := func(name string, m memSet) {
		if len(m.uss) == 0 {
			fmt.Printf("  %s: none\n", name)
			return
		}
		fmt.Printf("  %s: %d; USS median %s, max %s; PSS median %s, max %s; VmRSS median %s, sum %s\n", name, len(m.uss),
			mb(float64(median(m.uss))), mb(float64(slices.Max(m.uss))), mb(float64(median(m.pss))), mb(float64(slices.Max(m.pss))),
			mb(float64(median(m.rss))), mb(float64(sum(m.rss))))
	}
	set("node processes (nslab-init, one per node)", c.inits)
	set("processes inside nodes (services)", c.inNodes)
	set("hub holders (nslab-hub, one per sandbox)", c.hubs)
	set("labd's spawner (nslab-spawn, starts the node inits)", c.spawners)
	set("other descendants of labd", c.others)
	if c.ok > 0 {
		user := sum(c.inits.uss) + sum(c.inNodes.uss) + sum(c.hubs.uss)
		fmt.Printf("  user memory per sandbox (USS of its nodes, their services and its hub): %s\n", mb(float64(user)/float64(c.ok)))
		fmt.Printf("  kernel growth per sandbox (/proc/meminfo, host-wide): MemAvailable %+.2f MB, Slab %+.2f MB (SUnreclaim %+.2f MB), KernelStack %+.2f MB, PageTables %+.2f MB\n",
			c.perSandbox("MemAvailable")*1024/1e6, c.perSandbox("Slab")*1024/1e6, c.perSandbox("SUnreclaim")*1024/1e6,
			c.perSandbox("KernelStack")*1024/1e6, c.perSandbox("PageTables")*1024/1e6)
	}
	fmt.Printf("  delete: all at once in %.2f s wall\n", c.deleteWall.Seconds())
	printErrs("  delete errors", c.deleteErrs)
	fmt.Printf("  left after the deletes returned: %d labd hub/node processes, %d cgroups below labd's parent\n", c.leftProcs, c.leftCgroups)
	delta := func(m meminfo, k string) string {
		return fmt.Sprintf("%+.1f MB", float64(m[k]-c.before[k])*1024/1e6)
	}
	fmt.Printf("  host memory vs before, right after the deletes: MemAvailable %s, Slab %s\n", delta(c.afterDelete, "MemAvailable"), delta(c.afterDelete, "Slab"))
	fmt.Printf("  host memory vs before, %.1f s later (%s): MemAvailable %s, Slab %s (SUnreclaim %s), KernelStack %s, PageTables %s\n\n",
		c.settle.Seconds(), c.settleWhy,
		delta(c.settled, "MemAvailable"), delta(c.settled, "Slab"), delta(c.settled, "SUnreclaim"),
		delta(c.settled, "KernelStack"), delta(c.settled, "PageTables"))
}

func printErrs(title string, errs map[string]int) {
	if len(errs) == 0 {
		fmt.Printf("%s: none\n", title)
		return
	}
	fmt.Printf("%s:\n", title)
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("    %d× %s\n", errs[k], k)
	}
}

func printCycles(c *cyclesResult) {
	fmt.Printf("%d sequential create/delete cycles of %s in %.1f s (create p50 %s, p95 %s; delete p50 %s, p95 %s)\n",
		c.n, c.lab, c.total.Seconds(), ms(pct(c.creates, 50)), ms(pct(c.creates, 95)), ms(pct(c.deletes, 50)), ms(pct(c.deletes, 95)))
	fmt.Printf("  (start after 10 warm-up cycles; end read %.1f s after the last cycle: %s)\n", c.settle.Seconds(), c.settleWhy)
	tw := newTable()
	hdr := []string{"after cycle"}
	for _, s := range c.states {
		hdr = append(hdr, fmt.Sprint(s.at))
	}
	fmt.Fprintln(tw, strings.Join(append(hdr, "verdict"), "\t")+"\t")
	for i, row := range c.rows() {
		cells := []string{row.name}
		for _, s := range c.states {
			cells = append(cells, fmtRow(rowsOf(c, s)[i]))
		}
		v := "back"
		switch d := row.growth(); {
		case row.grew() && row.hostWide && !c.judgeHost:
			v = fmt.Sprintf("grew by %s (host-wide, not judged: other processes count too)", row.fmt(d))
		case row.grew():
			v = fmt.Sprintf("GREW by %s", row.fmt(d))
		case d > 0:
			v = fmt.Sprintf("+%s, within tolerance %s", row.fmt(d), row.fmt(row.tol))
		case d < 0 && row.fallIsGrow:
			v = fmt.Sprintf("back (rose by %s)", row.fmt(-d))
		case d < 0:
			v = fmt.Sprintf("back (fell by %s)", row.fmt(-d))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, v), "\t")+"\t")
	}
	tw.Flush()
	fmt.Printf("  → %s\n\n", c.verdict())
}

// rowsOf evaluates the rows with s as the end state, so that each
// checkpoint shows its own values.
func rowsOf(c *cyclesResult, s hostState) []leakRow {
	cc := *c
	cc.states = []hostState{c.states[0], s}
	return cc.rows()
}

func fmtRow(r leakRow) string { return r.fmt(r.end) }

// printTargets judges every target of issue 6 on what this run measured.
func printTargets(r *results, o options) {
	fmt.Println("Targets (issue 6)")
	line := func(name string, ok bool, got string) {
		v := "NOT met"
		if ok {
			v = "met"
		}
		fmt.Printf("  %-58s %s (%s)\n", name+":", v, got)
	}
	missing := func(name, why string) { fmt.Printf("  %-58s not measured (%s)\n", name+":", why) }
	if !o.skipComparisons {
		for _, id := range []string{"star3", "routed", "star20"} {
			name := id + " create ≤2× floor"
			if t := r.topo(id); t != nil && len(t.nsCreate) > 0 {
				x, s := ratio(t.nsCreate, t.flCreate)
				line(name, x <= 2, s)
			} else {
				missing(name, "not in -topologies")
			}
		}
		for _, id := range []string{"star3", "routed"} {
			name := id + " create ≥15× faster than Mininet build+start"
			if t := r.topo(id); t != nil && len(t.mnCreate) > 0 && len(t.nsCreate) > 0 {
				x, s := ratio(t.mnCreate, t.nsCreate)
				line(name, x >= 15, s)
			} else {
				why := r.mnSkip
				if why == "" {
					why = "not in -topologies / -mininet-topologies"
				}
				missing(name, why)
			}
		}
		for _, t := range r.topos {
			if len(t.nsGone) > 0 {
				x, s := ratio(t.nsGone, t.flGone)
				line(t.id+" delete ≤2× floor teardown (until destroyed)", x <= 2, s)
			}
		}
		if len(r.exec) > 0 {
			p50 := pct(r.exec, 50)
			line("exec round trip ≤3 ms median", p50 <= 3*time.Millisecond, ms(p50))
		}
	}
	if c := r.conc; c != nil {
		line(fmt.Sprintf("%d concurrent %s sandboxes ≤15 s", c.n, c.lab), c.ok == c.n && c.createWall <= 15*time.Second,
			fmt.Sprintf("%.2f s, %d of %d READY", c.createWall.Seconds(), c.ok, c.n))
		line("labd RSS ≤300 MB (peak, creates and deletes)", float64(c.labdPeak)*1024 <= 300e6,
			fmt.Sprintf("peak %s; %s with the sandboxes", mb(float64(c.labdPeak)), mb(float64(c.labdRSS))))
		if len(c.inits.uss) > 0 {
			med := float64(median(c.inits.uss))
			line("unshared memory ≤4 MB per node process (median USS)", med*1024 <= 4e6,
				fmt.Sprintf("%s; max %s; median PSS %s", mb(med), mb(float64(slices.Max(c.inits.uss))), mb(float64(median(c.inits.pss)))))
		}
	} else {
		missing("concurrent sandboxes", "-concurrent 0")
	}
	if c := r.cycles; c != nil {
		grew, _ := c.leaks()
		line(fmt.Sprintf("no leak after %d create/delete cycles", c.n), len(grew) == 0, c.verdict())
	} else {
		missing("no leak after 1000 create/delete cycles", "-cycles 0; run with -cycles 1000")
	}
}
