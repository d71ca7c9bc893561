package sandbox

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

// snapLab: r routes between a (services, conntrack) and b.
const snapLab = `
id: snap
title: snap
nodes:
  - name: r
    interfaces:
      - {name: eth0, addresses: [10.1.0.1/24, fd00:1::1/64], mtu: 1400}
      - {name: eth1, addresses: [10.2.0.1/24]}
  - name: a
    interfaces: [{name: eth0, addresses: [10.1.0.2/24, fd00:1::2/64]}]
    routes: [{dst: default, via: 10.1.0.1}]
    services:
      - {kind: tcp-echo, port: 7}
      - {kind: udp-echo, port: 7}
      - {kind: http, port: 80, body: "hi\n"}
  - name: b
    interfaces: [{name: eth0, addresses: [10.2.0.2/24]}]
links:
  - endpoints: [r:eth0, a:eth0]
  - endpoints: [r:eth1, b:eth0]
`

func mustSnapshot(t *testing.T, sb *Sandbox, node string, opts SnapshotOptions) *labs.NodeState {
	t.Helper()
	st, err := sb.Snapshot(context.Background(), node, opts)
	if err != nil {
		t.Fatalf("snapshot %s: %v", node, err)
	}
	return st
}

// runStdin runs argv in node with stdin, failing the test on a non-zero exit.
func runStdin(t *testing.T, sb *Sandbox, node, stdin string, argv ...string) {
	t.Helper()
	var out strings.Builder
	st, err := sb.Exec(context.Background(), node, ExecRequest{Argv: argv, Stdin: strings.NewReader(stdin), Timeout: 20 * time.Second},
		func(_ int, b []byte) error { out.Write(b); return nil })
	if err != nil || st.Code != 0 {
		t.Fatalf("%s: %v: %+v %v\n%s\ninput:\n%s", node, argv, st, err, out.String(), stdin)
	}
}

// holdTCP keeps a TCP connection from node to addr:port open until the
// test ends, returning once it is connected.
func holdTCP(t *testing.T, sb *Sandbox, node, addr string, port int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	connected := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once bool
		// The node's services may still be starting: retry for 5 s.
		script := fmt.Sprintf("for i in $(seq 50); do if exec 3<>/dev/tcp/%s/%d; then echo connected; exec sleep 60; fi; sleep 0.1; done 2>/dev/null; exit 1", addr, port)
		sb.Exec(ctx, node, ExecRequest{Argv: []string{"bash", "-c", script}},
			func(_ int, b []byte) error {
				if !once && strings.Contains(string(b), "connected") {
					once = true
					close(connected)
				}
				return nil
			})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-done:
		t.Fatalf("%s: connect to %s:%d failed", node, addr, port)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: connect to %s:%d timed out", node, addr, port)
	}
}

