package grader

import (
	"fmt"
	"strings"

	"nslab/labs"
)

// normSockState folds the spellings of ss, sock_diag and /proc.
func normSockState(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.ReplaceAll(s, "_", "-")
	switch s {
	case "estab":
		return "established"
	case "unconnected":
		return "unconn"
	case "timewait":
		return "time-wait"
	}
	return s
}

// sockStateOK: the default "listen" also means a bound, unconnected UDP
// socket, which is how a UDP server waits.
func sockStateOK(want string, s *labs.SocketState) bool {
	have := normSockState(s.State)
	if want == "" || want == "listen" {
		return have == "listen" || (eqFold(s.Proto, "udp") && have == "unconn")
	}
	return have == want
}

func renderSocket(s *labs.SocketState) string {
	out := fmt.Sprintf("%s %s %s", strings.ToLower(s.Proto), normSockState(s.State), hostPort(orStar(s.Local), s.LocalPort))
	if s.Remote != "" && s.RemotePort != 0 {
		out += " <-> " + hostPort(s.Remote, s.RemotePort)
	}
	return out
}

func orStar(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func evalSocket(c *labs.SocketCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartSockets)
	if bad != nil {
		return *bad
	}
	state := normSockState(c.State)
	stateText := state
	if stateText == "" {
		stateText = "listen"
	}
	proto := strings.ToLower(c.Proto)
	want := proto
	if want == "" {
		want = "a"
	}
	want += " socket in state " + stateText
	switch {
	case c.Address != "" && c.Port != 0:
		want += " on " + hostPort(c.Address, c.Port)
	case c.Address != "":
		want += " on " + c.Address
	case c.Port != 0:
		want += fmt.Sprintf(" on port %d", c.Port)
	}

	var match, wrongAddr, wrongProto, wrongState *labs.SocketState
	var ev []string
	for i := range st.Sockets {
		s := &st.Sockets[i]
		portOK := c.Port == 0 || s.LocalPort == c.Port
		protoOK := proto == "" || eqFold(s.Proto, proto)
		addrOK := c.Address == "" || sameAddr(s.Local, c.Address)
		stateOK := sockStateOK(state, s)
		if portOK && c.Port != 0 {
			ev = append(ev, renderSocket(s))
		}
		switch {
		case portOK && protoOK && addrOK && stateOK:
			if match == nil {
				match = s
			}
		case portOK && protoOK && stateOK && !addrOK:
			if wrongAddr == nil {
				wrongAddr = s
			}
		case portOK && !protoOK && addrOK && stateOK:
			if wrongProto == nil {
				wrongProto = s
			}
		case portOK && protoOK && addrOK && !stateOK:
			if wrongState == nil {
				wrongState = s
			}
		}
	}
	if c.Absent {
		if match == nil {
			return pass(fmt.Sprintf("%s has no %s, as wanted", c.Node, want))
		}
		return fail(fmt.Sprintf("%s still has %s", c.Node, renderSocket(match)), renderSocket(match))
	}
	if match != nil {
		return pass(fmt.Sprintf("%s has %s", c.Node, renderSocket(match)), renderSocket(match))
	}
	switch {
	case wrongAddr != nil:
		return fail(fmt.Sprintf("%s %s port %d is bound to %s, not %s", c.Node, strings.ToLower(wrongAddr.Proto), wrongAddr.LocalPort, orStar(wrongAddr.Local), c.Address), ev...)
	case wrongProto != nil:
		return fail(fmt.Sprintf("%s has port %d open for %s, not %s", c.Node, wrongProto.LocalPort, strings.ToLower(wrongProto.Proto), proto), ev...)
	case wrongState != nil:
		return fail(fmt.Sprintf("%s's %s socket on %s is %s, want %s", c.Node, strings.ToLower(wrongState.Proto),
			hostPort(orStar(wrongState.Local), wrongState.LocalPort), normSockState(wrongState.State), stateText), ev...)
	}
	if len(ev) == 0 {
		for i := range st.Sockets {
			if sockStateOK("listen", &st.Sockets[i]) {
				ev = append(ev, renderSocket(&st.Sockets[i]))
			}
		}
		if len(ev) == 0 {
			ev = append(ev, "no listening sockets")
		} else {
			ev = append([]string{"listening:"}, ev...)
		}
	}
	return fail(fmt.Sprintf("%s has no %s", c.Node, want), ev...)
}

