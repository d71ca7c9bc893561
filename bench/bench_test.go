package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NSLAB_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root and NSLAB_REQUIRE_ROOT=1")
	}
	t.Skip("needs root: builds namespaces and links")
}

func catalogLab(t *testing.T, id string) *labs.Lab {
	t.Helper()
	c, err := labs.NewCatalog("../labs/testdata")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPct(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 5}, {95, 10}, {100, 10}, {10, 1}, {0, 1}} {
		if got := pct(ds, tc.p); got != tc.want {
			t.Errorf("pct(%d) = %d, want %d", tc.p, got, tc.want)
		}
	}
	if pct(nil, 50) != 0 {
		t.Error("pct of nothing must be 0")
	}
}

func TestParseKiBFields(t *testing.T) {
	in := "MemTotal:       24684444 kB\nHugePages_Total:       0\nRss:  12 kB\nName:\tlabd\nbad: x kB\nVmFlags: rd wr mr\n"
	got := parseKiBFields([]byte(in))
	want := map[string]int64{"MemTotal": 24684444, "HugePages_Total": 0, "Rss": 12}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestToMininetRouted(t *testing.T) {
	tp, err := toMininet(catalogLab(t, "routed"), "x7k")
	if err != nil {
		t.Fatal(err)
	}
	links, nodes := tp.hostNames()
	for _, n := range append(links, nodes...) {
		if len(n) > 15 || !strings.Contains(n, "x7k") {
			t.Errorf("name %q: must fit IFNAMSIZ and carry the suffix", n)
		}
	}
	if len(tp.Hosts) != 4 || len(tp.Switches) != 3 || len(tp.Links) != 6 {
		t.Fatalf("got %d hosts, %d switches, %d links; want 4, 3, 6", len(tp.Hosts), len(tp.Switches), len(tp.Links))
	}
	// r1 (node 2): eth0 is on the first link, so Mininet sets its IPv4
	// address; the rest are commands, with interfaces renamed.
	r1 := tp.Hosts[1]
	if r1.IP != "10.0.1.1/24" {
		t.Errorf("r1 ip = %q, want 10.0.1.1/24", r1.IP)
	}
	for _, want := range []string{
		"sysctl -qw net.ipv4.ip_forward=1",
		"ip -6 addr add fd00:1::1/64 dev n2x7k-eth0 nodad",
		"ip addr add 10.0.12.1/24 dev n2x7k-eth1",
		"ip route add 10.0.2.0/24 via 10.0.12.2",
	} {
		if !strings.Contains(strings.Join(r1.Cmds, "\n"), want) {
			t.Errorf("r1 commands %q lack %q", r1.Cmds, want)
		}
	}
	if !strings.Contains(strings.Join(tp.Hosts[0].Cmds, "\n"), "ip -6 route add default via fd00:1::1") {
		t.Errorf("h1 commands %q lack its IPv6 default route", tp.Hosts[0].Cmds)
	}
	if tp.Ping[0] != "n1x7k" || tp.Ping[1] != "10.0.2.10" {
		t.Errorf("ping = %v, want n1x7k → 10.0.2.10", tp.Ping)
	}
}

// TestFloorRouted builds routed the floor's way, proves h1 reaches h2
// across both routers over IPv4 and IPv6 as soon as it is built (so the
// floor is the real, usable topology, as nslab's is at READY), and that
// the watcher sees every namespace destroyed after the teardown.
func TestFloorRouted(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
	lab := catalogLab(t, "routed")
	w, err := newWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	f, err := buildFloor(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.teardown() })
	if len(f.nodes) != 4 {
		t.Fatalf("%d node namespaces, want 4", len(f.nodes))
	}
	for _, dst := range []string{"10.0.2.10", "fd00:2::10"} {
		cmd := exec.Command("nsenter", "--net=/proc/self/fd/3", "ping", "-c1", "-W1", dst)
		cmd.ExtraFiles = []*os.File{f.nodes[0]} // h1
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ping %s from h1: %v\n%s", dst, err, out)
		}
	}
	names, err := w.plant(f.nsFds())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.teardown(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.waitGone(names, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestFloorFailureCleansUp: a lab the floor cannot build fails with an
// error naming the problem, and every namespace and netlink socket it had
// opened is closed again.
func TestFloorFailureCleansUp(t *testing.T) {
	requireRoot(t)
	lab := *catalogLab(t, "star2")
	lab.Segments = []labs.Segment{{Name: "lan", Endpoints: []string{"h1:eth0", "nosuch:eth0"}}}
	_, _, before := labdFds(os.Getpid(), "")
	_, err := buildFloor(&lab)
	if err == nil || !strings.Contains(err.Error(), "nosuch:eth0: no such node") {
		t.Fatalf("err = %v, want one naming nosuch:eth0", err)
	}
	if ns, _, after := labdFds(os.Getpid(), ""); ns != 0 || after != before {
		t.Errorf("after the failed build: %d netns fds (want 0), %d fds (want %d)", ns, after, before)
	}
}
