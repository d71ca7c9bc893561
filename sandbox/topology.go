package sandbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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

// hubPort is one veth: its hub end v<n> on the segment's bridge, its
// other end the node's interface.
type hubPort struct {
	n        int // 1-based over every segment's endpoints in file order
	seg      int // index in Lab.AllSegments
	endpoint string
	iface    *labs.Interface
}

// hubPorts numbers every endpoint of every segment: the capture names a
// frame's endpoint from the number in its hub port's name (Capture.portOf).
func hubPorts(lab *labs.Lab) (map[string][]hubPort, error) {
	out := map[string][]hubPort{}
	n := 0
	for si, seg := range lab.AllSegments() {
		for _, e := range seg.Endpoints {
			ep, err := labs.ParseEndpoint(e)
			if err != nil {
				return nil, err
			}
			node := lab.Node(ep.Node)
			if node == nil {
				return nil, fmt.Errorf("link %s: endpoint %s: no node %s", seg.Name, e, ep.Node)
			}
			ifc := node.Interface(ep.Iface)
			if ifc == nil {
				return nil, fmt.Errorf("link %s: endpoint %s: node %s has no interface %s", seg.Name, e, ep.Node, ep.Iface)
			}
			n++
			out[ep.Node] = append(out[ep.Node], hubPort{n: n, seg: si, endpoint: e, iface: ifc})
		}
	}
	return out, nil
}

