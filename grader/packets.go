package grader

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"nslab/labs"
)

// Packet checks judge what the hub capture saw.
//
// Scope: packets on Link (all links when empty), captured within Window
// before Observations.Now (default 5m; no time filter when Now is zero).
//
// Node: a packet counts for a node when the node sent it (its Endpoint
// is "node:iface") or received it. Captured frames are recorded once,
// with the sender's endpoint, so "received" is inferred:
//   - when the node's interface MACs are known (its NodeState links,
//     which Plan asks for), a unicast frame is received if its
//     destination MAC is one of them, and a broadcast/multicast frame if
//     it is on a link the node is on;
//   - else, when only its addresses are known, by destination address;
//   - else every packet on a link the node is on counts.
// A node is on a link when it sent something there, or when the check
// names both the link and the node.
//
// Sequence: packets of one flow (protocol and the two address:port ends,
// either direction) that match the steps in order, not necessarily
// adjacent. The check's Match then selects the flow in either direction
// (its src/dst and ports may be swapped), so a handshake's SYN-ACK is not
// filtered out by a Match written from the client's side.

const defaultWindow = 5 * time.Minute

// maxPacketEvidence bounds the packet summaries in a result.
const maxPacketEvidence = 5

type nodeView struct {
	node  string
	macs  map[string]bool
	addrs map[netip.Addr]bool
	links map[string]bool // links the node is on
}

func endpointNode(ep string) string {
	n, _, _ := strings.Cut(ep, ":")
	return n
}

func newNodeView(c *labs.PacketCheck, obs *Observations) *nodeView {
	if c.Node == "" {
		return nil
	}
	v := &nodeView{node: c.Node, macs: map[string]bool{}, addrs: map[netip.Addr]bool{}, links: map[string]bool{}}
	if st := obs.States[c.Node]; st != nil {
		for _, l := range st.Links {
			if l.MAC != "" && normMAC(l.MAC) != "00:00:00:00:00:00" {
				v.macs[normMAC(l.MAC)] = true
			}
		}
		for _, a := range st.Addrs {
			if p, ok := parsePrefix(a.Prefix); ok {
				v.addrs[p.Addr()] = true
			}
		}
	}
	if c.Link != "" {
		v.links[c.Link] = true
	}
	for i := range obs.Packets {
		if endpointNode(obs.Packets[i].Endpoint) == c.Node {
			v.links[obs.Packets[i].Link] = true
		}
	}
	return v
}

func isGroupMAC(m string) bool {
	hi, err := strconv.ParseUint(strings.SplitN(m, ":", 2)[0], 16, 8)
	return err == nil && hi&1 == 1
}

func (v *nodeView) sees(p *labs.Packet) bool {
	if endpointNode(p.Endpoint) == v.node {
		return true
	}
	onLink := v.links[p.Link]
	if p.DstMAC != "" && len(v.macs) > 0 {
		m := normMAC(p.DstMAC)
		if isGroupMAC(m) {
			return onLink
		}
		return v.macs[m]
	}
	if a, ok := parseAddr(p.Dst); ok && len(v.addrs) > 0 {
		if a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return onLink
		}
		return v.addrs[a]
	}
	return onLink
}

// packetScope returns the packets in the check's scope, in time order.
func packetScope(c *labs.PacketCheck, obs *Observations, window time.Duration) []*labs.Packet {
	nv := newNodeView(c, obs)
	var from time.Time
	if !obs.Now.IsZero() {
		from = obs.Now.Add(-window)
	}
	var out []*labs.Packet
	for i := range obs.Packets {
		p := &obs.Packets[i]
		if c.Link != "" && p.Link != c.Link {
			continue
		}
		// The grader's own probes never count for the learner; a check
		// that generates traffic judges the packets it caused.
		if p.Probe && c.Generate == nil {
			continue
		}
		// A packet whose source address is another node's on this link
		// was forged by the node it came from.
		if p.Spoofed {
			continue
		}
		if !from.IsZero() && p.Time.Before(from) {
			continue
		}
		if nv != nil && !nv.sees(p) {
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b *labs.Packet) int { return a.Time.Compare(b.Time) })
	return out
}

func family(addr string) int {
	a, ok := parseAddr(addr)
	switch {
	case !ok:
		return 0
	case a.Is4():
		return 4
	}
	return 6
}