func TestSnapshotKernelState(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, parseLab(t, snapLab))

	// What a learner would type.
	for _, cmd := range []string{
		"ip route add 192.0.2.0/24 via 10.1.0.2 table 100 metric 50",
		"ip route add blackhole 198.51.100.0/24",
		"ip route add 198.18.0.0/15 nexthop via 10.1.0.2 weight 3 nexthop via 10.2.0.2 weight 1",
		"ip -6 route add fd00:99::/64 via fd00:1::2",
		"ip rule add from 10.1.0.0/24 lookup 100 priority 1000",
		"ip rule add fwmark 0x10 iif eth0 lookup 200 priority 1100",
		"ip rule add to 203.0.113.0/24 prohibit priority 1200",
		"ip -6 rule add from fd00:1::/64 lookup 100 priority 1300",
		"ip neigh add 10.1.0.99 lladdr 02:00:00:00:00:99 dev eth0 nud permanent",
		"ip link add v0 type veth peer name v1",
		"ip link add br0 type bridge",
		"ip link set v1 master br0",
		"ip link set br0 up",
		"ip link set v0 mtu 1300",
		"sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.eth1.rp_filter=2",
	} {
		mustRun(t, sb, "r", "sh", "-c", cmd)
	}
	mustRun(t, sb, "r", "ping", "-c1", "-W2", "10.2.0.2")

	st := mustSnapshot(t, sb, "r", SnapshotOptions{
		Neighbors: true,
		Sysctls: []string{"net.ipv4.ip_forward", "net.ipv4.conf.eth1.rp_filter", "net.ipv4.tcp_rmem", "net.ipv4.no_such_key",
			"kernel.hostname", "net.ipv4.conf/../../kernel", "net..ipv4"},
	})

	t.Run("links", func(t *testing.T) {
		byName := map[string]labs.LinkState{}
		var names []string
		for _, l := range st.Links {
			byName[l.Name] = l
			names = append(names, l.Name)
		}
		slices.Sort(names)
		if want := []string{"br0", "eth0", "eth1", "lo", "v0", "v1"}; !slices.Equal(names, want) {
			t.Fatalf("links %v, want %v", names, want)
		}
		if l := byName["eth0"]; l.Kind != "veth" || !l.Up || l.Oper != "up" || l.MTU != 1400 || len(l.MAC) != 17 || l.Index == 0 {
			t.Errorf("eth0 = %+v", l)
		}
		if l := byName["lo"]; l.Kind != "device" || !l.Up || l.Oper != "unknown" {
			t.Errorf("lo = %+v", l)
		}
		if l := byName["v1"]; l.Master != "br0" || l.Up {
			t.Errorf("v1 = %+v, want master br0, down", l)
		}
		if l := byName["v0"]; l.Oper != "down" || l.MTU != 1300 {
			t.Errorf("v0 = %+v", l)
		}
		if l := byName["br0"]; l.Kind != "bridge" || !l.Up {
			t.Errorf("br0 = %+v", l)
		}
	})
	t.Run("addrs", func(t *testing.T) {
		want := []labs.AddrState{{Dev: "lo", Prefix: "127.0.0.1/8"}, {Dev: "eth0", Prefix: "10.1.0.1/24"},
			{Dev: "eth0", Prefix: "fd00:1::1/64"}, {Dev: "eth1", Prefix: "10.2.0.1/24"}}
		for _, w := range want {
			if !slices.Contains(st.Addrs, w) {
				t.Errorf("no address %+v in %+v", w, st.Addrs)
			}
		}
		var ll bool
		for _, a := range st.Addrs {
			ll = ll || strings.HasPrefix(a.Prefix, "fe80:")
		}
		if !ll {
			t.Errorf("no IPv6 link-local address in %+v", st.Addrs)
		}
	})
	t.Run("routes", func(t *testing.T) {
		find := func(table int, dst string) *labs.RouteState {
			for i, r := range st.Routes {
				if r.Table == table && r.Dst == dst {
					return &st.Routes[i]
				}
			}
			t.Errorf("no route to %s in table %d", dst, table)
			return &labs.RouteState{}
		}
		if r := find(100, "192.0.2.0/24"); r.Via != "10.1.0.2" || r.Dev != "eth0" || r.Metric != 50 || r.Type != "unicast" || r.Protocol != "boot" {
			t.Errorf("table 100 route = %+v", r)
		}
		if r := find(254, "10.1.0.0/24"); r.Protocol != "kernel" || r.Dev != "eth0" || r.Via != "" {
			t.Errorf("connected route = %+v", r)
		}
		if r := find(254, "198.51.100.0/24"); r.Type != "blackhole" {
			t.Errorf("blackhole route = %+v", r)
		}
		want := []labs.NexthopState{{Via: "10.1.0.2", Dev: "eth0", Weight: 3}, {Via: "10.2.0.2", Dev: "eth1", Weight: 1}}
		if r := find(254, "198.18.0.0/15"); !reflect.DeepEqual(r.Nexthops, want) {
			t.Errorf("multipath route = %+v", r)
		}
		if r := find(254, "fd00:99::/64"); r.Via != "fd00:1::2" || r.Dev != "eth0" {
			t.Errorf("IPv6 route = %+v", r)
		}
		if r := find(255, "10.1.0.1/32"); r.Type != "local" {
			t.Errorf("local route = %+v", r)
		}
	})
	t.Run("rules", func(t *testing.T) {
		want := []labs.RuleState{
			{Family: "inet", Priority: 0, Table: 255, Action: "lookup"},
			{Family: "inet", Priority: 1000, From: "10.1.0.0/24", Table: 100, Action: "lookup"},
			{Family: "inet", Priority: 1100, IIF: "eth0", FWMark: 0x10, Table: 200, Action: "lookup"},
			{Family: "inet", Priority: 1200, To: "203.0.113.0/24", Action: "prohibit"},
			{Family: "inet", Priority: 32766, Table: 254, Action: "lookup"},
			{Family: "inet6", Priority: 1300, From: "fd00:1::/64", Table: 100, Action: "lookup"},
		}
		for _, w := range want {
			if !slices.Contains(st.Rules, w) {
				t.Errorf("no rule %+v in\n%+v", w, st.Rules)
			}
		}
	})
	t.Run("neighbors", func(t *testing.T) {
		if w := (labs.NeighState{Dev: "eth0", Address: "10.1.0.99", MAC: "02:00:00:00:00:99", State: "permanent"}); !slices.Contains(st.Neighbors, w) {
			t.Errorf("no %+v in %+v", w, st.Neighbors)
		}
		var b bool
		for _, n := range st.Neighbors {
			b = b || n.Address == "10.2.0.2" && n.Dev == "eth1" && n.MAC != "" &&
				(n.State == "reachable" || n.State == "stale" || n.State == "delay" || n.State == "probe")
		}
		if !b {
			t.Errorf("no resolved entry for 10.2.0.2 after a ping: %+v", st.Neighbors)
		}
	})
	t.Run("sysctls", func(t *testing.T) {
		want := map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.eth1.rp_filter": "2"}
		for k, v := range want {
			if st.Sysctls[k] != v {
				t.Errorf("%s = %q, want %q", k, st.Sysctls[k], v)
			}
		}
		if v := st.Sysctls["net.ipv4.tcp_rmem"]; len(strings.Fields(v)) != 3 || strings.Contains(v, "\t") {
			t.Errorf("tcp_rmem = %q, want three space-separated numbers", v)
		}
		if _, ok := st.Sysctls["net.ipv4.no_such_key"]; ok {
			t.Errorf("missing key is present: %v", st.Sysctls)
		}
		for _, k := range []string{"kernel.hostname", "net.ipv4.conf/../../kernel", "net..ipv4"} {
			if _, ok := st.Errors[SysctlPart(k)]; !ok {
				t.Errorf("%s not refused; errors %v", k, st.Errors)
			}
			if _, ok := st.Sysctls[k]; ok {
				t.Errorf("%s was read", k)
			}
		}
		if len(st.Errors) != 3 {
			t.Errorf("errors = %v, want only the three refused keys", st.Errors)
		}
	})
	t.Run("per node", func(t *testing.T) {
		// The host's ip_forward is not the node's, and b is untouched.
		stb := mustSnapshot(t, sb, "b", SnapshotOptions{Sysctls: []string{"net.ipv4.ip_forward"}, NFT: true})
		if len(stb.NFT) != 0 || len(stb.Errors) != 0 {
			t.Errorf("b has no ruleset, snapshot has %+v, errors %v", stb.NFT, stb.Errors)
		}
		if stb.Sysctls["net.ipv4.ip_forward"] != "0" {
			t.Errorf("b ip_forward = %q, want 0", stb.Sysctls["net.ipv4.ip_forward"])
		}
		var names []string
		for _, l := range stb.Links {
			names = append(names, l.Name)
		}
		if strings.Join(names, ",") != "lo,eth0" {
			t.Errorf("b links = %v", names)
		}
	})
}

