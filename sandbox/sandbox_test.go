package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

func TestRoutedEndToEnd(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "routed"))
	if got := strings.TrimSpace(mustRun(t, sb, "h1", "hostname")); got != "h1" {
		t.Errorf("hostname = %q, want h1", got)
	}
	mustRun(t, sb, "h1", "ping", "-c1", "-W2", "10.0.2.10")
	mustRun(t, sb, "h1", "ping", "-c1", "-W2", "fd00:2::10")
	// The built-in services answer across the routers.
	if out := mustRun(t, sb, "h1", "bash", "-c", "exec 3<>/dev/tcp/10.0.2.10/7; echo ping-7 >&3; head -n1 <&3"); out != "ping-7\n" {
		t.Errorf("tcp echo answered %q", out)
	}
	if out := mustRun(t, sb, "h1", "bash", "-c", "exec 3<>/dev/tcp/10.0.2.10/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"); !strings.Contains(out, "hello from h2") {
		t.Errorf("http answered %q", out)
	}
	got := mustRun(t, sb, "h2", "cat", "/etc/hosts")
	for _, want := range []string{"10.0.1.10\th1", "10.0.2.10\th2", "fd00:12::1\tr1"} {
		if !strings.Contains(got, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, got)
		}
	}
}

func TestNodeIsolation(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "routed"))

	t.Run("only own links", func(t *testing.T) {
		out := mustRun(t, sb, "h1", "ip", "-o", "link")
		names := linkNames(out)
		if strings.Join(names, ",") != "lo,eth0" {
			t.Errorf("h1 sees links %v, want [lo eth0]", names)
		}
		out = mustRun(t, sb, "r1", "ip", "-o", "link")
		if got := strings.Join(linkNames(out), ","); got != "lo,eth0,eth1" {
			t.Errorf("r1 sees links %v", got)
		}
	})
	t.Run("only own processes", func(t *testing.T) {
		out := mustRun(t, sb, "h1", "ps", "-e", "-o", "pid=,comm=")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		// nslab-init and ps itself: nothing of r1 (or h2's services), nothing of the host.
		if len(lines) != 2 || !strings.Contains(lines[0], "nslab-init") {
			t.Errorf("h1 sees processes:\n%s", out)
		}
		if strings.Contains(out, "labd") || strings.Contains(out, "nslab-http") {
			t.Errorf("h1 sees foreign processes:\n%s", out)
		}
	})
	t.Run("host files not writable", func(t *testing.T) {
		probe := "/etc/nslab-probe-" + randSuffix()
		r := run(t, sb, "h1", "touch", probe)
		if r.st.Code == 0 {
			t.Errorf("touch %s succeeded in a node", probe)
		}
		if _, err := os.Stat(probe); err == nil {
			os.Remove(probe)
			t.Fatalf("%s appeared on the host", probe)
		}
		for _, p := range []string{"/usr/bin/nslab-probe", "/root/nslab-probe"} {
			if r := run(t, sb, "h1", "sh", "-c", "echo x > "+p); r.st.Code == 0 {
				os.Remove(p)
				t.Errorf("writing %s succeeded in a node", p)
			}
		}
		if r := run(t, sb, "h1", "cat", "/etc/shadow"); r.st.Code == 0 {
			t.Errorf("a node read /etc/shadow")
		}
	})
	t.Run("nsenter stays in the node", func(t *testing.T) {
		// The init is not dumpable: the node may not open its namespaces.
		if r := run(t, sb, "h1", "nsenter", "-t", "1", "-n", "true"); r.st.Code == 0 {
			t.Errorf("nsenter -t 1 succeeded: the node's root can open its init's namespaces")
		}
		out := mustRun(t, sb, "h1", "sh", "-c", "nsenter -t $$ -n -m -u -i ip -o link")
		if got := strings.Join(linkNames(out), ","); got != "lo,eth0" {
			t.Errorf("nsenter -t $$ reached links %v", got)
		}
	})
	t.Run("sysctl is per node", func(t *testing.T) {
		host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		mustRun(t, sb, "r1", "sysctl", "-w", "net.ipv4.ip_forward=0")
		if got := strings.TrimSpace(mustRun(t, sb, "r1", "cat", "/proc/sys/net/ipv4/ip_forward")); got != "0" {
			t.Errorf("r1 ip_forward = %s after writing 0", got)
		}
		if got := strings.TrimSpace(mustRun(t, sb, "r2", "cat", "/proc/sys/net/ipv4/ip_forward")); got != "1" {
			t.Errorf("r2 ip_forward = %s, want 1 (untouched)", got)
		}
		if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(after) != string(host) {
			t.Errorf("host ip_forward changed from %q to %q", host, after)
		}
		if r := run(t, sb, "r1", "sysctl", "-w", "kernel.hostname=evil"); r.st.Code == 0 {
			// kernel.hostname is per-UTS-namespace: allowed, and only the node's.
			if h, _ := os.Hostname(); h == "evil" {
				t.Errorf("node changed the host's hostname")
			}
		}
		if r := run(t, sb, "r1", "sysctl", "-w", "vm.swappiness=1"); r.st.Code == 0 {
			t.Errorf("a node wrote vm.swappiness")
		}
	})
	t.Run("root of the node is an unprivileged host uid", func(t *testing.T) {
		pid := sb.nodes["h1"].pid
		uid := procUID(t, pid)
		if uid < 1<<20 {
			t.Errorf("h1 init runs as host uid %d, want its leased range", uid)
		}
		if got := strings.TrimSpace(mustRun(t, sb, "h1", "id", "-u")); got != "0" {
			t.Errorf("id -u in node = %s, want 0", got)
		}
		// The trap in DESIGN.md: a command joining the node must hold the
		// node's root (the leased host uid), never host uid 0.
		done := make(chan struct{})
		go func() {
			defer close(done)
			run(t, sb, "h1", "sleep", "1")
		}()
		var found bool
		waitFor(t, 5*time.Second, func() bool {
			for _, p := range m.cg.procsOf(sb.ID, "h1") {
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "sleep" {
					for _, field := range []string{"Uid:", "Gid:"} {
						if ids := procIDs(t, p, field); ids != [4]int{uid, uid, uid, uid} {
							t.Errorf("exec'd process %s %v, want all %d", field, ids, uid)
						}
					}
					found = true
				}
			}
			return found
		})
		<-done
	})
	t.Run("own tmpfs and proc", func(t *testing.T) {
		mustRun(t, sb, "h1", "sh", "-c", "echo hi > /tmp/x && echo hi > /run/x && echo hi > /dev/shm/x && echo hi > /var/tmp/x")
		if r := run(t, sb, "r1", "cat", "/tmp/x"); r.st.Code == 0 {
			t.Errorf("r1 sees h1's /tmp")
		}
		for _, m := range [][2]string{{"/tmp", "tmpfs"}, {"/run", "tmpfs"}, {"/dev/shm", "tmpfs"}, {"/dev/pts", "devpts"}, {"/proc", "proc"}, {"/sys", "sysfs"}} {
			// The node's mount is the last (top) one on the path.
			out := strings.Fields(mustRun(t, sb, "h1", "findmnt", "-no", "FSTYPE", m[0]))
			if len(out) == 0 || out[len(out)-1] != m[1] {
				t.Errorf("%s is %v, want %s on top", m[0], out, m[1])
			}
		}
	})
}