func protoMatch(want string, p *labs.Packet) bool {
	w := strings.ToLower(strings.TrimSpace(want))
	switch w {
	case "ipv4", "ip", "ip4":
		return p.Proto != "arp" && family(p.Src) == 4
	case "ipv6", "ip6":
		return p.Proto != "arp" && family(p.Src) == 6
	case "icmp", "icmpv4":
		return p.Proto == "icmp"
	case "icmpv6", "icmp6":
		return p.Proto == "icmpv6"
	}
	return eqFold(p.Proto, w)
}

// flagOrder is how Packet.Flags spells TCP flags.
const flagOrder = "FSRPAUEC"

// normFlags puts TCP flag letters in canonical order; tcpdump's "." is ACK.
func normFlags(s string) string {
	s = strings.ToUpper(strings.ReplaceAll(s, ".", "A"))
	var b strings.Builder
	for _, f := range flagOrder {
		if strings.ContainsRune(s, f) {
			b.WriteRune(f)
		}
	}
	return b.String()
}

// packetDiffs returns how p differs from the fields m sets, and how many
// it matches.
func packetDiffs(m *labs.PacketMatch, p *labs.Packet) (diffs []string, same int) {
	check := func(set, ok bool, diff func() string) {
		if !set {
			return
		}
		if ok {
			same++
		} else {
			diffs = append(diffs, diff())
		}
	}
	check(m.Proto != "", protoMatch(m.Proto, p), func() string { return fmt.Sprintf("proto %s, want %s", orNoneWord(p.Proto), m.Proto) })
	check(m.Src != "", addrIn(p.Src, m.Src), func() string { return fmt.Sprintf("src %s, want %s", orNoneWord(p.Src), m.Src) })
	check(m.Dst != "", addrIn(p.Dst, m.Dst), func() string { return fmt.Sprintf("dst %s, want %s", orNoneWord(p.Dst), m.Dst) })
	check(m.Sport != 0, p.Sport == m.Sport, func() string { return fmt.Sprintf("sport %d, want %d", p.Sport, m.Sport) })
	check(m.Dport != 0, p.Dport == m.Dport, func() string { return fmt.Sprintf("dport %d, want %d", p.Dport, m.Dport) })
	check(m.Port != 0, p.Sport == m.Port || p.Dport == m.Port, func() string {
		return fmt.Sprintf("ports %d > %d, want port %d", p.Sport, p.Dport, m.Port)
	})
	check(m.Flags != "", p.Proto == "tcp" && normFlags(p.Flags) == normFlags(m.Flags), func() string {
		if p.Proto != "tcp" {
			return fmt.Sprintf("not tcp, want flags %s", normFlags(m.Flags))
		}
		return fmt.Sprintf("flags %s, want %s", orNoneWord(normFlags(p.Flags)), normFlags(m.Flags))
	})
	check(m.TTL != 0, p.TTL == m.TTL, func() string { return fmt.Sprintf("ttl %d, want %d", p.TTL, m.TTL) })
	check(m.ICMPType != nil, (p.Proto == "icmp" || p.Proto == "icmpv6") && m.ICMPType != nil && p.ICMPType == *m.ICMPType, func() string {
		if p.Proto != "icmp" && p.Proto != "icmpv6" {
			return fmt.Sprintf("not icmp, want icmp type %d", *m.ICMPType)
		}
		return fmt.Sprintf("icmp type %d, want %d", p.ICMPType, *m.ICMPType)
	})
	check(m.SrcMAC != "", normMAC(p.SrcMAC) == normMAC(m.SrcMAC), func() string { return fmt.Sprintf("src mac %s, want %s", p.SrcMAC, normMAC(m.SrcMAC)) })
	check(m.DstMAC != "", normMAC(p.DstMAC) == normMAC(m.DstMAC), func() string { return fmt.Sprintf("dst mac %s, want %s", p.DstMAC, normMAC(m.DstMAC)) })
	return diffs, same
}

func packetMatches(m *labs.PacketMatch, p *labs.Packet) bool {
	d, _ := packetDiffs(m, p)
	return len(d) == 0
}

// reversed is m seen from the other end of the flow.
func reversed(m labs.PacketMatch) labs.PacketMatch {
	m.Src, m.Dst = m.Dst, m.Src
	m.Sport, m.Dport = m.Dport, m.Sport
	m.SrcMAC, m.DstMAC = m.DstMAC, m.SrcMAC
	return m
}

