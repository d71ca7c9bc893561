package labs

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// ParseEndpoint parses "node:iface".
func ParseEndpoint(s string) (Endpoint, error) {
	node, iface, ok := strings.Cut(s, ":")
	if !ok || node == "" || iface == "" || strings.Contains(iface, ":") {
		return Endpoint{}, fmt.Errorf("endpoint %q must be node:interface, e.g. h1:eth0", s)
	}
	return Endpoint{Node: node, Iface: iface}, nil
}

// String returns "node:iface".
func (e Endpoint) String() string { return e.Node + ":" + e.Iface }

// Node returns the node called name, or nil.
func (l *Lab) Node(name string) *Node {
	for i := range l.Nodes {
		if l.Nodes[i].Name == name {
			return &l.Nodes[i]
		}
	}
	return nil
}

// AllSegments returns the links followed by the segments: every bridge
// the sandbox builds, in file order.
func (l *Lab) AllSegments() []Segment {
	all := make([]Segment, 0, len(l.Links)+len(l.Segments))
	all = append(all, l.Links...)
	return append(all, l.Segments...)
}

// Interface returns the node's interface called name, or nil.
func (n *Node) Interface(name string) *Interface {
	for i := range n.Interfaces {
		if n.Interfaces[i].Name == name {
			return &n.Interfaces[i]
		}
	}
	return nil
}

// ApplyDefaults fills in the names a lab may leave out: links become
// l1, l2, ... and segments s1, s2, ... in file order, skipping names
// already taken; a service's name defaults to its kind. Parse calls it;
// call it yourself for a Lab built in code. It is idempotent.
func (l *Lab) ApplyDefaults() {
	taken := make(map[string]bool)
	for _, s := range l.AllSegments() {
		if s.Name != "" {
			taken[s.Name] = true
		}
	}
	name := func(segs []Segment, prefix string) {
		n := 0
		for i := range segs {
			if segs[i].Name != "" {
				continue
			}
			for {
				n++
				cand := prefix + strconv.Itoa(n)
				if !taken[cand] {
					segs[i].Name = cand
					taken[cand] = true
					break
				}
			}
		}
	}
	name(l.Links, "l")
	name(l.Segments, "s")
	for i := range l.Nodes {
		for j := range l.Nodes[i].Services {
			if s := &l.Nodes[i].Services[j]; s.Name == "" {
				s.Name = s.Kind
			}
		}
	}
}

// SysctlKeys returns the node's sysctl keys in the order to apply them.
// Writing net.ipv4.ip_forward or a conf.all key rewrites the matching
// setting of every interface, so those go first, then conf.default,
// then the rest (per-interface keys) sorted, so that a more specific
// setting is never overwritten by a broader one.
func (n *Node) SysctlKeys() []string {
	rank := func(k string) int {
		switch {
		case k == "net.ipv4.ip_forward":
			return 0
		case strings.HasPrefix(k, "net.ipv4.conf.all."), strings.HasPrefix(k, "net.ipv6.conf.all."):
			return 1
		case strings.HasPrefix(k, "net.ipv4.conf.default."), strings.HasPrefix(k, "net.ipv6.conf.default."):
			return 2
		}
		return 3
	}
	keys := slices.Collect(maps.Keys(n.Sysctls))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	return keys
}