func TestSnapshotNodeNotFound(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	if _, err := sb.Snapshot(context.Background(), "nosuch", SnapshotOptions{}); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("snapshot of an unknown node = %v, want ErrNodeNotFound", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sb.Snapshot(ctx, "h1", SnapshotOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("snapshot with a cancelled context = %v", err)
	}
}

func TestSnapshotSocketsAndConntrack(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, parseLab(t, snapLab))
	// Any ct expression makes the node track connections.
	runStdin(t, sb, "a", `table inet f {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
  }
}`, "nft", "-f", "-")
	mustRun(t, sb, "r", "ping", "-c1", "-W2", "10.1.0.2")
	holdTCP(t, sb, "r", "10.1.0.2", 7)

	// Services start in the background after Build: wait for all three.
	var st *labs.NodeState
	waitFor(t, 5*time.Second, func() bool {
		st = mustSnapshot(t, sb, "a", SnapshotOptions{Sockets: true, Conntrack: true})
		n := 0
		for _, s := range st.Sockets {
			if s.State == "listen" || s.State == "unconn" {
				n++
			}
		}
		return n >= 3
	})
	if len(st.Errors) > 0 {
		t.Fatalf("errors: %v", st.Errors)
	}
	t.Run("sockets", func(t *testing.T) {
		has := func(proto, state string, port int) *labs.SocketState {
			for i, s := range st.Sockets {
				if s.Proto == proto && s.State == state && s.LocalPort == port {
					return &st.Sockets[i]
				}
			}
			return nil
		}
		for _, w := range []struct {
			proto, state string
			port         int
		}{{"tcp", "listen", 7}, {"tcp", "listen", 80}, {"udp", "unconn", 7}, {"tcp", "established", 7}} {
			s := has(w.proto, w.state, w.port)
			if s == nil {
				t.Errorf("no %s %s socket on port %d in %+v", w.proto, w.state, w.port, st.Sockets)
				continue
			}
			// A connection still in the accept queue has no inode yet.
			if s.UID != 0 || s.Inode == 0 && s.State != "established" {
				t.Errorf("%+v: want uid 0 of the node and an inode", s)
			}
		}
		if s := has("tcp", "established", 7); s != nil && (s.Local != "10.1.0.2" || s.Remote != "10.1.0.1" || s.RemotePort == 0) {
			t.Errorf("established socket = %+v", s)
		}
		// Only the node's own sockets: none of the host's.
		for _, s := range st.Sockets {
			if s.LocalPort != 7 && s.LocalPort != 80 {
				t.Errorf("foreign socket %+v", s)
			}
		}
	})
	t.Run("conntrack", func(t *testing.T) {
		var tcp, icmp bool
		for _, c := range st.Conntrack {
			if c.Proto == "tcp" && c.Src == "10.1.0.1" && c.Dst == "10.1.0.2" && c.Dport == 7 && c.Sport != 0 &&
				c.ReplySrc == "10.1.0.2" && c.ReplyDst == "10.1.0.1" && c.ReplySport == 7 && c.ReplyDport == c.Sport && c.State == "ESTABLISHED" {
				tcp = true
			}
			icmp = icmp || c.Proto == "icmp" && c.Src == "10.1.0.1" && c.Dst == "10.1.0.2"
		}
		if !tcp || !icmp {
			t.Errorf("conntrack lacks the tcp (%v) or icmp (%v) entry: %+v", tcp, icmp, st.Conntrack)
		}
	})
	t.Run("no conntrack without ct rules", func(t *testing.T) {
		st := mustSnapshot(t, sb, "b", SnapshotOptions{Conntrack: true})
		if len(st.Conntrack) != 0 || len(st.Errors) != 0 {
			t.Errorf("b conntrack = %+v, errors %v", st.Conntrack, st.Errors)
		}
	})
}

