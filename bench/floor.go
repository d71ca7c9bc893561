package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"nslab/labs"
)

// floorNet is a lab's topology built the cheapest way the kernel allows,
// as the reference nslab is measured against: one bare network namespace
// per node and one for the hub, held by file descriptors only (no
// process, no bind mount, no name on the host); one bridge per link or
// segment in the hub; every veth created in place with its peer born in
// the node's namespace; then addresses, links up, sysctls and routes.
// It starts no process and applies no ruleset, so a lab's services and
// nftables are not part of the floor.
type floorNet struct {
	hub   *os.File
	hubH  *netlink.Handle
	nodes []*os.File
}

// buildFloor builds lab's topology. On failure everything made so far is
// removed before it returns.
func buildFloor(lab *labs.Lab) (_ *floorNet, err error) {
	for _, n := range lab.Nodes {
		if len(n.Rules) > 0 || strings.TrimSpace(n.NFTables) != "" {
			return nil, fmt.Errorf("lab %s node %s: the floor builder does routes and sysctls, not rules or nftables", lab.ID, n.Name)
		}
	}
	f := &floorNet{}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.teardown())
		}
	}()
	if f.hub, err = newNetNS(hubSysctls); err != nil {
		return f, fmt.Errorf("hub netns: %w", err)
	}
	nodeNS := make(map[string]*os.File, len(lab.Nodes))
	for _, n := range lab.Nodes {
		ns, err := newNetNS(nodeSysctls)
		if err != nil {
			return f, fmt.Errorf("node %s netns: %w", n.Name, err)
		}
		f.nodes = append(f.nodes, ns)
		nodeNS[n.Name] = ns
	}
	if f.hubH, err = netlink.NewHandleAt(netns.NsHandle(f.hub.Fd())); err != nil {
		return f, fmt.Errorf("hub netlink: %w", err)
	}
	off := false
	port := 0
	for _, seg := range lab.AllSegments() {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-" + seg.Name, Flags: net.FlagUp}, MulticastSnooping: &off}
		if err := f.hubH.LinkAdd(br); err != nil {
			return f, fmt.Errorf("segment %s: add bridge: %w", seg.Name, err)
		}
		for _, s := range seg.Endpoints {
			ep, err := labs.ParseEndpoint(s)
			if err != nil {
				return f, err
			}
			ns := nodeNS[ep.Node]
			if ns == nil {
				return f, fmt.Errorf("segment %s: endpoint %s: no such node", seg.Name, s)
			}
			port++
			v := &netlink.Veth{
				LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("v%d", port), MasterIndex: br.Index, Flags: net.FlagUp},
				PeerName:      ep.Iface,
				PeerNamespace: netlink.NsFd(ns.Fd()),
			}
			if err := f.hubH.LinkAdd(v); err != nil {
				return f, fmt.Errorf("segment %s: add veth for %s: %w", seg.Name, s, err)
			}
		}
	}
	for _, n := range lab.Nodes {
		if err := configureFloorNode(nodeNS[n.Name], &n); err != nil {
			return f, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return f, nil
}

func configureFloorNode(ns *os.File, n *labs.Node) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	for _, k := range n.SysctlKeys() {
		if err := writeSysctl(ns, k, n.Sysctls[k]); err != nil {
			return err
		}
	}
	links := map[string]netlink.Link{}
	for _, ifc := range n.Interfaces {
		l, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifc.Name, err)
		}
		links[ifc.Name] = l
		for _, a := range ifc.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return fmt.Errorf("interface %s: address %q: %w", ifc.Name, a, err)
			}
			addr := &netlink.Addr{IPNet: ipNet(p)}
			if p.Addr().Is6() {
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
	for i, r := range n.Routes {
		rt, err := floorRoute(r, links)
		if err == nil {
			err = h.RouteAdd(rt)
		}
		if err != nil {
			return fmt.Errorf("routes[%d] (%s): %w", i, r.Dst, err)
		}
	}
	return nil
}

