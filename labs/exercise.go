package labs

// Exercise is one graded task of a lab.
type Exercise struct {
	ID           string   `yaml:"id"`
	Title        string   `yaml:"title"`
	Instructions string   `yaml:"instructions"` // Markdown
	Hints        []string `yaml:"hints"`
	Checks       []Check  `yaml:"checks"`
	// Solution is the reference answer: after it runs on a fresh sandbox,
	// every check passes. CI proves it.
	Solution []Step `yaml:"solution"`
	// AntiSolution is a plausible wrong answer (e.g. SSH opened to every
	// source instead of one subnet) that the checks must reject.
	AntiSolution []Step `yaml:"anti_solution"`
}

// Step is one shell command run as root of a node (sh -c), or an XDP
// object attached on the learner's behalf (labctl xdp attach).
type Step struct {
	Node string   `yaml:"node"`
	Run  string   `yaml:"run"`
	XDP  *XDPStep `yaml:"xdp"`
}

// XDPStep attaches (or detaches) an XDP object built inside the node.
type XDPStep struct {
	Interface string `yaml:"interface"`
	Object    string `yaml:"object"` // path inside the node, under /tmp, /var/tmp, /run or /dev/shm
	Section   string `yaml:"section"`
	Detach    bool   `yaml:"detach"`
}

// Check is one graded fact. Exactly one kind field is set.
type Check struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description"` // shown to the learner
	Hint        string `yaml:"hint"`        // shown when the check fails
	Points      int    `yaml:"points"`      // 0 = 1
	Hidden      bool   `yaml:"hidden"`      // counted; shown only as "a hidden check failed"

	// Kernel state, read through netlink, nftables and sock_diag.
	Link      *LinkCheck      `yaml:"link"`
	Address   *AddressCheck   `yaml:"address"`
	Route     *RouteCheck     `yaml:"route"`
	Rule      *RuleCheck      `yaml:"rule"`
	Neighbor  *NeighborCheck  `yaml:"neighbor"`
	Sysctl    *SysctlCheck    `yaml:"sysctl"`
	NFTables  *NFTCheck       `yaml:"nftables"`
	Socket    *SocketCheck    `yaml:"socket"`
	Conntrack *ConntrackCheck `yaml:"conntrack"`
	// Behaviour, probed from inside a node.
	Ping *PingCheck `yaml:"ping"`
	TCP  *TCPCheck  `yaml:"tcp"`
	UDP  *UDPCheck  `yaml:"udp"`
	HTTP *HTTPCheck `yaml:"http"`
	PMTU *PMTUCheck `yaml:"pmtu"`
	// Packets seen by the hub capture.
	Packets *PacketCheck `yaml:"packets"`
	// The escape hatch: a command in a node.
	Command *CommandCheck `yaml:"command"`
	// A typed answer to a question, e.g. read off a capture.
	Answer *AnswerCheck `yaml:"answer"`
}

// Check kinds, as Check.Kind returns them.
const (
	CheckLink      = "link"
	CheckAddress   = "address"
	CheckRoute     = "route"
	CheckRule      = "rule"
	CheckNeighbor  = "neighbor"
	CheckSysctl    = "sysctl"
	CheckNFTables  = "nftables"
	CheckSocket    = "socket"
	CheckConntrack = "conntrack"
	CheckPing      = "ping"
	CheckTCP       = "tcp"
	CheckUDP       = "udp"
	CheckHTTP      = "http"
	CheckPMTU      = "pmtu"
	CheckPackets   = "packets"
	CheckCommand   = "command"
	CheckAnswer    = "answer"
)

// Kinds returns the kinds that are set (exactly one in a valid check).
func (c *Check) Kinds() []string {
	var k []string
	add := func(set bool, name string) {
		if set {
			k = append(k, name)
		}
	}
	add(c.Link != nil, CheckLink)
	add(c.Address != nil, CheckAddress)
	add(c.Route != nil, CheckRoute)
	add(c.Rule != nil, CheckRule)
	add(c.Neighbor != nil, CheckNeighbor)
	add(c.Sysctl != nil, CheckSysctl)
	add(c.NFTables != nil, CheckNFTables)
	add(c.Socket != nil, CheckSocket)
	add(c.Conntrack != nil, CheckConntrack)
	add(c.Ping != nil, CheckPing)
	add(c.TCP != nil, CheckTCP)
	add(c.UDP != nil, CheckUDP)
	add(c.HTTP != nil, CheckHTTP)
	add(c.PMTU != nil, CheckPMTU)
	add(c.Packets != nil, CheckPackets)
	add(c.Command != nil, CheckCommand)
	add(c.Answer != nil, CheckAnswer)
	return k
}

