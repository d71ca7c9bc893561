package labs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEmbeddedLabs(t *testing.T) {
	files, err := fs.Glob(embedded, "*/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("embedded labs = %q, want at least hello-link and routed", files)
	}
	for _, f := range files {
		t.Run(path.Dir(f), func(t *testing.T) {
			t.Parallel()
			data, err := embedded.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			l, err := Parse(data, f)
			if err != nil {
				t.Fatal(err)
			}
			if l.ID != path.Dir(f) {
				t.Errorf("id %q, want its directory name %q", l.ID, path.Dir(f))
			}
			if l.Summary == "" || len(l.Topics) == 0 || l.Level == "" || l.Minutes == 0 {
				t.Errorf("catalog labs need summary, topics, level and minutes: %+v", l)
			}
			// CI proves every catalog lab on the reference machine, whose
			// kernel lacks these (DESIGN.md).
			for _, f := range l.Requires {
				if slices.Contains([]string{"netem", "vlan", "dummy", "vrf", "wireguard", "ipvlan"}, f) {
					t.Errorf("requires %q, which the reference kernel lacks", f)
				}
			}
		})
	}
}

func TestNewCatalog(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range c.List() {
		ids = append(ids, l.ID)
		if !strings.HasPrefix(l.Source, "embedded:") {
			t.Errorf("%s: Source = %q, want embedded:...", l.ID, l.Source)
		}
	}
	if !slices.IsSorted(ids) || !slices.Contains(ids, "hello-link") || !slices.Contains(ids, "routed") {
		t.Errorf("List ids = %q, want sorted and containing hello-link and routed", ids)
	}
	l, err := c.Get("routed")
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "embedded:routed/lab.yaml" {
		t.Errorf("Source = %q", l.Source)
	}

	_, err = c.Get("nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Get(nope) = %v, want ErrNotFound naming the id", err)
	}

	c.Add(&Lab{ID: "nope", Title: "Added"})
	if l, err := c.Get("nope"); err != nil || l.Title != "Added" {
		t.Errorf("after Add, Get = %v, %v", l, err)
	}
	var zero Catalog
	zero.Add(&Lab{ID: "z"})
	if _, err := zero.Get("z"); err != nil {
		t.Errorf("zero Catalog: %v", err)
	}
}

func TestCatalogOverride(t *testing.T) {
	routed, err := embedded.ReadFile("routed/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	first, second := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(first, "routed", "lab.yaml"),
		strings.Replace(string(routed), "title: Routed path across two routers", "title: Local routed", 1))
	writeFile(t, filepath.Join(first, "extra.yaml"), "id: extra\ntitle: Extra\nnodes: [{name: h1}]\n")
	writeFile(t, filepath.Join(second, "extra.yaml"), "id: extra\ntitle: Extra, again\nnodes: [{name: h1}]\n")

	c, err := NewCatalog(first, second)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, title, source string
	}{
		{"routed", "Local routed", filepath.Join(first, "routed", "lab.yaml")},
		{"extra", "Extra, again", filepath.Join(second, "extra.yaml")},
		{"hello-link", "Hello, link", "embedded:hello-link/lab.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			l, err := c.Get(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if l.Title != tc.title || l.Source != tc.source {
				t.Errorf("got %q from %s, want %q from %s", l.Title, l.Source, tc.title, tc.source)
			}
		})
	}
	embedded, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if n, want := len(c.List()), len(embedded.List())+1; n != want {
		t.Errorf("List has %d labs, want %d (the embedded ones plus extra)", n, want)
	}

	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "routed", "lab.yaml"), "id: routed\ntitle: Broken\nnodes: []\n")
	_, err = NewCatalog(bad)
	wantErrContains(t, err, filepath.Join(bad, "routed", "lab.yaml")+": nodes: a lab needs at least one node")
}

