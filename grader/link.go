package grader

import (
	"fmt"
	"net/netip"
	"strings"

	"nslab/labs"
)

func updown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func renderLink(l labs.LinkState) string {
	var b strings.Builder
	b.WriteString(l.Name)
	if l.Kind != "" {
		b.WriteString(" " + l.Kind)
	}
	b.WriteString(" " + updown(l.Up))
	if l.Oper != "" && !strings.EqualFold(l.Oper, updown(l.Up)) {
		fmt.Fprintf(&b, " (oper %s)", strings.ToLower(l.Oper))
	}
	fmt.Fprintf(&b, " mtu %d", l.MTU)
	if l.Master != "" {
		b.WriteString(" master " + l.Master)
	}
	if l.MAC != "" {
		b.WriteString(" mac " + l.MAC)
	}
	return b.String()
}

func linkNames(st *labs.NodeState) string {
	if len(st.Links) == 0 {
		return "none"
	}
	names := make([]string, len(st.Links))
	for i, l := range st.Links {
		names[i] = l.Name
	}
	return strings.Join(names, ", ")
}

func findLink(st *labs.NodeState, name string) *labs.LinkState {
	for i := range st.Links {
		if st.Links[i].Name == name {
			return &st.Links[i]
		}
	}
	return nil
}

func evalLink(c *labs.LinkCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartLinks)
	if bad != nil {
		return *bad
	}
	who := c.Node + " " + c.Name
	l := findLink(st, c.Name)
	if c.Absent {
		if l == nil {
			return pass(fmt.Sprintf("%s has no interface %s, as wanted", c.Node, c.Name))
		}
		return fail(fmt.Sprintf("%s still exists, want it removed", who), renderLink(*l))
	}
	if l == nil {
		return fail(fmt.Sprintf("%s has no interface %s", c.Node, c.Name), "interfaces: "+linkNames(st))
	}
	var wrong, right []string
	if c.Up != nil {
		if l.Up != *c.Up {
			wrong = append(wrong, fmt.Sprintf("is %s, want %s", updown(l.Up), updown(*c.Up)))
		} else {
			right = append(right, "is "+updown(l.Up))
		}
	}
	if c.MTU != 0 {
		if l.MTU != c.MTU {
			wrong = append(wrong, fmt.Sprintf("mtu is %d, want %d", l.MTU, c.MTU))
		} else {
			right = append(right, fmt.Sprintf("has mtu %d", l.MTU))
		}
	}
	if c.Master != "" {
		switch {
		case l.Master == "":
			wrong = append(wrong, fmt.Sprintf("has no master, want %s", c.Master))
		case l.Master != c.Master:
			wrong = append(wrong, fmt.Sprintf("master is %s, want %s", l.Master, c.Master))
		default:
			right = append(right, "is enslaved to "+l.Master)
		}
	}
	if c.Kind != "" {
		switch {
		case !eqFold(l.Kind, c.Kind) && l.Kind == "":
			wrong = append(wrong, fmt.Sprintf("is of unknown kind, want %s", c.Kind))
		case !eqFold(l.Kind, c.Kind):
			wrong = append(wrong, fmt.Sprintf("is a %s, want %s", l.Kind, c.Kind))
		default:
			right = append(right, "is a "+l.Kind)
		}
	}
	if c.XDP != nil {
		switch {
		case l.XDP == *c.XDP && l.XDP:
			right = append(right, "has an XDP program attached")
		case l.XDP == *c.XDP:
			right = append(right, "has no XDP program")
		case *c.XDP:
			wrong = append(wrong, "has no XDP program attached")
		default:
			wrong = append(wrong, "still has an XDP program attached")
		}
	}
	ev := renderLink(*l)
	if len(wrong) > 0 {
		return fail(who+" "+strings.Join(wrong, "; "), ev)
	}
	if len(right) == 0 {
		return pass(who+" exists", ev)
	}
	return pass(who+" "+andList(right), ev)
}

func evalAddress(c *labs.AddressCheck, obs *Observations) outcome {
	st, bad := nodeState(obs, c.Node, PartAddrs)
	if bad != nil {
		return *bad
	}
	want, ok := parsePrefix(c.Address)
	if !ok {
		return fail(fmt.Sprintf("the check's address %q is not an address or CIDR", c.Address))
	}
	anyLen := !strings.Contains(c.Address, "/")
	wantText := want.String()
	if anyLen {
		wantText = want.Addr().String()
	}
	where := c.Node
	if c.Dev != "" {
		where = c.Node + " " + c.Dev
	}
	type hit struct {
		a labs.AddrState
		p netip.Prefix
	}
	var exact, sameIP []hit
	for _, a := range st.Addrs {
		p, ok := parsePrefix(a.Prefix)
		if !ok || p.Addr() != want.Addr() {
			continue
		}
		h := hit{a, p}
		if (c.Dev == "" || a.Dev == c.Dev) && (anyLen || p.Bits() == want.Bits()) {
			exact = append(exact, h)
		} else {
			sameIP = append(sameIP, h)
		}
	}
	if c.Absent {
		if len(exact) == 0 {
			return pass(fmt.Sprintf("%s does not have %s, as wanted", where, wantText), addrEvidence(st, c.Dev))
		}
		return fail(fmt.Sprintf("%s still has %s on %s", c.Node, exact[0].p, exact[0].a.Dev), addrEvidence(st, c.Dev))
	}
	if len(exact) > 0 {
		return pass(fmt.Sprintf("%s has %s on %s", c.Node, exact[0].p, exact[0].a.Dev), addrEvidence(st, exact[0].a.Dev))
	}
	// Closest miss: the same IP with another length, or on another device.
	for _, h := range sameIP {
		if c.Dev == "" || h.a.Dev == c.Dev {
			return fail(fmt.Sprintf("%s has %s on %s, want %s (prefix length /%d, not /%d)",
				c.Node, h.p, h.a.Dev, wantText, h.p.Bits(), want.Bits()), addrEvidence(st, h.a.Dev))
		}
	}
	for _, h := range sameIP {
		msg := fmt.Sprintf("%s has %s on %s, not on %s", c.Node, h.p, h.a.Dev, c.Dev)
		if !anyLen && h.p.Bits() != want.Bits() {
			msg += fmt.Sprintf(", and with prefix length /%d, not /%d", h.p.Bits(), want.Bits())
		}
		return fail(msg, addrEvidence(st, c.Dev), addrEvidence(st, h.a.Dev))
	}
	if c.Dev != "" && len(st.Links) > 0 && findLink(st, c.Dev) == nil {
		return fail(fmt.Sprintf("%s has no interface %s", c.Node, c.Dev), "interfaces: "+linkNames(st))
	}
	return fail(fmt.Sprintf("%s has no address %s", where, wantText), addrEvidence(st, c.Dev))
}

// addrEvidence lists the addresses on dev (or on every device).
func addrEvidence(st *labs.NodeState, dev string) string {
	byDev := map[string][]string{}
	var order []string
	for _, a := range st.Addrs {
		if dev != "" && a.Dev != dev {
			continue
		}
		if _, ok := byDev[a.Dev]; !ok {
			order = append(order, a.Dev)
		}
		byDev[a.Dev] = append(byDev[a.Dev], a.Prefix)
	}
	if len(order) == 0 {
		if dev != "" {
			return "addresses on " + dev + ": none"
		}
		return "addresses: none"
	}
	var parts []string
	for _, d := range order {
		parts = append(parts, d+": "+strings.Join(byDev[d], ", "))
	}
	return "addresses on " + strings.Join(parts, "; ")
}
