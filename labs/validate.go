package labs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
)

// ErrInvalid is the class of every error about a lab definition itself:
// YAML that does not decode, and definitions that fail Validate.
var ErrInvalid = errors.New("invalid lab")

// KnownFeatures are the kernel features a lab may list under requires.
// Whether the running kernel has them is the sandbox's business.
var KnownFeatures = []string{"netem", "vlan", "vrf", "wireguard", "dummy", "ipvlan", "macvlan", "xdp", "bpf"}

// Limits of the schema. Names that become host-visible object names
// (bridges in the hub, cgroups) must leave room for a prefix within
// the kernel's 15-byte interface names.
const (
	MaxNodes       = 64
	MaxNameLen     = 12 // node, link and segment names
	maxIDLen       = 40
	maxIfnameLen   = 15 // IFNAMSIZ - 1
	maxTable       = math.MaxInt32
	tableMain      = 254
	tableLocal     = 255
	maxRulePrio    = 32765 // 32766 and 32767 are the main and default rules
	minMTU         = 68
	maxMTU         = 65535
	maxWeight      = 256
	minMemoryBytes = 16 << 20
	maxServiceName = 32
	// Bounds that keep one lab from building more than a host should give
	// one learner: the containment of a node is only as good as its limits.
	maxIfaces     = 32
	maxSegments   = 128
	maxNodePids   = 4096
	maxNodeMemory = 4 << 30
)

