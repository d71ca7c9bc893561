package labs

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

const (
	maxExercises = 32
	maxChecks    = 64
	maxSteps     = 64
	maxPoints    = 100
)

var (
	tcpFlagsRE   = regexp.MustCompile(`^[FSRPAUEC]*$`)
	ctStates     = []string{"new", "established", "related", "invalid", "untracked"}
	verdicts     = []string{"accept", "drop", "reject", "masquerade", "snat", "dnat", "redirect", "jump", "goto", "return", "continue"}
	hooks        = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"}
	packetProtos = []string{"arp", "ipv4", "ipv6", "icmp", "icmpv6", "tcp", "udp"}
)

func (v *validator) exercises() {
	if len(v.lab.Exercises) > maxExercises {
		v.addf("exercises", "%d exercises; at most %d", len(v.lab.Exercises), maxExercises)
		return
	}
	seen := map[string]int{}
	for i := range v.lab.Exercises {
		e := &v.lab.Exercises[i]
		f := fmt.Sprintf("exercises[%d]", i)
		switch {
		case e.ID == "":
			v.addf(f+".id", "required")
		case !idRE.MatchString(e.ID) || len(e.ID) > maxIDLen:
			v.addf(f+".id", "%q must be lower-case letters, digits and dashes, at most %d bytes", e.ID, maxIDLen)
		default:
			if j, dup := seen[e.ID]; dup {
				v.addf(f+".id", "%q is also exercises[%d]", e.ID, j)
			}
			seen[e.ID] = i
		}
		if strings.TrimSpace(e.Title) == "" {
			v.addf(f+".title", "required")
		}
		if len(e.Checks) == 0 {
			v.addf(f+".checks", "an exercise needs at least one check")
		}
		if len(e.Checks) > maxChecks {
			v.addf(f+".checks", "%d checks; at most %d", len(e.Checks), maxChecks)
		}
		if len(e.Solution) == 0 {
			v.addf(f+".solution", "required: the reference solution that makes every check pass")
		}
		v.steps(f+".solution", e.Solution)
		v.steps(f+".anti_solution", e.AntiSolution)
		ids := map[string]int{}
		for j := range e.Checks {
			c := &e.Checks[j]
			cf := fmt.Sprintf("%s.checks[%d]", f, j)
			switch {
			case c.ID == "":
				v.addf(cf+".id", "required")
			case !idRE.MatchString(c.ID) || len(c.ID) > maxIDLen:
				v.addf(cf+".id", "%q must be lower-case letters, digits and dashes", c.ID)
			default:
				if k, dup := ids[c.ID]; dup {
					v.addf(cf+".id", "%q is also checks[%d]", c.ID, k)
				}
				ids[c.ID] = j
			}
			if strings.TrimSpace(c.Description) == "" {
				v.addf(cf+".description", "required: what the learner is told this check looks for")
			}
			if c.Points < 0 || c.Points > maxPoints {
				v.addf(cf+".points", "%d is not in 0..%d", c.Points, maxPoints)
			}
			v.check(cf, c)
		}
	}
}

func (v *validator) steps(f string, steps []Step) {
	if len(steps) > maxSteps {
		v.addf(f, "%d steps; at most %d", len(steps), maxSteps)
	}
	for i, s := range steps {
		sf := fmt.Sprintf("%s[%d]", f, i)
		v.nodeRef(sf+".node", s.Node)
		switch {
		case s.XDP != nil && s.Run != "":
			v.addf(sf, "run and xdp exclude each other")
		case s.XDP != nil:
			if s.XDP.Interface == "" {
				v.addf(sf+".xdp.interface", "required")
			}
			if s.XDP.Object == "" && !s.XDP.Detach {
				v.addf(sf+".xdp.object", "required unless detach")
			}
		case strings.TrimSpace(s.Run) == "":
			v.addf(sf+".run", "required: the shell command to run")
		}
	}
}

func (v *validator) nodeRef(f, name string) {
	if name == "" {
		v.addf(f, "required: a node of the lab")
		return
	}
	if v.lab.Node(name) == nil {
		v.addf(f, "unknown node %q", name)
	}
}