func procUID(t *testing.T, pid int) int {
	t.Helper()
	return procIDs(t, pid, "Uid:")[0]
}

// procIDs reads the real, effective, saved and filesystem ids of a
// process as the host sees them.
func procIDs(t *testing.T, pid int, field string) [4]int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ids [4]int
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[0] == field {
			for i := range 4 {
				ids[i], _ = strconv.Atoi(f[i+1])
			}
			return ids
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ids
}

// linkNames extracts interface names from `ip -o link`.
func linkNames(out string) []string {
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n := strings.TrimSuffix(f[1], ":")
		if i := strings.IndexByte(n, '@'); i >= 0 {
			n = n[:i]
		}
		names = append(names, n)
	}
	return names
}

func TestExecSemantics(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	ctx := context.Background()
	collect := func(req ExecRequest) (execResult, error) {
		var out, errb strings.Builder
		st, err := sb.Exec(ctx, "h1", req, func(s int, b []byte) error {
			if s == Stdout {
				out.Write(b)
			} else {
				errb.Write(b)
			}
			return nil
		})
		return execResult{out.String(), errb.String(), st}, err
	}
	tests := []struct {
		name string
		req  ExecRequest
		want execResult
	}{
		{"stdout stderr and exit code", ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}},
			execResult{"out\n", "err\n", ExitStatus{Code: 7}}},
		{"stdin", ExecRequest{Argv: []string{"cat"}, Stdin: strings.NewReader("hello\n")},
			execResult{"hello\n", "", ExitStatus{}}},
		{"killed by signal", ExecRequest{Argv: []string{"sh", "-c", "kill -TERM $$"}},
			execResult{"", "", ExitStatus{Code: 128 + 15, Signal: "SIGTERM"}}},
		{"timeout", ExecRequest{Argv: []string{"sleep", "30"}, Timeout: 200 * time.Millisecond},
			execResult{"", "", ExitStatus{Code: 128 + 9, Signal: "SIGKILL", TimedOut: true}}},
		{"env and dir", ExecRequest{Argv: []string{"sh", "-c", "echo $FOO; pwd"}, Env: []string{"FOO=bar"}, Dir: "/tmp"},
			execResult{"bar\n/tmp\n", "", ExitStatus{}}},
		{"output cap", ExecRequest{Argv: []string{"head", "-c", "100000", "/dev/zero"}, MaxOutput: 1000},
			execResult{strings.Repeat("\x00", 1000), "", ExitStatus{OutputTruncated: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		got, err := collect(ExecRequest{Argv: []string{"no-such-command-" + randSuffix()}})
		if err != nil {
			t.Fatal(err)
		}
		if got.st.Code != 127 || !strings.Contains(got.stderr, "not found") {
			t.Errorf("got %+v, want code 127 and a message", got)
		}
	})
	t.Run("cancel kills the command", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		marker := "nslab-cancel-" + randSuffix()
		done := make(chan error, 1)
		go func() {
			_, err := sb.Exec(cctx, "h1", ExecRequest{Argv: []string{"bash", "-c", "exec -a " + marker + " sleep 60"}}, func(int, []byte) error { return nil })
			done <- err
		}()
		waitFor(t, 5*time.Second, func() bool {
			return run(t, sb, "h1", "pgrep", "-f", marker).st.Code == 0
		})
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("exec returned %v, want context.Canceled", err)
		}
		waitFor(t, 5*time.Second, func() bool {
			return run(t, sb, "h1", "pgrep", "-f", marker).st.Code != 0
		})
	})
	t.Run("large output streams with bounded memory", func(t *testing.T) {
		var n int64
		st, err := sb.Exec(ctx, "h1", ExecRequest{Argv: []string{"head", "-c", "50000000", "/dev/zero"}}, func(_ int, b []byte) error {
			n += int64(len(b))
			if len(b) > 32<<10 {
				return fmt.Errorf("chunk of %d bytes", len(b))
			}
			return nil
		})
		if err != nil || st.Code != 0 || n != 50000000 {
			t.Errorf("got %d bytes, %+v, %v", n, st, err)
		}
	})
	t.Run("background child does not hang exec", func(t *testing.T) {
		start := time.Now()
		got, err := collect(ExecRequest{Argv: []string{"sh", "-c", "sleep 5 & echo started"}})
		if err != nil || got.st.Code != 0 || got.stdout != "started\n" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("exec took %s: waited for the background child", d)
		}
	})
	t.Run("kill 1 does not end the node", func(t *testing.T) {
		run(t, sb, "h1", "kill", "-TERM", "1")
		run(t, sb, "h1", "kill", "-KILL", "1")
		mustRun(t, sb, "h1", "true")
	})
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostTrace is what a sandbox may leave on the host.
func hostTrace(m *Manager, id string) []string {
	var left []string
	for _, d := range m.cg.dirs(id) {
		if _, err := os.Stat(d); err == nil {
			left = append(left, "cgroup "+d)
		}
	}
	if _, err := os.Stat(m.sandboxDir(id)); err == nil {
		left = append(left, "state dir "+m.sandboxDir(id))
	}
	for pid, args := range m.taggedProcs() {
		if args[2] == id {
			left = append(left, fmt.Sprintf("process %d %v", pid, args))
		}
	}
	return left
}

