package sandbox

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

// reflectPL answers every ICMP echo request its node sends to TARGET
// with an echo reply "from" TARGET, made in the node and looped back into
// its own stack: the target never sees an answer leave. It prints
// "reflected" per reply. reflect IFACE TARGET SECS.
const reflectPL = `use strict; use warnings; use Socket;
my ($ifname, $target, $secs) = @ARGV;
sub csum {
	my $d = shift; $d .= "\0" if length($d) % 2;
	my $s = 0; $s += $_ for unpack("n*", $d);
	$s = ($s >> 16) + ($s & 0xffff) while $s >> 16;
	return ~$s & 0xffff;
}
open(my $f, "<", "/sys/class/net/$ifname/ifindex") or die; my $ifindex = <$f> + 0; close $f;
socket(my $sn, 17, SOCK_DGRAM, 0x0300) or die "packet socket: $!"; # AF_PACKET, htons(ETH_P_ALL)
bind($sn, pack("SnISCCa8", 17, 0x0003, $ifindex, 0, 0, 0, "")) or die "bind: $!";
socket(my $raw, PF_INET, SOCK_RAW, 255) or die "raw socket: $!"; # IPPROTO_RAW
my $want = inet_aton($target);
$SIG{ALRM} = sub { exit 0 }; alarm $secs;
$| = 1; print "ready\n";
while (1) {
	my $from = recv($sn, my $pkt, 65535, 0);
	next unless defined $from && length($pkt) >= 28;
	next unless unpack("n", substr($from, 2, 2)) == 0x0800 && unpack("C", substr($from, 10, 1)) == 4; # IPv4, outgoing
	my $ihl = (unpack("C", $pkt) & 15) * 4;
	next unless unpack("C", substr($pkt, 9, 1)) == 1 && substr($pkt, 16, 4) eq $want;
	my $icmp = substr($pkt, $ihl);
	next unless unpack("C", $icmp) == 8;
	my $src = substr($pkt, 12, 4);
	substr($icmp, 0, 1) = pack("C", 0); substr($icmp, 2, 2) = pack("n", 0);
	substr($icmp, 2, 2) = pack("n", csum($icmp));
	my $ip = pack("CCnnnCCna4a4", 0x45, 0, 20 + length $icmp, int(rand(65535)), 0, 64, 1, 0, $want, $src) . $icmp;
	send($raw, $ip, 0, sockaddr_in(0, $src)) or warn "send: $!";
	print "reflected\n";
}
`

// localServersPL serves, in the node it runs in, a UDP echo on port 7007
// and a fixed web page on TCP port 8080 that reads like h2's. The UDP
// socket is bound to 127.0.0.1, where a redirect delivers, so that its
// replies match the connection and conntrack gives them the target's
// address back.
const localServersPL = `use strict; use warnings; use IO::Socket::INET;
my $u = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 7007, Proto => "udp") or die "udp: $!";
my $l = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die "tcp: $!";
$| = 1; print "ready\n";
if (fork() == 0) { while (1) { my $peer = $u->recv(my $d, 2048); $u->send($d, 0, $peer) if defined $peer } }
while (my $c = $l->accept) {
	while (my $line = <$c>) { last if $line =~ /^\r?$/ }
	print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from h2\n";
	close $c;
}
`

// background starts cmd in node as a session of its own (an exec's
// process group ends with the exec), writing its output to /tmp/<name>.out,
// and waits until that output contains ready (if not empty).
func background(t *testing.T, sb *Sandbox, node, name, cmd, ready string) {
	t.Helper()
	writeFile(t, sb, node, "/tmp/"+name+".sh", "echo $$ > /tmp/"+name+".pid\nexec "+cmd+"\n")
	// Return only once the command has its own session: the exec's
	// process group is killed when the exec ends.
	mustRun(t, sb, node, "sh", "-c", fmt.Sprintf(`rm -f /tmp/%[1]s.pid
setsid sh /tmp/%[1]s.sh </dev/null >/tmp/%[1]s.out 2>&1 &
while [ ! -s /tmp/%[1]s.pid ]; do sleep 0.01; done`, name))
	if ready == "" {
		return
	}
	pollUntil(t, 10*time.Second, func() bool {
		return strings.Contains(run(t, sb, node, "cat", "/tmp/"+name+".out").stdout, ready)
	})
}

