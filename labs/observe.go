package labs

import "time"

// The observation vocabulary: what the sandbox reads from the kernel and
// the wire, and what the grader judges checks against. It lives here,
// beside the check schema, because sandbox (which produces observations)
// and grader (which consumes them) may both import labs and nothing else
// of each other.

// NodeState is a snapshot of one node's kernel state.
type NodeState struct {
	Node      string
	Links     []LinkState
	Addrs     []AddrState
	Routes    []RouteState // every table
	Rules     []RuleState
	Neighbors []NeighState
	Sysctls   map[string]string // the keys that were asked for; missing = no such key
	NFT       []NFTTable
	Sockets   []SocketState
	Conntrack []ConntrackState
	// Errors names the parts that could not be read (part -> error), so a
	// check on them fails with the reason rather than "not found".
	Errors map[string]string
}

// LinkState is an interface.
type LinkState struct {
	Name   string
	Index  int
	Kind   string // veth, bridge, dummy, ...
	Up     bool   // administratively up
	Oper   string // up, down, unknown, lowerlayerdown
	MTU    int
	Master string // name of the master (bridge), if any
	MAC    string
	XDP    bool // an XDP program is attached
}

// AddrState is an address on an interface.
type AddrState struct {
	Dev    string
	Prefix string // CIDR, e.g. 10.0.0.1/24
}

// RouteState is a route.
type RouteState struct {
	Table    int    // 254 = main
	Dst      string // CIDR; 0.0.0.0/0 and ::/0 for default
	Via      string
	Dev      string
	Metric   int
	Type     string // unicast, blackhole, unreachable, prohibit, local, ...
	Protocol string // kernel, boot, static, ...
	Nexthops []NexthopState
}

// NexthopState is one path of a multipath route.
type NexthopState struct {
	Via    string
	Dev    string
	Weight int
}

// RuleState is a policy routing rule.
type RuleState struct {
	Family   string // inet or inet6
	Priority int
	From     string // CIDR or ""
	To       string
	IIF      string
	OIF      string
	FWMark   uint32
	Table    int
	Action   string // lookup, blackhole, unreachable, prohibit, goto
}

// NeighState is an ARP / NDP entry.
type NeighState struct {
	Dev     string
	Address string
	MAC     string
	State   string // reachable, stale, permanent, failed, ...
}

// NFTTable is an nftables table with its chains.
type NFTTable struct {
	Family string // ip, ip6, inet, arp, bridge, netdev
	Name   string
	Chains []NFTChain
	Sets   []NFTSet
}

// NFTSet is a named set.
type NFTSet struct {
	Name     string
	Elements []string
}

// NFTChain is a chain; base chains have a hook.
type NFTChain struct {
	Name     string
	Type     string // filter, nat, route; "" for a regular chain
	Hook     string // prerouting, input, forward, output, postrouting, ingress; "" for regular
	Priority int
	Policy   string // accept or drop (base chains)
	Rules    []NFTRule
}

// NFTRule is a rule decoded to its meaning.
type NFTRule struct {
	Handle  uint64
	Proto   string   // tcp, udp, icmp, icmpv6, ... ("" = any)
	Saddr   []string // CIDRs; empty = any
	Daddr   []string
	Sport   []int // the set of ports matched; empty = any
	Dport   []int
	IIF     string
	OIF     string
	CTState []string // new, established, related, invalid, untracked
	Verdict string   // accept, drop, reject, masquerade, snat, dnat, redirect, jump, goto, return, continue ("" = none)
	Target  string   // snat/dnat "addr[:port]", jump/goto chain
	Log     bool
	Limit   bool
	Counter bool
	Packets uint64 // counter values, when the rule has a counter
	Bytes   uint64
	// Unknown lists expressions the decoder did not understand; a rule
	// with any is still listed but matched conservatively.
	Unknown []string
	// Text is a readable rendering for evidence, e.g.
	// "tcp dport 22 ip saddr 192.168.1.0/24 accept".
	Text string
}

// SocketState is a socket from sock_diag.
type SocketState struct {
	Proto      string // tcp or udp
	State      string // listen, established, time-wait, ... (udp: "unconn" or "established")
	Local      string // address
	LocalPort  int
	Remote     string
	RemotePort int
	UID        int // uid inside the node
	Inode      uint32
}

// ConntrackState is a connection tracking entry.
type ConntrackState struct {
	Proto      string
	Src, Dst   string // original direction
	Sport      int
	Dport      int
	ReplySrc   string // reply direction
	ReplyDst   string
	ReplySport int
	ReplyDport int
	State      string // TCP state if known
}

// ProbeResult is what a behaviour probe saw.
type ProbeResult struct {
	Kind    string // ping, tcp, udp, http, pmtu
	From    string // node
	To      string // address (resolved)
	Port    int
	Outcome string // reply, no-reply, connected, refused, timeout, unreachable
	Detail  string // e.g. "ICMP host unreachable from 10.0.1.1", "echoed nonce 4f1c…"
	RTT     time.Duration
	Status  int    // http
	Body    string // http, truncated
	MTU     int    // pmtu: largest DF packet that got through (0 = none)
}

// Packet is a captured frame, decoded.
type Packet struct {
	Time     time.Time
	Link     string // lab link or segment
	Endpoint string // node:iface whose end of the link sent it
	Len      int
	SrcMAC   string
	DstMAC   string
	Proto    string // arp, icmp, icmpv6, tcp, udp, ipv4, ipv6, other
	Src      string
	Dst      string
	Sport    int
	Dport    int
	TTL      int
	Flags    string // TCP flags as letters in the order FSRPAUEC, e.g. "S", "SA", "A", "FA"
	Seq      uint32
	Ack      uint32
	ICMPType int
	ICMPCode int
	EchoID   int    // ICMP(v6) echo request/reply identifier
	Quoted   string // ICMP errors: the flow of the packet quoted, "tcp:sport:dport", "udp:…" or "icmp:id"
	Summary  string // one line, tcpdump-like
	// Probe marks packets of nslab's own probes (behaviour checks). Packet
	// checks ignore them unless the check generated them itself, so the
	// grader's traffic never passes a check for the learner.
	Probe bool
	// Spoofed marks a packet on a point-to-point link whose source address
	// belongs (in the lab's definition) to the other end than the one whose
	// port it entered the hub through: forged, and never counted.
	Spoofed bool
}
