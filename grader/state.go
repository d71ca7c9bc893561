package grader

import (
	"fmt"
	"strconv"
	"strings"

	"nslab/labs"
)

// ruleSel normalises a rule selector: "", "all" and /0 mean every address.
func ruleSel(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "all") {
		return "all"
	}
	p, ok := netPrefix(s)
	if !ok {
		return s
	}
	if p.Bits() == 0 {
		return "all"
	}
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func renderRule(r *labs.RuleState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d: from %s", r.Priority, ruleSel(r.From))
	if ruleSel(r.To) != "all" {
		b.WriteString(" to " + ruleSel(r.To))
	}
	if r.FWMark != 0 {
		fmt.Fprintf(&b, " fwmark %#x", r.FWMark)
	}
	if r.IIF != "" {
		b.WriteString(" iif " + r.IIF)
	}
	if r.OIF != "" {
		b.WriteString(" oif " + r.OIF)
	}
	action := r.Action
	if action == "" {
		action = "lookup"
	}
	if action == "lookup" || action == "goto" {
		b.WriteString(" " + action + " " + tableName(r.Table))
	} else {
		b.WriteString(" " + action)
	}
	return b.String()
}

func renderWantRule(c *labs.RuleCheck) string {
	var s []string
	if c.Priority != 0 {
		s = append(s, "priority "+strconv.Itoa(c.Priority))
	}
	if c.From != "" {
		s = append(s, "from "+ruleSel(c.From))
	}
	if c.To != "" {
		s = append(s, "to "+ruleSel(c.To))
	}
	if c.FWMark != 0 {
		s = append(s, fmt.Sprintf("fwmark %#x", c.FWMark))
	}
	if c.IIF != "" {
		s = append(s, "iif "+c.IIF)
	}
	if c.OIF != "" {
		s = append(s, "oif "+c.OIF)
	}
	if c.Table != 0 {
		s = append(s, "lookup "+tableName(c.Table))
	}
	if len(s) == 0 {
		return "(any rule)"
	}
	return strings.Join(s, " ")
}

// ruleDiffs returns how r differs from the fields c sets, and how many
// set fields it matches.
func ruleDiffs(c *labs.RuleCheck, r *labs.RuleState) (diffs []string, same int) {
	check := func(set, ok bool, diff string) {
		if !set {
			return
		}
		if ok {
			same++
		} else {
			diffs = append(diffs, diff)
		}
	}
	fam := c.Family
	if fam == "" {
		for _, sel := range []string{c.From, c.To} {
			if sel != "" && sel != "any" && sel != "all" {
				fam = "inet"
				if strings.Contains(sel, ":") {
					fam = "inet6"
				}
			}
		}
	}
	check(fam != "" && r.Family != "", r.Family == fam,
		fmt.Sprintf("is an %s rule, want %s", r.Family, fam))
	check(c.Priority != 0, r.Priority == c.Priority,
		fmt.Sprintf("has priority %d, want %d", r.Priority, c.Priority))
	check(c.From != "", ruleSel(r.From) == ruleSel(c.From),
		fmt.Sprintf("is from %s, want from %s", ruleSel(r.From), ruleSel(c.From)))
	check(c.To != "", ruleSel(r.To) == ruleSel(c.To),
		fmt.Sprintf("is to %s, want to %s", ruleSel(r.To), ruleSel(c.To)))
	check(c.IIF != "", r.IIF == c.IIF,
		fmt.Sprintf("has iif %s, want iif %s", orAny(r.IIF), c.IIF))
	check(c.OIF != "", r.OIF == c.OIF,
		fmt.Sprintf("has oif %s, want oif %s", orAny(r.OIF), c.OIF))
	check(c.FWMark != 0, r.FWMark == c.FWMark,
		fmt.Sprintf("has fwmark %#x, want %#x", r.FWMark, c.FWMark))
	if c.Table != 0 {
		action := r.Action
		if action == "" {
			action = "lookup"
		}
		var diff string
		switch {
		case action != "lookup" && action != "goto":
			diff = fmt.Sprintf("is a %s rule, want lookup %s", action, tableName(c.Table))
		default:
			diff = fmt.Sprintf("looks up table %s, want table %s", tableName(r.Table), tableName(c.Table))
		}
		check(true, (action == "lookup" || action == "goto") && normTable(r.Table) == normTable(c.Table), diff)
	}
	return diffs, same
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

func evalRule(c *labs.RuleCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartRules)
	if bad != nil {
		return *bad
	}
	want := renderWantRule(c)
	var match *labs.RuleState
	var closest *labs.RuleState
	var closestDiffs []string
	bestSame := 0
	for i := range st.Rules {
		r := &st.Rules[i]
		d, same := ruleDiffs(c, r)
		if len(d) == 0 {
			match = r
			break
		}
		if same > bestSame {
			closest, closestDiffs, bestSame = r, d, same
		}
	}
	if c.Absent {
		if match == nil {
			return pass(fmt.Sprintf("%s has no rule %s, as wanted", c.Node, want))
		}
		return fail(fmt.Sprintf("%s still has the rule `%s`", c.Node, renderRule(match)), renderRule(match))
	}
	if match != nil {
		return pass(fmt.Sprintf("%s has the rule `%s`", c.Node, renderRule(match)), renderRule(match))
	}
	if closest != nil {
		return fail(fmt.Sprintf("%s has no rule %s; the closest, `%s`, %s", c.Node, want, renderRule(closest), andList(closestDiffs)),
			ruleEvidence(st)...)
	}
	return fail(fmt.Sprintf("%s has no rule %s", c.Node, want), ruleEvidence(st)...)
}