var (
	idRE          = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	nodeNameRE    = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`) // also the node's hostname
	segNameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	serviceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

var levels = []string{"beginner", "intermediate", "advanced"}

// Service kinds.
const (
	KindTCPEcho = "tcp-echo"
	KindUDPEcho = "udp-echo"
	KindHTTP    = "http"
	KindCommand = "command"
)

// Problem is one thing wrong with a lab definition.
type Problem struct {
	// Field is the YAML path of the offending value, such as
	// nodes[0].interfaces[1].name; empty when the problem is the file
	// as a whole (for example a YAML syntax error).
	Field   string
	Message string
}

// ValidationError lists every problem found in one lab definition.
// errors.Is(err, ErrInvalid) holds for it.
type ValidationError struct {
	Source   string // file the lab came from, if known
	Problems []Problem
}

// Error prints one line per problem: "source: field: message".
func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		if e.Source == "" {
			return ErrInvalid.Error()
		}
		return e.Source + ": " + ErrInvalid.Error()
	}
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.Source != "" {
			b.WriteString(e.Source)
			b.WriteString(": ")
		}
		if p.Field != "" {
			b.WriteString(p.Field)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Validate checks a lab definition and reports every problem it finds,
// not only the first, as a *ValidationError. It does not modify l.
// Unset link, segment and service names are accepted: Parse fills them
// in (see ApplyDefaults) before validating.
func Validate(l *Lab) error {
	if l == nil {
		return &ValidationError{Problems: []Problem{{Message: "no lab definition"}}}
	}
	if ps := validate(l); len(ps) > 0 {
		return &ValidationError{Source: l.Source, Problems: ps}
	}
	return nil
}

type validator struct {
	lab      *Lab
	problems []Problem
	// attached maps each endpoint to the index of its segment in
	// lab.AllSegments(), first use wins.
	attached map[Endpoint]int
	// addrs records where each assigned address is, to report duplicates.
	addrs map[addrKey]string
	macs  map[string]string
}

type addrKey struct {
	addr netip.Addr
	seg  int // segment index for link-local addresses, else -1
}

func validate(l *Lab) []Problem {
	v := &validator{
		lab:      l,
		attached: make(map[Endpoint]int),
		addrs:    make(map[addrKey]string),
		macs:     make(map[string]string),
	}
	for i, s := range l.AllSegments() {
		for _, raw := range s.Endpoints {
			if ep, err := ParseEndpoint(raw); err == nil {
				if _, dup := v.attached[ep]; !dup {
					v.attached[ep] = i
				}
			}
		}
	}
	v.metadata()
	v.nodes()
	v.segments()
	v.exercises()
	return v.problems
}

func (v *validator) addf(field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) metadata() {
	l := v.lab
	switch {
	case l.ID == "":
		v.addf("id", "id is required")
	case len(l.ID) > maxIDLen || !idRE.MatchString(l.ID):
		v.addf("id", "id %q must be 1 to %d lower-case letters, digits or '-', starting with a letter or digit", l.ID, maxIDLen)
	}
	if strings.TrimSpace(l.Title) == "" {
		v.addf("title", "title is required")
	}
	if l.Level != "" && !slices.Contains(levels, l.Level) {
		v.addf("level", "level %q must be one of %s", l.Level, strings.Join(levels, ", "))
	}
	if l.Minutes < 0 {
		v.addf("minutes", "minutes must not be negative")
	}
	seen := make(map[string]int)
	for i, t := range l.Topics {
		f := fmt.Sprintf("topics[%d]", i)
		if strings.TrimSpace(t) == "" {
			v.addf(f, "topic must not be empty")
			continue
		}
		if j, dup := seen[t]; dup {
			v.addf(f, "duplicate topic %q (also topics[%d])", t, j)
			continue
		}
		seen[t] = i
	}
	seen = make(map[string]int)
	for i, r := range l.Requires {
		f := fmt.Sprintf("requires[%d]", i)
		if !slices.Contains(KnownFeatures, r) {
			v.addf(f, "unknown feature %q (known: %s)", r, strings.Join(KnownFeatures, ", "))
			continue
		}
		if j, dup := seen[r]; dup {
			v.addf(f, "duplicate feature %q (also requires[%d])", r, j)
			continue
		}
		seen[r] = i
	}
}

func (v *validator) nodes() {
	l := v.lab
	if len(l.Nodes) == 0 {
		v.addf("nodes", "a lab needs at least one node")
		return
	}
	if len(l.Nodes) > MaxNodes {
		v.addf("nodes", "too many nodes: %d (at most %d)", len(l.Nodes), MaxNodes)
	}
	seen := make(map[string]int)
	for i := range l.Nodes {
		n := &l.Nodes[i]
		f := fmt.Sprintf("nodes[%d].name", i)
		switch {
		case n.Name == "":
			v.addf(f, "node name is required")
		case len(n.Name) > MaxNameLen:
			v.addf(f, "node name %q is longer than %d bytes", n.Name, MaxNameLen)
		case !nodeNameRE.MatchString(n.Name):
			v.addf(f, "node name %q must be a hostname: lower-case letters, digits and '-', starting with a letter, not ending with '-'", n.Name)
		default:
			if j, dup := seen[n.Name]; dup {
				v.addf(f, "duplicate node name %q (also nodes[%d])", n.Name, j)
			} else {
				seen[n.Name] = i
			}
		}
	}
	// Addresses first: routes, rules and services refer to them.
	for i := range l.Nodes {
		v.interfaces(i)
	}
	for i := range l.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		n := &l.Nodes[i]
		v.routes(p, n)
		v.rules(p, n)
		v.sysctls(p, n)
		v.services(p, n)
		if len(n.Interfaces) > maxIfaces {
			v.addf(p+".interfaces", "%d interfaces; at most %d per node", len(n.Interfaces), maxIfaces)
		}
		if n.Limits.Pids > maxNodePids {
			v.addf(p+".limits.pids", "pids %d is over the most a lab may give a node (%d)", n.Limits.Pids, maxNodePids)
		}
		if n.Limits.MemoryBytes > maxNodeMemory {
			v.addf(p+".limits.memory_bytes", "memory_bytes %d is over the most a lab may give a node (%d, 4 GiB)", n.Limits.MemoryBytes, maxNodeMemory)
		}
		if n.Limits.Pids < 0 {
			v.addf(p+".limits.pids", "pids must not be negative")
		}
		if n.Limits.MemoryBytes != 0 && n.Limits.MemoryBytes < minMemoryBytes {
			v.addf(p+".limits.memory_bytes", "memory_bytes %d is below the minimum of %d (16 MiB); use 0 for the server default", n.Limits.MemoryBytes, minMemoryBytes)
		}
	}
}

func (v *validator) interfaces(i int) {
	n := &v.lab.Nodes[i]
	seen := make(map[string]int)
	for j := range n.Interfaces {
		ifc := &n.Interfaces[j]
		p := fmt.Sprintf("nodes[%d].interfaces[%d]", i, j)
		if msg := checkIfname(ifc.Name); msg != "" {
			v.addf(p+".name", "%s", msg)
		} else if k, dup := seen[ifc.Name]; dup {
			v.addf(p+".name", "duplicate interface name %q on node %q (also interfaces[%d])", ifc.Name, n.Name, k)
		} else {
			seen[ifc.Name] = j
			if _, ok := v.attached[Endpoint{Node: n.Name, Iface: ifc.Name}]; !ok && n.Name != "" {
				v.addf(p, "interface %q of node %q is not attached to any link or segment", ifc.Name, n.Name)
			}
		}

		seg := -1
		if s, ok := v.attached[Endpoint{Node: n.Name, Iface: ifc.Name}]; ok {
			seg = s
		}
		for k, a := range ifc.Addresses {
			f := fmt.Sprintf("%s.addresses[%d]", p, k)
			pfx, msg := checkHostPrefix(a)
			if msg != "" {
				v.addf(f, "%s", msg)
				continue
			}
			key := addrKey{addr: pfx.Addr(), seg: -1}
			if pfx.Addr().IsLinkLocalUnicast() {
				// fe80::1 on every link of a router is normal; only a clash
				// on the same link is a duplicate.
				key.seg = seg
			}
			if where, dup := v.addrs[key]; dup {
				v.addf(f, "duplicate address %s: already assigned at %s", pfx.Addr(), where)
				continue
			}
			v.addrs[key] = fmt.Sprintf("%s (%s %s)", f, n.Name, ifc.Name)
		}

		if ifc.MTU != 0 && (ifc.MTU < minMTU || ifc.MTU > maxMTU) {
			v.addf(p+".mtu", "mtu %d must be 0 (kernel default) or %d to %d", ifc.MTU, minMTU, maxMTU)
		}
		if ifc.MAC != "" {
			hw, err := net.ParseMAC(ifc.MAC)
			switch {
			case err != nil || len(hw) != 6:
				v.addf(p+".mac", "%q is not a valid Ethernet MAC address", ifc.MAC)
			case hw[0]&1 != 0:
				v.addf(p+".mac", "%q is a multicast MAC address", ifc.MAC)
			case hw.String() == "00:00:00:00:00:00":
				v.addf(p+".mac", "%q is the all-zero MAC address", ifc.MAC)
			default:
				if where, dup := v.macs[hw.String()]; dup {
					v.addf(p+".mac", "duplicate MAC address %s: already used at %s", hw, where)
				} else {
					v.macs[hw.String()] = fmt.Sprintf("%s (%s %s)", p+".mac", n.Name, ifc.Name)
				}
			}
		}
	}
}

// checkIfname returns why name cannot be a node's interface name, or "".
func checkIfname(name string) string {
	switch {
	case name == "":
		return "interface name is required"
	case len(name) > maxIfnameLen:
		return fmt.Sprintf("interface name %q is longer than %d bytes", name, maxIfnameLen)
	case name == "." || name == "..":
		return fmt.Sprintf("interface name %q is not allowed", name)
	case name == "lo":
		return `"lo" is the node's loopback interface; name this one something else`
	case name == "all" || name == "default":
		return fmt.Sprintf("interface name %q is reserved (it clashes with net.ipv4.conf.%s)", name, name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Sprintf("interface name %q must not contain %q", name, r)
		}
	}
	return ""
}