func renderPacketMatch(m *labs.PacketMatch) string {
	var s []string
	isICMP := false
	if m.Proto != "" {
		s = append(s, m.Proto)
		isICMP = strings.HasPrefix(strings.ToLower(m.Proto), "icmp")
	}
	if m.ICMPType != nil {
		if isICMP {
			s = append(s, "type "+strconv.Itoa(*m.ICMPType))
		} else {
			s = append(s, "icmp type "+strconv.Itoa(*m.ICMPType))
		}
	}
	if m.Src != "" {
		s = append(s, "src "+m.Src)
	}
	if m.Dst != "" {
		s = append(s, "dst "+m.Dst)
	}
	if m.Sport != 0 {
		s = append(s, "sport "+strconv.Itoa(m.Sport))
	}
	if m.Dport != 0 {
		s = append(s, "dport "+strconv.Itoa(m.Dport))
	}
	if m.Port != 0 {
		s = append(s, "port "+strconv.Itoa(m.Port))
	}
	if m.Flags != "" {
		s = append(s, "flags "+normFlags(m.Flags))
	}
	if m.TTL != 0 {
		s = append(s, "ttl "+strconv.Itoa(m.TTL))
	}
	if m.SrcMAC != "" {
		s = append(s, "src mac "+normMAC(m.SrcMAC))
	}
	if m.DstMAC != "" {
		s = append(s, "dst mac "+normMAC(m.DstMAC))
	}
	if len(s) == 0 {
		return "any packet"
	}
	return strings.Join(s, " ")
}

// fmtDuration prints 5m rather than 5m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var tcpFlagNames = map[string]string{
	"S": "SYN", "SA": "SYN-ACK", "A": "ACK", "R": "RST", "RA": "RST-ACK",
	"F": "FIN", "FA": "FIN-ACK", "PA": "PSH-ACK", "FPA": "FIN-PSH-ACK",
}

var icmpNames = map[[2]int]string{
	{4, 0}: "echo reply", {4, 3}: "destination unreachable", {4, 8}: "echo request", {4, 11}: "time exceeded", {4, 5}: "redirect",
	{6, 1}: "destination unreachable", {6, 2}: "packet too big", {6, 3}: "time exceeded", {6, 128}: "echo request", {6, 129}: "echo reply",
	{6, 133}: "router solicitation", {6, 134}: "router advertisement", {6, 135}: "neighbor solicitation", {6, 136}: "neighbor advertisement",
}

// describePacket names a packet the way a learner reads tcpdump:
// "SYN 10.0.1.10:40000 > 10.0.2.10:22".
func describePacket(p *labs.Packet) string {
	ends := hostPort(p.Src, p.Sport) + " > " + hostPort(p.Dst, p.Dport)
	switch p.Proto {
	case "tcp":
		f := normFlags(p.Flags)
		name, ok := tcpFlagNames[f]
		if !ok {
			name = "TCP [" + f + "]"
		}
		return name + " " + ends
	case "icmp", "icmpv6":
		fam, label := 4, "ICMP"
		if p.Proto == "icmpv6" {
			fam, label = 6, "ICMPv6"
		}
		name, ok := icmpNames[[2]int{fam, p.ICMPType}]
		if !ok {
			name = fmt.Sprintf("type %d code %d", p.ICMPType, p.ICMPCode)
		}
		return label + " " + name + " " + ends
	case "udp":
		return "UDP " + ends
	case "arp":
		return "ARP " + p.Src + " > " + p.Dst
	}
	return strings.ToUpper(orNoneWord(p.Proto)) + " " + ends
}

func summarize(p *labs.Packet) string {
	var b strings.Builder
	if !p.Time.IsZero() {
		b.WriteString(p.Time.UTC().Format("15:04:05.000") + " ")
	}
	if p.Endpoint != "" {
		b.WriteString(p.Endpoint + " ")
	}
	if p.Summary != "" {
		b.WriteString(p.Summary)
	} else {
		b.WriteString(describePacket(p))
		if p.TTL != 0 {
			fmt.Fprintf(&b, " ttl %d", p.TTL)
		}
	}
	return b.String()
}

func summaries(ps []*labs.Packet) []string {
	var ev []string
	for i, p := range ps {
		if i == maxPacketEvidence {
			ev = append(ev, fmt.Sprintf("(and %d more)", len(ps)-maxPacketEvidence))
			break
		}
		ev = append(ev, summarize(p))
	}
	return ev
}