func ruleEvidence(st *labs.NodeState) []string {
	if len(st.Rules) == 0 {
		return []string{"no policy routing rules"}
	}
	ev := make([]string, 0, len(st.Rules))
	for i := range st.Rules {
		ev = append(ev, "rule "+renderRule(&st.Rules[i]))
	}
	return ev
}

// usableNeigh: a failed or incomplete entry has no MAC to deliver to, so
// it neither satisfies a presence check nor violates an absent one.
func usableNeigh(n *labs.NeighState) bool {
	switch strings.ToLower(n.State) {
	case "failed", "incomplete":
		return false
	}
	return true
}

func renderNeigh(n *labs.NeighState) string {
	s := n.Address + " dev " + n.Dev
	if n.MAC != "" {
		s += " lladdr " + normMAC(n.MAC)
	}
	if n.State != "" {
		s += " " + strings.ToUpper(n.State)
	}
	return s
}

func evalNeighbor(c *labs.NeighborCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartNeighbors)
	if bad != nil {
		return *bad
	}
	want := c.Address
	if want == "" {
		want = "any address"
	}
	if c.MAC != "" {
		want += " at " + normMAC(c.MAC)
	}
	if c.Dev != "" {
		want += " on " + c.Dev
	}
	var match *labs.NeighState
	var sameAddrOther, unresolved, wrongMAC *labs.NeighState
	for i := range st.Neighbors {
		n := &st.Neighbors[i]
		addrOK := c.Address == "" || sameAddr(n.Address, c.Address)
		devOK := c.Dev == "" || n.Dev == c.Dev
		macOK := c.MAC == "" || normMAC(n.MAC) == normMAC(c.MAC)
		switch {
		case addrOK && devOK && macOK && usableNeigh(n):
			if match == nil {
				match = n
			}
		case addrOK && devOK && !usableNeigh(n):
			if unresolved == nil {
				unresolved = n
			}
		case addrOK && devOK:
			if wrongMAC == nil {
				wrongMAC = n
			}
		case addrOK && c.Address != "":
			if sameAddrOther == nil {
				sameAddrOther = n
			}
		}
	}
	if c.Absent {
		if match == nil {
			return pass(fmt.Sprintf("%s has no neighbour entry for %s, as wanted", c.Node, want))
		}
		return fail(fmt.Sprintf("%s still has a neighbour entry %s", c.Node, renderNeigh(match)), renderNeigh(match))
	}
	if match != nil {
		return pass(fmt.Sprintf("%s has the neighbour entry %s", c.Node, renderNeigh(match)), renderNeigh(match))
	}
	switch {
	case wrongMAC != nil:
		return fail(fmt.Sprintf("%s has %s at %s on %s, want %s", c.Node, wrongMAC.Address, orUnknownMAC(wrongMAC.MAC), wrongMAC.Dev, normMAC(c.MAC)),
			renderNeigh(wrongMAC))
	case unresolved != nil:
		return fail(fmt.Sprintf("%s's entry for %s on %s is %s: the address did not answer ARP/NDP", c.Node, unresolved.Address, unresolved.Dev, strings.ToLower(unresolved.State)),
			renderNeigh(unresolved))
	case sameAddrOther != nil:
		return fail(fmt.Sprintf("%s has %s on %s, not on %s", c.Node, sameAddrOther.Address, sameAddrOther.Dev, c.Dev),
			renderNeigh(sameAddrOther))
	}
	var ev []string
	for i := range st.Neighbors {
		n := &st.Neighbors[i]
		if c.Dev == "" || n.Dev == c.Dev {
			ev = append(ev, renderNeigh(n))
		}
	}
	if len(ev) == 0 {
		ev = append(ev, "no neighbour entries")
	}
	return fail(fmt.Sprintf("%s has no neighbour entry for %s", c.Node, want), ev...)
}

func orUnknownMAC(m string) string {
	if m == "" {
		return "no MAC"
	}
	return normMAC(m)
}

// normSysctlKey writes a key in dotted form: "net/ipv4/ip_forward" and
// "/proc/sys/net/ipv4/ip_forward" become "net.ipv4.ip_forward". A key
// that already has dots is left alone.
func normSysctlKey(k string) string {
	k = strings.TrimSpace(k)
	k = strings.TrimPrefix(k, "/proc/sys/")
	if !strings.Contains(k, ".") {
		k = strings.ReplaceAll(strings.Trim(k, "/"), "/", ".")
	}
	return k
}

func normSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

func evalSysctl(c *labs.SysctlCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartSysctls)
	if bad != nil {
		return *bad
	}
	key := normSysctlKey(c.Key)
	v, ok := st.Sysctls[key]
	if !ok {
		v, ok = st.Sysctls[c.Key]
	}
	if !ok {
		if e := partErr(st, sysctlPart(key)); e != "" {
			return fail(fmt.Sprintf("could not read %s on %s: %s", key, c.Node, e))
		}
		return fail(fmt.Sprintf("%s has no sysctl %s (the key does not exist there)", c.Node, key))
	}
	have, want := normSpace(v), normSpace(c.Value)
	ev := fmt.Sprintf("%s = %s", key, have)
	if have != want {
		return fail(fmt.Sprintf("%s %s is %q, want %q", c.Node, key, have, want), ev)
	}
	return pass(fmt.Sprintf("%s %s is %q", c.Node, key, have), ev)
}