// nftCase is a rule a learner might write, loaded by nft into a fresh
// table and chain of its own, and what it must decode to.
type nftCase struct {
	name   string
	family string // table family, default inet
	chain  string // chain header, default a filter input base chain
	rule   string
	want   labs.NFTRule // Handle, Packets and Bytes are not compared
}

const natPost = "type nat hook postrouting priority srcnat;"
const natPre = "type nat hook prerouting priority dstnat;"

var nftCases = []nftCase{
	{name: "tcp dport and saddr prefix", rule: "tcp dport 22 ip saddr 192.168.1.0/24 accept",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{22}, Saddr: []string{"192.168.1.0/24"}, Verdict: "accept",
			Text: "tcp dport 22 ip saddr 192.168.1.0/24 accept"}},
	{name: "anonymous port set", rule: "tcp dport { 80, 443 } accept",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{80, 443}, Verdict: "accept", Text: "tcp dport { 80, 443 } accept"}},
	{name: "udp dport", rule: "udp dport 53 accept",
		want: labs.NFTRule{Proto: "udp", Dport: []int{53}, Verdict: "accept", Text: "udp dport 53 accept"}},
	{name: "ct state", rule: "ct state established,related accept",
		want: labs.NFTRule{CTState: []string{"established", "related"}, Verdict: "accept", Text: "ct state established,related accept"}},
	{name: "iifname", rule: `iifname "lo" accept`,
		want: labs.NFTRule{IIF: "lo", Verdict: "accept", Text: `iifname "lo" accept`}},
	{name: "iif", rule: "iif lo accept",
		want: labs.NFTRule{IIF: "lo", Verdict: "accept", Text: `iif "lo" accept`}},
	{name: "rate limited ssh", rule: "tcp dport 22 ct state new limit rate 3/minute accept",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{22}, CTState: []string{"new"}, Limit: true, Verdict: "accept",
			Text: "tcp dport 22 ct state new limit rate 3/minute accept"}},
	{name: "log and drop", rule: `log prefix "drop: " drop`,
		want: labs.NFTRule{Log: true, Verdict: "drop", Text: `log prefix "drop: " drop`}},
	{name: "reject daddr", rule: "ip daddr 10.0.0.0/8 reject",
		want: labs.NFTRule{Daddr: []string{"10.0.0.0/8"}, Verdict: "reject", Text: "ip daddr 10.0.0.0/8 reject"}},
	{name: "l4proto icmp", rule: "meta l4proto icmp accept",
		want: labs.NFTRule{Proto: "icmp", Verdict: "accept", Text: "meta l4proto icmp accept"}},
	{name: "ip6 saddr", rule: "ip6 saddr fd00::/64 tcp dport 22 accept",
		want: labs.NFTRule{Proto: "tcp", Saddr: []string{"fd00::/64"}, Dport: []int{22}, Verdict: "accept",
			Text: "ip6 saddr fd00::/64 tcp dport 22 accept"}},
	{name: "port range", rule: "tcp dport 1000-2000 drop",
		want: labs.NFTRule{Proto: "tcp", Dport: ntPorts(1000, 2000), Verdict: "drop", Text: "tcp dport 1000-2000 drop"}},
	{name: "masquerade", chain: natPost, rule: `oifname "eth0" masquerade`,
		want: labs.NFTRule{OIF: "eth0", Verdict: "masquerade", Text: `oifname "eth0" masquerade`}},
	{name: "dnat inet", chain: natPre, rule: "tcp dport 8080 dnat ip to 10.0.2.10:80",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{8080}, Verdict: "dnat", Target: "10.0.2.10:80", Text: "tcp dport 8080 dnat to 10.0.2.10:80"}},
	{name: "dnat ip", family: "ip", chain: natPre, rule: "tcp dport 8080 dnat to 10.0.2.10:80",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{8080}, Verdict: "dnat", Target: "10.0.2.10:80", Text: "tcp dport 8080 dnat to 10.0.2.10:80"}},
	{name: "dnat ip6", family: "ip6", chain: natPre, rule: "tcp dport 8080 dnat to [fd00:2::10]:80",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{8080}, Verdict: "dnat", Target: "[fd00:2::10]:80", Text: "tcp dport 8080 dnat to [fd00:2::10]:80"}},
	{name: "snat", family: "ip", chain: natPost, rule: "ip saddr 10.1.0.0/24 snat to 192.0.2.1",
		want: labs.NFTRule{Saddr: []string{"10.1.0.0/24"}, Verdict: "snat", Target: "192.0.2.1", Text: "ip saddr 10.1.0.0/24 snat to 192.0.2.1"}},
	{name: "redirect", family: "ip", chain: natPre, rule: "tcp dport 80 redirect to :8080",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{80}, Verdict: "redirect", Target: ":8080", Text: "tcp dport 80 redirect to :8080"}},
	{name: "th dport", rule: "meta l4proto { tcp, udp } th dport 53 accept",
		want: labs.NFTRule{Proto: "tcp,udp", Dport: []int{53}, Verdict: "accept", Text: "meta l4proto { tcp, udp } th dport 53 accept"}},
	{name: "interval port set", rule: "tcp dport { 3000-3005, 4000 } accept",
		want: labs.NFTRule{Proto: "tcp", Dport: append(ntPorts(3000, 3005), 4000), Verdict: "accept", Text: "tcp dport { 3000-3005, 4000 } accept"}},
	{name: "address set and counter", rule: "ip saddr { 10.0.0.0/8, 192.168.0.0/16, 1.2.3.4 } counter drop",
		want: labs.NFTRule{Saddr: []string{"1.2.3.4/32", "10.0.0.0/8", "192.168.0.0/16"}, Counter: true, Verdict: "drop",
			Text: "ip saddr { 1.2.3.4, 10.0.0.0/8, 192.168.0.0/16 } counter packets 0 bytes 0 drop"}},
	{name: "non-byte prefix", rule: "ip saddr 10.1.16.0/20 accept",
		want: labs.NFTRule{Saddr: []string{"10.1.16.0/20"}, Verdict: "accept", Text: "ip saddr 10.1.16.0/20 accept"}},
	{name: "negated port", family: "ip", rule: "tcp dport != 22 drop",
		want: labs.NFTRule{Proto: "tcp", Dport: append(ntPorts(0, 21), ntPorts(23, 65535)...), Verdict: "drop", Text: "tcp dport != 22 drop"}},
	{name: "ip protocol", family: "ip", rule: "ip protocol udp accept",
		want: labs.NFTRule{Proto: "udp", Verdict: "accept", Text: "ip protocol udp accept"}},
	{name: "reject with tcp reset", rule: "tcp dport 23 reject with tcp reset",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{23}, Verdict: "reject", Text: "tcp dport 23 reject with tcp reset"}},
	{name: "jump", rule: "ct state new jump other",
		want: labs.NFTRule{CTState: []string{"new"}, Verdict: "jump", Target: "other", Text: "ct state new jump other"}},
	{name: "icmp type is unknown", family: "ip", rule: "icmp type echo-request accept",
		want: labs.NFTRule{Proto: "icmp", Verdict: "accept", Unknown: []string{"icmp type echo-request"}, Text: "icmp type echo-request accept"}},
	{name: "meta mark is unknown", rule: "meta mark 0x10 accept",
		want: labs.NFTRule{Verdict: "accept", Unknown: []string{"meta mark 0x00000010"}, Text: "meta mark 0x00000010 accept"}},
	{name: "vmap", rule: "ct state vmap { established : accept, related : accept, invalid : drop }",
		want: labs.NFTRule{Unknown: []string{"ct state vmap { invalid : drop, established : accept, related : accept }"},
			Text: "ct state vmap { invalid : drop, established : accept, related : accept }"}},
	{name: "tcp flags", rule: "tcp flags syn tcp dport 22 accept",
		want: labs.NFTRule{Proto: "tcp", Dport: []int{22}, Verdict: "accept", Unknown: []string{"tcp flags syn"}, Text: "tcp flags syn tcp dport 22 accept"}},
	{name: "concatenation", rule: "ip saddr . tcp dport { 10.0.0.1 . 22 } accept",
		want: labs.NFTRule{Proto: "tcp", Verdict: "accept", Unknown: []string{"ip saddr . tcp dport { 10.0.0.1 . 22 }"},
			Text: "ip saddr . tcp dport { 10.0.0.1 . 22 } accept"}},
	{name: "negated iifname", rule: `iifname != "lo" ip daddr 127.0.0.0/8 drop`,
		want: labs.NFTRule{Daddr: []string{"127.0.0.0/8"}, Verdict: "drop", Unknown: []string{`iifname != "lo"`},
			Text: `iifname != "lo" ip daddr 127.0.0.0/8 drop`}},
	{name: "negated ct state", rule: "ct state != established drop",
		want: labs.NFTRule{CTState: []string{"invalid", "related", "new", "untracked"}, Verdict: "drop", Text: "ct state != established drop"}},
	{name: "negated prefix", family: "ip", rule: "ip saddr != 10.0.0.0/8 drop",
		want: labs.NFTRule{Saddr: []string{"0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"},
			Verdict: "drop", Text: "ip saddr != 10.0.0.0/8 drop"}},
	{name: "meta mark set", rule: "meta mark set 0x1",
		want: labs.NFTRule{Unknown: []string{"meta mark set 0x00000001"}, Text: "meta mark set 0x00000001"}},
	{name: "fib", rule: "fib daddr type local accept",
		want: labs.NFTRule{Verdict: "accept", Unknown: []string{"fib daddr type local"}, Text: "fib daddr type local accept"}},
}