// target accepts an address or a node name.
func (v *validator) target(f, s string) {
	if s == "" {
		v.addf(f, "required: an address or a node name")
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	if v.lab.Node(s) == nil {
		v.addf(f, "%q is neither an address nor a node of the lab", s)
	}
}

func (v *validator) cidrOpt(f, s string) {
	if s == "" || s == "any" {
		return
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	v.addf(f, "%q is not an address or CIDR", s)
}

func (v *validator) duration(f, s string) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 10*time.Minute {
		v.addf(f, "%q is not a duration between 0 and 10m (e.g. 2s)", s)
	}
}

func (v *validator) oneOf(f, s string, allowed ...string) {
	if s != "" && !slices.Contains(allowed, s) {
		v.addf(f, "%q is not one of %s", s, strings.Join(allowed, ", "))
	}
}

func (v *validator) port(f string, p int, required bool) {
	if p == 0 && !required {
		return
	}
	if p < 1 || p > 65535 {
		v.addf(f, "port %d is not in 1..65535", p)
	}
}

func (v *validator) check(f string, c *Check) {
	kinds := c.Kinds()
	switch len(kinds) {
	case 0:
		v.addf(f, "no check kind: set one of link, address, route, rule, neighbor, sysctl, nftables, socket, conntrack, ping, tcp, udp, http, pmtu, packets, command, answer")
		return
	case 1:
	default:
		v.addf(f, "more than one check kind: %s", strings.Join(kinds, ", "))
		return
	}
	k := kinds[0]
	f += "." + k
	switch k {
	case CheckLink:
		v.nodeRef(f+".node", c.Link.Node)
		if c.Link.Name == "" {
			v.addf(f+".name", "required")
		}
		if c.Link.MTU != 0 && (c.Link.MTU < minMTU || c.Link.MTU > maxMTU) {
			v.addf(f+".mtu", "%d is not in %d..%d", c.Link.MTU, minMTU, maxMTU)
		}
	case CheckAddress:
		v.nodeRef(f+".node", c.Address.Node)
		if _, err := netip.ParsePrefix(c.Address.Address); err != nil {
			v.addf(f+".address", "%q is not a CIDR", c.Address.Address)
		}
	case CheckRoute:
		r := c.Route
		v.nodeRef(f+".node", r.Node)
		if r.Dst != "default" && r.Dst != "default6" {
			if _, err := netip.ParsePrefix(r.Dst); err != nil {
				v.addf(f+".dst", "%q is not a CIDR, default or default6", r.Dst)
			}
		}
		if r.Via != "" {
			if _, err := netip.ParseAddr(r.Via); err != nil {
				v.addf(f+".via", "%q is not an address", r.Via)
			}
		}
		if r.Table < 0 || r.Table > maxTable {
			v.addf(f+".table", "%d is not a table id", r.Table)
		}
		for i, nh := range r.Nexthops {
			if nh.Via != "" {
				if _, err := netip.ParseAddr(nh.Via); err != nil {
					v.addf(fmt.Sprintf("%s.nexthops[%d].via", f, i), "%q is not an address", nh.Via)
				}
			}
			if nh.Weight < 0 || nh.Weight > maxWeight {
				v.addf(fmt.Sprintf("%s.nexthops[%d].weight", f, i), "%d is not in 0..%d", nh.Weight, maxWeight)
			}
		}
	case CheckRule:
		v.nodeRef(f+".node", c.Rule.Node)
		v.cidrOpt(f+".from", c.Rule.From)
		v.cidrOpt(f+".to", c.Rule.To)
		v.oneOf(f+".family", c.Rule.Family, "inet", "inet6")
	case CheckNeighbor:
		v.nodeRef(f+".node", c.Neighbor.Node)
		if _, err := netip.ParseAddr(c.Neighbor.Address); err != nil {
			v.addf(f+".address", "%q is not an address", c.Neighbor.Address)
		}
	case CheckSysctl:
		v.nodeRef(f+".node", c.Sysctl.Node)
		if !strings.HasPrefix(c.Sysctl.Key, "net.") || strings.Contains(c.Sysctl.Key, "..") || strings.ContainsAny(c.Sysctl.Key, "/ ") {
			v.addf(f+".key", "%q is not a net.* sysctl", c.Sysctl.Key)
		}
	case CheckNFTables:
		n := c.NFTables
		v.nodeRef(f+".node", n.Node)
		v.oneOf(f+".family", n.Family, "ip", "ip6", "inet", "arp", "bridge", "netdev")
		v.oneOf(f+".hook", n.Hook, hooks...)
		v.oneOf(f+".type", n.Type, "filter", "nat", "route")
		v.oneOf(f+".policy", n.Policy, "accept", "drop")
		if n.Table == "" && n.Chain == "" && n.Hook == "" && n.Rule == nil {
			v.addf(f, "say what to look for: table, chain, hook or rule")
		}
		if r := n.Rule; r != nil {
			v.oneOf(f+".rule.proto", r.Proto, "tcp", "udp", "icmp", "icmpv6", "sctp")
			v.cidrOpt(f+".rule.saddr", r.Saddr)
			v.cidrOpt(f+".rule.daddr", r.Daddr)
			for i, p := range append(append([]int{}, r.Sport...), r.Dport...) {
				v.port(fmt.Sprintf("%s.rule.ports[%d]", f, i), p, true)
			}
			for _, s := range r.CTState {
				v.oneOf(f+".rule.ct_state", s, ctStates...)
			}
			v.oneOf(f+".rule.verdict", r.Verdict, verdicts...)
		}
	case CheckSocket:
		s := c.Socket
		v.nodeRef(f+".node", s.Node)
		v.oneOf(f+".proto", s.Proto, "tcp", "udp")
		if s.Proto == "" {
			v.addf(f+".proto", "required: tcp or udp")
		}
		v.port(f+".port", s.Port, true)
		if s.Address != "" {
			if _, err := netip.ParseAddr(s.Address); err != nil {
				v.addf(f+".address", "%q is not an address", s.Address)
			}
		}
	case CheckConntrack:
		v.nodeRef(f+".node", c.Conntrack.Node)
		for name, a := range map[string]string{"src": c.Conntrack.Src, "dst": c.Conntrack.Dst, "reply_src": c.Conntrack.ReplySrc, "reply_dst": c.Conntrack.ReplyDst} {
			if a != "" {
				if _, err := netip.ParseAddr(a); err != nil {
					v.addf(f+"."+name, "%q is not an address", a)
				}
			}
		}
		v.port(f+".dport", c.Conntrack.Dport, false)
	case CheckPing:
		v.nodeRef(f+".from", c.Ping.From)
		v.target(f+".to", c.Ping.To)
		v.oneOf(f+".expect", c.Ping.Expect, OutcomeReply, OutcomeNoReply, OutcomeUnreachable)
		v.duration(f+".timeout", c.Ping.Timeout)
	case CheckTCP:
		v.nodeRef(f+".from", c.TCP.From)
		v.target(f+".to", c.TCP.To)
		v.port(f+".port", c.TCP.Port, true)
		v.oneOf(f+".expect", c.TCP.Expect, OutcomeConnected, OutcomeRefused, OutcomeTimeout, OutcomeUnreachable)
		v.duration(f+".timeout", c.TCP.Timeout)
	case CheckUDP:
		v.nodeRef(f+".from", c.UDP.From)
		v.target(f+".to", c.UDP.To)
		v.port(f+".port", c.UDP.Port, true)
		v.oneOf(f+".expect", c.UDP.Expect, OutcomeReply, OutcomeNoReply, OutcomeRefused)
		v.duration(f+".timeout", c.UDP.Timeout)
	case CheckHTTP:
		v.nodeRef(f+".from", c.HTTP.From)
		u, err := url.Parse(c.HTTP.URL)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			v.addf(f+".url", "%q is not an http:// URL", c.HTTP.URL)
		}
		v.oneOf(f+".expect", c.HTTP.Expect, OutcomeConnected, OutcomeRefused, OutcomeTimeout, OutcomeUnreachable)
		v.duration(f+".timeout", c.HTTP.Timeout)
	case CheckPMTU:
		v.nodeRef(f+".from", c.PMTU.From)
		v.target(f+".to", c.PMTU.To)
		if c.PMTU.MTU < minMTU || c.PMTU.MTU > 9000 {
			v.addf(f+".mtu", "%d is not in %d..9000", c.PMTU.MTU, minMTU)
		}
	case CheckPackets:
		p := c.Packets
		if p.Link == "" {
			v.addf(f+".link", "required: a link or segment of the lab")
		} else if !slices.ContainsFunc(v.lab.AllSegments(), func(s Segment) bool { return s.Name == p.Link }) {
			v.addf(f+".link", "unknown link %q", p.Link)
		}
		if p.Node != "" {
			v.nodeRef(f+".node", p.Node)
		}
		v.duration(f+".window", p.Window)
		v.packetMatch(f+".match", p.Match)
		for i, m := range p.Sequence {
			v.packetMatch(fmt.Sprintf("%s.sequence[%d]", f, i), m)
		}
		if p.None && (p.AtLeast != nil || p.AtMost != nil || len(p.Sequence) > 0) {
			v.addf(f+".none", "none excludes at_least, at_most and sequence")
		}
		if g := p.Generate; g != nil {
			v.nodeRef(f+".generate.from", g.From)
			if g.Ping == "" && g.TCP == "" && g.UDP == "" {
				v.addf(f+".generate", "say what to send: ping, tcp or udp")
			}
			if g.Ping != "" {
				v.target(f+".generate.ping", g.Ping)
			}
		}
	case CheckAnswer:
		v.answer(f, c.Answer)
	case CheckCommand:
		v.nodeRef(f+".node", c.Command.Node)
		if strings.TrimSpace(c.Command.Run) == "" {
			v.addf(f+".run", "required")
		}
		for name, re := range map[string]string{"stdout": c.Command.Stdout, "stderr": c.Command.Stderr} {
			if _, err := regexp.Compile(re); err != nil {
				v.addf(f+"."+name, "bad regexp: %v", err)
			}
		}
	}
}

