package grader

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"nslab/labs"
)

// An nftables check is judged by meaning, not text: a rule is found by
// what it matches and what it does. A rule reached through jump/goto
// carries the conditions of the rule that jumped to it, so
// "ip saddr 10.0.0.0/8 jump ssh" + "tcp dport 22 accept" in chain ssh
// counts as "tcp dport 22 from 10.0.0.0/8 accept".

// maxJumpDepth bounds how deep jumps are followed (the kernel allows 16).
const maxJumpDepth = 16

func tableText(t *labs.NFTTable) string { return t.Family + " " + t.Name }

func wantTableText(c *labs.NFTCheck) string {
	switch {
	case c.Family != "" && c.Table != "":
		return "table " + c.Family + " " + c.Table
	case c.Table != "":
		return "table " + c.Table
	case c.Family != "":
		return "an " + c.Family + " table"
	}
	return "any table"
}

// effRule is a rule as it acts on packets: its own matches plus those of
// the jumps that lead to it.
type effRule struct {
	r     labs.NFTRule
	table *labs.NFTTable
	path  []string // chain names from the start chain to the rule's chain
	text  string
}

func (e *effRule) where() string {
	return tableText(e.table) + " " + strings.Join(e.path, " → ")
}

func ruleText(r *labs.NFTRule) string {
	if t := strings.TrimSpace(r.Text); t != "" {
		return t
	}
	return renderNFTRule(r.Proto, r.Saddr, r.Daddr, r.Sport, r.Dport, r.IIF, r.OIF, r.CTState, r.Verdict, r.Target, r.Log, r.Limit, r.Counter)
}

func renderNFTRule(proto string, saddr, daddr []string, sport, dport []int, iif, oif string, ct []string, verdict, target string, log, limit, counter bool) string {
	var s []string
	if iif != "" {
		s = append(s, "iifname "+iif)
	}
	if oif != "" {
		s = append(s, "oifname "+oif)
	}
	fam := "ip"
	for _, a := range append(slices.Clone(saddr), daddr...) {
		if p, ok := netPrefix(a); ok && p.Addr().Is6() {
			fam = "ip6"
		}
	}
	if len(saddr) > 0 {
		s = append(s, fam+" saddr "+addrList(saddr))
	}
	if len(daddr) > 0 {
		s = append(s, fam+" daddr "+addrList(daddr))
	}
	if len(sport) > 0 || len(dport) > 0 {
		p := proto
		if p == "" {
			p = "th"
		}
		if len(sport) > 0 {
			s = append(s, p+" sport "+portList(sport))
		}
		if len(dport) > 0 {
			s = append(s, p+" dport "+portList(dport))
		}
	} else if proto != "" {
		s = append(s, "meta l4proto "+proto)
	}
	if len(ct) > 0 {
		s = append(s, "ct state "+strings.Join(strSet(ct), ","))
	}
	if limit {
		s = append(s, "limit rate ...")
	}
	if counter {
		s = append(s, "counter")
	}
	if log {
		s = append(s, "log")
	}
	if verdict != "" {
		v := verdict
		if target != "" {
			switch verdict {
			case "snat", "dnat":
				v += " to " + target
			default:
				v += " " + target
			}
		}
		s = append(s, v)
	}
	return strings.Join(s, " ")
}

func addrList(a []string) string {
	if len(a) == 1 {
		return a[0]
	}
	return "{" + strings.Join(a, ", ") + "}"
}