func renderConntrack(e *labs.ConntrackState) string {
	s := fmt.Sprintf("%s %s > %s reply %s > %s", strings.ToLower(e.Proto),
		hostPort(e.Src, e.Sport), hostPort(e.Dst, e.Dport),
		hostPort(e.ReplySrc, e.ReplySport), hostPort(e.ReplyDst, e.ReplyDport))
	if e.State != "" {
		s += " " + strings.ToLower(e.State)
	}
	return s
}

func renderWantConntrack(c *labs.ConntrackCheck) string {
	proto := c.Proto
	if proto == "" {
		proto = "any protocol"
	}
	s := fmt.Sprintf("%s %s > %s", strings.ToLower(proto), orAny(c.Src), hostPort(orAny(c.Dst), c.Dport))
	if c.ReplySrc != "" || c.ReplyDst != "" {
		s += fmt.Sprintf(" reply %s > %s", orAny(c.ReplySrc), orAny(c.ReplyDst))
	}
	return s
}

func conntrackDiffs(c *labs.ConntrackCheck, e *labs.ConntrackState) (diffs []string, same int) {
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
	check(c.Proto != "", eqFold(e.Proto, c.Proto), fmt.Sprintf("is %s, want %s", e.Proto, c.Proto))
	check(c.Src != "", addrIn(e.Src, c.Src), fmt.Sprintf("is from %s, want %s", e.Src, c.Src))
	check(c.Dst != "", addrIn(e.Dst, c.Dst), fmt.Sprintf("goes to %s, want %s", e.Dst, c.Dst))
	check(c.Dport != 0, e.Dport == c.Dport, fmt.Sprintf("has dport %d, want %d", e.Dport, c.Dport))
	check(c.ReplySrc != "", addrIn(e.ReplySrc, c.ReplySrc), fmt.Sprintf("has replies from %s, want from %s", e.ReplySrc, c.ReplySrc))
	check(c.ReplyDst != "", addrIn(e.ReplyDst, c.ReplyDst), fmt.Sprintf("has replies to %s, want to %s", e.ReplyDst, c.ReplyDst))
	return diffs, same
}

func evalConntrack(c *labs.ConntrackCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartConntrack)
	if bad != nil {
		return *bad
	}
	want := renderWantConntrack(c)
	var match, closest *labs.ConntrackState
	var closestDiffs []string
	bestSame := 0
	for i := range st.Conntrack {
		e := &st.Conntrack[i]
		d, same := conntrackDiffs(c, e)
		if len(d) == 0 {
			match = e
			break
		}
		if same > bestSame {
			closest, closestDiffs, bestSame = e, d, same
		}
	}
	if c.Absent {
		if match == nil {
			return pass(fmt.Sprintf("%s tracks no connection %s, as wanted", c.Node, want))
		}
		return fail(fmt.Sprintf("%s still tracks %s", c.Node, renderConntrack(match)), renderConntrack(match))
	}
	if match != nil {
		return pass(fmt.Sprintf("%s tracks %s", c.Node, renderConntrack(match)), renderConntrack(match))
	}
	if closest != nil {
		return fail(fmt.Sprintf("%s tracks no connection %s; the closest, `%s`, %s", c.Node, want, renderConntrack(closest), andList(closestDiffs)),
			renderConntrack(closest))
	}
	if len(st.Conntrack) == 0 {
		return fail(fmt.Sprintf("%s tracks no connection %s (the conntrack table is empty)", c.Node, want))
	}
	return fail(fmt.Sprintf("%s tracks no connection %s", c.Node, want), fmt.Sprintf("%s entries, none alike", plural(len(st.Conntrack), "other", "other")))
}
