package labs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const baseYAML = `
id: base
title: Base lab
nodes:
  - name: h1
    interfaces:
      - name: eth0
        addresses: [10.0.1.10/24, fd00:1::10/64]
    routes:
      - dst: default
        via: 10.0.1.1
  - name: r1
    interfaces:
      - name: eth0
        addresses: [10.0.1.1/24, fd00:1::1/64]
      - name: eth1
        addresses: [10.0.2.1/24]
    sysctls:
      net.ipv4.ip_forward: "1"
    services:
      - kind: tcp-echo
        port: 7
  - name: h2
    interfaces:
      - name: eth0
        addresses: [10.0.2.10/24]
links:
  - endpoints: [h1:eth0, r1:eth0]
  - endpoints: [r1:eth1, h2:eth0]
`

// baseLab returns a fresh, valid lab for a test case to break.
func baseLab(t *testing.T) *Lab {
	t.Helper()
	l, err := Parse([]byte(baseYAML), "base.yaml")
	if err != nil {
		t.Fatalf("base lab: %v", err)
	}
	return l
}

// problems returns the problems of Validate(l), failing if the error is
// of the wrong kind.
func problems(t *testing.T, l *Lab) []Problem {
	t.Helper()
	err := Validate(l)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not a *ValidationError: %v", err, err)
	}
	return ve.Problems
}