func renderRuleMatch(m *labs.RuleMatch) string {
	var saddr, daddr []string
	if m.Saddr != "" && m.Saddr != "any" {
		saddr = []string{m.Saddr}
	}
	if m.Daddr != "" && m.Daddr != "any" {
		daddr = []string{m.Daddr}
	}
	s := renderNFTRule(m.Proto, saddr, daddr, m.Sport, m.Dport, m.IIF, m.OIF, m.CTState, m.Verdict, m.Target,
		m.Log != nil && *m.Log, m.Limit != nil && *m.Limit, m.Counter != nil && *m.Counter)
	var extra []string
	if m.Saddr == "any" {
		extra = append(extra, "from every source")
	}
	if m.Daddr == "any" {
		extra = append(extra, "to every destination")
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	if s == "" {
		return "(any rule)"
	}
	return s
}

// chainDiffs lists how a chain differs from the chain attributes c sets.
func chainDiffs(c *labs.NFTCheck, ch *labs.NFTChain) []string {
	var d []string
	if c.Chain != "" && ch.Name != c.Chain {
		d = append(d, fmt.Sprintf("is named %s, want %s", ch.Name, c.Chain))
	}
	if c.Hook != "" && !eqFold(ch.Hook, c.Hook) {
		if ch.Hook == "" {
			d = append(d, fmt.Sprintf("is a regular chain (no hook), want a base chain on hook %s", c.Hook))
		} else {
			d = append(d, fmt.Sprintf("hooks %s, want %s", ch.Hook, c.Hook))
		}
	}
	if c.Type != "" && !eqFold(ch.Type, c.Type) {
		d = append(d, fmt.Sprintf("has type %s, want %s", orNoneWord(ch.Type), c.Type))
	}
	if c.Priority != nil && (ch.Hook == "" || ch.Priority != *c.Priority) {
		if ch.Hook == "" {
			d = append(d, fmt.Sprintf("has no priority (regular chain), want %d", *c.Priority))
		} else {
			d = append(d, fmt.Sprintf("has priority %d, want %d", ch.Priority, *c.Priority))
		}
	}
	if c.Policy != "" && !eqFold(ch.Policy, c.Policy) {
		if ch.Policy == "" {
			d = append(d, fmt.Sprintf("has no policy (regular chain), want policy %s", c.Policy))
		} else {
			d = append(d, fmt.Sprintf("has policy %s, want %s", ch.Policy, c.Policy))
		}
	}
	return d
}

func orNoneWord(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func renderChain(t *labs.NFTTable, ch *labs.NFTChain) string {
	s := "chain " + tableText(t) + " " + ch.Name
	if ch.Hook != "" {
		typ := ch.Type
		if typ == "" {
			typ = "filter"
		}
		s += fmt.Sprintf(" { type %s hook %s priority %d;", typ, ch.Hook, ch.Priority)
		if ch.Policy != "" {
			s += " policy " + ch.Policy + ";"
		}
		s += " }"
	}
	s += " (" + plural(len(ch.Rules), "rule", "rules") + ")"
	return s
}

func hasChainAttrs(c *labs.NFTCheck) bool {
	return c.Chain != "" || c.Hook != "" || c.Type != "" || c.Priority != nil || c.Policy != ""
}

func evalNFT(c *labs.NFTCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartNFT)
	if bad != nil {
		return *bad
	}
	var tables []*labs.NFTTable
	for i := range st.NFT {
		t := &st.NFT[i]
		if (c.Family == "" || eqFold(t.Family, c.Family)) && (c.Table == "" || t.Name == c.Table) {
			tables = append(tables, t)
		}
	}
	wantT := wantTableText(c)
	noTable := func() outcome {
		var ev []string
		for i := range st.NFT {
			ev = append(ev, "table "+tableText(&st.NFT[i]))
		}
		if len(ev) == 0 {
			return fail(fmt.Sprintf("%s has no nftables ruleset (no tables at all), want %s", c.Node, wantT))
		}
		if c.Table != "" && c.Family != "" {
			for i := range st.NFT {
				if st.NFT[i].Name == c.Table {
					return fail(fmt.Sprintf("%s has table %s, but in family %s, not %s", c.Node, c.Table, st.NFT[i].Family, c.Family), ev...)
				}
			}
		}
		return fail(fmt.Sprintf("%s has no nftables %s", c.Node, wantT), ev...)
	}

	// Table only.
	if !hasChainAttrs(c) && c.Rule == nil {
		if c.Absent {
			if len(tables) == 0 {
				return pass(fmt.Sprintf("%s has no nftables %s, as wanted", c.Node, wantT))
			}
			return fail(fmt.Sprintf("%s still has nftables table %s", c.Node, tableText(tables[0])), "table "+tableText(tables[0]))
		}
		if len(tables) == 0 {
			return noTable()
		}
		return pass(fmt.Sprintf("%s has nftables table %s", c.Node, tableText(tables[0])), "table "+tableText(tables[0]))
	}
	if len(tables) == 0 {
		if c.Absent {
			return pass(fmt.Sprintf("%s has no nftables %s, so nothing of it remains", c.Node, wantT))
		}
		return noTable()
	}

	// Chains that satisfy every chain attribute, and the closest that don't.
	type chainRef struct {
		t     *labs.NFTTable
		ch    *labs.NFTChain
		diffs []string
	}
	var good, near []chainRef
	for _, t := range tables {
		for j := range t.Chains {
			ch := &t.Chains[j]
			d := chainDiffs(c, ch)
			if len(d) == 0 {
				good = append(good, chainRef{t, ch, nil})
				continue
			}
			// A chain is a near miss when it is the named one, or (unnamed)
			// sits on the wanted hook.
			if (c.Chain != "" && ch.Name == c.Chain) || (c.Chain == "" && c.Hook != "" && eqFold(ch.Hook, c.Hook)) {
				near = append(near, chainRef{t, ch, d})
			}
		}
	}
	chainWant := func() string {
		var s string
		switch {
		case c.Chain != "":
			s = "chain " + c.Chain
		case c.Hook != "":
			s = "base chain on hook " + c.Hook
		default:
			s = "chain"
		}
		var attrs []string
		if c.Type != "" {
			attrs = append(attrs, "type "+c.Type)
		}
		if c.Chain != "" && c.Hook != "" {
			attrs = append(attrs, "hook "+c.Hook)
		}
		if c.Priority != nil {
			attrs = append(attrs, "priority "+strconv.Itoa(*c.Priority))
		}
		if c.Policy != "" {
			attrs = append(attrs, "policy "+c.Policy)
		}
		if len(attrs) > 0 {
			s += " (" + strings.Join(attrs, ", ") + ")"
		}
		return s
	}
	chainEvidence := func() []string {
		var ev []string
		for _, t := range tables {
			for j := range t.Chains {
				ev = append(ev, renderChain(t, &t.Chains[j]))
			}
			if len(t.Chains) == 0 {
				ev = append(ev, "table "+tableText(t)+" has no chains")
			}
		}
		return ev
	}
	noChain := func() outcome {
		if len(near) > 0 {
			n := near[0]
			return fail(fmt.Sprintf("%s chain %s of %s %s", c.Node, n.ch.Name, tableText(n.t), andList(n.diffs)), renderChain(n.t, n.ch))
		}
		return fail(fmt.Sprintf("%s has no %s in %s", c.Node, chainWant(), wantT), chainEvidence()...)
	}

	// Chain only.
	if c.Rule == nil {
		if c.Absent {
			if len(good) == 0 {
				return pass(fmt.Sprintf("%s has no %s in %s, as wanted", c.Node, chainWant(), wantT))
			}
			return fail(fmt.Sprintf("%s still has chain %s in %s", c.Node, good[0].ch.Name, tableText(good[0].t)), renderChain(good[0].t, good[0].ch))
		}
		if len(good) == 0 {
			return noChain()
		}
		return pass(fmt.Sprintf("%s has chain %s in %s", c.Node, good[0].ch.Name, tableText(good[0].t)), renderChain(good[0].t, good[0].ch))
	}

	// Rule: search from the chains that satisfy the attributes. A named
	// chain is taken on its own; otherwise only base chains, because a
	// regular chain acts only through the jumps that reach it.
	var starts []chainRef
	for _, g := range good {
		if c.Chain != "" || g.ch.Hook != "" {
			starts = append(starts, g)
		}
	}
	if len(starts) == 0 {
		if c.Absent {
			return pass(fmt.Sprintf("%s has no %s in %s, so no such rule", c.Node, chainWant(), wantT))
		}
		if len(good) > 0 {
			return fail(fmt.Sprintf("%s has no base chain in %s, so no rule there ever runs", c.Node, wantT), chainEvidence()...)
		}
		return noChain()
	}
	var rules []effRule
	reached := map[*labs.NFTChain]bool{}
	for _, s := range starts {
		rules = collectRules(s.t, s.ch, nil, []string{s.ch.Name}, rules, reached, 0)
	}
	m := c.Rule
	want := renderRuleMatch(m)
	scope := ruleScope(c, wantT)
	var match *effRule
	bestSame, best := -1, -1
	var bestDiffs []string
	for i := range rules {
		d, same := ruleMatchDiffs(m, &rules[i].r)
		if len(d) == 0 {
			match = &rules[i]
			break
		}
		if same > bestSame {
			best, bestSame, bestDiffs = i, same, d
		}
	}
	if c.Absent {
		if match == nil {
			return pass(fmt.Sprintf("%s has no rule `%s` in %s, as wanted", c.Node, want, scope))
		}
		return fail(fmt.Sprintf("%s still has the rule `%s` in %s", c.Node, match.text, match.where()), nftRuleEvidence(match)...)
	}
	if match != nil {
		return pass(fmt.Sprintf("%s has the rule `%s` in %s", c.Node, match.text, match.where()), nftRuleEvidence(match)...)
	}
	// Not reachable: the rule may exist in a chain nothing jumps to.
	for _, t := range tables {
		for j := range t.Chains {
			ch := &t.Chains[j]
			if reached[ch] {
				continue
			}
			for k := range ch.Rules {
				r := expandSets(t, ch.Rules[k])
				if d, _ := ruleMatchDiffs(m, &r); len(d) == 0 {
					return fail(fmt.Sprintf("%s has the rule `%s` in chain %s of %s, but no hook reaches that chain (no base chain jumps to it), so it never runs",
						c.Node, ruleText(&ch.Rules[k]), ch.Name, tableText(t)), renderChain(t, ch))
				}
			}
		}
	}
	if best >= 0 && bestSame > 0 {
		b := &rules[best]
		msg := fmt.Sprintf("%s has no rule `%s` in %s; the rule `%s` in %s %s", c.Node, want, scope, b.text, b.where(), andList(learnerDiffs(m, &b.r, bestDiffs)))
		return fail(msg, nftRuleEvidence(b)...)
	}
	var ev []string
	for i := range rules {
		ev = append(ev, rules[i].where()+": "+rules[i].text)
	}
	if len(ev) == 0 {
		ev = chainEvidence()
		return fail(fmt.Sprintf("%s has no rule `%s` in %s: the chains there are empty", c.Node, want, scope), ev...)
	}
	return fail(fmt.Sprintf("%s has no rule `%s` in %s", c.Node, want, scope), ev...)
}

func ruleScope(c *labs.NFTCheck, wantT string) string {
	of := " of " + wantT
	if c.Table == "" && c.Family == "" {
		of = ""
	}
	switch {
	case c.Chain != "":
		return "chain " + c.Chain + of
	case c.Hook != "":
		return "the " + c.Hook + " hook" + of
	}
	if of == "" {
		return "the ruleset"
	}
	return wantT
}

func nftRuleEvidence(e *effRule) []string {
	ev := []string{e.where() + ": " + e.text}
	if e.r.Counter && (e.r.Packets > 0 || e.r.Bytes > 0) {
		ev = append(ev, fmt.Sprintf("counter: %d packets, %d bytes", e.r.Packets, e.r.Bytes))
	}
	if len(e.r.Unknown) > 0 {
		ev = append(ev, "the rule also has parts the grader does not read: "+strings.Join(e.r.Unknown, ", "))
	}
	return ev
}

// collectRules lists the rules of ch in order, descending into chains
// reached by jump/goto with the jumping rule's conditions added.
func collectRules(t *labs.NFTTable, ch *labs.NFTChain, outer *effRule, path []string, out []effRule, reached map[*labs.NFTChain]bool, depth int) []effRule {
	reached[ch] = true
	for _, r := range ch.Rules {
		r = expandSets(t, r)
		e := effRule{r: r, table: t, path: path, text: ruleText(&r)}
		if outer != nil {
			e.r = mergeRule(outer.r, r)
			e.text = outer.text + " → " + e.text
		}
		out = append(out, e)
		if (r.Verdict == "jump" || r.Verdict == "goto") && depth < maxJumpDepth && !slices.Contains(path, r.Target) {
			for j := range t.Chains {
				if t.Chains[j].Name == r.Target {
					p := append(slices.Clone(path), r.Target)
					out = collectRules(t, &t.Chains[j], &e, p, out, reached, depth+1)
				}
			}
		}
	}
	return out
}

// mergeRule gives inner the conditions of the rule that jumped to it,
// where inner does not set them itself.
func mergeRule(outer, inner labs.NFTRule) labs.NFTRule {
	m := inner
	if m.Proto == "" {
		m.Proto = outer.Proto
	}
	if len(m.Saddr) == 0 {
		m.Saddr = outer.Saddr
	}
	if len(m.Daddr) == 0 {
		m.Daddr = outer.Daddr
	}
	if len(m.Sport) == 0 {
		m.Sport = outer.Sport
	}
	if len(m.Dport) == 0 {
		m.Dport = outer.Dport
	}
	if m.IIF == "" {
		m.IIF = outer.IIF
	}
	if m.OIF == "" {
		m.OIF = outer.OIF
	}
	if len(m.CTState) == 0 {
		m.CTState = outer.CTState
	}
	m.Limit = m.Limit || outer.Limit
	m.Unknown = append(slices.Clone(outer.Unknown), inner.Unknown...)
	return m
}

// expandSets replaces "@set" address references by the set's elements.
func expandSets(t *labs.NFTTable, r labs.NFTRule) labs.NFTRule {
	setElems := func(a string) ([]string, bool) {
		name, ok := strings.CutPrefix(strings.TrimSpace(a), "@")
		if !ok {
			return nil, false
		}
		for _, s := range t.Sets {
			if s.Name == name {
				return s.Elements, true
			}
		}
		return nil, false
	}
	exp := func(v []string) []string {
		var out []string
		changed := false
		for _, a := range v {
			if el, ok := setElems(a); ok {
				out = append(out, el...)
				changed = true
			} else {
				out = append(out, a)
			}
		}
		if !changed {
			return v
		}
		return out
	}
	r.Saddr = exp(r.Saddr)
	r.Daddr = exp(r.Daddr)
	return r
}

// prefixSet normalises addresses to masked prefixes; unparsable entries
// are kept as text so they never equal a real prefix by accident.
func prefixSet(v []string) []string {
	out := make([]string, 0, len(v))
	for _, a := range v {
		if p, ok := netPrefix(a); ok {
			out = append(out, p.String())
		} else {
			out = append(out, strings.ToLower(strings.TrimSpace(a)))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func addrMatch(want string, have []string) bool {
	if eqFold(want, "any") {
		return len(have) == 0
	}
	w, ok := netPrefix(want)
	if !ok {
		return false
	}
	return slices.Equal(prefixSet(have), []string{w.String()})
}

// field names, as ruleMatchDiffs reports them, for learnerDiffs.
const (
	fProto = "proto"
	fSaddr = "saddr"
	fDaddr = "daddr"
	fSport = "sport"
	fDport = "dport"
	fIIF   = "iif"
	fOIF   = "oif"
	fCT    = "ct state"
	fVerd  = "verdict"
	fTgt   = "target"
	fLog   = "log"
	fLimit = "limit"
	fCount = "counter"
)

// ruleMatchDiffs returns the names of the fields m sets that r does not
// match, and a likeness score for picking the closest miss: fields that
// say which traffic a rule is about (ports, addresses, protocol) weigh
// more than its verdict, and an "any" met by a rule that simply does not
// look at a field weighs least.
func ruleMatchDiffs(m *labs.RuleMatch, r *labs.NFTRule) (diffs []string, score int) {
	check := func(set, ok bool, weight int, name string) {
		if !set {
			return
		}
		if ok {
			score += weight
		} else {
			diffs = append(diffs, name)
		}
	}
	addrWeight := func(want string) int {
		if eqFold(want, "any") {
			return 1
		}
		return 3
	}
	check(m.Proto != "", eqFold(r.Proto, m.Proto), 2, fProto)
	check(m.Saddr != "", addrMatch(m.Saddr, r.Saddr), addrWeight(m.Saddr), fSaddr)
	check(m.Daddr != "", addrMatch(m.Daddr, r.Daddr), addrWeight(m.Daddr), fDaddr)
	check(len(m.Sport) > 0, sameIntSet(m.Sport, r.Sport), 4, fSport)
	check(len(m.Dport) > 0, sameIntSet(m.Dport, r.Dport), 4, fDport)
	check(m.IIF != "", r.IIF == m.IIF, 2, fIIF)
	check(m.OIF != "", r.OIF == m.OIF, 2, fOIF)
	check(len(m.CTState) > 0, slices.Equal(strSet(m.CTState), strSet(r.CTState)), 2, fCT)
	check(m.Verdict != "", eqFold(r.Verdict, m.Verdict), 1, fVerd)
	check(m.Target != "", strings.TrimSpace(r.Target) == strings.TrimSpace(m.Target), 1, fTgt)
	check(m.Log != nil, m.Log != nil && r.Log == *m.Log, 1, fLog)
	check(m.Limit != nil, m.Limit != nil && r.Limit == *m.Limit, 1, fLimit)
	check(m.Counter != nil, m.Counter != nil && r.Counter == *m.Counter, 1, fCount)
	// Partial likeness: overlapping port sets or CT states.
	if len(m.Dport) > 0 && !sameIntSet(m.Dport, r.Dport) && overlaps(m.Dport, r.Dport) {
		score += 2
	}
	if len(m.Sport) > 0 && !sameIntSet(m.Sport, r.Sport) && overlaps(m.Sport, r.Sport) {
		score += 2
	}
	if len(m.CTState) > 0 && len(r.CTState) > 0 {
		for _, s := range strSet(m.CTState) {
			if slices.Contains(strSet(r.CTState), s) {
				score++
				break
			}
		}
	}
	return diffs, score
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// ruleDoes says what a rule does to what, for messages: "accepts port 22".
func ruleDoes(r *labs.NFTRule) string {
	verb := "matches"
	switch strings.ToLower(r.Verdict) {
	case "accept":
		verb = "accepts"
	case "drop":
		verb = "drops"
	case "reject":
		verb = "rejects"
	case "masquerade":
		verb = "masquerades"
	case "snat":
		verb = "source-NATs"
	case "dnat":
		verb = "destination-NATs"
	case "redirect":
		verb = "redirects"
	case "jump":
		verb = "sends to chain " + r.Target
	case "goto":
		verb = "sends (goto) to chain " + r.Target
	case "return":
		verb = "returns"
	}
	what := "traffic"
	switch {
	case len(r.Dport) == 1:
		what = "port " + strconv.Itoa(r.Dport[0])
	case len(r.Dport) > 1:
		what = "ports " + joinInts(r.Dport)
	case r.Proto != "":
		what = r.Proto
	}
	return verb + " " + what
}

func prefixText(v []string) string {
	ps := prefixSet(v)
	for i, p := range ps {
		ps[i] = canonAddr(p)
	}
	return strings.Join(ps, ", ")
}

func portsText(v []int) string {
	if len(v) == 1 {
		return strconv.Itoa(v[0])
	}
	return joinInts(v)
}

// learnerDiffs turns field names into what the rule does instead.
func learnerDiffs(m *labs.RuleMatch, r *labs.NFTRule, fields []string) []string {
	does := ruleDoes(r)
	var out []string
	addrDiff := func(want string, have []string, every, fromTo string) string {
		switch {
		case len(have) == 0:
			return fmt.Sprintf("%s %s %s, not only %s", does, fromTo, every, canonAddr(want))
		case eqFold(want, "any"):
			return fmt.Sprintf("%s only %s %s, not %s %s", does, fromTo, prefixText(have), fromTo, every)
		}
		return fmt.Sprintf("%s %s %s, not %s", does, fromTo, prefixText(have), canonAddr(want))
	}
	for _, f := range fields {
		switch f {
		case fSaddr:
			out = append(out, addrDiff(m.Saddr, r.Saddr, "every source", "from"))
		case fDaddr:
			out = append(out, addrDiff(m.Daddr, r.Daddr, "every destination", "to"))
		case fProto:
			if r.Proto == "" {
				out = append(out, fmt.Sprintf("matches every protocol, not only %s", m.Proto))
			} else {
				out = append(out, fmt.Sprintf("matches %s, not %s", r.Proto, m.Proto))
			}
		case fDport, fSport:
			word := "destination"
			want, have := m.Dport, r.Dport
			if f == fSport {
				word, want, have = "source", m.Sport, r.Sport
			}
			if len(have) == 0 {
				out = append(out, fmt.Sprintf("matches every %s port, not only %s", word, portsText(want)))
			} else {
				ports := "port"
				if len(intSet(have)) > 1 {
					ports = "ports"
				}
				out = append(out, fmt.Sprintf("matches %s %s %s, not %s", word, ports, portsText(have), portsText(want)))
			}
		case fIIF, fOIF:
			word, want, have := "arriving on", m.IIF, r.IIF
			if f == fOIF {
				word, want, have = "leaving by", m.OIF, r.OIF
			}
			if have == "" {
				out = append(out, fmt.Sprintf("matches packets %s any interface, not only %s", word, want))
			} else {
				out = append(out, fmt.Sprintf("matches packets %s %s, not %s", word, have, want))
			}
		case fCT:
			if len(r.CTState) == 0 {
				out = append(out, fmt.Sprintf("has no ct state match, want ct state %s", strings.Join(strSet(m.CTState), ",")))
			} else {
				out = append(out, fmt.Sprintf("matches ct state %s, want %s", strings.Join(strSet(r.CTState), ","), strings.Join(strSet(m.CTState), ",")))
			}
		case fVerd:
			if r.Verdict == "" {
				out = append(out, fmt.Sprintf("has no verdict, want %s", m.Verdict))
			} else {
				out = append(out, fmt.Sprintf("has verdict %s, want %s", r.Verdict, m.Verdict))
			}
		case fTgt:
			if r.Target == "" {
				out = append(out, fmt.Sprintf("has no target, want %s", m.Target))
			} else {
				out = append(out, fmt.Sprintf("has target %s, want %s", r.Target, m.Target))
			}
		case fLog:
			out = append(out, boolDiff(*m.Log, "does not log", "logs"))
		case fLimit:
			out = append(out, boolDiff(*m.Limit, "has no rate limit", "has a rate limit, want none"))
		case fCount:
			out = append(out, boolDiff(*m.Counter, "has no counter", "has a counter, want none"))
		}
	}
	return out
}

func boolDiff(want bool, ifMissing, ifExtra string) string {
	if want {
		return ifMissing
	}
	return ifExtra
}

func canonAddr(s string) string {
	if p, ok := netPrefix(s); ok {
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String()
		}
		return p.String()
	}
	return s
}