func parseLab(t *testing.T, y string) *labs.Lab {
	t.Helper()
	l, err := labs.Parse([]byte(y), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const twoNodes = `
id: t
title: t
nodes:
  - name: a
    interfaces: [{name: eth0, addresses: [10.9.0.1/24]}]
  - name: b
    interfaces: [{name: eth0, addresses: [10.9.0.2/24]}]
%s
links:
  - endpoints: [a:eth0, b:eth0]
`

func TestRollback(t *testing.T) {
	m := testManager(t)
	tests := []struct {
		name, extra, want string
	}{
		{"bad nftables", `    nftables: "table inet f { chain c { type filter hook input priority 0; policy nope; } }"`, "nftables"},
		{"unreachable gateway", `    routes: [{dst: 10.50.0.0/16, via: 10.9.0.99, dev: eth0, table: 100}]
    rules: [{from: 10.9.0.0/24, table: 100, iif: nosuch0}]`, "rules[0]"},
		{"service that cannot exec", `    services: [{kind: command, name: x, command: [/nonexistent/binary]}]`, "service x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(twoNodes, "%s", "", 1)
			y = strings.Replace(y, "    interfaces: [{name: eth0, addresses: [10.9.0.2/24]}]\n",
				"    interfaces: [{name: eth0, addresses: [10.9.0.2/24]}]\n"+tc.extra+"\n", 1)
			lab, err := labs.Parse([]byte(y), "test.yaml")
			if err != nil {
				// Static validation caught it first; that is a refusal too.
				if !strings.Contains(err.Error(), strings.TrimSuffix(tc.want, "[0]")) {
					t.Logf("refused at validation: %v", err)
				}
				return
			}
			id := NewID()
			_, err = m.Build(context.Background(), lab, id, testUIDs(lab))
			if err == nil {
				m.Destroy(context.Background(), id)
				t.Fatal("build succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if left := hostTrace(m, id); len(left) > 0 {
				t.Errorf("rollback left: %v", left)
			}
		})
	}
}

func TestUnsupportedFeatureRefused(t *testing.T) {
	m := testManager(t)
	lab := parseLab(t, strings.Replace(twoNodes, "%s", "", 1))
	lab.Requires = []string{"netem"}
	if kernelFeatures()["netem"] {
		t.Skip("this kernel has netem")
	}
	id := NewID()
	_, err := m.Build(context.Background(), lab, id, testUIDs(lab))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "netem") {
		t.Fatalf("build = %v, want ErrUnsupported naming netem", err)
	}
	if left := hostTrace(m, id); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestDestroyIdempotentAndComplete(t *testing.T) {
	m := testManager(t)
	lab := catalogLab(t, "routed")
	id := NewID()
	sb, err := m.Build(context.Background(), lab, id, testUIDs(lab))
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{sb.hub.pid}
	for _, p := range sb.nodes {
		pids = append(pids, p.pid)
	}
	sb.Close()
	for i := range 2 {
		if err := m.Destroy(context.Background(), id); err != nil {
			t.Fatalf("destroy #%d: %v", i+1, err)
		}
	}
	if left := hostTrace(m, id); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	for _, pid := range pids {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z") {
			t.Errorf("process %d still alive", pid)
		}
	}
}

const featureLab = `
id: features
title: features
nodes:
  - name: r
    interfaces:
      - {name: eth0, addresses: [10.1.0.1/24], mtu: 1400}
      - {name: eth1, addresses: [10.2.0.1/24, fd00:2::1/64]}
      - {name: eth2, addresses: [10.3.0.1/24], down: true, mac: "02:00:00:00:00:33"}
    routes:
      - {dst: default, nexthops: [{via: 10.1.0.2, weight: 3}, {via: 10.2.0.2, weight: 1}]}
      - {dst: 192.0.2.0/24, via: 10.2.0.2, table: 100, metric: 50}
    rules:
      - {from: 10.1.0.0/24, table: 100, priority: 1000}
    sysctls:
      net.ipv4.ip_forward: "1"
      net.ipv4.conf.eth1.rp_filter: "2"
    nftables: |
      table inet filter {
        chain input {
          type filter hook input priority 0; policy accept;
          tcp dport 22 ip saddr 10.1.0.0/24 accept
        }
      }
  - name: a
    interfaces: [{name: eth0, addresses: [10.1.0.2/24], mtu: 1400}]
  - name: b
    interfaces: [{name: eth0, addresses: [10.2.0.2/24, fd00:2::2/64]}]
  - name: c
    interfaces: [{name: eth0, addresses: [10.3.0.2/24]}]
links:
  - endpoints: [r:eth0, a:eth0]
  - endpoints: [r:eth1, b:eth0]
  - endpoints: [r:eth2, c:eth0]
`

func TestNodeConfiguration(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, parseLab(t, featureLab))
	checks := []struct {
		name string
		argv []string
		want []string
	}{
		{"mtu", []string{"ip", "-o", "link", "show", "eth0"}, []string{"mtu 1400"}},
		{"down link", []string{"ip", "-o", "link", "show", "eth2"}, []string{"state DOWN", "02:00:00:00:00:33"}},
		{"addresses", []string{"ip", "-o", "addr"}, []string{"10.1.0.1/24", "10.2.0.1/24", "fd00:2::1/64"}},
		{"multipath weights", []string{"ip", "route", "show", "default"}, []string{"nexthop via 10.1.0.2 dev eth0 weight 3", "nexthop via 10.2.0.2 dev eth1 weight 1"}},
		{"table route", []string{"ip", "route", "show", "table", "100"}, []string{"192.0.2.0/24 via 10.2.0.2 dev eth1 metric 50"}},
		{"rule", []string{"ip", "rule"}, []string{"1000:\tfrom 10.1.0.0/24 lookup 100"}},
		{"sysctls", []string{"sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.eth1.rp_filter"}, []string{"ip_forward = 1", "rp_filter = 2"}},
		{"nftables", []string{"nft", "list", "ruleset"}, []string{"tcp dport 22", "10.1.0.0/24"}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			out := mustRun(t, sb, "r", c.argv...)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%v lacks %q:\n%s", c.argv, w, out)
				}
			}
		})
	}
	t.Run("inspect", func(t *testing.T) {
		infos, err := sb.Inspect()
		if err != nil {
			t.Fatal(err)
		}
		r := infos[0]
		if r.Name != "r" || len(r.Interfaces) != 3 || r.Interfaces[0].MTU != 1400 || r.Interfaces[2].Up || r.Interfaces[1].Link != "l2" {
			t.Errorf("inspect r = %+v", r)
		}
	})
	t.Run("nothing in the host namespace", func(t *testing.T) {
		b, _ := os.ReadFile("/proc/net/dev")
		for _, name := range []string{"br-l1", "v1:"} {
			if strings.Contains(string(b), name) {
				t.Errorf("host has %s", name)
			}
		}
	})
}