// checkHostPrefix parses an interface address such as 10.0.0.1/24.
func checkHostPrefix(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			return pfx, fmt.Sprintf("%q is not a valid CIDR: add a prefix length, e.g. %s/24 or %s/64", s, s, s)
		}
		return pfx, fmt.Sprintf("%q is not a valid CIDR", s)
	}
	a := pfx.Addr()
	switch {
	case a.Is4In6():
		return pfx, fmt.Sprintf("%q is an IPv4-mapped IPv6 address; write the IPv4 address", s)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast():
		return pfx, fmt.Sprintf("%q cannot be assigned to an interface", s)
	}
	if a.Is4() && pfx.Bits() < 31 {
		if a == pfx.Masked().Addr() {
			return pfx, fmt.Sprintf("%q is the network address of %s; use a host address", s, pfx.Masked())
		}
		b := a.As4()
		host := uint32(1)<<(32-pfx.Bits()) - 1
		if binary.BigEndian.Uint32(b[:])&host == host {
			return pfx, fmt.Sprintf("%q is the broadcast address of %s; use a host address", s, pfx.Masked())
		}
	}
	return pfx, ""
}

// checkNetPrefix parses a destination such as 10.0.2.0/24.
func checkNetPrefix(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return pfx, fmt.Sprintf("%q is not a valid CIDR: write %s/%d for a single address", s, s, a.BitLen())
		}
		return pfx, fmt.Sprintf("%q is not a valid CIDR", s)
	}
	if pfx != pfx.Masked() {
		return pfx, fmt.Sprintf("%q has host bits set; did you mean %s?", s, pfx.Masked())
	}
	return pfx, ""
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// nodeAddrs returns the prefixes assigned to n that parse.
func nodeAddrs(n *Node) map[string][]netip.Prefix {
	m := make(map[string][]netip.Prefix)
	for _, ifc := range n.Interfaces {
		for _, a := range ifc.Addresses {
			if p, msg := checkHostPrefix(a); msg == "" {
				m[ifc.Name] = append(m[ifc.Name], p)
			}
		}
	}
	return m
}