func TestValidate(t *testing.T) {
	r1 := func(l *Lab) *Node { return l.Node("r1") }
	tests := []struct {
		name   string
		mutate func(*Lab)
		field  string // empty: the lab must stay valid
		msg    string
	}{
		{name: "base", mutate: func(*Lab) {}},
		{name: "multipath route", mutate: func(l *Lab) {
			l.Nodes[0].Routes[0] = Route{Dst: "10.9.0.0/16", Nexthops: []Nexthop{{Via: "10.0.1.1", Weight: 2}, {Dev: "eth0"}}}
		}},
		{name: "policy rule", mutate: func(l *Lab) {
			r1(l).Rules = []Rule{{Priority: 100, From: "10.0.1.0/24", IIF: "eth0", Table: 100}}
			r1(l).Routes = []Route{{Dst: "default", Via: "10.0.2.10", Table: 100}}
		}},
		{name: "same link-local on two links", mutate: func(l *Lab) {
			r1(l).Interfaces[0].Addresses = append(r1(l).Interfaces[0].Addresses, "fe80::1/64")
			r1(l).Interfaces[1].Addresses = append(r1(l).Interfaces[1].Addresses, "fe80::1/64")
			l.Nodes[0].Routes = append(l.Nodes[0].Routes, Route{Dst: "default6", Via: "fe80::1", Dev: "eth0"})
		}},
		{name: "command service", mutate: func(l *Lab) {
			l.Nodes[0].Services = []Service{{Kind: "command", Command: []string{"sleep", "inf"}}}
		}},
		{name: "per-interface sysctl", mutate: func(l *Lab) {
			r1(l).Sysctls["net.ipv4.conf.eth1.rp_filter"] = "2"
		}},
		{name: "point-to-point /31", mutate: func(l *Lab) {
			r1(l).Interfaces[1].Addresses = []string{"10.0.2.0/31"}
			l.Nodes[2].Interfaces[0].Addresses = []string{"10.0.2.1/31"}
		}},

		// metadata
		{"id missing", func(l *Lab) { l.ID = "" }, "id", "id is required"},
		{"id upper-case", func(l *Lab) { l.ID = "Routed" }, "id", `id "Routed" must be`},
		{"id too long", func(l *Lab) { l.ID = strings.Repeat("a", 41) }, "id", "must be 1 to 40"},
		{"title missing", func(l *Lab) { l.Title = " " }, "title", "title is required"},
		{"level", func(l *Lab) { l.Level = "expert" }, "level", `level "expert" must be one of`},
		{"minutes", func(l *Lab) { l.Minutes = -1 }, "minutes", "must not be negative"},
		{"empty topic", func(l *Lab) { l.Topics = []string{"a", ""} }, "topics[1]", "must not be empty"},
		{"unknown feature", func(l *Lab) { l.Requires = []string{"vlan", "quantum"} }, "requires[1]", `unknown feature "quantum"`},
		{"duplicate feature", func(l *Lab) { l.Requires = []string{"vlan", "vlan"} }, "requires[1]", `duplicate feature "vlan"`},

		// nodes
		{"no nodes", func(l *Lab) { l.Nodes, l.Links = nil, nil }, "nodes", "at least one node"},
		{"too many nodes", func(l *Lab) {
			for i := range 62 {
				l.Nodes = append(l.Nodes, Node{Name: fmt.Sprintf("x%d", i)})
			}
		}, "nodes", "too many nodes: 65 (at most 64)"},
		{"node name missing", func(l *Lab) { l.Nodes[2].Name = "" }, "nodes[2].name", "node name is required"},
		{"node name upper-case", func(l *Lab) { l.Nodes[2].Name = "H2" }, "nodes[2].name", `node name "H2" must be a hostname`},
		{"node name trailing dash", func(l *Lab) { l.Nodes[2].Name = "h-" }, "nodes[2].name", "must be a hostname"},
		{"node name too long", func(l *Lab) { l.Nodes[2].Name = "host-number-two" }, "nodes[2].name", "longer than 12 bytes"},
		{"duplicate node", func(l *Lab) { l.Nodes[2].Name = "h1" }, "nodes[2].name", `duplicate node name "h1" (also nodes[0])`},

		// interfaces
		{"interface name missing", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = "" }, "nodes[0].interfaces[0].name", "interface name is required"},
		{"interface lo", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = "lo" }, "nodes[0].interfaces[0].name", "loopback"},
		{"interface all", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = "all" }, "nodes[0].interfaces[0].name", "reserved"},
		{"interface slash", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = "eth/0" }, "nodes[0].interfaces[0].name", `must not contain '/'`},
		{"interface space", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = "eth 0" }, "nodes[0].interfaces[0].name", `must not contain ' '`},
		{"interface dot", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = ".." }, "nodes[0].interfaces[0].name", "not allowed"},
		{"interface too long", func(l *Lab) { l.Nodes[0].Interfaces[0].Name = "sixteen-bytes-xx" }, "nodes[0].interfaces[0].name", "longer than 15 bytes"},
		{"duplicate interface", func(l *Lab) { r1(l).Interfaces[1].Name = "eth0" }, "nodes[1].interfaces[1].name", `duplicate interface name "eth0"`},
		{"unattached interface", func(l *Lab) {
			l.Nodes[0].Interfaces = append(l.Nodes[0].Interfaces, Interface{Name: "eth1"})
		}, "nodes[0].interfaces[1]", `interface "eth1" of node "h1" is not attached`},
		{"bad CIDR", func(l *Lab) { l.Nodes[2].Interfaces[0].Addresses[0] = "10.0.2.300/24" }, "nodes[2].interfaces[0].addresses[0]", `"10.0.2.300/24" is not a valid CIDR`},
		{"bare address", func(l *Lab) { l.Nodes[2].Interfaces[0].Addresses[0] = "10.0.2.10" }, "nodes[2].interfaces[0].addresses[0]", "add a prefix length"},
		{"network address", func(l *Lab) { l.Nodes[2].Interfaces[0].Addresses[0] = "10.0.2.0/24" }, "nodes[2].interfaces[0].addresses[0]", "network address of 10.0.2.0/24"},
		{"broadcast address", func(l *Lab) { l.Nodes[2].Interfaces[0].Addresses[0] = "10.0.2.255/24" }, "nodes[2].interfaces[0].addresses[0]", "broadcast address"},
		{"loopback address", func(l *Lab) { l.Nodes[2].Interfaces[0].Addresses[0] = "127.0.0.2/8" }, "nodes[2].interfaces[0].addresses[0]", "cannot be assigned"},
		{"duplicate address", func(l *Lab) { l.Nodes[2].Interfaces[0].Addresses[0] = "10.0.1.10/16" }, "nodes[2].interfaces[0].addresses[0]",
			"duplicate address 10.0.1.10: already assigned at nodes[0].interfaces[0].addresses[0] (h1 eth0)"},
		{"duplicate link-local on one link", func(l *Lab) {
			l.Nodes[0].Interfaces[0].Addresses = append(l.Nodes[0].Interfaces[0].Addresses, "fe80::1/64")
			r1(l).Interfaces[0].Addresses = append(r1(l).Interfaces[0].Addresses, "fe80::1/64")
		}, "nodes[1].interfaces[0].addresses[2]", "duplicate address fe80::1"},
		{"mtu too small", func(l *Lab) { l.Nodes[0].Interfaces[0].MTU = 60 }, "nodes[0].interfaces[0].mtu", "mtu 60 must be 0"},
		{"mtu too big", func(l *Lab) { l.Nodes[0].Interfaces[0].MTU = 70000 }, "nodes[0].interfaces[0].mtu", "68 to 65535"},
		{"bad mac", func(l *Lab) { l.Nodes[0].Interfaces[0].MAC = "02:00:00:00:00" }, "nodes[0].interfaces[0].mac", "not a valid Ethernet MAC"},
		{"multicast mac", func(l *Lab) { l.Nodes[0].Interfaces[0].MAC = "01:00:5e:00:00:01" }, "nodes[0].interfaces[0].mac", "multicast"},
		{"duplicate mac", func(l *Lab) {
			l.Nodes[0].Interfaces[0].MAC = "02:00:00:00:00:01"
			l.Nodes[2].Interfaces[0].MAC = "02:00:00:00:00:01"
		}, "nodes[2].interfaces[0].mac", "duplicate MAC address 02:00:00:00:00:01"},

		// routes
		{"route dst missing", func(l *Lab) { l.Nodes[0].Routes[0].Dst = "" }, "nodes[0].routes[0].dst", "dst is required"},
		{"route dst bad", func(l *Lab) { l.Nodes[0].Routes[0].Dst = "everywhere" }, "nodes[0].routes[0].dst", `"everywhere" is not a valid CIDR, "default" or "default6"`},
		{"route dst host bits", func(l *Lab) { l.Nodes[0].Routes[0].Dst = "10.0.2.1/24" }, "nodes[0].routes[0].dst", "did you mean 10.0.2.0/24?"},
		{"route via bad", func(l *Lab) { l.Nodes[0].Routes[0].Via = "10.0.1" }, "nodes[0].routes[0].via", `"10.0.1" is not a valid IP address`},
		{"route via wrong family", func(l *Lab) { l.Nodes[0].Routes[0].Via = "fd00:1::1" }, "nodes[0].routes[0].via", "via fd00:1::1 is IPv6 but dst \"default\" is IPv4"},
		{"route via unreachable", func(l *Lab) { l.Nodes[0].Routes[0].Via = "10.0.9.1" }, "nodes[0].routes[0].via", `not in a subnet of any interface of node "h1"`},
		{"route via self", func(l *Lab) { l.Nodes[0].Routes[0].Via = "10.0.1.10" }, "nodes[0].routes[0].via", "is an address of node \"h1\" itself"},
		{"route via link-local without dev", func(l *Lab) {
			l.Nodes[0].Routes[0] = Route{Dst: "default6", Via: "fe80::1"}
		}, "nodes[0].routes[0].via", "link-local; set dev"},
		{"route via down interface", func(l *Lab) { l.Nodes[0].Interfaces[0].Down = true }, "nodes[0].routes[0].via", "which is down"},
		{"route needs via", func(l *Lab) { l.Nodes[0].Routes[0].Via = "" }, "nodes[0].routes[0]", "a route needs via, dev or nexthops"},
		{"route dev unknown", func(l *Lab) { l.Nodes[0].Routes[0].Dev = "eth7" }, "nodes[0].routes[0].dev", `unknown interface "eth7" on node "h1"`},
		{"route nexthops and via", func(l *Lab) {
			l.Nodes[0].Routes[0].Nexthops = []Nexthop{{Via: "10.0.1.1"}}
		}, "nodes[0].routes[0].nexthops", "nexthops exclude via and dev"},
		{"nexthop empty", func(l *Lab) {
			l.Nodes[0].Routes[0] = Route{Dst: "default", Nexthops: []Nexthop{{Via: "10.0.1.1"}, {}}}
		}, "nodes[0].routes[0].nexthops[1]", "a nexthop needs via or dev"},
		{"nexthop weight", func(l *Lab) {
			l.Nodes[0].Routes[0] = Route{Dst: "default", Nexthops: []Nexthop{{Via: "10.0.1.1", Weight: 257}}}
		}, "nodes[0].routes[0].nexthops[0].weight", "weight 257 must be 0 to 256"},
		{"route table local", func(l *Lab) { l.Nodes[0].Routes[0].Table = 255 }, "nodes[0].routes[0].table", "local table"},
		{"route table negative", func(l *Lab) { l.Nodes[0].Routes[0].Table = -1 }, "nodes[0].routes[0].table", "table -1 must be"},
		{"route metric", func(l *Lab) { l.Nodes[0].Routes[0].Metric = -5 }, "nodes[0].routes[0].metric", "metric -5"},
		{"route src not local", func(l *Lab) { l.Nodes[0].Routes[0].Src = "10.0.1.99" }, "nodes[0].routes[0].src", `src 10.0.1.99 is not an address of node "h1"`},
		{"duplicate route", func(l *Lab) {
			l.Nodes[0].Routes = append(l.Nodes[0].Routes, Route{Dst: "0.0.0.0/0", Dev: "eth0", Table: 254})
		}, "nodes[0].routes[1]", "duplicate route to 0.0.0.0/0 in table 254 with metric 0 (also routes[0])"},

		// rules
		{"rule table missing", func(l *Lab) { r1(l).Rules = []Rule{{From: "10.0.1.0/24"}} }, "nodes[1].rules[0].table", "table is required"},
		{"rule table local", func(l *Lab) { r1(l).Rules = []Rule{{Table: 255}} }, "nodes[1].rules[0].table", "local table"},
		{"rule from bad", func(l *Lab) { r1(l).Rules = []Rule{{From: "10.0.1.0/33", Table: 10}} }, "nodes[1].rules[0].from", "not a valid CIDR"},
		{"rule mixed families", func(l *Lab) {
			r1(l).Rules = []Rule{{From: "10.0.1.0/24", To: "fd00::/8", Table: 10}}
		}, "nodes[1].rules[0].to", "to fd00::/8 is inet6 but from is inet"},
		{"rule family mismatch", func(l *Lab) {
			r1(l).Rules = []Rule{{From: "10.0.1.0/24", Family: "inet6", Table: 10}}
		}, "nodes[1].rules[0].family", `family "inet6" does not match from 10.0.1.0/24`},
		{"rule family unknown", func(l *Lab) { r1(l).Rules = []Rule{{Family: "ipx", Table: 10}} }, "nodes[1].rules[0].family", `family "ipx" must be`},
		{"rule priority", func(l *Lab) { r1(l).Rules = []Rule{{Priority: 32766, Table: 10}} }, "nodes[1].rules[0].priority", "priority 32766 must be 0 to 32765"},
		{"rule iif", func(l *Lab) { r1(l).Rules = []Rule{{IIF: "eth9", Table: 10}} }, "nodes[1].rules[0].iif", `unknown interface "eth9" on node "r1"`},
		{"rule oif", func(l *Lab) { r1(l).Rules = []Rule{{OIF: "eth9", Table: 10}} }, "nodes[1].rules[0].oif", `unknown interface "eth9"`},

		// sysctls
		{"sysctl not net", func(l *Lab) { r1(l).Sysctls["kernel.pid_max"] = "100" }, `nodes[1].sysctls["kernel.pid_max"]`, "only per-namespace net.* sysctls may be set"},
		{"sysctl slash", func(l *Lab) { r1(l).Sysctls["net/ipv4/ip_forward"] = "1" }, `nodes[1].sysctls["net/ipv4/ip_forward"]`, "only per-namespace net.*"},
		{"sysctl slash after net", func(l *Lab) { r1(l).Sysctls["net.ipv4/ip_forward"] = "1" }, `nodes[1].sysctls["net.ipv4/ip_forward"]`, "with dots, not '/'"},
		{"sysctl empty component", func(l *Lab) { r1(l).Sysctls["net..ipv4"] = "1" }, `nodes[1].sysctls["net..ipv4"]`, "empty component"},
		{"sysctl empty value", func(l *Lab) { r1(l).Sysctls["net.ipv4.ip_forward"] = "" }, `nodes[1].sysctls["net.ipv4.ip_forward"]`, "value is required"},
		{"sysctl unknown interface", func(l *Lab) { r1(l).Sysctls["net.ipv6.conf.eth9.forwarding"] = "1" }, `nodes[1].sysctls["net.ipv6.conf.eth9.forwarding"]`, `unknown interface "eth9"`},

		// services
		{"service kind missing", func(l *Lab) { r1(l).Services[0].Kind = "" }, "nodes[1].services[0].kind", "kind is required"},
		{"service kind unknown", func(l *Lab) { r1(l).Services[0].Kind = "ftp" }, "nodes[1].services[0].kind", `unknown service kind "ftp"`},
		{"service port missing", func(l *Lab) { r1(l).Services[0].Port = 0 }, "nodes[1].services[0].port", "port is required for a tcp-echo service"},
		{"service port range", func(l *Lab) { r1(l).Services[0].Port = 70000 }, "nodes[1].services[0].port", "port 70000 must be 1 to 65535"},
		{"command without command", func(l *Lab) { r1(l).Services = []Service{{Kind: "command"}} }, "nodes[1].services[0].command", "needs command"},
		{"command on echo", func(l *Lab) { r1(l).Services[0].Command = []string{"true"} }, "nodes[1].services[0].command", `only used by kind "command"`},
		{"body on echo", func(l *Lab) { r1(l).Services[0].Body = "hi" }, "nodes[1].services[0].body", "only used by http"},
		{"duplicate default names", func(l *Lab) {
			r1(l).Services = []Service{{Kind: "tcp-echo", Port: 7}, {Kind: "tcp-echo", Port: 8}}
		}, "nodes[1].services[1].name", `duplicate service name "tcp-echo" on node "r1" (also services[0])`},
		{"service name bad", func(l *Lab) { r1(l).Services[0].Name = "Echo!" }, "nodes[1].services[0].name", `service name "Echo!"`},
		{"port clash", func(l *Lab) {
			r1(l).Services = append(r1(l).Services, Service{Kind: "http", Port: 7})
		}, "nodes[1].services[1].port", "tcp port 7 is already used by services[0]"},
		{"service address not local", func(l *Lab) { r1(l).Services[0].Address = "10.0.2.10" }, "nodes[1].services[0].address", `address 10.0.2.10 is not assigned to node "r1"`},

		// limits
		{"pids negative", func(l *Lab) { r1(l).Limits.Pids = -1 }, "nodes[1].limits.pids", "must not be negative"},
		{"memory too small", func(l *Lab) { r1(l).Limits.MemoryBytes = 1 << 20 }, "nodes[1].limits.memory_bytes", "below the minimum"},

		// links and segments
		{"link with three endpoints", func(l *Lab) {
			l.Links[0].Endpoints = append(l.Links[0].Endpoints, "h2:eth0")
		}, "links[0].endpoints", "a link needs exactly 2 endpoints, got 3"},
		{"segment with one endpoint", func(l *Lab) {
			l.Segments = []Segment{{Name: "lan", Endpoints: []string{"h1:eth0"}}}
		}, "segments[0].endpoints", "a segment needs at least 2 endpoints, got 1"},
		{"endpoint syntax", func(l *Lab) { l.Links[0].Endpoints[0] = "h1" }, "links[0].endpoints[0]", `endpoint "h1" must be node:interface`},
		{"endpoint unknown node", func(l *Lab) { l.Links[0].Endpoints[0] = "h9:eth0" }, "links[0].endpoints[0]", `unknown node "h9" in endpoint "h9:eth0"`},
		{"endpoint unknown interface", func(l *Lab) { l.Links[0].Endpoints[0] = "h1:eth3" }, "links[0].endpoints[0]", `node "h1" has no interface "eth3"`},
		{"endpoint twice", func(l *Lab) { l.Links[1].Endpoints[1] = "h1:eth0" }, "links[1].endpoints[1]", `endpoint "h1:eth0" is already attached at links[0].endpoints[0]`},
		{"duplicate segment name", func(l *Lab) { l.Links[1].Name = "l1" }, "links[1].name", `duplicate name "l1" (also links[0])`},
		{"segment name too long", func(l *Lab) { l.Links[1].Name = "a-very-long-link" }, "links[1].name", "longer than 12 bytes"},
		{"segment name bad", func(l *Lab) { l.Links[1].Name = "Uplink" }, "links[1].name", `name "Uplink" must be`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := baseLab(t)
			tc.mutate(l)
			ps := problems(t, l)
			if tc.field == "" {
				if len(ps) > 0 {
					t.Fatalf("want valid, got %v", Validate(l))
				}
				return
			}
			for _, p := range ps {
				if p.Field == tc.field && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Errorf("want a problem at %s containing %q, got:\n%v", tc.field, tc.msg, Validate(l))
		})
	}
}