// closestPackets are the packets in scope matching the most fields of m,
// with what differs.
func closestPackets(m *labs.PacketMatch, ps []*labs.Packet) []string {
	best := 0
	type near struct {
		p     *labs.Packet
		diffs []string
	}
	var nears []near
	for _, p := range ps {
		d, same := packetDiffs(m, p)
		switch {
		case same > best:
			best, nears = same, []near{{p, d}}
		case same == best && same > 0:
			nears = append(nears, near{p, d})
		}
	}
	var ev []string
	for i, n := range nears {
		if i == 3 {
			ev = append(ev, fmt.Sprintf("(and %d more as close)", len(nears)-3))
			break
		}
		ev = append(ev, "closest: "+summarize(n.p)+" ("+strings.Join(n.diffs, ", ")+")")
	}
	return ev
}

func scopeText(c *labs.PacketCheck, window time.Duration, obs *Observations) string {
	var s []string
	if c.Link != "" {
		s = append(s, "on link "+c.Link)
	}
	if c.Node != "" {
		s = append(s, "to or from "+c.Node)
	}
	if !obs.Now.IsZero() {
		s = append(s, "in the last "+fmtDuration(window))
	}
	return strings.Join(s, " ")
}

func evalPackets(id string, c *labs.PacketCheck, obs *Observations) outcome {
	window := defaultWindow
	if c.Window != "" {
		w, err := time.ParseDuration(c.Window)
		if err != nil || w <= 0 {
			return fail(fmt.Sprintf("the check's window %q is not a positive Go duration such as 30s or 5m", c.Window))
		}
		window = w
	}
	ps := packetScope(c, obs, window)
	scope := scopeText(c, window, obs)
	var o outcome
	if len(c.Sequence) > 0 {
		o = evalSequence(c, ps, scope)
	} else {
		o = evalCount(c, ps, scope)
	}
	if c.Generate != nil {
		if p, ok := obs.Probes[id]; ok {
			o.evidence = append(o.evidence, fmt.Sprintf("traffic generated first from %s: %s", c.Generate.From, outcomeText(p.Kind, p.Outcome)))
		}
	}
	return o
}

func evalCount(c *labs.PacketCheck, ps []*labs.Packet, scope string) outcome {
	m := &c.Match
	var hits []*labs.Packet
	for _, p := range ps {
		if packetMatches(m, p) {
			hits = append(hits, p)
		}
	}
	n := len(hits)
	want := renderPacketMatch(m)
	saw := fmt.Sprintf("saw %s matching `%s` %s", plural(n, "packet", "packets"), want, scope)
	if c.None {
		if n == 0 {
			return pass(saw+", as wanted", fmt.Sprintf("%s in scope", plural(len(ps), "packet", "packets")))
		}
		return fail(saw+", want none", summaries(hits)...)
	}
	lo, hi := 1, -1
	if c.AtLeast != nil {
		lo = *c.AtLeast
	} else if c.AtMost != nil {
		lo = 0
	}
	if c.AtMost != nil {
		hi = *c.AtMost
	}
	switch {
	case n < lo:
		ev := summaries(hits)
		if len(ps) == 0 {
			ev = append(ev, "no packets were captured "+scope)
		} else {
			ev = append(ev, closestPackets(m, ps)...)
			ev = append(ev, fmt.Sprintf("%s captured %s in all", plural(len(ps), "packet", "packets"), scope))
		}
		return fail(fmt.Sprintf("%s, want at least %d", saw, lo), ev...)
	case hi >= 0 && n > hi:
		return fail(fmt.Sprintf("%s, want at most %d", saw, hi), summaries(hits)...)
	}
	return pass(saw, summaries(hits)...)
}

type flowKey struct {
	proto string
	a, b  string // the two ends, ordered
}

func keyOf(p *labs.Packet) flowKey {
	x, y := hostPort(p.Src, p.Sport), hostPort(p.Dst, p.Dport)
	if y < x {
		x, y = y, x
	}
	return flowKey{p.Proto, x, y}
}

func (k flowKey) String() string { return k.proto + " " + k.a + " <> " + k.b }

// tcpContinues: an answer to a SYN (or SYN-ACK) must acknowledge it —
// ack = its seq + 1 — so a segment forged without seeing the other side's
// sequence number does not continue a handshake. Fixtures without
// sequence numbers (both zero) are not judged on them.
func tcpContinues(matched []*labs.Packet, p *labs.Packet) bool {
	if len(matched) == 0 {
		return true
	}
	prev := matched[len(matched)-1]
	if prev.Proto != "tcp" || p.Proto != "tcp" || !strings.Contains(prev.Flags, "S") ||
		p.Src != prev.Dst || p.Dst != prev.Src || !strings.Contains(p.Flags, "A") {
		return true
	}
	if prev.Seq == 0 && p.Ack == 0 {
		return true
	}
	return p.Ack == prev.Seq+1
}