// Kind returns the check's kind, or "" unless exactly one is set.
func (c *Check) Kind() string {
	if k := c.Kinds(); len(k) == 1 {
		return k[0]
	}
	return ""
}

// Node returns the node a check observes or probes from.
func (c *Check) Node() string {
	switch {
	case c.Link != nil:
		return c.Link.Node
	case c.Address != nil:
		return c.Address.Node
	case c.Route != nil:
		return c.Route.Node
	case c.Rule != nil:
		return c.Rule.Node
	case c.Neighbor != nil:
		return c.Neighbor.Node
	case c.Sysctl != nil:
		return c.Sysctl.Node
	case c.NFTables != nil:
		return c.NFTables.Node
	case c.Socket != nil:
		return c.Socket.Node
	case c.Conntrack != nil:
		return c.Conntrack.Node
	case c.Ping != nil:
		return c.Ping.From
	case c.TCP != nil:
		return c.TCP.From
	case c.UDP != nil:
		return c.UDP.From
	case c.HTTP != nil:
		return c.HTTP.From
	case c.PMTU != nil:
		return c.PMTU.From
	case c.Command != nil:
		return c.Command.Node
	case c.Answer != nil:
		return c.Answer.Node
	}
	return ""
}

// LinkCheck: an interface of a node.
type LinkCheck struct {
	Node   string `yaml:"node"`
	Name   string `yaml:"name"`
	Absent bool   `yaml:"absent"` // the link must not exist
	Up     *bool  `yaml:"up"`
	MTU    int    `yaml:"mtu"`
	Master string `yaml:"master"` // e.g. a bridge the learner made
	Kind   string `yaml:"kind"`   // veth, bridge, ...
	XDP    *bool  `yaml:"xdp"`    // an XDP program is (or is not) attached
}

// AddressCheck: an address on a node (on Dev, if given).
type AddressCheck struct {
	Node    string `yaml:"node"`
	Dev     string `yaml:"dev"`
	Address string `yaml:"address"` // CIDR
	Absent  bool   `yaml:"absent"`
}

// RouteCheck: a route in a node's tables. Unset fields match anything.
type RouteCheck struct {
	Node     string    `yaml:"node"`
	Dst      string    `yaml:"dst"` // CIDR, "default" or "default6"
	Via      string    `yaml:"via"`
	Dev      string    `yaml:"dev"`
	Table    int       `yaml:"table"` // 0 = main
	Metric   *int      `yaml:"metric"`
	Nexthops []Nexthop `yaml:"nexthops"` // multipath: the set of (via, dev, weight)
	Absent   bool      `yaml:"absent"`
}

// RuleCheck: a policy routing rule. Unset fields match anything.
type RuleCheck struct {
	Node     string `yaml:"node"`
	Priority int    `yaml:"priority"`
	From     string `yaml:"from"`
	To       string `yaml:"to"`
	IIF      string `yaml:"iif"`
	OIF      string `yaml:"oif"`
	FWMark   uint32 `yaml:"fwmark"`
	Table    int    `yaml:"table"`
	Family   string `yaml:"family"` // inet or inet6; empty = inferred from from/to, else any
	Absent   bool   `yaml:"absent"`
}

// NeighborCheck: an ARP/NDP entry.
type NeighborCheck struct {
	Node    string `yaml:"node"`
	Dev     string `yaml:"dev"`
	Address string `yaml:"address"`
	MAC     string `yaml:"mac"`
	Absent  bool   `yaml:"absent"`
}