func TestScanFindsOrphans(t *testing.T) {
	m := testManager(t)
	lab := catalogLab(t, "hello-link")
	id := NewID()
	sb, err := m.Build(context.Background(), lab, id, testUIDs(lab))
	if err != nil {
		t.Fatal(err)
	}
	sb.Close()
	found := false
	for _, s := range m.Scan() {
		found = found || s == id
	}
	if !found {
		t.Fatalf("Scan() does not list %s", id)
	}
	// Adopt works from the id, pids and start times alone.
	sb2, err := m.Adopt(context.Background(), lab, id, sb.Nodes())
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, sb2, "h1", "ping", "-c1", "-W2", "10.0.0.2")
	sb2.Close()
	// A wrong start time is a different process.
	bad := sb.Nodes()
	bad[0].StartTime++
	if _, err := m.Adopt(context.Background(), lab, id, bad); !errors.Is(err, ErrGone) {
		t.Errorf("adopt with a wrong start time = %v, want ErrGone", err)
	}
	if err := m.Destroy(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	for _, s := range m.Scan() {
		if s == id {
			t.Errorf("Scan() still lists %s after Destroy", id)
		}
	}
	_ = filepath.Join
}

// TestNodeSyscallFilter: reboot(2) from a node would kill the node's init
// (the pid namespace's reboot semantics); module loading and kexec reach
// the host kernel. All fail with EPERM and the node keeps running.
func TestNodeSyscallFilter(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	for _, tc := range []struct{ name, perl string }{
		{"reboot", `syscall(169, 0xfee1dead, 672274793, 0x1234567, 0)`},
		{"kexec_load", `syscall(246, 0, 0, 0, 0)`},
		{"init_module", `my $s = ""; syscall(175, 0, 0, $s)`},
		{"finit_module", `my $s = ""; syscall(313, 0, $s, 0)`},
		{"delete_module", `my $s = "veth"; syscall(176, $s, 0)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustRun(t, sb, "h1", "perl", "-e", `my $r = do { `+tc.perl+` }; print "$r $!\n";`)
			if !strings.HasPrefix(out, "-1 Operation not permitted") {
				t.Errorf("%s returned %q, want -1 EPERM", tc.name, out)
			}
		})
	}
	mustRun(t, sb, "h1", "true") // the node is still there
	if got := strings.TrimSpace(mustRun(t, sb, "h1", "hostname")); got != "h1" {
		t.Errorf("hostname = %q", got)
	}
}

// TestNodeNamespaceLimits: each node may hold Config.NodeNamespaces of
// each kind, its own included, counted per node — not per Manager, so a
// Manager starts more nodes than that.
func TestNodeNamespaceLimits(t *testing.T) {
	requireRoot(t)
	parent := "nslab-test-" + randSuffix()
	m, err := NewManager(Config{StateDir: testStateDir(t), CgroupParent: parent, NodeNamespaces: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	t.Cleanup(func() {
		m.Destroy(context.Background(), id)
		m.Close()
		for _, r := range m.cg.roots {
			os.Remove(r + "/" + parent)
		}
	})
	if err := os.MkdirAll(m.sandboxDir(id), 0o711); err != nil {
		t.Fatal(err)
	}
	os.Chmod(m.sandboxDir(id), 0o711)
	// Twelve nodes: more than the limit of any kind (mount namespaces: 8).
	var nodes []*proc
	for i := range 12 {
		p, err := m.startNode(context.Background(), id, fmt.Sprintf("n%d", i), uidNext, []byte("127.0.0.1 localhost\n"), cgLimits{pids: 64, memory: 64 << 20})
		uidNext += UIDRange
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(p.close)
		nodes = append(nodes, p)
	}
	exec := func(p *proc, script string) string {
		var out strings.Builder
		st, err := p.exec(context.Background(), ExecRequest{Argv: []string{"sh", "-c", script}, Timeout: 20 * time.Second},
			func(_ int, b []byte) error { out.Write(b); return nil })
		if err != nil || st.Code != 0 {
			t.Fatalf("%q: %v %+v %s", script, err, st, out.String())
		}
		return out.String()
	}
	for _, p := range []*proc{nodes[0], nodes[11]} {
		out := exec(p, `ip netns add a && echo made-one; ip netns add b 2>&1 | tail -1; unshare -m true && echo own-mount-ns; ip netns del a`)
		if !strings.Contains(out, "made-one") || !strings.Contains(out, "No space left on device") || !strings.Contains(out, "own-mount-ns") {
			t.Errorf("node %s with 2 network namespaces each: %s", p.name, out)
		}
	}
}