// TestNFTDecodeRules loads every case with nft into a node and decodes
// it back from the kernel.
func TestNFTDecodeRules(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, parseLab(t, snapLab))
	var script strings.Builder
	for i, tc := range nftCases {
		fam := tc.family
		if fam == "" {
			fam = "inet"
		}
		hdr := tc.chain
		if hdr == "" {
			hdr = "type filter hook input priority 0; policy accept;"
		}
		fmt.Fprintf(&script, "table %s t%d {\n  chain other { }\n  chain c {\n    %s\n    %s\n  }\n}\n", fam, i, hdr, tc.rule)
	}
	runStdin(t, sb, "r", script.String(), "nft", "-f", "-")

	st := mustSnapshot(t, sb, "r", SnapshotOptions{NFT: true})
	if len(st.Errors) > 0 {
		t.Fatalf("errors: %v", st.Errors)
	}
	tables := map[string]labs.NFTTable{}
	for _, tb := range st.NFT {
		tables[tb.Name] = tb
	}
	for i, tc := range nftCases {
		t.Run(tc.name, func(t *testing.T) {
			tb, ok := tables[fmt.Sprintf("t%d", i)]
			if !ok || len(tb.Chains) != 2 || tb.Chains[1].Name != "c" || len(tb.Chains[1].Rules) != 1 {
				t.Fatalf("table t%d = %+v", i, tb)
			}
			got := tb.Chains[1].Rules[0]
			if got.Handle == 0 {
				t.Errorf("no handle")
			}
			got.Handle, got.Packets, got.Bytes = 0, 0, 0
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s\n got %+v\nwant %+v", tc.rule, got, tc.want)
			}
		})
	}
	t.Run("chains", func(t *testing.T) {
		tb := tables["t0"]
		want := labs.NFTChain{Name: "c", Type: "filter", Hook: "input", Priority: 0, Policy: "accept"}
		got := tb.Chains[1]
		got.Rules = nil
		if tb.Family != "inet" || got.Name != want.Name || !reflect.DeepEqual(got, want) {
			t.Errorf("t0 %s chain c = %+v, want %+v", tb.Family, got, want)
		}
		if other := tb.Chains[0]; other.Name != "other" || other.Type != "" || other.Hook != "" || other.Policy != "" {
			t.Errorf("regular chain = %+v", other)
		}
		for i, tc := range nftCases {
			if tc.chain == natPre {
				if c := tables[fmt.Sprintf("t%d", i)].Chains[1]; c.Type != "nat" || c.Hook != "prerouting" || c.Priority != -100 {
					t.Errorf("%s: chain %+v", tc.name, c)
				}
			}
		}
	})
}