func hasAddr(addrs map[string][]netip.Prefix, a netip.Addr) bool {
	for _, ps := range addrs {
		for _, p := range ps {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

// checkDev returns why dev cannot be used on n, or "".
func checkDev(n *Node, dev string) string {
	if dev == "lo" || n.Interface(dev) != nil {
		return ""
	}
	return fmt.Sprintf("unknown interface %q on node %q", dev, n.Name)
}

// checkGateway checks that the kernel will accept via as a gateway:
// on a connected subnet of dev (or of any interface), not a local
// address, and on an interface that is up.
func (v *validator) checkGateway(f string, n *Node, addrs map[string][]netip.Prefix, via netip.Addr, dev string) {
	if hasAddr(addrs, via) {
		v.addf(f, "via %s is an address of node %q itself", via, n.Name)
		return
	}
	if via.Is6() && via.IsLinkLocalUnicast() {
		if dev == "" {
			v.addf(f, "via %s is link-local; set dev", via)
		}
		return
	}
	for name, ps := range addrs {
		if dev != "" && name != dev {
			continue
		}
		for _, p := range ps {
			if p.Contains(via) {
				if ifc := n.Interface(name); ifc != nil && ifc.Down {
					v.addf(f, "via %s is reached through interface %q, which is down", via, name)
				}
				return
			}
		}
	}
	if dev != "" {
		v.addf(f, "via %s is not in a subnet of interface %q of node %q", via, dev, n.Name)
	} else {
		v.addf(f, "via %s is not in a subnet of any interface of node %q", via, n.Name)
	}
}

type routeKey struct {
	dst    netip.Prefix
	table  int
	metric int
}

func (v *validator) routes(p string, n *Node) {
	addrs := nodeAddrs(n)
	seen := make(map[routeKey]int)
	for k, r := range n.Routes {
		f := fmt.Sprintf("%s.routes[%d]", p, k)
		var dst netip.Prefix
		switch r.Dst {
		case "":
			v.addf(f+".dst", `dst is required: a CIDR, "default" or "default6"`)
		case "default":
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		case "default6":
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		default:
			pfx, msg := checkNetPrefix(r.Dst)
			if msg != "" {
				if strings.HasPrefix(msg, fmt.Sprintf("%q is not a valid CIDR", r.Dst)) {
					msg = fmt.Sprintf(`%s, "default" or "default6"`, msg)
				}
				v.addf(f+".dst", "%s", msg)
			} else {
				dst = pfx
			}
		}

		sameFamily := func(field, what string, a netip.Addr) bool {
			if dst.IsValid() && a.Is4() != dst.Addr().Is4() {
				v.addf(field, "%s %s is %s but dst %q is %s", what, a, family(a), r.Dst, family(dst.Addr()))
				return false
			}
			return true
		}

		if len(r.Nexthops) > 0 && (r.Via != "" || r.Dev != "") {
			v.addf(f+".nexthops", "nexthops exclude via and dev; put them in each nexthop")
		}
		if r.Via == "" && r.Dev == "" && len(r.Nexthops) == 0 {
			v.addf(f, "a route needs via, dev or nexthops")
		}
		devOK := true
		if r.Dev != "" {
			if msg := checkDev(n, r.Dev); msg != "" {
				v.addf(f+".dev", "%s", msg)
				devOK = false
			} else if ifc := n.Interface(r.Dev); ifc != nil && ifc.Down {
				v.addf(f+".dev", "interface %q is down; the kernel refuses routes through it", r.Dev)
			}
		}
		if r.Via != "" {
			if via, err := netip.ParseAddr(r.Via); err != nil || via.Zone() != "" {
				v.addf(f+".via", "%q is not a valid IP address", r.Via)
			} else if sameFamily(f+".via", "via", via) && devOK {
				v.checkGateway(f+".via", n, addrs, via, r.Dev)
			}
		}
		for h, nh := range r.Nexthops {
			hf := fmt.Sprintf("%s.nexthops[%d]", f, h)
			if nh.Via == "" && nh.Dev == "" {
				v.addf(hf, "a nexthop needs via or dev")
			}
			nhDevOK := true
			if nh.Dev != "" {
				if msg := checkDev(n, nh.Dev); msg != "" {
					v.addf(hf+".dev", "%s", msg)
					nhDevOK = false
				}
			}
			if nh.Via != "" {
				if via, err := netip.ParseAddr(nh.Via); err != nil || via.Zone() != "" {
					v.addf(hf+".via", "%q is not a valid IP address", nh.Via)
				} else if sameFamily(hf+".via", "via", via) && nhDevOK {
					v.checkGateway(hf+".via", n, addrs, via, nh.Dev)
				}
			}
			if nh.Weight < 0 || nh.Weight > maxWeight {
				v.addf(hf+".weight", "weight %d must be 0 to %d (0 means 1)", nh.Weight, maxWeight)
			}
		}

		if r.Table < 0 || r.Table > maxTable {
			v.addf(f+".table", "table %d must be 0 (main) to %d", r.Table, maxTable)
		} else if r.Table == tableLocal {
			v.addf(f+".table", "table 255 is the kernel's local table and may not be used")
		}
		if r.Metric < 0 || int64(r.Metric) > math.MaxUint32 {
			v.addf(f+".metric", "metric %d must be 0 to %d", r.Metric, uint32(math.MaxUint32))
		}
		if r.Src != "" {
			src, err := netip.ParseAddr(r.Src)
			switch {
			case err != nil || src.Zone() != "":
				v.addf(f+".src", "%q is not a valid IP address", r.Src)
			case !sameFamily(f+".src", "src", src):
			case !hasAddr(addrs, src):
				v.addf(f+".src", "src %s is not an address of node %q", src, n.Name)
			}
		}

		if dst.IsValid() {
			key := routeKey{dst: dst, table: r.Table, metric: r.Metric}
			if key.table == 0 {
				key.table = tableMain
			}
			if j, dup := seen[key]; dup {
				v.addf(f, "duplicate route to %s in table %d with metric %d (also routes[%d])", dst, key.table, r.Metric, j)
			} else {
				seen[key] = k
			}
		}
	}
}

func (v *validator) rules(p string, n *Node) {
	for k, r := range n.Rules {
		f := fmt.Sprintf("%s.rules[%d]", p, k)
		var fam, famField, famVal string
		for _, sel := range []struct{ name, val string }{{"from", r.From}, {"to", r.To}} {
			if sel.val == "" {
				continue
			}
			pfx, msg := checkNetPrefix(sel.val)
			if msg != "" {
				v.addf(f+"."+sel.name, "%s", msg)
				continue
			}
			got := "inet"
			if pfx.Addr().Is6() {
				got = "inet6"
			}
			switch {
			case fam == "":
				fam, famField, famVal = got, sel.name, sel.val
			case fam != got:
				v.addf(f+"."+sel.name, "%s %s is %s but %s is %s", sel.name, sel.val, got, famField, fam)
			}
		}
		switch r.Family {
		case "", "inet", "inet6":
			if r.Family != "" && fam != "" && r.Family != fam {
				v.addf(f+".family", "family %q does not match %s %s (%s)", r.Family, famField, famVal, fam)
			}
		default:
			v.addf(f+".family", `family %q must be "inet" or "inet6"`, r.Family)
		}
		switch {
		case r.Table == 0:
			v.addf(f+".table", "table is required")
		case r.Table < 0 || r.Table > maxTable:
			v.addf(f+".table", "table %d must be 1 to %d", r.Table, maxTable)
		case r.Table == tableLocal:
			v.addf(f+".table", "table 255 is the kernel's local table and may not be used")
		}
		if r.Priority < 0 || r.Priority > maxRulePrio {
			v.addf(f+".priority", "priority %d must be 0 to %d (0 lets the kernel choose)", r.Priority, maxRulePrio)
		}
		if r.IIF != "" {
			if msg := checkDev(n, r.IIF); msg != "" {
				v.addf(f+".iif", "%s", msg)
			}
		}
		if r.OIF != "" {
			if msg := checkDev(n, r.OIF); msg != "" {
				v.addf(f+".oif", "%s", msg)
			}
		}
	}
}

func (v *validator) sysctls(p string, n *Node) {
	keys := make([]string, 0, len(n.Sysctls))
	for k := range n.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fmt.Sprintf("%s.sysctls[%q]", p, k)
		if !strings.HasPrefix(k, "net.") {
			v.addf(f, "only per-namespace net.* sysctls may be set")
			continue
		}
		if msg := checkSysctlKey(k); msg != "" {
			v.addf(f, "%s", msg)
			continue
		}
		if dev, ok := sysctlDevice(n, k); !ok {
			v.addf(f, "unknown interface %q on node %q (use all, default, lo or one of its interfaces)", dev, n.Name)
		}
		val := n.Sysctls[k]
		if strings.TrimSpace(val) == "" {
			v.addf(f, "value is required")
		} else if strings.ContainsAny(val, "\n\r") {
			v.addf(f, "value must be one line")
		}
	}
}

func checkSysctlKey(k string) string {
	switch {
	case strings.Contains(k, "/"):
		return "write sysctl keys with dots, not '/'"
	case strings.Contains(k, ".."), strings.HasSuffix(k, "."):
		return "sysctl key has an empty component"
	}
	for _, r := range k {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Sprintf("sysctl key must not contain %q", r)
		}
	}
	return ""
}

// sysctlDevice checks the interface part of per-device sysctls such as
// net.ipv4.conf.eth0.rp_filter. It reports the unknown component when
// no interface of n matches.
func sysctlDevice(n *Node, k string) (string, bool) {
	var rest string
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh."} {
		if after, ok := strings.CutPrefix(k, pre); ok {
			rest = after
			break
		}
	}
	if rest == "" {
		return "", true
	}
	names := []string{"all", "default", "lo"}
	for _, ifc := range n.Interfaces {
		names = append(names, ifc.Name)
	}
	for _, name := range names {
		if strings.HasPrefix(rest, name+".") {
			return "", true
		}
	}
	dev, _, _ := strings.Cut(rest, ".")
	return dev, false
}