// stopBackground ends a process background started, by its pid.
func stopBackground(t *testing.T, sb *Sandbox, node, name string) {
	t.Helper()
	run(t, sb, node, "sh", "-c", fmt.Sprintf("kill $(cat /tmp/%s.pid) 2>/dev/null; true", name))
}

// writeFile writes content to path in node.
func writeFile(t *testing.T, sb *Sandbox, node, path, content string) {
	t.Helper()
	var out, errb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := sb.Exec(ctx, node, ExecRequest{Argv: []string{"sh", "-c", "cat > " + path}, Stdin: strings.NewReader(content), Timeout: 10 * time.Second},
		func(s int, b []byte) error {
			if s == Stdout {
				out.Write(b)
			} else {
				errb.Write(b)
			}
			return nil
		})
	if err != nil || st.Code != 0 {
		t.Fatalf("write %s in %s: %v %v %s", path, node, err, st, errb.String())
	}
}

// expectNotCrossed fails unless r says its answer never crossed the hub,
// with a detail containing every one of wants.
func expectNotCrossed(t *testing.T, what string, r labs.ProbeResult, err error, wants ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %s: %s", what, r.Outcome, r.Detail)
	if r.Outcome != labs.OutcomeNotCrossed {
		t.Errorf("%s: outcome %q (%s), want %q: the forged answer counted", what, r.Outcome, r.Detail, labs.OutcomeNotCrossed)
		return
	}
	for _, w := range wants {
		if !strings.Contains(r.Detail, w) {
			t.Errorf("%s: detail %q lacks %q", what, r.Detail, w)
		}
	}
}

func expectOutcome(t *testing.T, what string, r labs.ProbeResult, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %s in rtt %v: %s", what, r.Outcome, r.RTT.Round(time.Microsecond), r.Detail)
	if r.Outcome != want {
		t.Errorf("%s: outcome %q (%s), want %q", what, r.Outcome, r.Detail, want)
	}
}

