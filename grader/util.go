package grader

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"nslab/labs"
)

// nodeState returns the node's snapshot, or a failed outcome saying why
// there is none. part names the part of the state the check reads; when
// the sandbox could not read it, that is the failure.
func nodeState(obs *Observations, node, part string) (*labs.NodeState, *outcome) {
	if node == "" {
		o := fail("the check names no node")
		return nil, &o
	}
	st := obs.States[node]
	if st == nil {
		o := fail(fmt.Sprintf("the state of %s was not observed", node))
		return nil, &o
	}
	if msg := partErr(st, part); msg != "" {
		o := fail(fmt.Sprintf("could not read %s of %s: %s", part, node, msg))
		return nil, &o
	}
	return st, nil
}

func partErr(st *labs.NodeState, part string) string {
	if st.Errors == nil || part == "" {
		return ""
	}
	if e, ok := st.Errors[part]; ok {
		return e
	}
	return ""
}

// parseAddr parses an IP address, tolerating a zone and IPv4-mapped form.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// parsePrefix parses a CIDR, or a bare address as its host prefix. The
// host bits are kept (10.0.1.1/24 stays an address with its length).
func parsePrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, ok := parseAddr(s)
		if !ok {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p, true
}

// netPrefix parses a network: "default"/"default6" and CIDRs, masked.
func netPrefix(s string) (netip.Prefix, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "default", "0/0":
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
	case "default6", "::/0":
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
	}
	p, ok := parsePrefix(s)
	if !ok {
		return p, false
	}
	return p.Masked(), true
}

// sameAddr compares two addresses by value; unparsable ones by text.
func sameAddr(a, b string) bool {
	x, okx := parseAddr(a)
	y, oky := parseAddr(b)
	if okx && oky {
		return x == y
	}
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// addrIn reports whether address a is spec: an address (equal) or a
// CIDR (contains).
func addrIn(a, spec string) bool {
	if !strings.Contains(spec, "/") {
		return sameAddr(a, spec)
	}
	p, ok := netPrefix(spec)
	if !ok {
		return false
	}
	x, ok := parseAddr(a)
	return ok && p.Contains(x)
}

// normMAC lowercases and canonicalises a MAC ("AA-BB-..." too).
func normMAC(s string) string {
	s = strings.TrimSpace(s)
	if hw, err := net.ParseMAC(s); err == nil {
		return hw.String()
	}
	return strings.ToLower(s)
}

func tableName(t int) string {
	switch t {
	case 0, 254:
		return "main"
	case 255:
		return "local"
	case 253:
		return "default"
	}
	return strconv.Itoa(t)
}

func normTable(t int) int {
	if t == 0 {
		return 254
	}
	return t
}

// intSet returns the sorted set of ports.
func intSet(v []int) []int {
	s := slices.Clone(v)
	slices.Sort(s)
	return slices.Compact(s)
}

func sameIntSet(a, b []int) bool { return slices.Equal(intSet(a), intSet(b)) }

func strSet(v []string) []string {
	s := make([]string, 0, len(v))
	for _, x := range v {
		s = append(s, strings.ToLower(strings.TrimSpace(x)))
	}
	slices.Sort(s)
	return slices.Compact(s)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range intSet(v) {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// portList renders a port set the way nft does: 22 or {22, 80}.
func portList(v []int) string {
	v = intSet(v)
	if len(v) == 1 {
		return strconv.Itoa(v[0])
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// hostPort renders addr:port, bracketing IPv6.
func hostPort(addr string, port int) string {
	if port == 0 {
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func eqFold(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// andList joins differences: "a", "a and b", "a, b and c".
func andList(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
