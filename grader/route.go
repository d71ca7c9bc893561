package grader

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"nslab/labs"
)

// path is one way out of a route: a single-path route has one, a
// multipath route one per nexthop. Weight 0 counts as 1, as in the kernel.
type path struct {
	via, dev string
	weight   int
}

func routePaths(r *labs.RouteState) []path {
	if len(r.Nexthops) == 0 {
		return []path{{r.Via, r.Dev, 1}}
	}
	ps := make([]path, len(r.Nexthops))
	for i, n := range r.Nexthops {
		ps[i] = path{n.Via, n.Dev, max(n.Weight, 1)}
	}
	return ps
}

func (p path) String() string {
	var s []string
	if p.via != "" {
		s = append(s, "via "+p.via)
	}
	if p.dev != "" {
		s = append(s, "dev "+p.dev)
	}
	s = append(s, "weight "+strconv.Itoa(p.weight))
	return strings.Join(s, " ")
}

func dstText(p netip.Prefix) string {
	if p.Bits() == 0 {
		if p.Addr().Is6() {
			return "default (::/0)"
		}
		return "default"
	}
	return p.String()
}

func renderRoute(r *labs.RouteState) string {
	var b strings.Builder
	if r.Type != "" && r.Type != "unicast" {
		b.WriteString(r.Type + " ")
	}
	dst := r.Dst
	if p, ok := netPrefix(r.Dst); ok && p.Bits() == 0 {
		dst = "default"
	}
	if dst == "" {
		dst = "default"
	}
	b.WriteString(dst)
	if len(r.Nexthops) > 1 {
		for _, p := range routePaths(r) {
			b.WriteString(" nexthop " + p.String())
		}
	} else {
		p := routePaths(r)[0]
		if p.via != "" {
			b.WriteString(" via " + p.via)
		}
		if p.dev != "" {
			b.WriteString(" dev " + p.dev)
		}
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	b.WriteString(" table " + tableName(r.Table))
	return b.String()
}

// routeDst reports whether r's destination is want. A route without a
// destination is a default route of either family.
func routeDst(r *labs.RouteState, want netip.Prefix) bool {
	if strings.TrimSpace(r.Dst) == "" {
		return want.Bits() == 0
	}
	p, ok := netPrefix(r.Dst)
	return ok && p == want
}

// routeDiffs lists, in learner terms, how r differs from what c wants,
// leaving destination and table aside.
func routeDiffs(c *labs.RouteCheck, r *labs.RouteState) []string {
	var d []string
	paths := routePaths(r)
	if len(c.Nexthops) > 0 {
		d = append(d, nexthopDiffs(c.Nexthops, paths)...)
	} else if c.Via != "" || c.Dev != "" {
		if len(paths) > 1 {
			var ps []string
			for _, p := range paths {
				ps = append(ps, p.String())
			}
			want := strings.TrimSpace(strings.Join([]string{viaText(c.Via), devText(c.Dev)}, " "))
			d = append(d, fmt.Sprintf("is multipath (%s), want a single path %s", strings.Join(ps, "; "), want))
		} else {
			p := paths[0]
			if c.Via != "" && !sameAddr(p.via, c.Via) {
				if p.via == "" {
					d = append(d, fmt.Sprintf("has no gateway (directly connected), want via %s", c.Via))
				} else {
					d = append(d, fmt.Sprintf("goes via %s, want via %s", p.via, c.Via))
				}
			}
			if c.Dev != "" && p.dev != c.Dev {
				d = append(d, fmt.Sprintf("leaves by %s, want dev %s", orNone(p.dev), c.Dev))
			}
		}
	}
	if c.Metric != nil && r.Metric != *c.Metric {
		d = append(d, fmt.Sprintf("has metric %d, want %d", r.Metric, *c.Metric))
	}
	return d
}

func viaText(v string) string {
	if v == "" {
		return ""
	}
	return "via " + v
}

func devText(v string) string {
	if v == "" {
		return ""
	}
	return "dev " + v
}

func orNone(s string) string {
	if s == "" {
		return "no device"
	}
	return s
}

// nexthopDiffs compares nexthops as a set of (via, dev, weight). Unset
// via or dev in the check match any.
func nexthopDiffs(want []labs.Nexthop, have []path) []string {
	var d []string
	used := make([]bool, len(have))
	matches := func(w labs.Nexthop, p path) bool {
		return (w.Via == "" || sameAddr(w.Via, p.via)) && (w.Dev == "" || w.Dev == p.dev)
	}
	var unmatched []labs.Nexthop
	// Exact (including weight) first, so a weight difference is reported
	// against the right path.
	for _, w := range want {
		found := false
		for i, p := range have {
			if !used[i] && matches(w, p) && p.weight == max(w.Weight, 1) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			unmatched = append(unmatched, w)
		}
	}
	for _, w := range unmatched {
		wp := path{w.Via, w.Dev, max(w.Weight, 1)}
		found := false
		for i, p := range have {
			if !used[i] && matches(w, p) {
				used[i], found = true, true
				d = append(d, fmt.Sprintf("has nexthop %s with weight %d, want %d", strings.TrimSpace(viaText(p.via)+" "+devText(p.dev)), p.weight, wp.weight))
				break
			}
		}
		if !found {
			d = append(d, fmt.Sprintf("has no nexthop %s", wp))
		}
	}
	for i, p := range have {
		if !used[i] {
			if len(have) == 1 {
				d = append(d, fmt.Sprintf("is a single path %s, not multipath", p))
			} else {
				d = append(d, fmt.Sprintf("also has nexthop %s", p))
			}
		}
	}
	return d
}

func evalRoute(c *labs.RouteCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartRoutes)
	if bad != nil {
		return *bad
	}
	want, ok := netPrefix(c.Dst)
	if !ok {
		return fail(fmt.Sprintf("the check's route destination %q is not a CIDR, default or default6", c.Dst))
	}
	table := normTable(c.Table)
	tname := "table " + tableName(table)
	dst := dstText(want)

	type cand struct {
		r     *labs.RouteState
		diffs []string
	}
	var here, elsewhere []cand
	for i := range st.Routes {
		r := &st.Routes[i]
		if !routeDst(r, want) {
			continue
		}
		cd := cand{r, routeDiffs(c, r)}
		if normTable(r.Table) == table {
			here = append(here, cd)
		} else {
			elsewhere = append(elsewhere, cd)
		}
	}
	var match *cand
	for i := range here {
		if len(here[i].diffs) == 0 {
			match = &here[i]
			break
		}
	}
	if c.Absent {
		if match == nil {
			return pass(fmt.Sprintf("%s has no such route to %s in %s, as wanted", c.Node, dst, tname))
		}
		return fail(fmt.Sprintf("%s still has a route to %s in %s", c.Node, dst, tname), renderRoute(match.r))
	}
	if match != nil {
		return pass(fmt.Sprintf("%s has a route to %s in %s", c.Node, dst, tname), renderRoute(match.r))
	}
	if len(here) > 0 {
		best := here[0]
		for _, cd := range here[1:] {
			if len(cd.diffs) < len(best.diffs) {
				best = cd
			}
		}
		msg := fmt.Sprintf("%s's route to %s in %s %s", c.Node, dst, tname, andList(best.diffs))
		ev := []string{renderRoute(best.r)}
		for _, cd := range elsewhere {
			if len(cd.diffs) == 0 {
				msg += fmt.Sprintf("; a route as wanted is in table %s instead", tableName(cd.r.Table))
				ev = append(ev, renderRoute(cd.r))
				break
			}
		}
		return fail(msg, ev...)
	}
	if len(elsewhere) > 0 {
		var tables, ev []string
		seen := map[int]bool{}
		best := elsewhere[0]
		for _, cd := range elsewhere {
			t := normTable(cd.r.Table)
			if !seen[t] {
				seen[t] = true
				tables = append(tables, tableName(t))
			}
			if len(cd.diffs) < len(best.diffs) {
				best = cd
			}
			ev = append(ev, renderRoute(cd.r))
		}
		word := "table"
		if len(tables) > 1 {
			word = "tables"
		}
		msg := fmt.Sprintf("%s has no route to %s in %s; it is in %s %s, not %s",
			c.Node, dst, tname, word, andList(tables), tableName(table))
		if len(best.diffs) > 0 {
			msg += fmt.Sprintf(" (and there it %s)", andList(best.diffs))
		}
		return fail(msg, ev...)
	}
	// No route to that destination anywhere: say what traffic to it would
	// follow instead.
	ev := []string{}
	if cov := coveringRoute(st, want, table); cov != nil {
		ev = append(ev, fmt.Sprintf("traffic to %s follows: %s", dst, renderRoute(cov)))
	} else {
		ev = append(ev, fmt.Sprintf("no route in %s covers %s", tname, dst))
	}
	return fail(fmt.Sprintf("%s has no route to %s in %s", c.Node, dst, tname), ev...)
}

// coveringRoute is the longest-prefix route in table that contains want.
func coveringRoute(st *labs.NodeState, want netip.Prefix, table int) *labs.RouteState {
	var best *labs.RouteState
	bestBits := -1
	for i := range st.Routes {
		r := &st.Routes[i]
		if normTable(r.Table) != table {
			continue
		}
		p, ok := netPrefix(r.Dst)
		if !ok {
			continue
		}
		if p.Addr().Is4() != want.Addr().Is4() || p.Bits() > want.Bits() || !p.Contains(want.Addr()) {
			continue
		}
		if p.Bits() > bestBits {
			best, bestBits = r, p.Bits()
		}
	}
	return best
}