// TestProbeForgedAnswers: answers made inside the probing node, or by a
// router in the target's place, never count. The routed lab, h1 ─ r1 ─
// r2 ─ h2; the subtests share one sandbox and run in order.
func TestProbeForgedAnswers(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "routed"))
	ctx := context.Background()
	waitRoutedServices(t, sb)

	t.Run("honest", func(t *testing.T) {
		r, err := sb.Ping(ctx, "h1", "h2", 0)
		expectOutcome(t, "ping h2", r, err, labs.OutcomeReply)
		r, err = sb.TCPProbe(ctx, "h1", "h2", 7, true, 0)
		expectOutcome(t, "tcp 7 echo", r, err, labs.OutcomeConnected)
		r, err = sb.TCPProbe(ctx, "h1", "h2", 9, false, 0)
		expectOutcome(t, "tcp 9", r, err, labs.OutcomeRefused)
		r, err = sb.UDPProbe(ctx, "h1", "h2", 7, 0)
		expectOutcome(t, "udp 7", r, err, labs.OutcomeReply)
		r, err = sb.HTTPProbe(ctx, "h1", "http://h2/", 0)
		expectOutcome(t, "http", r, err, labs.OutcomeConnected)
	})

	// h2 goes silent: it drops pings and the echo, web and discard ports.
	mustRun(t, sb, "h2", "sh", "-c", strings.Join([]string{
		"nft add table inet quiet",
		"nft add chain inet quiet in '{ type filter hook input priority 0; }'",
		"nft add rule inet quiet in icmp type echo-request drop",
		"nft add rule inet quiet in meta l4proto { tcp, udp } th dport { 7, 9, 80 } drop",
	}, " && "))
	t.Run("silent target", func(t *testing.T) {
		r, err := sb.Ping(ctx, "h1", "h2", 200*time.Millisecond)
		expectOutcome(t, "ping h2", r, err, labs.OutcomeNoReply)
		r, err = sb.TCPProbe(ctx, "h1", "h2", 7, false, 200*time.Millisecond)
		expectOutcome(t, "tcp 7", r, err, labs.OutcomeTimeout)
	})

	t.Run("ping reflected by a raw socket in the prober", func(t *testing.T) {
		writeFile(t, sb, "h1", "/tmp/reflect.pl", reflectPL)
		background(t, sb, "h1", "reflect", "perl /tmp/reflect.pl eth0 10.0.2.10 30", "ready")
		defer stopBackground(t, sb, "h1", "reflect")
		r, err := sb.Ping(ctx, "h1", "h2", 0)
		expectNotCrossed(t, "ping h2", r, err, "never crossed link h1-r1", "the answer came from h1 itself", "left on h1-r1")
		if out := run(t, sb, "h1", "cat", "/tmp/reflect.out").stdout; !strings.Contains(out, "reflected") {
			t.Errorf("the reflector did not answer (so the test proves nothing): %q", out)
		}
		r, err = sb.PMTUProbe(ctx, "h1", "h2", 0)
		expectNotCrossed(t, "pmtu h2", r, err, "the answer came from h1 itself")
	})

	t.Run("ping turned back to the prober by nft", func(t *testing.T) {
		mustRun(t, sb, "h1", "sh", "-c", "nft add table ip back && nft add chain ip back out '{ type nat hook output priority -100; }' && nft add rule ip back out ip daddr 10.0.2.10 icmp type echo-request dnat to 10.0.1.10")
		defer mustRun(t, sb, "h1", "nft", "delete", "table", "ip", "back")
		r, err := sb.Ping(ctx, "h1", "h2", 0)
		expectNotCrossed(t, "ping h2", r, err, "never crossed link h1-r1", "the answer came from h1 itself", "never left h1")
	})

	t.Run("tcp and http redirected to local servers", func(t *testing.T) {
		mustRun(t, sb, "h1", "sh", "-c", strings.Join([]string{
			"nft add table ip redir",
			"nft add chain ip redir out '{ type nat hook output priority -100; }'",
			"nft add rule ip redir out ip daddr 10.0.2.10 tcp dport 7 redirect to :7007",
			"nft add rule ip redir out ip daddr 10.0.2.10 udp dport 7 redirect to :7007",
			"nft add rule ip redir out ip daddr 10.0.2.10 tcp dport 80 redirect to :8080",
		}, " && "))
		defer mustRun(t, sb, "h1", "nft", "delete", "table", "ip", "redir")
		background(t, sb, "h1", "techo", "timeout 60 socat TCP-LISTEN:7007,fork,reuseaddr EXEC:cat", "")
		writeFile(t, sb, "h1", "/tmp/servers.pl", localServersPL)
		background(t, sb, "h1", "servers", "timeout 60 perl /tmp/servers.pl", "ready")
		defer func() {
			for _, n := range []string{"techo", "servers"} {
				stopBackground(t, sb, "h1", n)
			}
		}()
		pollUntil(t, 10*time.Second, func() bool {
			out := run(t, sb, "h1", "ss", "-ltnu").stdout
			return strings.Contains(out, ":7007") && strings.Contains(out, ":8080")
		})
		r, err := sb.TCPProbe(ctx, "h1", "h2", 7, true, 0)
		expectNotCrossed(t, "tcp 7 echo", r, err, "never crossed link h1-r1", "the answer came from h1 itself", "SYN to 10.0.2.10 never left h1")
		r, err = sb.TCPProbe(ctx, "h1", "h2", 7, false, 0)
		expectNotCrossed(t, "tcp 7", r, err, "the answer came from h1 itself")
		r, err = sb.UDPProbe(ctx, "h1", "h2", 7, 0)
		expectNotCrossed(t, "udp 7", r, err, "the answer came from h1 itself", "datagram to 10.0.2.10 never left h1")
		r, err = sb.HTTPProbe(ctx, "h1", "http://h2/", 0)
		expectNotCrossed(t, "http", r, err, "the answer came from h1 itself")
		if r.Status != 0 || r.Body != "" {
			t.Errorf("http: a forged response left status %d body %q in the result", r.Status, r.Body)
		}
	})

	t.Run("refusal forged by the prober's own firewall", func(t *testing.T) {
		mustRun(t, sb, "h1", "sh", "-c", "nft add table inet rst && nft add chain inet rst out '{ type filter hook output priority 0; }' && nft add rule inet rst out ip daddr 10.0.2.10 tcp dport 9 reject with tcp reset && nft add rule inet rst out ip daddr 10.0.2.10 udp dport 9 reject with icmpx port-unreachable")
		defer mustRun(t, sb, "h1", "nft", "delete", "table", "inet", "rst")
		r, err := sb.TCPProbe(ctx, "h1", "h2", 9, false, 300*time.Millisecond)
		expectNotCrossed(t, "tcp 9", r, err, "the answer came from h1 itself", "a forged RST answered it")
		r, err = sb.UDPProbe(ctx, "h1", "h2", 9, 300*time.Millisecond)
		expectNotCrossed(t, "udp 9", r, err, "the answer came from h1 itself")
	})

	t.Run("a router answering in the target's place", func(t *testing.T) {
		// r1 turns h1's pings to h2 to itself; conntrack gives the reply
		// h2's address, and it does cross h1-r1 — from r1, not from h2.
		mustRun(t, sb, "r1", "sh", "-c", "nft add table ip mitm && nft add chain ip mitm pre '{ type nat hook prerouting priority -100; }' && nft add rule ip mitm pre ip daddr 10.0.2.10 icmp type echo-request dnat to 10.0.1.1")
		defer mustRun(t, sb, "r1", "nft", "delete", "table", "ip", "mitm")
		r, err := sb.Ping(ctx, "h1", "h2", 0)
		expectNotCrossed(t, "ping h2", r, err, "never came from h2", "from r1:eth0")
	})

	t.Run("honest again", func(t *testing.T) {
		mustRun(t, sb, "h2", "nft", "delete", "table", "inet", "quiet")
		r, err := sb.Ping(ctx, "h1", "h2", 0)
		expectOutcome(t, "ping h2", r, err, labs.OutcomeReply)
		r, err = sb.TCPProbe(ctx, "h1", "h2", 7, true, 0)
		expectOutcome(t, "tcp 7 echo", r, err, labs.OutcomeConnected)
		r, err = sb.HTTPProbe(ctx, "h1", "http://h2/", 0)
		expectOutcome(t, "http", r, err, labs.OutcomeConnected)
	})
}