// SysctlCheck: a net.* sysctl's value in a node.
type SysctlCheck struct {
	Node  string `yaml:"node"`
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// NFTCheck: nftables state. With only Table set it checks the table; with
// Chain, the chain (and its hook, priority, policy); with Rule, that the
// chain (or any chain of the table when Chain is empty) holds a rule with
// that meaning.
type NFTCheck struct {
	Node     string     `yaml:"node"`
	Family   string     `yaml:"family"` // ip, ip6, inet, ...; empty = any
	Table    string     `yaml:"table"`  // empty = any table
	Chain    string     `yaml:"chain"`  // empty = any chain (with Hook: any chain on that hook)
	Hook     string     `yaml:"hook"`   // prerouting, input, forward, output, postrouting
	Type     string     `yaml:"type"`   // filter, nat, route
	Priority *int       `yaml:"priority"`
	Policy   string     `yaml:"policy"` // accept or drop
	Rule     *RuleMatch `yaml:"rule"`
	Absent   bool       `yaml:"absent"` // no such table/chain/rule
}

// RuleMatch is a rule by its meaning. Every field that is set must be
// matched exactly by the rule; a rule may match more narrowly on fields
// left unset (e.g. also "ct state new").
type RuleMatch struct {
	Proto   string   `yaml:"proto"` // tcp, udp, icmp, icmpv6
	Saddr   string   `yaml:"saddr"` // CIDR or address; "any" = the rule must not restrict it
	Daddr   string   `yaml:"daddr"`
	Sport   []int    `yaml:"sport"`
	Dport   []int    `yaml:"dport"` // the rule's port set must equal this set
	IIF     string   `yaml:"iif"`
	OIF     string   `yaml:"oif"`
	CTState []string `yaml:"ct_state"` // new, established, related, invalid
	Verdict string   `yaml:"verdict"`  // accept, drop, reject, masquerade, snat, dnat, jump, goto, return
	Target  string   `yaml:"target"`   // snat/dnat to (addr or addr:port), jump/goto chain
	Log     *bool    `yaml:"log"`
	Limit   *bool    `yaml:"limit"` // has a rate limit
	Counter *bool    `yaml:"counter"`
}

// SocketCheck: a socket in a node (sock_diag). Default state: listening.
type SocketCheck struct {
	Node    string `yaml:"node"`
	Proto   string `yaml:"proto"`   // tcp or udp
	Address string `yaml:"address"` // empty = any; "0.0.0.0" / "::" = wildcard
	Port    int    `yaml:"port"`
	State   string `yaml:"state"` // listen (default), established, time-wait, ...
	Absent  bool   `yaml:"absent"`
}

// ConntrackCheck: a connection tracking entry in a node. For NAT, Reply*
// fields say how the reply direction was rewritten.
type ConntrackCheck struct {
	Node     string `yaml:"node"`
	Proto    string `yaml:"proto"`
	Src      string `yaml:"src"`
	Dst      string `yaml:"dst"`
	Dport    int    `yaml:"dport"`
	ReplySrc string `yaml:"reply_src"`
	ReplyDst string `yaml:"reply_dst"`
	Absent   bool   `yaml:"absent"`
}

// Probe outcomes.
const (
	OutcomeReply       = "reply"
	OutcomeNoReply     = "no-reply"
	OutcomeConnected   = "connected"
	OutcomeRefused     = "refused"
	OutcomeTimeout     = "timeout"
	OutcomeUnreachable = "unreachable"
	// OutcomeNotCrossed: an answer reached the probing node, but the hub
	// capture never saw it cross a link — the node made it itself (a
	// forged reply, a redirect to a local server). It is never a valid
	// expect: no check can ask for it.
	OutcomeNotCrossed = "not-crossed"
)

// PingCheck: ICMP echo from a node.
type PingCheck struct {
	From    string `yaml:"from"`
	To      string `yaml:"to"`      // address or node name
	Expect  string `yaml:"expect"`  // reply (default) or no-reply
	Timeout string `yaml:"timeout"` // Go duration, default 1s
}

// TCPCheck: a TCP connect from a node, with the outcome named.
type TCPCheck struct {
	From    string `yaml:"from"`
	To      string `yaml:"to"`
	Port    int    `yaml:"port"`
	Expect  string `yaml:"expect"` // connected (default), refused, timeout, unreachable
	Timeout string `yaml:"timeout"`
	// Echo: after connecting, send a random nonce and expect it back (a
	// tcp-echo service), so a canned answer cannot pass.
	Echo bool `yaml:"echo"`
}

// UDPCheck: a datagram with a random nonce; a reply must echo it.
type UDPCheck struct {
	From    string `yaml:"from"`
	To      string `yaml:"to"`
	Port    int    `yaml:"port"`
	Expect  string `yaml:"expect"` // reply (default) or no-reply
	Timeout string `yaml:"timeout"`
}

// HTTPCheck: an HTTP GET from a node.
type HTTPCheck struct {
	From         string `yaml:"from"`
	URL          string `yaml:"url"` // http://host[:port]/path; host may be a node name
	Status       int    `yaml:"status"`
	BodyContains string `yaml:"body_contains"`
	Expect       string `yaml:"expect"` // connected (default: a response), refused, timeout, unreachable
	Timeout      string `yaml:"timeout"`
}

// PMTUCheck: the largest IPv4 packet with DF set that gets an echo reply.
type PMTUCheck struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	MTU  int    `yaml:"mtu"` // expected path MTU (total IP packet size)
}

