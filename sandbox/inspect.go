package sandbox

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nslab/labs"
)

// InterfaceInfo is a node interface as the kernel reports it now.
type InterfaceInfo struct {
	Name      string
	Addresses []string // CIDR; IPv6 link-local left out
	MTU       int
	Up        bool
	MAC       string
	Link      string // the lab's link or segment it is on, if any
}

// NodeInfo is what a node looks like now.
type NodeInfo struct {
	Name       string
	Interfaces []InterfaceInfo
}

// Inspect reads every node's interfaces from the kernel, so it shows what
// the learner has changed, not what the lab defined.
func (s *Sandbox) Inspect() ([]NodeInfo, error) {
	release, err := s.hold()
	if err != nil {
		return nil, err
	}
	defer release()
	segOf := map[string]string{}
	for _, seg := range s.Lab.AllSegments() {
		for _, e := range seg.Endpoints {
			segOf[e] = seg.Name
		}
	}
	var out []NodeInfo
	for _, n := range s.Lab.Nodes {
		p := s.nodes[n.Name]
		if p == nil {
			continue
		}
		h, err := s.routeHandle(p)
		if err != nil {
			return nil, fmt.Errorf("node %s: netlink: %w", n.Name, err)
		}
		info, err := inspectNode(p, h, func(ifc string) string { return segOf[labs.Endpoint{Node: n.Name, Iface: ifc}.String()] })
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		out = append(out, info)
	}
	return out, nil
}

func inspectNode(p *proc, h *netlink.Handle, segOf func(string) string) (NodeInfo, error) {
	info := NodeInfo{Name: p.name}
	links, err := h.LinkList()
	if err != nil {
		return info, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" {
			continue
		}
		ii := InterfaceInfo{
			Name: a.Name, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0,
			MAC: a.HardwareAddr.String(), Link: segOf(a.Name),
		}
		addrs, err := h.AddrList(l, unix.AF_UNSPEC)
		if err != nil {
			return info, fmt.Errorf("list addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok || ip.Unmap().IsLinkLocalUnicast() {
				continue
			}
			ones, _ := ad.Mask.Size()
			ii.Addresses = append(ii.Addresses, netip.PrefixFrom(ip.Unmap(), ones).String())
		}
		info.Interfaces = append(info.Interfaces, ii)
	}
	return info, nil
}