// TestProbeLocalTargets: exchanges that need no link still count, and
// say why; a node without links cannot be answered from across one.
func TestProbeLocalTargets(t *testing.T) {
	m := testManager(t)
	lab := catalogLab(t, "hello-link")
	// h3 has no link at all.
	lab.Nodes = append(lab.Nodes, labs.Node{Name: "h3"})
	sb := build(t, m, lab)
	ctx := context.Background()

	t.Run("own address and loopback", func(t *testing.T) {
		r, err := sb.Ping(ctx, "h1", "10.0.0.1", 0)
		expectOutcome(t, "ping own address", r, err, labs.OutcomeReply)
		if !strings.Contains(r.Detail, "h1's own address") {
			t.Errorf("detail %q does not say the address is h1's own", r.Detail)
		}
		background(t, sb, "h1", "lecho", "timeout 60 socat TCP-LISTEN:7007,bind=127.0.0.1,fork,reuseaddr EXEC:cat", "")
		pollUntil(t, 10*time.Second, func() bool { return strings.Contains(run(t, sb, "h1", "ss", "-ltn").stdout, "127.0.0.1:7007") })
		r, err = sb.TCPProbe(ctx, "h1", "127.0.0.1", 7007, true, 0)
		expectOutcome(t, "tcp 127.0.0.1 echo", r, err, labs.OutcomeConnected)
		if !strings.Contains(r.Detail, "loopback") {
			t.Errorf("detail %q does not say the address is a loopback one", r.Detail)
		}
	})

	t.Run("a namespace inside the prober", func(t *testing.T) {
		mustRun(t, sb, "h1", "sh", "-c", strings.Join([]string{
			"ip netns add blue",
			"ip link add vb type veth peer name eth0 netns blue",
			"ip addr add 10.200.0.1/24 dev vb", "ip link set vb up",
			"ip netns exec blue ip addr add 10.200.0.2/24 dev eth0",
			"ip netns exec blue ip link set eth0 up", "ip netns exec blue ip link set lo up",
		}, " && "))
		r, err := sb.Ping(ctx, "h1", "10.200.0.2", 0)
		expectOutcome(t, "ping 10.200.0.2", r, err, labs.OutcomeReply)
		if !strings.Contains(r.Detail, "on no lab link") {
			t.Errorf("detail %q does not say the hub cannot vouch for it", r.Detail)
		}
	})

	t.Run("another node's address held by the prober", func(t *testing.T) {
		// h1 takes h2's address: its own stack answers, which is not h2.
		mustRun(t, sb, "h1", "ip", "addr", "add", "10.0.0.2/32", "dev", "lo")
		defer mustRun(t, sb, "h1", "ip", "addr", "del", "10.0.0.2/32", "dev", "lo")
		r, err := sb.Ping(ctx, "h1", "h2", 0)
		expectNotCrossed(t, "ping h2", r, err, "never crossed link l1", "the answer came from h1 itself", "never left h1")
	})

	t.Run("a node with no link", func(t *testing.T) {
		r, err := sb.Ping(ctx, "h3", "h2", 200*time.Millisecond)
		expectOutcome(t, "ping h2 from h3", r, err, labs.OutcomeUnreachable)
		mustRun(t, sb, "h3", "sh", "-c", "ip link set lo up && ip addr add 10.0.0.2/32 dev lo")
		r, err = sb.Ping(ctx, "h3", "h2", 0)
		expectNotCrossed(t, "ping h2 from h3", r, err, "h3 has no link to the hub")
	})
}