// build starts the hub and every node and wires each node up as soon as
// it and the hub run: its veths, then its sysctls, addresses, routes,
// rules, ruleset and services. Process starts are most of a build; no
// node's network waits for another node's process, and nothing waits for
// a barrier between the steps.
func (m *Manager) build(ctx context.Context, sb *Sandbox, uidBases map[string]uint32, hosts []byte) (err error) {
	lab := sb.Lab
	ports, err := hubPorts(lab)
	if err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		hubUp   = make(chan struct{}) // closed once hub, bridges and capture exist
		hub     *netlink.Handle
		bridges = make([]int, len(lab.AllSegments())) // ifindex per segment
		// allConfigured is closed once every node's network is
		// configured; configured counts the nodes still being set up.
		allConfigured = make(chan struct{})
		configured    atomic.Int32
	)
	configured.Store(int32(len(lab.Nodes)))
	defer func() {
		if hub != nil {
			hub.Close()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	// Every node's network waits for the hub: it takes the first slot.
	release, err := m.startSlot(ctx)
	if err != nil {
		return err
	}
	g.Go(func() error {
		end := Phase(ctx, "start.hub")
		p, err := m.startHub(gctx, sb.ID)
		end()
		release()
		if err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		mu.Lock()
		sb.hub = p
		mu.Unlock()
		defer Phase(ctx, "hub.net")()
		h, err := netlink.NewHandleAt(netns.NsHandle(p.nsFd()), unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("hub netlink: %w", err)
		}
		hub = h
		if err := linkUp(h, "lo"); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		// Capture before any link exists, so what services and boot-time
		// commands send is on record too. The socket sees every port of
		// the hub, however late it is made.
		endCapture := Phase(ctx, "capture")
		err = sb.StartCapture(0)
		endCapture()
		if err != nil {
			return fmt.Errorf("start capture: %w", err)
		}
		for i, seg := range lab.AllSegments() {
			// A plain learning switch: no multicast snooping, so IPv6
			// neighbour discovery reaches every port however the nodes'
			// MLD reports raced the link coming up.
			br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName(seg.Name), Flags: net.FlagUp}, MulticastSnooping: &noSnooping}
			if err := h.LinkAdd(br); err != nil {
				return fmt.Errorf("link %s: add bridge %s: %w", seg.Name, br.Name, err)
			}
			bridges[i] = br.Attrs().Index
			if bridges[i] == 0 {
				l, err := h.LinkByName(br.Name)
				if err != nil {
					return fmt.Errorf("link %s: find bridge %s: %w", seg.Name, br.Name, err)
				}
				bridges[i] = l.Attrs().Index
			}
		}
		close(hubUp)
		return nil
	})
	// The slots are taken here, in lab order after the hub's, rather
	// than by the goroutines in whatever order they run.
	for i := range lab.Nodes {
		n := &lab.Nodes[i]
		lim := cgLimits{pids: m.cfg.DefaultPids, memory: m.cfg.DefaultMemory, cpuWeight: 100}
		if n.Limits.Pids > 0 {
			lim.pids = n.Limits.Pids
		}
		if n.Limits.MemoryBytes > 0 {
			lim.memory = n.Limits.MemoryBytes
		}
		release, err := m.startSlot(gctx)
		if err != nil {
			if werr := g.Wait(); werr != nil {
				return werr // the failure that ended gctx
			}
			return err
		}
		g.Go(func() error {
			end := Phase(ctx, "start.node")
			p, err := m.startNode(gctx, sb.ID, n.Name, uidBases[n.Name], hosts, lim)
			end()
			release()
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			mu.Lock()
			sb.nodes[n.Name] = p
			mu.Unlock()
			h, err := netlink.NewHandleAt(netns.NsHandle(p.nsFd()), unix.NETLINK_ROUTE)
			if err != nil {
				return fmt.Errorf("node %s: netlink: %w", n.Name, err)
			}
			sb.keepHandle(n.Name, h)
			select {
			case <-hubUp:
			case <-gctx.Done():
				return gctx.Err()
			}
			end = Phase(ctx, "node.links")
			for _, port := range ports[n.Name] {
				if err := addPort(hub, bridges[port.seg], port, p); err != nil {
					return fmt.Errorf("link %s: %w", lab.AllSegments()[port.seg].Name, err)
				}
			}
			end()
			if err := m.configureNode(gctx, p, h, n); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			if configured.Add(-1) == 0 {
				close(allConfigured)
			}
			builtin, commands := splitServices(n.Services)
			// A built-in service only listens on its own node: it starts
			// as soon as that node is configured, while others still are.
			if err := startServices(gctx, p, builtin); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			if len(commands) == 0 {
				return nil
			}
			// Command services start on a finished network, as at boot:
			// one may talk to another node at once (hardening's hello-vpn
			// pings the VPN gateway so the server knows its MAC), and
			// would meet a node that does not exist yet.
			select {
			case <-allConfigured:
			case <-gctx.Done():
				return gctx.Err()
			}
			if err := startServices(gctx, p, commands); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// startSlot waits for room to start a process: each start is mostly CPU
// (fork, exec, runtime start), and far more at once than there are CPUs
// only makes them all finish later. release gives the slot back.
func (m *Manager) startSlot(ctx context.Context) (release func(), err error) {
	select {
	case m.starts <- struct{}{}:
		return func() { <-m.starts }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// addPort creates a veth in the hub whose peer is born in the node's
// namespace as the lab's interface: moving a link between namespaces
// costs a synchronize_net, creating it in place does not.
func addPort(hub *netlink.Handle, bridge int, port hubPort, p *proc) error {
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        fmt.Sprintf("v%d", port.n),
			MasterIndex: bridge,
			MTU:         hubPortMTU,
			Flags:       net.FlagUp,
		},
		PeerName:      port.iface.Name,
		PeerNamespace: netlink.NsFd(p.nsFd()),
	}
	v.PeerMTU = 1500
	if port.iface.MTU > 0 {
		v.PeerMTU = uint32(port.iface.MTU)
	}
	if port.iface.MAC != "" {
		mac, err := net.ParseMAC(port.iface.MAC)
		if err != nil {
			return fmt.Errorf("%s: mac %q: %w", port.endpoint, port.iface.MAC, err)
		}
		v.PeerHardwareAddr = mac
	}
	if err := hub.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth for %s: %w", port.endpoint, err)
	}
	return nil
}

// writeSysctls applies a node's sysctls in its namespace, broad keys
// (conf.all.*) before per-interface ones, from one thread switched into
// the namespace once. A value the namespace already holds is not written
// again where that write is a no-op. It is not one under conf.* and
// neigh.*: there a write, even of the same value, marks the entry as set
// (so a later write to default.* no longer reaches that interface), and
// IPv6's conf.all.* writes also reset the default and every interface.
func writeSysctls(nsFd int, n *labs.Node) error {
	return inNetNS(nsFd, func() error {
		for _, k := range n.SysctlKeys() {
			v := n.Sysctls[k]
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if !strings.Contains(k, ".conf.") && !strings.Contains(k, ".neigh.") {
				if cur, err := os.ReadFile(path); err == nil && slices.Equal(strings.Fields(string(cur)), strings.Fields(v)) {
					continue
				}
			}
			if err := os.WriteFile(path, []byte(v), 0); err != nil {
				return fmt.Errorf("sysctls.%s: sysctl %s=%s: %w", k, k, v, err)
			}
		}
		return nil
	})
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
// rules and nftables ruleset, in that order: sysctls may name interfaces,
// routes need addresses. Services come after: the built-in ones at once,
// command services once every node is configured (startServices).
func (m *Manager) configureNode(ctx context.Context, p *proc, h *netlink.Handle, n *labs.Node) error {
	end := Phase(ctx, "node.lo")
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	end()
	if len(n.Sysctls) > 0 {
		end = Phase(ctx, "node.sysctls")
		err := writeSysctls(p.nsFd(), n)
		end()
		if err != nil {
			return err
		}
	}
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
	return nil
}

// splitServices sorts a node's services into the built-in ones (svc
// kinds, which only listen) and command services, each in lab order.
func splitServices(all []labs.Service) (builtin, commands []labs.Service) {
	for _, s := range all {
		if _, self := serviceArgv(s); self {
			builtin = append(builtin, s)
		} else {
			commands = append(commands, s)
		}
	}
	return builtin, commands
}

// startServices starts services of a node and waits until the built-in
// ones among them listen.
func startServices(ctx context.Context, p *proc, svcs []labs.Service) error {
	if len(svcs) == 0 {
		return nil
	}
	end := Phase(ctx, "node.spawn")
	// Each spawn is a round trip to the init, which forks at once and
	// answers; they need not queue behind each other.
	var sg errgroup.Group
	for _, s := range svcs {
		sg.Go(func() error {
			argv, self := serviceArgv(s)
			if _, err := p.spawn(argv, self, "/run/nslab/"+s.Name+".log"); err != nil {
				return fmt.Errorf("service %s: %w", s.Name, err)
			}
			return nil
		})
	}
	err := sg.Wait()
	end()
	if err != nil {
		return err
	}
	defer Phase(ctx, "node.waitServices")()
	return waitServices(ctx, p, svcs)
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
func waitServices(ctx context.Context, p *proc, svcs []labs.Service) error {
	type want struct {
		name, proto string
		port        int
	}
	var wants []want
	for _, s := range svcs {
		switch s.Kind {
		case labs.KindTCPEcho, labs.KindHTTP:
			wants = append(wants, want{s.Name, "tcp", s.Port})
		case labs.KindUDPEcho:
			wants = append(wants, want{s.Name, "udp", s.Port})
		}
		// A command service: nothing to wait for.
	}
	if len(wants) == 0 {
		return nil
	}
	// A socket of the node's namespace: one opened without naming it
	// would ask the host's namespace instead.
	diag, err := nl.GetNetlinkSocketAt(netns.NsHandle(p.nsFd()), netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	defer diag.Close()
	deadline := time.Now().Add(10 * time.Second)
	// sock_diag has no "now listening" event, so poll: often at first,
	// when a service is about to be up, less often as it takes longer.
	delay := 250 * time.Microsecond
	for {
		bound := map[string]map[int]bool{}
		left := wants[:0]
		for _, w := range wants {
			if bound[w.proto] == nil {
				bound[w.proto] = listeningPorts(diag, w.proto)
			}
			if !bound[w.proto][w.port] {
				left = append(left, w)
			}
		}
		wants = left
		if len(wants) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			w := wants[0]
			return fmt.Errorf("service %s: not listening on %s port %d after 10s (see /run/nslab/%s.log in the node)", w.name, w.proto, w.port, w.name)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 4*time.Millisecond)
	}
}

// listeningPorts returns the local ports with a listening TCP socket (or
// any UDP socket), IPv4 or IPv6. The TCP dump asks for listeners only:
// the kernel then walks just the listening hash, not the host-wide table
// of established sockets (hundreds of thousands of buckets on a large
// host, walked for every namespace's dump).
func listeningPorts(s *nl.NetlinkSocket, proto string) map[int]bool {
	out := map[int]bool{}
	ipproto, states := uint8(unix.IPPROTO_TCP), uint32(1)<<netlink.TCP_LISTEN
	if proto == "udp" {
		ipproto, states = unix.IPPROTO_UDP, ^uint32(0)
	}
	for _, fam := range []uint8{unix.AF_INET6, unix.AF_INET} {
		ports, err := diagPorts(s, fam, ipproto, states)
		if err != nil {
			continue
		}
		for _, port := range ports {
			out[port] = true
		}
	}
	return out
}

// diagPorts dumps the sockets of one family and protocol in the given
// states (a bit mask of TCP states) and returns their local ports.
func diagPorts(s *nl.NetlinkSocket, family, proto uint8, states uint32) ([]int, error) {
	req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
	// struct inet_diag_req_v2: family, protocol, ext, pad, states, then
	// an all-zero inet_diag_sockid (48 bytes): no filter on addresses.
	b := make([]byte, 56)
	b[0], b[1] = family, proto
	binary.NativeEndian.PutUint32(b[4:], states)
	req.AddRawData(b)
	if err := s.Send(req); err != nil {
		return nil, err
	}
	pid, err := s.GetPid()
	if err != nil {
		return nil, err
	}
	var ports []int
	for {
		msgs, from, err := s.Receive()
		if err != nil {
			return nil, err
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq || m.Header.Pid != pid {
				continue // a late answer to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return ports, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, unix.Errno(-errno)
					}
				}
				return ports, nil
			}
			// struct inet_diag_msg: family, state, timer, retrans, then
			// the sockid, whose first field is the source port (network
			// order).
			if len(m.Data) >= 6 {
				ports = append(ports, int(binary.BigEndian.Uint16(m.Data[4:6])))
			}
		}
	}
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