// TestCatalogReachability walks the static forwarding path of the
// catalog labs, to catch a typo in an address or route that would make
// "h1 pings h2" fail only once the lab runs.
func TestCatalogReachability(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lab, from, to string
		want          []string
	}{
		{"hello-link", "h1", "10.0.0.2", []string{"h1", "h2"}},
		{"hello-link", "h2", "fd00::1", []string{"h2", "h1"}},
		{"routed", "h1", "10.0.2.10", []string{"h1", "r1", "r2", "h2"}},
		{"routed", "h2", "10.0.1.10", []string{"h2", "r2", "r1", "h1"}},
		{"routed", "h1", "fd00:2::10", []string{"h1", "r1", "r2", "h2"}},
		{"routed", "h2", "fd00:1::10", []string{"h2", "r2", "r1", "h1"}},
		{"routed", "h1", "10.0.12.2", []string{"h1", "r1", "r2"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %s to %s", tc.lab, tc.from, tc.to), func(t *testing.T) {
			l, err := c.Get(tc.lab)
			if err != nil {
				t.Fatal(err)
			}
			got, err := forwardPath(l, tc.from, netip.MustParseAddr(tc.to))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("path = %q, want %q", got, tc.want)
			}
		})
	}
}

// forwardPath follows longest-prefix routing (connected subnets and the
// main table) from node from to the node owning dst.
func forwardPath(l *Lab, from string, dst netip.Addr) ([]string, error) {
	cur := l.Node(from)
	var path []string
	for hop := 0; hop < 16; hop++ {
		path = append(path, cur.Name)
		addrs := nodeAddrs(cur)
		if hasAddr(addrs, dst) {
			return path, nil
		}
		if hop > 0 {
			key := "net.ipv4.ip_forward"
			if dst.Is6() {
				key = "net.ipv6.conf.all.forwarding"
			}
			if cur.Sysctls[key] != "1" {
				return path, fmt.Errorf("%s does not forward (%s unset)", cur.Name, key)
			}
		}
		bits, gw, dev := -1, netip.Addr{}, ""
		for name, ps := range addrs {
			for _, p := range ps {
				if p.Masked().Contains(dst) && p.Bits() > bits {
					bits, gw, dev = p.Bits(), dst, name
				}
			}
		}
		for _, r := range cur.Routes {
			var p netip.Prefix
			switch r.Dst {
			case "default":
				p = netip.MustParsePrefix("0.0.0.0/0")
			case "default6":
				p = netip.MustParsePrefix("::/0")
			default:
				p = netip.MustParsePrefix(r.Dst)
			}
			if (r.Table != 0 && r.Table != tableMain) || !p.Contains(dst) || p.Bits() <= bits || r.Via == "" {
				continue
			}
			via := netip.MustParseAddr(r.Via)
			for name, ps := range addrs {
				for _, q := range ps {
					if q.Masked().Contains(via) {
						bits, gw, dev = p.Bits(), via, name
					}
				}
			}
		}
		if dev == "" {
			return path, fmt.Errorf("%s has no route to %s", cur.Name, dst)
		}
		next := neighbour(l, Endpoint{Node: cur.Name, Iface: dev}, gw)
		if next == nil {
			return path, fmt.Errorf("%s: nobody on %s:%s owns %s", cur.Name, cur.Name, dev, gw)
		}
		cur = next
	}
	return path, fmt.Errorf("routing loop: %q", path)
}

// neighbour returns the node on the same segment as ep that owns addr.
func neighbour(l *Lab, ep Endpoint, addr netip.Addr) *Node {
	for _, s := range l.AllSegments() {
		if !slices.Contains(s.Endpoints, ep.String()) {
			continue
		}
		for _, raw := range s.Endpoints {
			other, _ := ParseEndpoint(raw)
			n := l.Node(other.Node)
			for _, a := range n.Interface(other.Iface).Addresses {
				if netip.MustParsePrefix(a).Addr() == addr {
					return n
				}
			}
		}
	}
	return nil
}
