package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"nslab/labs"
)

// mininetScript builds and stops each topology it is given with Mininet
// (LinuxBridge switches, no controller, default links) and prints one
// JSON line per run. The bench writes it to a temp file and runs it with
// a python3 that can import mininet.
//
//go:embed mininet_bench.py
var mininetScript []byte

// mnTopo is one lab translated for Mininet: a host per node, a
// LinuxBridge switch per link or segment, one Mininet link per endpoint.
// Every name carries a random suffix: Mininet's switches and, while it
// builds, every veth live in the host's namespace.
type mnTopo struct {
	ID       string     `json:"id"`
	Hosts    []mnHost   `json:"hosts"`
	Switches []mnSwitch `json:"switches"`
	Links    []mnLink   `json:"links"`
	// Ping, if set, is checked once after the untimed warm-up run:
	// Ping[0] (a host) must reach the address Ping[1].
	Ping []string `json:"ping,omitempty"`
}

type mnHost struct {
	Name string `json:"name"`
	// IP is what Mininet itself configures on the host's first interface
	// (its usual path for a star); everything else is Cmds, run in the
	// host after start as part of the timed build.
	IP   string   `json:"ip,omitempty"`
	Cmds []string `json:"cmds,omitempty"`
}

type mnSwitch struct {
	Name string `json:"name"`
	DPID string `json:"dpid"`
}

type mnLink struct {
	Host       string `json:"host"`
	Switch     string `json:"switch"`
	HostIntf   string `json:"host_intf"`
	SwitchIntf string `json:"switch_intf"`
}

// hostNames are every name the topology puts in the host's namespace
// (switch bridges and every veth end before it is moved) and every
// Mininet node, whose shell runs as "bash ... mininet:NAME".
func (t *mnTopo) hostNames() (links, nodes []string) {
	for _, s := range t.Switches {
		links = append(links, s.Name)
		nodes = append(nodes, s.Name)
	}
	for _, h := range t.Hosts {
		nodes = append(nodes, h.Name)
	}
	for _, l := range t.Links {
		links = append(links, l.HostIntf, l.SwitchIntf)
	}
	return links, nodes
}

func randSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// toMininet translates lab into Mininet's terms. Node i becomes host
// "n<i><sfx>", segment j switch "s<j><sfx>"; interfaces are
// "<node>-eth<k>" in the order the links are added, as Mininet names
// them, so that every name fits IFNAMSIZ and none can collide.
func toMininet(lab *labs.Lab, sfx string) (*mnTopo, error) {
	t := &mnTopo{ID: lab.ID}
	host := map[string]int{}
	for i, n := range lab.Nodes {
		if strings.TrimSpace(n.NFTables) != "" || len(n.Rules) > 0 {
			return nil, fmt.Errorf("lab %s node %s: the Mininet translation does routes and sysctls, not rules or nftables", lab.ID, n.Name)
		}
		host[n.Name] = i
		t.Hosts = append(t.Hosts, mnHost{Name: fmt.Sprintf("n%d%s", i+1, sfx)})
	}
	mnIf := map[labs.Endpoint]string{}
	ports := make([]int, len(lab.Nodes))
	for j, seg := range lab.AllSegments() {
		sw := mnSwitch{Name: fmt.Sprintf("s%d%s", j+1, sfx), DPID: fmt.Sprintf("%x", j+1)}
		t.Switches = append(t.Switches, sw)
		for k, s := range seg.Endpoints {
			ep, err := labs.ParseEndpoint(s)
			if err != nil {
				return nil, err
			}
			i, ok := host[ep.Node]
			if !ok {
				return nil, fmt.Errorf("segment %s: endpoint %s: no such node", seg.Name, s)
			}
			hi := fmt.Sprintf("%s-eth%d", t.Hosts[i].Name, ports[i])
			ports[i]++
			mnIf[ep] = hi
			t.Links = append(t.Links, mnLink{Host: t.Hosts[i].Name, Switch: sw.Name, HostIntf: hi, SwitchIntf: fmt.Sprintf("%s-eth%d", sw.Name, k+1)})
		}
	}
	for i, n := range lab.Nodes {
		h := &t.Hosts[i]
		for _, k := range n.SysctlKeys() {
			key := k
			for _, ifc := range n.Interfaces {
				key = strings.ReplaceAll(key, "."+ifc.Name+".", "."+mnIf[labs.Endpoint{Node: n.Name, Iface: ifc.Name}]+".")
			}
			h.Cmds = append(h.Cmds, fmt.Sprintf("sysctl -qw %s=%s", key, n.Sysctls[k]))
		}
		first := fmt.Sprintf("%s-eth0", h.Name)
		for _, ifc := range n.Interfaces {
			dev := mnIf[labs.Endpoint{Node: n.Name, Iface: ifc.Name}]
			if dev == "" {
				return nil, fmt.Errorf("node %s interface %s: on no link or segment", n.Name, ifc.Name)
			}
			for _, a := range ifc.Addresses {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					return nil, fmt.Errorf("node %s interface %s: address %q: %w", n.Name, ifc.Name, a, err)
				}
				switch {
				case dev == first && h.IP == "" && p.Addr().Is4():
					h.IP = a
				case p.Addr().Is6():
					h.Cmds = append(h.Cmds, fmt.Sprintf("ip -6 addr add %s dev %s nodad", a, dev))
				default:
					h.Cmds = append(h.Cmds, fmt.Sprintf("ip addr add %s dev %s", a, dev))
				}
			}
			if ifc.Down {
				h.Cmds = append(h.Cmds, fmt.Sprintf("ip link set %s down", dev))
			}
		}
		for i, r := range n.Routes {
			if len(r.Nexthops) > 0 || r.Src != "" {
				return nil, fmt.Errorf("node %s routes[%d]: the Mininet translation does plain routes", n.Name, i)
			}
			cmd := "ip route add " + r.Dst
			if via, err := netip.ParseAddr(r.Via); r.Dst == "default6" || r.Dst == "default" && err == nil && via.Is6() {
				cmd = "ip -6 route add default"
			}
			if r.Via != "" {
				cmd += " via " + r.Via
			}
			if r.Dev != "" {
				cmd += " dev " + mnIf[labs.Endpoint{Node: n.Name, Iface: r.Dev}]
			}
			if r.Table != 0 {
				cmd += fmt.Sprintf(" table %d", r.Table)
			}
			if r.Metric != 0 {
				cmd += fmt.Sprintf(" metric %d", r.Metric)
			}
			h.Cmds = append(h.Cmds, cmd)
		}
	}
	// Reachability proof: the first node to the last node's first IPv4
	// address.
	if len(lab.Nodes) >= 2 {
		last := lab.Nodes[len(lab.Nodes)-1]
	find:
		for _, ifc := range last.Interfaces {
			for _, a := range ifc.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
					t.Ping = []string{t.Hosts[0].Name, p.Addr().String()}
					break find
				}
			}
		}
	}
	return t, nil
}

