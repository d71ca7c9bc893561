package grader

import (
	"testing"

	"nslab/labs"
)

func TestLink(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "up and mtu", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth0", Up: ptr(true), MTU: 1500}},
			pass: true, msg: []string{"r1 eth0 is up", "mtu 1500"}, ev: []string{"eth0 veth up mtu 1500"}},
		{name: "down", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth1", Up: ptr(true)}},
			msg: []string{"r1 eth1 is down, want up"}},
		{name: "mtu differs", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth0", MTU: 1400}},
			msg: []string{"r1 eth0 mtu is 1500, want 1400"}},
		{name: "down and mtu", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth1", Up: ptr(true), MTU: 1500}},
			msg: []string{"is down, want up; mtu is 1400, want 1500"}},
		{name: "master", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth2", Master: "br0", Kind: "veth"}},
			pass: true, msg: []string{"enslaved to br0"}},
		{name: "no master", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth0", Master: "br0"}},
			msg: []string{"has no master, want br0"}},
		{name: "wrong master", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth2", Master: "br1"}},
			msg: []string{"master is br0, want br1"}},
		{name: "kind", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "br0", Kind: "bridge"}}, pass: true},
		{name: "wrong kind", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth0", Kind: "bridge"}},
			msg: []string{"is a veth, want bridge"}},
		{name: "missing", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "br1"}},
			msg: []string{"r1 has no interface br1"}, ev: []string{"interfaces: lo, eth0, eth1, br0, eth2"}},
		{name: "absent ok", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "br1", Absent: true}}, pass: true},
		{name: "absent but exists", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "br0", Absent: true}},
			msg: []string{"r1 br0 still exists"}},
		{name: "node not observed", check: labs.Check{Link: &labs.LinkCheck{Node: "r9", Name: "eth0"}},
			msg: []string{"state of r9 was not observed"}},
	})
}

func TestStateReadError(t *testing.T) {
	obs := fixture(t, "", "r1")
	obs.States["r1"].Errors = map[string]string{PartNFT: "netlink: operation not permitted"}
	runCases(t, obs, []checkCase{
		{name: "nft unreadable", check: labs.Check{NFTables: &labs.NFTCheck{Node: "r1", Table: "filter"}},
			msg: []string{"could not read nft of r1: netlink: operation not permitted"}},
		{name: "links still fine", check: labs.Check{Link: &labs.LinkCheck{Node: "r1", Name: "eth0"}}, pass: true},
	})
}

func TestAddress(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "on dev", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Dev: "eth0", Address: "10.0.1.1/24"}},
			pass: true, msg: []string{"r1 has 10.0.1.1/24 on eth0"}},
		{name: "any dev", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Address: "192.168.5.1/24"}},
			pass: true, msg: []string{"on br0"}},
		{name: "ipv6", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Dev: "eth0", Address: "fd00:1::1/64"}}, pass: true},
		{name: "wrong prefix length", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Dev: "eth1", Address: "10.0.12.1/24"}},
			msg: []string{"r1 has 10.0.12.1/16 on eth1, want 10.0.12.1/24", "/16, not /24"}},
		{name: "other dev", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Dev: "eth1", Address: "10.0.1.1/24"}},
			msg: []string{"r1 has 10.0.1.1/24 on eth0, not on eth1"}},
		{name: "missing", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Dev: "eth0", Address: "10.0.1.2/24"}},
			msg: []string{"r1 eth0 has no address 10.0.1.2/24"}, ev: []string{"eth0: 10.0.1.1/24, fd00:1::1/64"}},
		{name: "no such dev", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Dev: "eth7", Address: "10.0.7.1/24"}},
			msg: []string{"r1 has no interface eth7"}},
		{name: "absent ok", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Address: "10.0.1.2/24", Absent: true}}, pass: true},
		{name: "absent but present", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Address: "10.0.1.1/24", Absent: true}},
			msg: []string{"r1 still has 10.0.1.1/24 on eth0"}},
		{name: "bad cidr", check: labs.Check{Address: &labs.AddressCheck{Node: "r1", Address: "10.0.1/24"}},
			msg: []string{"not an address or CIDR"}},
	})
}