// TestProbeScope classifies probe targets from the lab definitions alone.
func TestProbeScope(t *testing.T) {
	for _, tc := range []struct {
		lab, from, to string
		local         string // a substring of scope.local; "" = must cross
		owners        string
		toward        string
	}{
		{lab: "routed", from: "h1", to: "10.0.2.10", owners: "h2", toward: "h1-r1"},
		{lab: "routed", from: "h1", to: "fd00:2::10", owners: "h2", toward: "h1-r1"},
		{lab: "routed", from: "r1", to: "10.0.2.10", owners: "h2", toward: "r1-r2"},
		{lab: "routed", from: "r1", to: "10.0.2.77", toward: "r1-r2"}, // no owner, on a lab subnet
		{lab: "routed", from: "h1", to: "10.0.1.10", local: "h1's own address"},
		{lab: "routed", from: "h1", to: "127.0.0.1", local: "loopback"},
		{lab: "routed", from: "h1", to: "::1", local: "loopback"},
		{lab: "routed", from: "h1", to: "10.200.0.2", local: "on no lab link"}, // h1 has only a default route
		{lab: "namespaces", from: "host", to: "10.200.0.2", local: "on no lab link"},
		{lab: "namespaces", from: "peer", to: "10.200.0.2", toward: "lan"}, // the lab routes it to host
		{lab: "container-networking", from: "host", to: "172.18.0.2", local: "on no lab link"},
		{lab: "container-networking", from: "outside", to: "10.0.0.1", owners: "host", toward: "uplink"},
	} {
		t.Run(tc.lab+"/"+tc.from+"->"+tc.to, func(t *testing.T) {
			lab := catalogLab(t, tc.lab)
			sb := &Sandbox{ID: "test", Lab: lab, capture: &Capture{}}
			for _, seg := range lab.AllSegments() {
				for _, ep := range seg.Endpoints {
					sb.capture.ports = append(sb.capture.ports, capPort{link: seg.Name, endpoint: ep})
				}
			}
			sp, err := sb.probeScope(tc.from, netip.MustParseAddr(tc.to))
			if err != nil {
				t.Fatal(err)
			}
			if tc.local == "" && sp.local != "" || tc.local != "" && !strings.Contains(sp.local, tc.local) {
				t.Errorf("local %q, want %q", sp.local, tc.local)
			}
			if got := strings.Join(sp.owners, ","); got != tc.owners {
				t.Errorf("owners %q, want %q", got, tc.owners)
			}
			if tc.local == "" && sp.toward != tc.toward {
				t.Errorf("toward %q, want %q", sp.toward, tc.toward)
			}
		})
	}
	sb := &Sandbox{ID: "test", Lab: catalogLab(t, "routed")}
	if _, err := sb.probeScope("h1", netip.MustParseAddr("10.0.2.10")); err == nil {
		t.Error("a sandbox without a capture: no error")
	}
}