// mininetPython returns a python3 that can import mininet (Debian's
// package installs it for /usr/bin/python3, which need not be the first
// python3 on PATH), or "" and why not.
func mininetPython(override string) (string, string) {
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	if override != "" {
		cands = []string{override}
	}
	for _, tool := range []string{"mnexec", "brctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", tool + " not found (apt-get install -y mininet bridge-utils)"
		}
	}
	for _, py := range cands {
		if err := exec.Command(py, "-c", "import mininet.net, mininet.nodelib").Run(); err == nil {
			return py, ""
		}
	}
	return "", "no python3 can import mininet (apt-get install -y mininet bridge-utils)"
}

type mnResult struct {
	Topology string  `json:"topology"`
	Warmup   bool    `json:"warmup"`
	CreateMS float64 `json:"create_ms"`
	StopMS   float64 `json:"stop_ms"`
}

// runMininet builds and stops every topology runs times (after one
// untimed warm-up each) and returns the build+start and stop durations by
// lab id. Whatever the script leaves behind — if it fails or is killed —
// is removed here: links by their exact names and Mininet shells by
// their exact "mininet:NAME" argument.
func runMininet(ctx context.Context, py string, topos []*mnTopo, runs int) (map[string][2][]time.Duration, error) {
	dir, err := os.MkdirTemp("", "nslab-bench-mn-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "mn_bench.py")
	spec := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(script, mininetScript, 0o600); err != nil {
		return nil, err
	}
	b, err := json.Marshal(map[string]any{"runs": runs, "topologies": topos})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(spec, b, 0o600); err != nil {
		return nil, err
	}
	defer func() {
		for _, t := range topos {
			cleanMininet(t)
		}
	}()
	cmd := exec.CommandContext(ctx, py, script, spec)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Its own process group, so a cancelled run ends the script's shells too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mininet script: %w: %s", err, strings.TrimSpace(lastLines(stderr.String(), 15)))
	}
	res := map[string][2][]time.Duration{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r mnResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("mininet script output %q: %w", sc.Text(), err)
		}
		if r.Warmup {
			continue
		}
		d := res[r.Topology]
		d[0] = append(d[0], time.Duration(r.CreateMS*float64(time.Millisecond)))
		d[1] = append(d[1], time.Duration(r.StopMS*float64(time.Millisecond)))
		res[r.Topology] = d
	}
	for _, t := range topos {
		if len(res[t.ID][0]) != runs {
			return nil, fmt.Errorf("mininet script: %s: %d of %d runs reported", t.ID, len(res[t.ID][0]), runs)
		}
	}
	return res, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// cleanMininet removes what a Mininet run of t may have left in the
// host's namespace and ends its shells. It touches only t's own names.
func cleanMininet(t *mnTopo) error {
	links, nodes := t.hostNames()
	var errs []error
	for _, name := range links {
		l, err := netlink.LinkByName(name)
		if err != nil {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete leftover mininet link %s: %w", name, err))
		}
	}
	want := map[string]bool{}
	for _, n := range nodes {
		want["mininet:"+n] = true
	}
	for pid, p := range listProcs() {
		if len(p.argv) > 0 && want[p.argv[len(p.argv)-1]] {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill leftover mininet shell %d: %w", pid, err))
			}
		}
	}
	return errors.Join(errs...)
}