func TestRoute(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "default via", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "default", Via: "10.0.1.254", Dev: "eth0"}},
			pass: true, msg: []string{"r1 has a route to default in table main"}, ev: []string{"default via 10.0.1.254 dev eth0 table main"}},
		{name: "wrong table", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.0/24", Via: "10.0.12.2"}},
			msg: []string{"r1 has no route to 10.0.2.0/24 in table main; it is in table 100, not main"},
			ev:  []string{"10.0.2.0/24 via 10.0.12.2 dev eth1 table 100"}},
		{name: "right table", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.0/24", Via: "10.0.12.2", Table: 100}}, pass: true},
		{name: "unmasked dst", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.77/24", Table: 100}}, pass: true},
		{name: "wrong gateway", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.3.0/24", Via: "10.0.12.2"}},
			msg: []string{"r1's route to 10.0.3.0/24 in table main goes via 10.0.12.3, want via 10.0.12.2"}},
		{name: "metric", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.3.0/24", Metric: ptr(100)}}, pass: true},
		{name: "wrong metric", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.3.0/24", Dev: "eth1", Metric: ptr(10)}},
			msg: []string{"has metric 100, want 10"}},
		{name: "connected not via", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.1.0/24", Via: "10.0.1.254"}},
			msg: []string{"has no gateway (directly connected), want via 10.0.1.254"}},
		{name: "default6 missing", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "default6", Via: "fd00:1::fe"}},
			msg: []string{"r1 has no route to default (::/0) in table main"}},
		{name: "ipv6 route", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "fd00:2::/64", Via: "fd00:12::2", Metric: ptr(1024)}}, pass: true},
		{name: "missing shows covering route", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.9.0.0/16", Via: "10.0.12.2"}},
			msg: []string{"r1 has no route to 10.9.0.0/16 in table main"}, ev: []string{"traffic to 10.9.0.0/16 follows: default via 10.0.1.254"}},
		{name: "multipath", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.4.0/24", Nexthops: []labs.Nexthop{
			{Via: "10.0.1.2", Dev: "eth0"}, {Via: "10.0.12.2", Dev: "eth1", Weight: 1}}}}, pass: true},
		{name: "multipath weight differs", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.4.0/24", Nexthops: []labs.Nexthop{
			{Via: "10.0.1.2", Dev: "eth0"}, {Via: "10.0.12.2", Dev: "eth1", Weight: 3}}}},
			msg: []string{"has nexthop via 10.0.12.2 dev eth1 with weight 1, want 3"}},
		{name: "multipath missing path", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.4.0/24", Nexthops: []labs.Nexthop{
			{Via: "10.0.12.2"}}}},
			msg: []string{"also has nexthop via 10.0.1.2 dev eth0 weight 1"}},
		{name: "single path wanted multipath", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.3.0/24", Nexthops: []labs.Nexthop{
			{Via: "10.0.12.3"}, {Via: "10.0.1.3"}}}},
			msg: []string{"has no nexthop via 10.0.1.3 weight 1"}},
		{name: "multipath wanted single", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.4.0/24", Via: "10.0.12.2"}},
			msg: []string{"is multipath"}},
		{name: "absent ok", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.0/24", Absent: true}}, pass: true},
		{name: "absent but present", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.0/24", Table: 100, Absent: true}},
			msg: []string{"r1 still has a route to 10.0.2.0/24 in table 100"}},
		{name: "bad dst", check: labs.Check{Route: &labs.RouteCheck{Node: "r1", Dst: "nowhere"}}, msg: []string{"not a CIDR"}},
	})
}

