package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

// TestProbeRouted probes across the routed lab, h1 ─ r1 ─ r2 ─ h2, as a
// learner's checks would. The subtests share one sandbox and run in
// order: later ones change the firewall and MTUs.
func TestProbeRouted(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "routed"))
	ctx := context.Background()
	waitRoutedServices(t, sb)

	type probeFn func() (labs.ProbeResult, error)
	expect := func(t *testing.T, name string, fn probeFn, outcomes ...string) labs.ProbeResult {
		t.Helper()
		start := time.Now()
		r, err := fn()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %s in %v (rtt %v): %s", name, r.Outcome, took.Round(time.Microsecond), r.RTT.Round(time.Microsecond), r.Detail)
		for _, o := range outcomes {
			if r.Outcome == o {
				return r
			}
		}
		t.Errorf("%s: outcome %q (%s), want %v", name, r.Outcome, r.Detail, outcomes)
		return r
	}

	t.Run("ping", func(t *testing.T) {
		for _, to := range []string{"10.0.2.10", "h2", "fd00:2::10", "10.0.1.10"} {
			r := expect(t, "ping "+to, func() (labs.ProbeResult, error) { return sb.Ping(ctx, "h1", to, 0) }, labs.OutcomeReply)
			if r.RTT <= 0 || r.RTT > time.Second {
				t.Errorf("ping %s: rtt %v", to, r.RTT)
			}
		}
		r := expect(t, "ping h2 by name", func() (labs.ProbeResult, error) { return sb.Ping(ctx, "h1", "h2", 0) }, labs.OutcomeReply)
		if r.To != "10.0.2.10" {
			t.Errorf("h2 resolved to %s, want its first IPv4 address", r.To)
		}
		if !strings.Contains(r.Detail, "ttl 62") {
			t.Errorf("reply detail %q: want ttl 62 (two routers)", r.Detail)
		}
	})
	t.Run("ping unrouted", func(t *testing.T) {
		// h1's default route leads to r1, which has no route to 10.99/16
		// and answers net unreachable.
		r := expect(t, "ping 10.99.0.1", func() (labs.ProbeResult, error) {
			return sb.Ping(ctx, "h1", "10.99.0.1", 500*time.Millisecond)
		}, labs.OutcomeUnreachable, labs.OutcomeNoReply)
		if r.Outcome == labs.OutcomeUnreachable && !strings.Contains(r.Detail, "from 10.0.1.1") {
			t.Errorf("unreachable detail %q does not name r1", r.Detail)
		}
		expect(t, "ping fd00:99::1", func() (labs.ProbeResult, error) {
			return sb.Ping(ctx, "h1", "fd00:99::1", 500*time.Millisecond)
		}, labs.OutcomeUnreachable, labs.OutcomeNoReply)
	})
	t.Run("tcp", func(t *testing.T) {
		r := expect(t, "tcp 7", func() (labs.ProbeResult, error) { return sb.TCPProbe(ctx, "h1", "10.0.2.10", 7, false, 0) }, labs.OutcomeConnected)
		if r.RTT <= 0 {
			t.Errorf("tcp 7: rtt %v", r.RTT)
		}
		r = expect(t, "tcp 7 echo", func() (labs.ProbeResult, error) { return sb.TCPProbe(ctx, "h1", "h2", 7, true, 0) }, labs.OutcomeConnected)
		if !strings.Contains(r.Detail, "echoed nonce nslab-") {
			t.Errorf("echo detail %q", r.Detail)
		}
		expect(t, "tcp 7 echo v6", func() (labs.ProbeResult, error) { return sb.TCPProbe(ctx, "h1", "fd00:2::10", 7, true, 0) }, labs.OutcomeConnected)
		expect(t, "tcp 22", func() (labs.ProbeResult, error) { return sb.TCPProbe(ctx, "h1", "h2", 22, false, 0) }, labs.OutcomeRefused)
		// An HTTP server answers a nonce line with 400 Bad Request, not the nonce.
		r = expect(t, "tcp 80 echo", func() (labs.ProbeResult, error) {
			return sb.TCPProbe(ctx, "h1", "h2", 80, true, 500*time.Millisecond)
		}, labs.OutcomeNoReply)
		if !strings.Contains(r.Detail, "400") {
			t.Errorf("no-echo detail %q should show what came back", r.Detail)
		}
	})
	t.Run("udp", func(t *testing.T) {
		r := expect(t, "udp 7", func() (labs.ProbeResult, error) { return sb.UDPProbe(ctx, "h1", "h2", 7, 0) }, labs.OutcomeReply)
		if !strings.Contains(r.Detail, "nslab-") {
			t.Errorf("udp detail %q", r.Detail)
		}
		expect(t, "udp 7 v6", func() (labs.ProbeResult, error) { return sb.UDPProbe(ctx, "h1", "fd00:2::10", 7, 0) }, labs.OutcomeReply)
		r = expect(t, "udp 9", func() (labs.ProbeResult, error) { return sb.UDPProbe(ctx, "h1", "h2", 9, 0) }, labs.OutcomeRefused)
		if !strings.Contains(r.Detail, "port unreachable from 10.0.2.10") {
			t.Errorf("udp 9 detail %q", r.Detail)
		}
		expect(t, "udp unrouted", func() (labs.ProbeResult, error) {
			return sb.UDPProbe(ctx, "h1", "10.99.0.1", 53, 500*time.Millisecond)
		}, labs.OutcomeUnreachable, labs.OutcomeNoReply)
	})
	t.Run("http", func(t *testing.T) {
		r := expect(t, "http h2", func() (labs.ProbeResult, error) { return sb.HTTPProbe(ctx, "h1", "http://10.0.2.10/", 0) }, labs.OutcomeConnected)
		if r.Status != 200 || r.Body != "hello from h2\n" {
			t.Errorf("http: status %d body %q", r.Status, r.Body)
		}
		r = expect(t, "http by name", func() (labs.ProbeResult, error) { return sb.HTTPProbe(ctx, "h1", "http://h2/echo", 0) }, labs.OutcomeConnected)
		if !strings.Contains(r.Body, "GET /echo?nslab=nslab-") || !strings.Contains(r.Body, "Host: h2") {
			t.Errorf("http /echo body lacks the nonce query or host:\n%s", r.Body)
		}
		expect(t, "http refused", func() (labs.ProbeResult, error) { return sb.HTTPProbe(ctx, "h1", "http://h2:81/", 0) }, labs.OutcomeRefused)
		expect(t, "http unrouted", func() (labs.ProbeResult, error) {
			return sb.HTTPProbe(ctx, "h1", "http://10.99.0.1/", 500*time.Millisecond)
		}, labs.OutcomeUnreachable, labs.OutcomeTimeout)
	})
	t.Run("firewall", func(t *testing.T) {
		mustRun(t, sb, "h2", "sh", "-c", strings.Join([]string{
			"nft add table inet f",
			"nft add chain inet f in '{ type filter hook input priority 0; }'",
			"nft add rule inet f in tcp dport 8080 drop",
			"nft add rule inet f in tcp dport 8081 reject with tcp reset",
			"nft add rule inet f in tcp dport 8082 reject with icmpx admin-prohibited",
		}, " && "))
		r := expect(t, "tcp 8080 dropped", func() (labs.ProbeResult, error) {
			return sb.TCPProbe(ctx, "h1", "h2", 8080, false, 300*time.Millisecond)
		}, labs.OutcomeTimeout)
		expect(t, "tcp 8081 reset", func() (labs.ProbeResult, error) { return sb.TCPProbe(ctx, "h1", "h2", 8081, false, 0) }, labs.OutcomeRefused)
		r = expect(t, "tcp 8082 prohibited", func() (labs.ProbeResult, error) { return sb.TCPProbe(ctx, "h1", "h2", 8082, false, 0) }, labs.OutcomeUnreachable)
		if !strings.Contains(r.Detail, "administratively prohibited from 10.0.2.10") {
			t.Errorf("prohibited detail %q", r.Detail)
		}
		expect(t, "http 8080 dropped", func() (labs.ProbeResult, error) {
			return sb.HTTPProbe(ctx, "h1", "http://h2:8080/", 300*time.Millisecond)
		}, labs.OutcomeTimeout)
		// The prober's own output chain: the send itself fails.
		mustRun(t, sb, "h1", "sh", "-c", "nft add table inet o && nft add chain inet o out '{ type filter hook output priority 0; }' && nft add rule inet o out icmp type echo-request drop && nft add rule inet o out udp dport 7 drop")
		r = expect(t, "ping dropped on output", func() (labs.ProbeResult, error) { return sb.Ping(ctx, "h1", "h2", 300*time.Millisecond) }, labs.OutcomeNoReply)
		if !strings.Contains(r.Detail, "refused to send") {
			t.Errorf("output-drop detail %q", r.Detail)
		}
		expect(t, "udp dropped on output", func() (labs.ProbeResult, error) { return sb.UDPProbe(ctx, "h1", "h2", 7, 300*time.Millisecond) }, labs.OutcomeNoReply)
		mustRun(t, sb, "h1", "nft", "delete", "table", "inet", "o")
	})
	t.Run("bounds", func(t *testing.T) {
		// The probe's own timeout bounds it...
		start := time.Now()
		sb.TCPProbe(ctx, "h1", "h2", 8080, false, 200*time.Millisecond)
		if took := time.Since(start); took > 400*time.Millisecond {
			t.Errorf("200ms probe took %v", took)
		}
		// ...and so does the caller's context, which is then an error.
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err := sb.TCPProbe(cctx, "h1", "h2", 8080, false, 5*time.Second)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("probe under an expiring context: err %v", err)
		}
		if took := time.Since(start); took > 300*time.Millisecond {
			t.Errorf("probe under a 100ms context took %v", took)
		}
		cctx, cancel = context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := sb.Ping(cctx, "h1", "10.0.2.99", 5*time.Second); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled ping: err %v", err)
		}
	})
	t.Run("unknown node", func(t *testing.T) {
		if _, err := sb.Ping(ctx, "nope", "h2", 0); !errors.Is(err, ErrNodeNotFound) {
			t.Errorf("from unknown node: %v", err)
		}
		if _, err := sb.TCPProbe(ctx, "h1", "nope", 7, false, 0); !errors.Is(err, ErrNodeNotFound) {
			t.Errorf("to unknown node: %v", err)
		}
		if _, err := sb.HTTPProbe(ctx, "h1", "http://nope/", 0); !errors.Is(err, ErrNodeNotFound) {
			t.Errorf("http to unknown node: %v", err)
		}
	})
	t.Run("pmtu", func(t *testing.T) {
		r := expect(t, "pmtu", func() (labs.ProbeResult, error) { return sb.PMTUProbe(ctx, "h1", "h2", 0) }, labs.OutcomeReply)
		if r.MTU != 1500 {
			t.Errorf("path MTU %d, want 1500", r.MTU)
		}
		mustRun(t, sb, "r1", "ip", "link", "set", "eth1", "mtu", "1400")
		mustRun(t, sb, "r2", "ip", "link", "set", "eth0", "mtu", "1400")
		for range 2 { // the second run meets a cached PMTU and rate-limited ICMP
			r = expect(t, "pmtu after 1400", func() (labs.ProbeResult, error) { return sb.PMTUProbe(ctx, "h1", "h2", 0) }, labs.OutcomeReply)
			if r.MTU != 1400 {
				t.Errorf("path MTU %d, want 1400", r.MTU)
			}
		}
		if !strings.Contains(r.Detail, "1401") {
			t.Errorf("pmtu detail %q", r.Detail)
		}
		r = expect(t, "pmtu v6", func() (labs.ProbeResult, error) { return sb.PMTUProbe(ctx, "h1", "fd00:2::10", 0) }, labs.OutcomeReply)
		if r.MTU != 1400 {
			t.Errorf("IPv6 path MTU %d, want 1400", r.MTU)
		}
		expect(t, "pmtu unrouted", func() (labs.ProbeResult, error) {
			return sb.PMTUProbe(ctx, "h1", "10.99.0.1", 300*time.Millisecond)
		}, labs.OutcomeUnreachable, labs.OutcomeNoReply)
	})
}