func TestNFTNamedSetAndCounter(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, parseLab(t, snapLab))
	runStdin(t, sb, "a", `table inet s {
  set blocked { type ipv4_addr; flags interval; elements = { 203.0.113.0/24, 198.51.100.7 } }
  set svc { type inet_service; elements = { 22, 80 } }
  chain input {
    type filter hook input priority 0; policy drop;
    ip saddr @blocked drop
    tcp dport @svc accept
    ip protocol icmp counter accept
    ct state established,related accept
  }
}`, "nft", "-f", "-")
	mustRun(t, sb, "r", "ping", "-c3", "-i0.2", "-W2", "10.1.0.2")

	st := mustSnapshot(t, sb, "a", SnapshotOptions{NFT: true})
	if len(st.Errors) > 0 || len(st.NFT) != 1 {
		t.Fatalf("nft = %+v, errors %v", st.NFT, st.Errors)
	}
	tb := st.NFT[0]
	wantSets := []labs.NFTSet{{Name: "blocked", Elements: []string{"198.51.100.7", "203.0.113.0/24"}}, {Name: "svc", Elements: []string{"22", "80"}}}
	slices.SortFunc(tb.Sets, func(a, b labs.NFTSet) int { return strings.Compare(a.Name, b.Name) })
	for i := range tb.Sets {
		slices.Sort(tb.Sets[i].Elements)
	}
	if !reflect.DeepEqual(tb.Sets, wantSets) {
		t.Errorf("sets = %+v, want %+v", tb.Sets, wantSets)
	}
	c := tb.Chains[0]
	if c.Policy != "drop" || len(c.Rules) != 4 {
		t.Fatalf("chain = %+v", c)
	}
	if r := c.Rules[0]; !slices.Equal(r.Saddr, []string{"198.51.100.7/32", "203.0.113.0/24"}) || r.Text != "ip saddr @blocked drop" {
		t.Errorf("set rule = %+v", r)
	}
	if r := c.Rules[1]; !slices.Equal(r.Dport, []int{22, 80}) || r.Proto != "tcp" || r.Text != "tcp dport @svc accept" {
		t.Errorf("set rule = %+v", r)
	}
	r := c.Rules[2]
	if !r.Counter || r.Packets < 3 || r.Bytes < 3*84 || r.Proto != "icmp" {
		t.Errorf("counter rule after 3 pings = %+v", r)
	}
	if !strings.HasPrefix(r.Text, "ip protocol icmp counter packets ") {
		t.Errorf("text = %q", r.Text)
	}
}

