// Package labs owns the lab definition: its schema, YAML loading,
// validation, and the embedded catalog under labs/<id>/lab.yaml.
//
// A Lab is data only. Nothing here touches the kernel; the sandbox
// package turns a validated Lab into namespaces, links and processes.
package labs

// Lab is one lab definition as written in lab.yaml.
type Lab struct {
	ID       string   `yaml:"id"`
	Title    string   `yaml:"title"`
	Summary  string   `yaml:"summary"`
	Level    string   `yaml:"level"` // beginner, intermediate, advanced
	Topics   []string `yaml:"topics"`
	Minutes  int      `yaml:"minutes"`
	Requires []string `yaml:"requires"` // kernel features beyond the baseline, e.g. "netem", "vlan"

	Nodes    []Node    `yaml:"nodes"`
	Links    []Segment `yaml:"links"`    // exactly two endpoints each
	Segments []Segment `yaml:"segments"` // two or more endpoints on one shared bridge

	Exercises []Exercise `yaml:"exercises"`
	// Learned is a short "what you learned" (Markdown), shown at the end.
	Learned string `yaml:"learned"`

	// Source is where the definition was read from ("embedded:routed/lab.yaml"
	// or a file path). Not part of the YAML.
	Source string `yaml:"-"`
}

// Node is one emulated host or router.
type Node struct {
	Name       string            `yaml:"name"`
	Interfaces []Interface       `yaml:"interfaces"`
	Routes     []Route           `yaml:"routes"`
	Rules      []Rule            `yaml:"rules"`
	Sysctls    map[string]string `yaml:"sysctls"`  // net.* only
	NFTables   string            `yaml:"nftables"` // a ruleset in nft syntax
	Services   []Service         `yaml:"services"`
	Limits     Limits            `yaml:"limits"`
}

// Interface is a node's end of a link or segment. Its name is the name
// the learner sees inside the node (eth0, ...).
type Interface struct {
	Name      string   `yaml:"name"`
	Addresses []string `yaml:"addresses"` // CIDR, IPv4 or IPv6
	MTU       int      `yaml:"mtu"`       // 0 = kernel default
	Down      bool     `yaml:"down"`      // leave the link administratively down
	MAC       string   `yaml:"mac"`       // optional fixed hardware address
}

// Route is a route in a node's routing tables.
type Route struct {
	Dst      string    `yaml:"dst"` // CIDR or "default" (IPv4) / "default6"
	Via      string    `yaml:"via"`
	Dev      string    `yaml:"dev"`
	Table    int       `yaml:"table"` // 0 = main
	Metric   int       `yaml:"metric"`
	Src      string    `yaml:"src"`
	Nexthops []Nexthop `yaml:"nexthops"` // multipath; excludes Via/Dev
}

// Nexthop is one path of a multipath route.
type Nexthop struct {
	Via    string `yaml:"via"`
	Dev    string `yaml:"dev"`
	Weight int    `yaml:"weight"` // 1..256, 0 = 1
}

// Rule is a policy routing rule (ip rule).
type Rule struct {
	Priority int    `yaml:"priority"`
	From     string `yaml:"from"` // CIDR
	To       string `yaml:"to"`   // CIDR
	IIF      string `yaml:"iif"`
	OIF      string `yaml:"oif"`
	FWMark   uint32 `yaml:"fwmark"`
	Table    int    `yaml:"table"`
	Family   string `yaml:"family"` // "inet" (default) or "inet6"; inferred from From/To when set
}

// Service is a process started in the node at boot.
type Service struct {
	Name string `yaml:"name"` // optional label; defaults to Kind
	// Kind is a built-in service (tcp-echo, udp-echo, http) or "command".
	Kind    string   `yaml:"kind"`
	Port    int      `yaml:"port"`
	Address string   `yaml:"address"` // listen address; empty = all
	Body    string   `yaml:"body"`    // http: the body served at /
	Command []string `yaml:"command"` // kind: command
}

// Limits are per-node cgroup limits. Zero means the server default.
type Limits struct {
	Pids        int   `yaml:"pids"`
	MemoryBytes int64 `yaml:"memory_bytes"`
}

// Segment is a link (two endpoints) or a shared segment (two or more),
// built as one bridge in the sandbox's hub namespace.
type Segment struct {
	Name      string   `yaml:"name"`      // optional; defaults to l1, l2, ... / s1, s2, ...
	Endpoints []string `yaml:"endpoints"` // "node:iface"
}

// Endpoint is a parsed "node:iface".
type Endpoint struct {
	Node  string
	Iface string
}