func TestRule(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "from lookup", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", From: "10.0.1.0/24", Table: 100}},
			pass: true, msg: []string{"`100: from 10.0.1.0/24 lookup 100`"}},
		{name: "with priority", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", Priority: 100, From: "10.0.1.0/24", Table: 100}}, pass: true},
		{name: "fwmark", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", FWMark: 1, Table: 200}}, pass: true},
		{name: "wrong table", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", From: "10.0.1.0/24", Table: 101}},
			msg: []string{"r1 has no rule from 10.0.1.0/24 lookup 101", "the closest, `100: from 10.0.1.0/24 lookup 100`, looks up table 100, want table 101"}},
		{name: "wrong priority and source", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", Priority: 150, From: "10.0.9.0/24", Table: 100}},
			msg: []string{"the closest, `100: from 10.0.1.0/24 lookup 100`, has priority 100, want 150 and is from 10.0.1.0/24, want from 10.0.9.0/24"}},
		{name: "main table by number", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", Priority: 32766, Table: 254}}, pass: true},
		{name: "nothing alike", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", IIF: "eth9"}},
			msg: []string{"r1 has no rule iif eth9"}, ev: []string{"rule 0: from all lookup local"}},
		{name: "absent ok", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", From: "10.0.2.0/24", Absent: true}}, pass: true},
		{name: "absent but present", check: labs.Check{Rule: &labs.RuleCheck{Node: "r1", FWMark: 1, Absent: true}},
			msg: []string{"r1 still has the rule `200: from all fwmark 0x1 lookup 200`"}},
	})
}

func TestNeighbor(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "mac any case", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Dev: "eth0", Address: "10.0.1.10", MAC: "02:00:00:00:00:10"}}, pass: true},
		{name: "mac upper case", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.12.2", MAC: "02:00:00:00:12:AB"}}, pass: true},
		{name: "wrong mac", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.1.10", MAC: "02:00:00:00:00:99"}},
			msg: []string{"r1 has 10.0.1.10 at 02:00:00:00:00:10 on eth0, want 02:00:00:00:00:99"}},
		{name: "failed entry", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.1.11"}},
			msg: []string{"r1's entry for 10.0.1.11 on eth0 is failed"}},
		{name: "other dev", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Dev: "eth1", Address: "10.0.1.10"}},
			msg: []string{"r1 has 10.0.1.10 on eth0, not on eth1"}},
		{name: "missing", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.1.12"}},
			msg: []string{"r1 has no neighbour entry for 10.0.1.12"}, ev: []string{"10.0.1.10 dev eth0 lladdr 02:00:00:00:00:10 REACHABLE"}},
		{name: "absent ignores failed", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.1.11", Absent: true}}, pass: true},
		{name: "absent but present", check: labs.Check{Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.1.10", Absent: true}},
			msg: []string{"still has a neighbour entry"}},
	})
}

