package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	labsv1 "nslab/proto/labs/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// routedSandbox is the routed lab as labd reports it: a chain of four
// nodes over three links, IPv4 and IPv6 on each.
func routedSandbox() *labsv1.Sandbox {
	ifc := func(name, link string, addrs ...string) *labsv1.Interface {
		return &labsv1.Interface{Name: name, Link: link, Addresses: addrs, Up: true, Mtu: 1500}
	}
	return &labsv1.Sandbox{
		Name: "sandboxes/s-routed", Id: "s-routed", Lab: "labs/routed", State: labsv1.Sandbox_STATE_READY,
		Nodes: []*labsv1.Node{
			{Name: "h1", Interfaces: []*labsv1.Interface{ifc("eth0", "h1-r1", "10.0.1.10/24", "fd00:1::10/64")}},
			{Name: "r1", Interfaces: []*labsv1.Interface{
				ifc("eth0", "h1-r1", "10.0.1.1/24", "fd00:1::1/64"),
				ifc("eth1", "r1-r2", "10.0.12.1/24", "fd00:12::1/64"),
			}},
			{Name: "r2", Interfaces: []*labsv1.Interface{
				ifc("eth0", "r1-r2", "10.0.12.2/24", "fd00:12::2/64"),
				ifc("eth1", "r2-h2", "10.0.2.1/24", "fd00:2::1/64"),
			}},
			{Name: "h2", Interfaces: []*labsv1.Interface{ifc("eth0", "r2-h2", "10.0.2.10/24", "fd00:2::10/64")}},
		},
		Links: []*labsv1.Link{
			{Name: "h1-r1", Endpoints: []string{"h1:eth0", "r1:eth0"}},
			{Name: "r1-r2", Endpoints: []string{"r1:eth1", "r2:eth0"}},
			{Name: "r2-h2", Endpoints: []string{"r2:eth1", "h2:eth0"}},
		},
	}
}

// starSandbox is 20 hosts on one segment, a router linking the segment to
// an uplink, and a node with no link at all.
func starSandbox() *labsv1.Sandbox {
	sb := &labsv1.Sandbox{Name: "sandboxes/s-star20", Id: "s-star20", Lab: "labs/star20", State: labsv1.Sandbox_STATE_READY}
	lan := &labsv1.Link{Name: "lan"}
	for i := 1; i <= 20; i++ {
		name := fmt.Sprintf("h%d", i)
		sb.Nodes = append(sb.Nodes, &labsv1.Node{Name: name, Interfaces: []*labsv1.Interface{
			{Name: "eth0", Link: "lan", Addresses: []string{fmt.Sprintf("10.0.0.%d/24", i)}},
		}})
		lan.Endpoints = append(lan.Endpoints, name+":eth0")
	}
	sb.Nodes = append(sb.Nodes,
		&labsv1.Node{Name: "gw", Interfaces: []*labsv1.Interface{
			{Name: "eth0", Link: "lan", Addresses: []string{"10.0.0.254/24"}},
			{Name: "eth1", Link: "uplink", Addresses: []string{"192.0.2.1/30"}},
		}},
		&labsv1.Node{Name: "isp", Interfaces: []*labsv1.Interface{{Name: "eth0", Link: "uplink", Addresses: []string{"192.0.2.2/30"}}}},
		&labsv1.Node{Name: "spare"},
	)
	lan.Endpoints = append(lan.Endpoints, "gw:eth0")
	sb.Links = []*labsv1.Link{lan, {Name: "uplink", Endpoints: []string{"gw:eth1", "isp:eth0"}}}
	return sb
}

func TestTopo(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{sandboxes: []*labsv1.Sandbox{routedSandbox(), starSandbox()}})
	for _, tc := range []struct{ id, name string }{{"s-routed", "routed"}, {"s-star20", "star20"}} {
		for _, format := range []string{"text", "dot", "mermaid"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				args := []string{"topo", tc.id}
				if format != "text" {
					args = append(args, "-o", format)
				}
				r := runCLI(t, cfg, "", args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("labctl %q = %d, stderr %q", args, r.code, r.stderr)
				}
				golden(t, "topo-"+tc.name+"."+format, r.stdout)
			})
		}
	}
}

// TestTopoText checks the properties the golden files are there for.
func TestTopoText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := writeTopo(&b, starSandbox(), styles{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"s-star20 star20: 23 nodes, 2 links\n",
		"segment, 21 members\n",
		"├─ h1:eth0   10.0.0.1/24\n",
		"└─ gw:eth0   10.0.0.254/24\n",
		"[uplink]  gw:eth1 ─────────── isp:eth0\n",
		"          192.0.2.1/30        192.0.2.2/30\n",
		"not linked: spare\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("topo lacks %q:\n%s", want, out)
		}
	}
	for i, line := range strings.Split(out, "\n") {
		if width(line) > 80 {
			t.Errorf("line %d is %d wide, more than a terminal's 80: %q", i+1, width(line), line)
		}
	}
}

// TestTopoPartial: a sandbox whose links list is missing (an older labd)
// is drawn from its interfaces' link names.
func TestTopoPartial(t *testing.T) {
	t.Parallel()
	sb := routedSandbox()
	sb.Links = nil
	var got, want bytes.Buffer
	writeTopo(&got, sb, styles{})
	writeTopo(&want, routedSandbox(), styles{})
	if got.String() != want.String() {
		t.Errorf("topo without links:\n%s\nwant as with them:\n%s", got.String(), want.String())
	}
}

// TestTopoDotRenders gives -o dot to Graphviz, where it is installed.
func TestTopoDotRenders(t *testing.T) {
	t.Parallel()
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("Graphviz's dot is not installed (apt-get install graphviz)")
	}
	for _, sb := range []*labsv1.Sandbox{routedSandbox(), starSandbox()} {
		var b bytes.Buffer
		if err := writeDot(&b, sb); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(dot, "-Tsvg")
		cmd.Stdin = &b
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 || !bytes.Contains(out, []byte("<svg")) {
			t.Errorf("dot -Tsvg on %s: %v, stderr %q", sandboxID(sb), err, stderr.String())
		}
	}
}

func TestTopoUsage(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{}
	cfg, _ := serve(t, f)
	for _, args := range [][]string{{"topo"}, {"topo", "a", "b"}, {"topo", "-o", "png", "s-1"}} {
		r := runCLI(t, cfg, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "for usage.") {
			t.Errorf("labctl %q = %d, stderr %q; want 2", args, r.code, r.stderr)
		}
	}
	if n := len(f.recorded()); n != 0 {
		t.Errorf("usage errors called labd %d times", n)
	}
	r := runCLI(t, cfg, "", "topo", "s-nope")
	if r.code != 1 || r.stderr != "labctl: sandbox s-nope not found; `labctl ls` lists yours\n" {
		t.Errorf("topo of a missing sandbox = %d, stderr %q", r.code, r.stderr)
	}
}