// PacketCheck: packets the hub captured on a link in a time window.
type PacketCheck struct {
	Link   string      `yaml:"link"`   // the lab's link or segment name
	Node   string      `yaml:"node"`   // only packets sent or received by this node's end of the link
	Window string      `yaml:"window"` // Go duration back from grading time, default 5m
	Match  PacketMatch `yaml:"match"`
	// Counts: with none set, at least one packet must match.
	AtLeast *int `yaml:"at_least"`
	AtMost  *int `yaml:"at_most"`
	None    bool `yaml:"none"`
	// Sequence: packets of one flow (same addresses and ports, either
	// direction) matching these in order, e.g. a handshake:
	// [{flags: S}, {flags: SA}, {flags: A}].
	Sequence []PacketMatch `yaml:"sequence"`
	// Generate traffic before looking, so the check sees fresh packets.
	Generate *Traffic `yaml:"generate"`
}

// PacketMatch selects packets; unset fields match anything.
type PacketMatch struct {
	Proto    string `yaml:"proto"` // arp, ipv4, ipv6, icmp, icmpv6, tcp, udp
	Src      string `yaml:"src"`   // address or CIDR
	Dst      string `yaml:"dst"`
	Sport    int    `yaml:"sport"`
	Dport    int    `yaml:"dport"`
	Port     int    `yaml:"port"`  // either port
	Flags    string `yaml:"flags"` // TCP flags exactly, as letters: S, SA, A, FA, R, PA ...
	TTL      int    `yaml:"ttl"`   // IPv4 TTL / IPv6 hop limit
	ICMPType *int   `yaml:"icmp_type"`
	SrcMAC   string `yaml:"src_mac"`
	DstMAC   string `yaml:"dst_mac"`
}

// Traffic is what a packet check may send before it looks.
type Traffic struct {
	From string `yaml:"from"`
	Ping string `yaml:"ping"` // address or node to ping once
	TCP  string `yaml:"tcp"`  // host:port to connect to
	UDP  string `yaml:"udp"`  // host:port to send a datagram to
}

// CommandCheck: the escape hatch; a command run as root of a node.
type CommandCheck struct {
	Node   string `yaml:"node"`
	Run    string `yaml:"run"`    // sh -c
	Exit   *int   `yaml:"exit"`   // default 0
	Stdout string `yaml:"stdout"` // regexp the stdout must match
	Stderr string `yaml:"stderr"`
}

// AnswersDir is where a learner writes typed answers inside a node:
// `echo 62 > /run/nslab/answers/reply-ttl`.
const AnswersDir = "/run/nslab/answers"

// AnswerCheck: the learner's answer to a question, written to
// AnswersDir/<question> in Node. The expected answer is either fixed
// (Expect) or read off the capture (FromPacket) — sequence numbers,
// ports and the like, which no one can know before the traffic happened.
type AnswerCheck struct {
	Node       string            `yaml:"node"`
	Question   string            `yaml:"question"` // file name, [a-z0-9-]
	Expect     []string          `yaml:"expect"`   // any of these, compared case-insensitively after trimming
	FromPacket *AnswerFromPacket `yaml:"from_packet"`
}

// AnswerFromPacket takes the expected answer from a captured packet.
type AnswerFromPacket struct {
	Link  string      `yaml:"link"`
	Match PacketMatch `yaml:"match"`
	// Field of the first matching packet: ttl, src, dst, sport, dport,
	// seq, ack, flags, len, src_mac, dst_mac, icmp_type.
	Field string `yaml:"field"`
}