var serviceKinds = []string{KindTCPEcho, KindUDPEcho, KindHTTP, KindCommand}

type portKey struct {
	proto string
	port  int
}

func (v *validator) services(p string, n *Node) {
	addrs := nodeAddrs(n)
	names := make(map[string]int)
	type binding struct {
		addr netip.Addr // zero = all addresses
		idx  int
	}
	ports := make(map[portKey][]binding)
	for k, s := range n.Services {
		f := fmt.Sprintf("%s.services[%d]", p, k)
		name := s.Name
		if name == "" {
			name = s.Kind
		}
		if s.Name != "" && (len(s.Name) > maxServiceName || !serviceNameRE.MatchString(s.Name)) {
			v.addf(f+".name", "service name %q must be 1 to %d lower-case letters, digits or '-'", s.Name, maxServiceName)
		} else if name != "" {
			if j, dup := names[name]; dup {
				v.addf(f+".name", "duplicate service name %q on node %q (also services[%d]); give each service its own name", name, n.Name, j)
			} else {
				names[name] = k
			}
		}

		proto := ""
		switch s.Kind {
		case "":
			v.addf(f+".kind", "kind is required: %s", strings.Join(serviceKinds, ", "))
		case KindTCPEcho, KindHTTP, KindUDPEcho:
			proto = "tcp"
			if s.Kind == KindUDPEcho {
				proto = "udp"
			}
			if s.Port == 0 {
				v.addf(f+".port", "port is required for a %s service", s.Kind)
			}
			if len(s.Command) > 0 {
				v.addf(f+".command", "command is only used by kind %q", KindCommand)
			}
		case KindCommand:
			switch {
			case len(s.Command) == 0:
				v.addf(f+".command", "a command service needs command (the program and its arguments)")
			case strings.TrimSpace(s.Command[0]) == "":
				v.addf(f+".command[0]", "command[0] must name a program")
			}
		default:
			v.addf(f+".kind", "unknown service kind %q (known: %s)", s.Kind, strings.Join(serviceKinds, ", "))
		}
		if s.Port < 0 || s.Port > 65535 {
			v.addf(f+".port", "port %d must be 1 to 65535", s.Port)
			proto = ""
		}
		if s.Body != "" && s.Kind != KindHTTP {
			v.addf(f+".body", "body is only used by http services")
		}

		var addr netip.Addr
		if s.Address != "" {
			a, err := netip.ParseAddr(s.Address)
			switch {
			case err != nil || a.Zone() != "":
				v.addf(f+".address", "%q is not a valid IP address", s.Address)
				proto = ""
			case a.IsUnspecified() || a.IsLoopback() || hasAddr(addrs, a):
				if !a.IsUnspecified() {
					addr = a
				}
			default:
				v.addf(f+".address", "address %s is not assigned to node %q", a, n.Name)
			}
		}
		if proto != "" && s.Port > 0 {
			key := portKey{proto, s.Port}
			for _, b := range ports[key] {
				if !b.addr.IsValid() || !addr.IsValid() || b.addr == addr {
					v.addf(f+".port", "%s port %d is already used by services[%d]", proto, s.Port, b.idx)
					break
				}
			}
			ports[key] = append(ports[key], binding{addr, k})
		}
	}
}