func TestProbeStreamCrossed(t *testing.T) {
	read := []byte("hello nslab-0123456789abcdef\n")
	seg := func(off int, b string, wire int) tcpSeg {
		return tcpSeg{seq: 1000 + uint32(off), payload: []byte(b), payloadLen: wire}
	}
	for _, tc := range []struct {
		name string
		segs []tcpSeg
		want string // substring of the complaint; "" = fine
	}{
		{"one segment", []tcpSeg{seg(0, string(read), len(read))}, ""},
		{"two segments out of order", []tcpSeg{seg(6, string(read[6:]), len(read)-6), seg(0, "hello ", 6)}, ""},
		{"a retransmission", []tcpSeg{seg(0, "hello ", 6), seg(0, "hello ", 6), seg(6, string(read[6:]), len(read)-6)}, ""},
		{"cut by the snaplen", []tcpSeg{seg(0, "hello", len(read))}, ""},
		{"a gap", []tcpSeg{seg(0, "hello ", 6), seg(10, string(read[10:]), len(read)-10)}, "only the first 6"},
		{"nothing", nil, "only the first 0"},
		{"other bytes", []tcpSeg{seg(0, "hello nslab-9999", len(read))}, "byte 12"},
		{"sequence wrap", []tcpSeg{{seq: 0xfffffffe, payload: read, payloadLen: len(read)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := uint32(1000)
			if tc.name == "sequence wrap" {
				start = 0xfffffffe
			}
			got := tcpStreamCrossed(tc.segs, start, read, len(read))
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProbeParseWire(t *testing.T) {
	eth := func(et uint16) []byte {
		return append(make([]byte, 12), byte(et>>8), byte(et))
	}
	// IPv4 TCP SYN 10.0.0.1:40000 > 10.0.0.2:7, padded to 60 bytes.
	ip := []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	tcp := []byte{0x9c, 0x40, 0, 7, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, tcpSYN, 0xff, 0xff, 0, 0, 0, 0}
	f := append(append(eth(0x0800), ip...), tcp...)
	f = append(f, make([]byte, 6)...) // Ethernet padding
	var p wirePkt
	if !parseWire(f, &p) {
		t.Fatal("not parsed")
	}
	s, ok := p.tcp()
	if !ok || s.sport != 40000 || s.dport != 7 || s.seq != 1000 || s.flags != tcpSYN || s.payloadLen != 0 || len(s.payload) != 0 {
		t.Errorf("tcp %+v ok %v (padding must not be payload)", s, ok)
	}
	// A later fragment is not decoded.
	frag := append([]byte(nil), f...)
	frag[14+6], frag[14+7] = 0, 8
	if parseWire(frag, &p) {
		t.Error("a later fragment was decoded")
	}
	// An ICMP port unreachable quoting a UDP datagram from port 5353.
	quotedIP := []byte{0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	quotedUDP := []byte{0x14, 0xe9, 0, 9, 0, 16, 0, 0}
	icmp := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, append(quotedIP, quotedUDP...)...)
	outer := []byte{0x45, 0, 0, byte(20 + len(icmp)), 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1}
	f = append(append(eth(0x0800), outer...), icmp...)
	if !parseWire(f, &p) || !p.quotesPort(17, 5353) || p.quotesPort(17, 5354) || p.quotesPort(6, 5353) {
		t.Errorf("ICMP error quoting udp 5353 not recognised: %+v", p)
	}
	// IPv6 echo request with a hop-by-hop header.
	ip6 := make([]byte, 40)
	ip6[0] = 0x60
	ip6[5] = 8 + 24
	ip6[6] = 0 // hop-by-hop
	ip6[23], ip6[39] = 1, 2
	hbh := []byte{58, 0, 1, 4, 0, 0, 0, 0}
	echo := append([]byte{128, 0, 0, 0, 0x12, 0x34, 0, 9}, []byte("nslab-nonce-1234")...)
	f = append(append(append(eth(0x86dd), ip6...), hbh...), echo...)
	if !parseWire(f, &p) {
		t.Fatal("IPv6 not parsed")
	}
	req, id, seq, data, ok := p.echo()
	if !ok || !req || id != 0x1234 || seq != 9 || string(data) != "nslab-nonce-1234" {
		t.Errorf("echo: req %v id %#x seq %d data %q ok %v", req, id, seq, data, ok)
	}
}

func TestProbeJudgeMessages(t *testing.T) {
	sp := &probeScope{from: "h1", dst: netip.MustParseAddr("10.0.2.10"), owners: []string{"h2"}, toward: "h1-r1"}
	for _, tc := range []struct {
		x    crossing
		want string
	}{
		{crossing{request: "echo request", answer: "echo reply"}, "the reply never crossed link h1-r1: the answer came from h1 itself (its echo request to 10.0.2.10 never left h1"},
		{crossing{request: "echo request", answer: "echo reply", sentOn: "h1-r1"}, "the reply never crossed link h1-r1: the answer came from h1 itself (its echo request to 10.0.2.10 left on h1-r1, but no echo reply came back"},
		{crossing{request: "SYN", answer: "SYN-ACK", sentOn: "h1-r1", nearBy: "r1:eth0", needOwner: true}, "the reply never came from h2: a SYN-ACK reached h1 from r1:eth0"},
		{crossing{request: "SYN", answer: "RST", sentOn: "h1-r1", nearBy: "r1:eth0"}, ""},
		{crossing{request: "SYN", answer: "SYN-ACK", sentOn: "h1-r1", nearBy: "r1:eth0", needOwner: true, ownerBy: "h2:eth0"}, ""},
	} {
		got := sp.judge(tc.x)
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("judge(%+v) = %q, want %q…", tc.x, got, tc.want)
		}
	}
	lonely := &probeScope{from: "h3", dst: netip.MustParseAddr("10.0.0.2")}
	if got := lonely.judge(crossing{request: "echo request", answer: "echo reply"}); !strings.Contains(got, "h3 has no link to the hub") {
		t.Errorf("no-link message %q", got)
	}
}