func evalSequence(c *labs.PacketCheck, ps []*labs.Packet, scope string) outcome {
	sel, rsel := c.Match, reversed(c.Match)
	var order []flowKey
	flows := map[flowKey][]*labs.Packet{}
	for _, p := range ps {
		if !packetMatches(&sel, p) && !packetMatches(&rsel, p) {
			continue
		}
		k := keyOf(p)
		if _, ok := flows[k]; !ok {
			order = append(order, k)
		}
		flows[k] = append(flows[k], p)
	}
	steps := make([]string, len(c.Sequence))
	for i := range c.Sequence {
		steps[i] = renderPacketMatch(&c.Sequence[i])
	}
	seqText := strings.Join(steps, ", ")

	// Greedy in-order matching finds a subsequence whenever one exists.
	type progress struct {
		key     flowKey
		matched []*labs.Packet
		last    int // index in the flow of the last matched packet
	}
	var best *progress
	for _, k := range order {
		fp := flows[k]
		pr := progress{key: k, last: -1}
		for i, p := range fp {
			if len(pr.matched) == len(c.Sequence) {
				break
			}
			// A reset inside the sequence ends that attempt: a handshake
			// whose client answered the SYN-ACK with RST never happened.
			if len(pr.matched) > 0 && strings.Contains(p.Flags, "R") && !strings.Contains(c.Sequence[len(pr.matched)].Flags, "R") {
				// Keep how far it got, for the message, then start over.
				if best == nil || len(pr.matched) >= len(best.matched) {
					cp := pr
					best = &cp
				}
				pr = progress{key: k, last: -1}
				continue
			}
			if packetMatches(&c.Sequence[len(pr.matched)], p) && tcpContinues(pr.matched, p) {
				pr.matched = append(pr.matched, p)
				pr.last = i
			}
		}
		if len(pr.matched) == len(c.Sequence) {
			return pass(fmt.Sprintf("saw %s in flow %s %s", seqText, k, scope), summaries(pr.matched)...)
		}
		// Prefer the flow that got furthest; among equals, the latest try.
		if len(pr.matched) > 0 && (best == nil || len(pr.matched) >= len(best.matched)) || best == nil {
			pr := pr
			best = &pr
		}
	}
	if best == nil || len(best.matched) == 0 {
		first := c.Sequence[0]
		msg := fmt.Sprintf("no flow %s shows %s: no packet matched the first step `%s`", scope, seqText, steps[0])
		if len(ps) == 0 {
			return fail(msg, "no packets were captured "+scope)
		}
		ev := closestPackets(&first, ps)
		ev = append(ev, fmt.Sprintf("%s captured %s in all", plural(len(ps), "packet", "packets"), scope))
		return fail(msg, ev...)
	}
	k := len(best.matched)
	fp := flows[best.key]
	lastP := best.matched[k-1]
	next := steps[k]
	// What came back instead: the first later packet going the other way.
	var answer *labs.Packet
	resent := 0
	for _, p := range fp[best.last+1:] {
		if p.Src == lastP.Dst && p.Dst == lastP.Src {
			answer = p
			break
		}
		if p.Src == lastP.Src && p.Dst == lastP.Dst && normFlags(p.Flags) == normFlags(lastP.Flags) && p.ICMPType == lastP.ICMPType {
			resent++
		}
	}
	var msg string
	switch {
	case answer != nil:
		msg = fmt.Sprintf("%s was answered by %s, want %s", describePacket(lastP), describePacket(answer), next)
	case resent > 0:
		msg = fmt.Sprintf("%s got no answer (sent again %s), want %s", describePacket(lastP), plural(resent, "time", "times"), next)
	default:
		msg = fmt.Sprintf("%s got no answer, want %s", describePacket(lastP), next)
	}
	msg = fmt.Sprintf("flow %s stopped at step %d of %d (%s): %s", best.key, k, len(c.Sequence), seqText, msg)
	ev := summaries(best.matched)
	if answer != nil {
		ev = append(ev, "answer: "+summarize(answer))
	}
	return fail(msg, ev...)
}