func TestProbeChecksum(t *testing.T) {
	// RFC 1071's example, as bytes: the sum folds to 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := icmpChecksum(b); got != ^uint16(0xddf2) {
		t.Errorf("checksum %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// A message with its checksum filled in sums to zero.
	msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'n', 's', 'l', 'a', 'b'}
	c := icmpChecksum(msg)
	msg[2], msg[3] = byte(c>>8), byte(c)
	if icmpChecksum(msg) != 0 {
		t.Errorf("checksummed message does not verify")
	}
}

// waitRoutedServices waits until h2's services in the routed lab answer: Build
// returns once they are spawned, not once they listen.
func waitRoutedServices(t *testing.T, sb *Sandbox) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	pollUntil(t, 10*time.Second, func() bool {
		a, _ := sb.TCPProbe(ctx, "h1", "h2", 7, false, 200*time.Millisecond)
		b, _ := sb.UDPProbe(ctx, "h1", "h2", 7, 200*time.Millisecond)
		c, _ := sb.TCPProbe(ctx, "h1", "h2", 80, false, 200*time.Millisecond)
		return a.Outcome == labs.OutcomeConnected && b.Outcome == labs.OutcomeReply && c.Outcome == labs.OutcomeConnected
	})
	t.Logf("h2's services answered %v after Build", time.Since(start).Round(time.Millisecond))
}

// pollUntil polls cond until it holds, failing the test after d.
func pollUntil(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
