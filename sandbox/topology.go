package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"nslab/labs"
	"nslab/sandbox/svc"
)

// hubPortMTU is the MTU of the hub side of every veth. The hub never
// limits a frame: a link's MTU is whatever its node ends say, and an
// oversized frame is dropped where a real NIC would drop it — at the
// receiving node's interface.
const hubPortMTU = 65535

var noSnooping = false

// bridgeName is the hub bridge of a link or segment.
func bridgeName(segment string) string { return "br-" + segment }

// buildNetwork creates the bridges and veths, then configures each node.
func (m *Manager) buildNetwork(ctx context.Context, sb *Sandbox) error {
	end := Phase(ctx, "links")
	hub, err := netlink.NewHandleAt(netns.NsHandle(sb.hub.nsFd()))
	if err != nil {
		return fmt.Errorf("hub netlink: %w", err)
	}
	defer hub.Close()
	if err := linkUp(hub, "lo"); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	lab := sb.Lab
	port := 0
	for _, seg := range lab.AllSegments() {
		// A plain learning switch: no multicast snooping, so IPv6 neighbour
		// discovery reaches every port however the nodes' MLD reports raced
		// the link coming up.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName(seg.Name), Flags: net.FlagUp}, MulticastSnooping: &noSnooping}
		if err := hub.LinkAdd(br); err != nil {
			return fmt.Errorf("link %s: add bridge %s: %w", seg.Name, br.Name, err)
		}
		brIdx := br.Attrs().Index
		if brIdx == 0 {
			l, err := hub.LinkByName(br.Name)
			if err != nil {
				return fmt.Errorf("link %s: find bridge %s: %w", seg.Name, br.Name, err)
			}
			brIdx = l.Attrs().Index
		}
		for _, epStr := range seg.Endpoints {
			ep, err := labs.ParseEndpoint(epStr)
			if err != nil {
				return err
			}
			node := lab.Node(ep.Node)
			ifc := node.Interface(ep.Iface)
			port++
			v := &netlink.Veth{
				LinkAttrs: netlink.LinkAttrs{
					Name:        fmt.Sprintf("v%d", port),
					MasterIndex: brIdx,
					MTU:         hubPortMTU,
					Flags:       net.FlagUp,
				},
				PeerName:      ifc.Name,
				PeerNamespace: netlink.NsFd(sb.nodes[ep.Node].nsFd()),
			}
			v.PeerMTU = 1500
			if ifc.MTU > 0 {
				v.PeerMTU = uint32(ifc.MTU)
			}
			if ifc.MAC != "" {
				mac, err := net.ParseMAC(ifc.MAC)
				if err != nil {
					return fmt.Errorf("%s: mac %q: %w", epStr, ifc.MAC, err)
				}
				v.PeerHardwareAddr = mac
			}
			// Created in place: the peer is born in the node's namespace.
			if err := hub.LinkAdd(v); err != nil {
				return fmt.Errorf("link %s: add veth for %s: %w", seg.Name, epStr, err)
			}
		}
	}

	end()
	// Capture from the moment the links exist, so what services and
	// boot-time commands send is on record too.
	end = Phase(ctx, "capture")
	if err := sb.StartCapture(0); err != nil {
		return fmt.Errorf("start capture: %w", err)
	}
	end()
	defer Phase(ctx, "configure")()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) + 1)
	for _, n := range lab.Nodes {
		g.Go(func() error {
			if err := m.configureNode(gctx, sb, &n); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// configureNode applies a node's sysctls, addresses, link states, routes,
// rules, nftables ruleset and services, in that order: sysctls may name
// interfaces, routes need addresses, services may need the firewall.
func (m *Manager) configureNode(ctx context.Context, sb *Sandbox, n *labs.Node) error {
	p := sb.nodes[n.Name]
	end := Phase(ctx, "node.handle+lo")
	h, err := netlink.NewHandleAt(netns.NsHandle(p.nsFd()))
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	end()
	end = Phase(ctx, "node.sysctls")
	for _, k := range n.SysctlKeys() { // broad keys (conf.all.*) before per-interface ones
		if err := writeSysctl(p.nsFd(), k, n.Sysctls[k]); err != nil {
			return fmt.Errorf("sysctls.%s: %w", k, err)
		}
	}
	end()
	end = Phase(ctx, "node.addrs+up")
	links := map[string]netlink.Link{}
	for _, ifc := range n.Interfaces {
		l, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifc.Name, err)
		}
		links[ifc.Name] = l
		for _, a := range ifc.Addresses {
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				return fmt.Errorf("interface %s: address %q: %w", ifc.Name, a, err)
			}
			addr := &netlink.Addr{IPNet: prefixToIPNet(pfx)}
			if pfx.Addr().Is6() {
				// No duplicate address detection: the lab guarantees
				// uniqueness, and DAD would hold the address for a second.
				addr.Flags = unix.IFA_F_NODAD
			}
			if err := h.AddrAdd(l, addr); err != nil {
				return fmt.Errorf("interface %s: add address %s: %w", ifc.Name, a, err)
			}
		}
		if !ifc.Down {
			if err := h.LinkSetUp(l); err != nil {
				return fmt.Errorf("interface %s: set up: %w", ifc.Name, err)
			}
		}
	}
	linkIndex := func(dev string) (int, error) {
		if dev == "" {
			return 0, nil
		}
		if l, ok := links[dev]; ok {
			return l.Attrs().Index, nil
		}
		l, err := h.LinkByName(dev)
		if err != nil {
			return 0, fmt.Errorf("dev %s: %w", dev, err)
		}
		return l.Attrs().Index, nil
	}
	end()
	end = Phase(ctx, "node.routes+rules")
	for i, r := range n.Routes {
		rt, err := toRoute(r, linkIndex)
		if err == nil {
			err = h.RouteAdd(rt)
		}
		if err != nil {
			return fmt.Errorf("routes[%d] (%s): %w", i, r.Dst, err)
		}
	}
	for i, r := range n.Rules {
		rule, err := toRule(r)
		if err == nil {
			err = h.RuleAdd(rule)
		}
		if err != nil {
			return fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	end()
	if strings.TrimSpace(n.NFTables) != "" {
		end = Phase(ctx, "node.nft")
		err := applyNFTables(ctx, p, n.NFTables)
		end()
		if err != nil {
			return err
		}
	}
	end = Phase(ctx, "node.spawn")
	for _, s := range n.Services {
		argv, self := serviceArgv(s)
		if _, err := p.spawn(argv, self, "/run/nslab/"+s.Name+".log"); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	end()
	if len(n.Services) == 0 {
		return nil
	}
	defer Phase(ctx, "node.waitServices")()
	// sock_diag needs a handle with that family named: one without it
	// would silently ask the host's namespace instead.
	diag, err := netlink.NewHandleAt(netns.NsHandle(p.nsFd()), unix.NETLINK_INET_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	defer diag.Close()
	return waitServices(ctx, diag, n)
}

// applyNFTables loads a ruleset written in nft syntax into the node.
func applyNFTables(ctx context.Context, p *proc, ruleset string) error {
	// The ruleset is written in nft syntax, whose only complete parser is
	// libnftables; the node's own nft, run as the node's root, applies it
	// exactly as a learner's `nft -f` would.
	var stderr strings.Builder
	st, err := p.exec(ctx, ExecRequest{
		Argv: []string{"nft", "-f", "-"}, Stdin: strings.NewReader(ruleset),
		Timeout: 30 * time.Second, MaxOutput: 64 << 10,
	}, func(stream int, b []byte) error {
		if stream == Stderr {
			stderr.Write(b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if st.Code != 0 {
		return fmt.Errorf("nftables: nft -f exited %d: %s", st.Code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// waitServices holds READY back until every built-in service listens: a
// learner (or the grader) must never meet "connection refused" from a
// service that is still starting.
func waitServices(ctx context.Context, h *netlink.Handle, n *labs.Node) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range n.Services {
		proto := ""
		switch s.Kind {
		case labs.KindTCPEcho, labs.KindHTTP:
			proto = "tcp"
		case labs.KindUDPEcho:
			proto = "udp"
		default:
			continue // a command service: nothing to wait for
		}
		for !listening(h, proto, s.Port) {
			if time.Now().After(deadline) {
				return fmt.Errorf("service %s: not listening on %s port %d after 10s (see /run/nslab/%s.log in the node)", s.Name, proto, s.Port, s.Name)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond): // poll: sock_diag has no "bound" event
			}
		}
	}
	return nil
}

func listening(h *netlink.Handle, proto string, port int) bool {
	for _, fam := range []uint8{unix.AF_INET6, unix.AF_INET} {
		list := h.SocketDiagTCP
		if proto == "udp" {
			list = h.SocketDiagUDP
		}
		socks, err := list(fam)
		if err != nil {
			continue
		}
		for _, s := range socks {
			if int(s.ID.SourcePort) == port && (proto == "udp" || s.State == netlink.TCP_LISTEN) {
				return true
			}
		}
	}
	return false
}

func serviceArgv(s labs.Service) ([]string, bool) {
	for _, k := range svc.Kinds {
		if s.Kind == k {
			argv := []string{argv0Service, s.Kind, "--listen", net.JoinHostPort(s.Address, fmt.Sprint(s.Port))}
			if s.Kind == "http" && s.Body != "" {
				argv = append(argv, "--body", s.Body)
			}
			return argv, true
		}
	}
	return s.Command, false
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

func parseDst(dst, via string) (*net.IPNet, error) {
	switch dst {
	case "default":
		if a, err := netip.ParseAddr(via); err == nil && a.Is6() {
			return prefixToIPNet(netip.MustParsePrefix("::/0")), nil
		}
		return prefixToIPNet(netip.MustParsePrefix("0.0.0.0/0")), nil
	case "default6":
		return prefixToIPNet(netip.MustParsePrefix("::/0")), nil
	}
	p, err := netip.ParsePrefix(dst)
	if err != nil {
		return nil, err
	}
	return prefixToIPNet(p.Masked()), nil
}

func parseIP(s string) (net.IP, error) {
	if s == "" {
		return nil, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, err
	}
	return a.AsSlice(), nil
}

func toRoute(r labs.Route, linkIndex func(string) (int, error)) (*netlink.Route, error) {
	via := r.Via
	if via == "" && len(r.Nexthops) > 0 {
		via = r.Nexthops[0].Via
	}
	dst, err := parseDst(r.Dst, via)
	if err != nil {
		return nil, err
	}
	rt := &netlink.Route{Dst: dst, Table: r.Table, Priority: r.Metric}
	if rt.Gw, err = parseIP(r.Via); err != nil {
		return nil, err
	}
	if rt.Src, err = parseIP(r.Src); err != nil {
		return nil, err
	}
	if rt.LinkIndex, err = linkIndex(r.Dev); err != nil {
		return nil, err
	}
	for _, nh := range r.Nexthops {
		info := &netlink.NexthopInfo{}
		if info.Gw, err = parseIP(nh.Via); err != nil {
			return nil, err
		}
		if info.LinkIndex, err = linkIndex(nh.Dev); err != nil {
			return nil, err
		}
		if nh.Weight > 1 {
			info.Hops = nh.Weight - 1 // the kernel stores weight-1
		}
		rt.MultiPath = append(rt.MultiPath, info)
	}
	if rt.Gw == nil && rt.LinkIndex == 0 && len(rt.MultiPath) == 0 {
		return nil, fmt.Errorf("route needs via, dev or nexthops")
	}
	return rt, nil
}

func toRule(r labs.Rule) (*netlink.Rule, error) {
	rule := netlink.NewRule()
	if r.Priority > 0 {
		rule.Priority = r.Priority // else the kernel picks one below the last
	}
	rule.Table = r.Table
	rule.IifName = r.IIF
	rule.OifName = r.OIF
	rule.Family = unix.AF_INET
	if r.Family == "inet6" {
		rule.Family = unix.AF_INET6
	}
	if r.FWMark != 0 {
		rule.Mark = r.FWMark
	}
	for _, x := range []struct {
		s   string
		dst **net.IPNet
	}{{r.From, &rule.Src}, {r.To, &rule.Dst}} {
		if x.s == "" {
			continue
		}
		p, err := netip.ParsePrefix(x.s)
		if err != nil {
			return nil, err
		}
		*x.dst = prefixToIPNet(p.Masked())
		if p.Addr().Is6() {
			rule.Family = unix.AF_INET6
		}
	}
	return rule, nil
}