var answerFields = []string{"ttl", "src", "dst", "sport", "dport", "seq", "ack", "flags", "len", "src_mac", "dst_mac", "icmp_type"}

func (v *validator) answer(f string, a *AnswerCheck) {
	v.nodeRef(f+".node", a.Node)
	if !idRE.MatchString(a.Question) || len(a.Question) > maxIDLen {
		v.addf(f+".question", "%q must be lower-case letters, digits and dashes (it names the answer file)", a.Question)
	}
	switch {
	case len(a.Expect) == 0 && a.FromPacket == nil:
		v.addf(f, "say what the answer is: expect or from_packet")
	case len(a.Expect) > 0 && a.FromPacket != nil:
		v.addf(f, "expect and from_packet exclude each other")
	}
	if p := a.FromPacket; p != nil {
		if !slices.ContainsFunc(v.lab.AllSegments(), func(s Segment) bool { return s.Name == p.Link }) {
			v.addf(f+".from_packet.link", "unknown link %q", p.Link)
		}
		v.packetMatch(f+".from_packet.match", p.Match)
		if !slices.Contains(answerFields, p.Field) {
			v.addf(f+".from_packet.field", "%q is not one of %s", p.Field, strings.Join(answerFields, ", "))
		}
	}
}

func (v *validator) packetMatch(f string, m PacketMatch) {
	v.oneOf(f+".proto", m.Proto, packetProtos...)
	v.cidrOpt(f+".src", m.Src)
	v.cidrOpt(f+".dst", m.Dst)
	v.port(f+".sport", m.Sport, false)
	v.port(f+".dport", m.Dport, false)
	v.port(f+".port", m.Port, false)
	if !tcpFlagsRE.MatchString(m.Flags) {
		v.addf(f+".flags", "%q: TCP flags are letters from FSRPAUEC, e.g. S, SA, A", m.Flags)
	}
}