func (v *validator) segments() {
	l := v.lab
	if n := len(l.Links) + len(l.Segments); n > maxSegments {
		v.addf("links", "%d links and segments; at most %d", n, maxSegments)
		return
	}
	names := make(map[string]string)
	used := make(map[Endpoint]string)
	check := func(kind string, segs []Segment) {
		for i, s := range segs {
			p := fmt.Sprintf("%s[%d]", kind, i)
			if s.Name != "" {
				switch {
				case len(s.Name) > MaxNameLen:
					v.addf(p+".name", "name %q is longer than %d bytes", s.Name, MaxNameLen)
				case !segNameRE.MatchString(s.Name):
					v.addf(p+".name", "name %q must be lower-case letters, digits or '-', starting with a letter or digit", s.Name)
				default:
					if where, dup := names[s.Name]; dup {
						v.addf(p+".name", "duplicate name %q (also %s)", s.Name, where)
					} else {
						names[s.Name] = p
					}
				}
			}
			switch {
			case kind == "links" && len(s.Endpoints) != 2:
				v.addf(p+".endpoints", "a link needs exactly 2 endpoints, got %d (use segments for more)", len(s.Endpoints))
			case kind == "segments" && len(s.Endpoints) < 2:
				v.addf(p+".endpoints", "a segment needs at least 2 endpoints, got %d", len(s.Endpoints))
			}
			for j, raw := range s.Endpoints {
				f := fmt.Sprintf("%s.endpoints[%d]", p, j)
				ep, err := ParseEndpoint(raw)
				if err != nil {
					v.addf(f, "%s", err)
					continue
				}
				n := l.Node(ep.Node)
				if n == nil {
					v.addf(f, "unknown node %q in endpoint %q", ep.Node, raw)
					continue
				}
				if n.Interface(ep.Iface) == nil {
					v.addf(f, "node %q has no interface %q (endpoint %q)", ep.Node, ep.Iface, raw)
					continue
				}
				if where, dup := used[ep]; dup {
					v.addf(f, "endpoint %q is already attached at %s", raw, where)
					continue
				}
				used[ep] = f
			}
		}
	}
	check("links", l.Links)
	check("segments", l.Segments)
}