func floorRoute(r labs.Route, links map[string]netlink.Link) (*netlink.Route, error) {
	if len(r.Nexthops) > 0 || r.Src != "" {
		return nil, errors.New("the floor builder does plain routes (dst, via, dev, table, metric)")
	}
	rt := &netlink.Route{Table: r.Table, Priority: r.Metric}
	var via netip.Addr
	if r.Via != "" {
		a, err := netip.ParseAddr(r.Via)
		if err != nil {
			return nil, fmt.Errorf("via %q: %w", r.Via, err)
		}
		via, rt.Gw = a, a.AsSlice()
	}
	switch {
	case r.Dst == "default6" || r.Dst == "default" && via.Is6():
		rt.Dst = ipNet(netip.MustParsePrefix("::/0"))
	case r.Dst == "default":
		rt.Dst = ipNet(netip.MustParsePrefix("0.0.0.0/0"))
	default:
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("dst %q: %w", r.Dst, err)
		}
		rt.Dst = ipNet(p.Masked())
	}
	if r.Dev != "" {
		l := links[r.Dev]
		if l == nil {
			return nil, fmt.Errorf("dev %s: not an interface of the node", r.Dev)
		}
		rt.LinkIndex = l.Attrs().Index
	}
	return rt, nil
}

// teardown releases the namespaces: with its last fd closed the kernel
// destroys a namespace and every link in it (a veth's peer too), as it
// does for nslab's once their processes have exited. That is all a tool
// has to do; deleting every link first is slower (measured here: tens of
// ms per link, each deletion waiting for the network to quiesce, where
// the kernel's namespace cleanup waits once per batch). Safe on a partly
// built floorNet.
func (f *floorNet) teardown() error {
	var errs []error
	if f.hubH != nil {
		f.hubH.Close()
	}
	for _, ns := range append(f.nodes, f.hub) {
		if ns != nil {
			if err := ns.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	*f = floorNet{}
	return errors.Join(errs...)
}

// nsFds are the fds of every namespace of the floor, for the watcher.
func (f *floorNet) nsFds() []int {
	out := []int{int(f.hub.Fd())}
	for _, ns := range f.nodes {
		out = append(out, int(ns.Fd()))
	}
	return out
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// The namespace-wide settings nslab gives its hub and nodes before any
// link arrives, so that the floor is as usable the moment it is built:
// the hub only switches frames, so it has no IPv6 of its own; nodes skip
// duplicate address detection, which would otherwise hold every
// link-local address, and with it IPv6 neighbour discovery through the
// routers, for about two seconds.
var (
	hubSysctls  = [][2]string{{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"}}
	nodeSysctls = [][2]string{{"net.ipv6.conf.default.accept_dad", "0"}, {"net.ipv6.conf.all.accept_dad", "0"}}
)

// newNetNS returns an fd for a new, empty network namespace that lives
// as long as the fd is open, with the given sysctls written in it. The
// unshare happens on a locked thread that switches back before it is
// unlocked; if switching back fails the thread stays locked and the
// runtime discards it with the goroutine.
func newNetNS(sysctls [][2]string) (*os.File, error) {
	var f *os.File
	err := onLockedThread(func(orig *os.File) error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns: %w", err)
		}
		// The thread is in the new namespace: /proc/sys/net is its.
		for _, kv := range sysctls {
			if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(kv[0], ".", "/"), []byte(kv[1]), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", kv[0], kv[1], err)
			}
		}
		var err error
		f, err = os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		return err
	})
	if err != nil && f != nil {
		f.Close()
		f = nil
	}
	return f, err
}

// writeSysctl writes a net.* sysctl in the namespace ns.
func writeSysctl(ns *os.File, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return onLockedThread(func(*os.File) error {
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}

// onLockedThread runs fn on a fresh locked OS thread and then returns
// that thread to the network namespace it started in.
func onLockedThread(fn func(orig *os.File) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn(orig)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
			return // the thread stays locked: the runtime ends it
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