func TestSysctl(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "trailing newline", check: labs.Check{Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.ip_forward", Value: "1"}},
			pass: true, msg: []string{`r1 net.ipv4.ip_forward is "1"`}},
		{name: "tabs equal spaces", check: labs.Check{Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.tcp_rmem", Value: "4096 87380  6291456"}}, pass: true},
		{name: "slash form key", check: labs.Check{Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net/ipv4/ip_forward", Value: "1"}}, pass: true},
		{name: "wrong value", check: labs.Check{Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv6.conf.all.forwarding", Value: "1"}},
			msg: []string{`r1 net.ipv6.conf.all.forwarding is "0", want "1"`}},
		{name: "missing key", check: labs.Check{Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.conf.eth9.rp_filter", Value: "1"}},
			msg: []string{"r1 has no sysctl net.ipv4.conf.eth9.rp_filter"}},
	})
	for in, want := range map[string]string{
		"net/ipv4/ip_forward":           "net.ipv4.ip_forward",
		"/proc/sys/net/ipv4/ip_forward": "net.ipv4.ip_forward",
		" net.ipv4.ip_forward ":         "net.ipv4.ip_forward",
	} {
		if got := normSysctlKey(in); got != want {
			t.Errorf("normSysctlKey(%q) = %q, want %q", in, got, want)
		}
	}
	obs.States["r1"].Errors = map[string]string{"sysctl:net.core.rmem_max": "permission denied"}
	runCases(t, obs, []checkCase{
		{name: "unreadable key", check: labs.Check{Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.core.rmem_max", Value: "1"}},
			msg: []string{"could not read net.core.rmem_max on r1: permission denied"}},
	})
}

func TestSocket(t *testing.T) {
	obs := fixture(t, "", "h2")
	runCases(t, obs, []checkCase{
		{name: "listen any address", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 22}},
			pass: true, msg: []string{"h2 has tcp listen 0.0.0.0:22"}},
		{name: "wildcard exact", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Address: "0.0.0.0", Port: 22}}, pass: true},
		{name: "ipv6 wildcard", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Address: "::", Port: 80}}, pass: true},
		{name: "ipv4 wildcard is not ipv6 wildcard", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Address: "0.0.0.0", Port: 80}},
			msg: []string{"h2 tcp port 80 is bound to ::, not 0.0.0.0"}},
		{name: "loopback only", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Address: "0.0.0.0", Port: 8080}},
			msg: []string{"h2 tcp port 8080 is bound to 127.0.0.1, not 0.0.0.0"}, ev: []string{"tcp listen 127.0.0.1:8080"}},
		{name: "udp bound counts as listening", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "udp", Port: 7}}, pass: true},
		{name: "wrong proto", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "udp", Port: 22}},
			msg: []string{"h2 has port 22 open for tcp, not udp"}},
		{name: "established", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 22, State: "ESTAB"}}, pass: true},
		{name: "wrong state", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 7, Address: "10.0.2.10"}},
			msg: []string{"h2's tcp socket on 10.0.2.10:7 is time-wait, want listen"}},
		{name: "missing", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 443}},
			msg: []string{"h2 has no tcp socket in state listen on port 443"}, ev: []string{"tcp listen 0.0.0.0:22"}},
		{name: "absent ok", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 23, Absent: true}}, pass: true},
		{name: "absent but listening", check: labs.Check{Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 8080, Absent: true}},
			msg: []string{"h2 still has tcp listen 127.0.0.1:8080"}},
	})
}

func TestConntrack(t *testing.T) {
	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "flow", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Proto: "tcp", Src: "10.0.1.10", Dst: "10.0.2.10", Dport: 22}},
			pass: true, msg: []string{"r1 tracks tcp 10.0.1.10:40000 > 10.0.2.10:22"}},
		{name: "nat reply", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Proto: "tcp", Dst: "203.0.113.5", ReplyDst: "10.0.12.1"}}, pass: true},
		{name: "src as cidr", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Src: "10.0.1.0/24", Dport: 80}}, pass: true},
		{name: "not natted", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Proto: "tcp", Dst: "10.0.2.10", Dport: 22, ReplyDst: "10.0.12.1"}},
			msg: []string{"the closest, `tcp 10.0.1.10:40000 > 10.0.2.10:22 reply 10.0.2.10:22 > 10.0.1.10:40000 established`, has replies to 10.0.1.10, want to 10.0.12.1"}},
		{name: "missing", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Proto: "udp", Dst: "10.0.9.9"}},
			msg: []string{"r1 tracks no connection udp any > 10.0.9.9"}},
		{name: "absent ok", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Proto: "udp", Absent: true}}, pass: true},
		{name: "absent but tracked", check: labs.Check{Conntrack: &labs.ConntrackCheck{Node: "r1", Dport: 22, Absent: true}},
			msg: []string{"r1 still tracks tcp 10.0.1.10:40000 > 10.0.2.10:22"}},
	})
}