func TestValidateCollectsAllProblems(t *testing.T) {
	l := baseLab(t)
	l.Title = ""
	l.Nodes[0].Interfaces[0].MTU = 1
	l.Links[0].Endpoints[0] = "h9:eth0"
	ps := problems(t, l)
	var fields []string
	for _, p := range ps {
		fields = append(fields, p.Field)
	}
	for _, want := range []string{"title", "nodes[0].interfaces[0].mtu", "links[0].endpoints[0]"} {
		if !strings.Contains(strings.Join(fields, " "), want) {
			t.Errorf("no problem at %s; got %q", want, fields)
		}
	}
}

func TestValidationErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *ValidationError
		want string
	}{
		{
			name: "one problem",
			err: &ValidationError{Source: "labs/routed/lab.yaml", Problems: []Problem{
				{Field: "nodes[1].interfaces[0].addresses[0]", Message: `"10.0.0.300/24" is not a valid CIDR`},
			}},
			want: `labs/routed/lab.yaml: nodes[1].interfaces[0].addresses[0]: "10.0.0.300/24" is not a valid CIDR`,
		},
		{
			name: "several problems, one without a field",
			err: &ValidationError{Source: "x.yaml", Problems: []Problem{
				{Field: "title", Message: "title is required"},
				{Message: "line 3: bad"},
			}},
			want: "x.yaml: title: title is required\nx.yaml: line 3: bad",
		},
		{
			name: "no source",
			err:  &ValidationError{Problems: []Problem{{Field: "id", Message: "id is required"}}},
			want: "id: id is required",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if !errors.Is(tc.err, ErrInvalid) {
				t.Error("errors.Is(err, ErrInvalid) = false")
			}
			wrapped := fmt.Errorf("load: %w", tc.err)
			var ve *ValidationError
			if !errors.As(wrapped, &ve) || !errors.Is(wrapped, ErrInvalid) {
				t.Error("wrapped error lost its class")
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    Endpoint
		wantErr bool
	}{
		{in: "h1:eth0", want: Endpoint{Node: "h1", Iface: "eth0"}},
		{in: "r1:veth-x.1", want: Endpoint{Node: "r1", Iface: "veth-x.1"}},
		{in: "h1", wantErr: true},
		{in: ":eth0", wantErr: true},
		{in: "h1:", wantErr: true},
		{in: "h1:eth0:1", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseEndpoint(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseEndpoint(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), fmt.Sprintf("endpoint %q", tc.in)) {
					t.Errorf("error %q does not name the endpoint", err)
				}
				return
			}
			if got != tc.want {
				t.Errorf("ParseEndpoint(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}
