package sandbox

import (
	"net"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var (
	featuresOnce sync.Once
	features     map[string]bool
)

// kernelFeatures probes, once per process, which optional link types and
// qdiscs this kernel has, by creating each in a scratch namespace that
// disappears afterwards.
func kernelFeatures() map[string]bool {
	featuresOnce.Do(func() {
		features = map[string]bool{}
		_, err := os.Stat("/proc/sys/net/core/bpf_jit_enable")
		features["bpf"] = err == nil
		features["xdp"] = err == nil
		ns, err := newScratchNetNS()
		if err != nil {
			return
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
		if err != nil {
			return
		}
		defer h.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "p0", Flags: net.FlagUp}, PeerName: "p1"}
		if err := h.LinkAdd(veth); err != nil {
			return
		}
		parent, err := h.LinkByName("p0")
		if err != nil {
			return
		}
		pi := parent.Attrs().Index
		try := func(name string, l netlink.Link) {
			err := h.LinkAdd(l)
			features[name] = err == nil
		}
		try("dummy", &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "f-dummy"}})
		try("vlan", &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "f-vlan", ParentIndex: pi}, VlanId: 10})
		try("macvlan", &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "f-macvlan", ParentIndex: pi}, Mode: netlink.MACVLAN_MODE_BRIDGE})
		try("ipvlan", &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: "f-ipvlan", ParentIndex: pi}, Mode: netlink.IPVLAN_MODE_L2})
		try("vrf", &netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: "f-vrf"}, Table: 10})
		try("wireguard", &netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: "f-wg"}})
		q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: pi, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
			netlink.NetemQdiscAttrs{Latency: 1000})
		features["netem"] = h.QdiscAdd(q) == nil
	})
	return features
}

// Missing returns the features in want that this kernel lacks.
func (m *Manager) Missing(want []string) []string {
	if len(want) == 0 {
		return nil
	}
	have := kernelFeatures()
	var out []string
	for _, f := range want {
		if !have[f] {
			out = append(out, f)
		}
	}
	return out
}

// Features reports what the kernel has, for diagnostics.
func Features() map[string]bool {
	out := map[string]bool{}
	for k, v := range kernelFeatures() {
		out[k] = v
	}
	return out
}