// TestSnapshotTiming reports what a snapshot costs; grading takes one per
// node per check run.
func TestSnapshotTiming(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, parseLab(t, snapLab))
	runStdin(t, sb, "r", `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    tcp dport { 22, 80, 443 } ct state new limit rate 10/second accept
    ip saddr 10.0.0.0/8 counter accept
    log prefix "drop: " drop
  }
}
table ip nat {
  chain post { type nat hook postrouting priority srcnat; oifname "eth1" masquerade; }
}`, "nft", "-f", "-")
	full := SnapshotOptions{NFT: true, Sockets: true, Conntrack: true, Neighbors: true,
		Sysctls: []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.rp_filter"}}
	for _, c := range []struct {
		name string
		opts SnapshotOptions
	}{{"base", SnapshotOptions{}}, {"full", full}} {
		const n = 50
		mustSnapshot(t, sb, "r", c.opts) // warm up
		start := time.Now()
		for range n {
			st := mustSnapshot(t, sb, "r", c.opts)
			if len(st.Errors) > 0 {
				t.Fatalf("errors: %v", st.Errors)
			}
		}
		per := time.Since(start) / n
		t.Logf("snapshot %s: %s per node", c.name, per)
		if per > 100*time.Millisecond {
			t.Errorf("snapshot %s takes %s", c.name, per)
		}
	}
}

func BenchmarkSnapshot(b *testing.B) {
	m := testManager(b)
	lab, err := labs.Parse([]byte(snapLab), "snap.yaml")
	if err != nil {
		b.Fatal(err)
	}
	sb := build(b, m, lab)
	opts := SnapshotOptions{NFT: true, Sockets: true, Conntrack: true, Neighbors: true, Sysctls: []string{"net.ipv4.ip_forward"}}
	for b.Loop() {
		if _, err := sb.Snapshot(context.Background(), "a", opts); err != nil {
			b.Fatal(err)
		}
	}
}
