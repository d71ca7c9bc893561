package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

// --- frame builders for decoder and pcapng tests ---

var (
	testMAC1 = []byte{0x02, 0, 0, 0, 0, 0x01}
	testMAC2 = []byte{0x02, 0, 0, 0, 0, 0x02}
)

func ethFrame(src, dst []byte, etherType uint16, payload []byte) []byte {
	b := append(append(append([]byte{}, dst...), src...), byte(etherType>>8), byte(etherType))
	return append(b, payload...)
}

func ipv4Packet(src, dst string, proto, ttl byte, payload []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	h[6] = 0x40 // DF
	h[8], h[9] = ttl, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], icmpChecksum(h))
	return append(h, payload...)
}

func ipv6Packet(src, dst string, next, hops byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, hops
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

func tcpSegment(sport, dport uint16, seq, ack uint32, flags byte, payload []byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 64240)
	return append(h, payload...)
}

func udpDatagram(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func icmpEcho(typ byte, id, seq uint16, data []byte) []byte {
	h := make([]byte, 8)
	h[0] = typ
	binary.BigEndian.PutUint16(h[4:], id)
	binary.BigEndian.PutUint16(h[6:], seq)
	m := append(h, data...)
	binary.BigEndian.PutUint16(m[2:], icmpChecksum(m))
	return m
}

func arpRequest(sha []byte, spa, tpa string) []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	s, t := netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()
	b = append(b, sha...)
	b = append(b, s[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, t[:]...)
}

func TestCaptureDecode(t *testing.T) {
	hbh := append([]byte{17, 0, 5, 2, 0, 0, 1, 0}, udpDatagram(5353, 53, []byte("q"))...) // hop-by-hop, then UDP
	ns := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, netip.MustParseAddr("fd00:1::1").AsSlice()...)
	unreach := append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, ipv4Packet("10.0.1.10", "10.0.9.9", 1, 63, icmpEcho(8, 7, 1, nil))...)
	later := ipv4Packet("10.0.1.10", "10.0.2.10", 17, 64, []byte("rest of a datagram"))
	later[6], later[7] = 0x00, 0xb9 // fragment offset 185*8

	cases := []struct {
		name  string
		frame []byte
		want  labs.Packet
	}{
		{"arp request", ethFrame(testMAC1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x0806, arpRequest(testMAC1, "10.0.1.10", "10.0.1.1")),
			labs.Packet{Proto: "arp", Src: "10.0.1.10", Dst: "10.0.1.1", SrcMAC: "02:00:00:00:00:01", DstMAC: "ff:ff:ff:ff:ff:ff",
				Summary: "ARP, Request who-has 10.0.1.1 tell 10.0.1.10, length 28"}},
		{"icmp echo", ethFrame(testMAC1, testMAC2, 0x0800, ipv4Packet("10.0.1.10", "10.0.2.10", 1, 64, icmpEcho(8, 4660, 1, make([]byte, 56)))),
			labs.Packet{Proto: "icmp", Src: "10.0.1.10", Dst: "10.0.2.10", TTL: 64, ICMPType: 8, EchoID: 4660,
				Summary: "IP 10.0.1.10 > 10.0.2.10: ICMP echo request, id 4660, seq 1, length 64"}},
		{"icmp unreachable", ethFrame(testMAC2, testMAC1, 0x0800, ipv4Packet("10.0.1.1", "10.0.1.10", 1, 64, unreach)),
			labs.Packet{Proto: "icmp", Src: "10.0.1.1", Dst: "10.0.1.10", TTL: 64, ICMPType: 3, ICMPCode: 1, Quoted: "icmp:7",
				Summary: "IP 10.0.1.1 > 10.0.1.10: ICMP host unreachable, length 36"}},
		{"tcp syn-ack", ethFrame(testMAC2, testMAC1, 0x0800, ipv4Packet("10.0.2.10", "10.0.1.10", 6, 62, tcpSegment(7, 40000, 1000, 501, 0x12, nil))),
			labs.Packet{Proto: "tcp", Src: "10.0.2.10", Dst: "10.0.1.10", TTL: 62, Sport: 7, Dport: 40000, Flags: "SA", Seq: 1000, Ack: 501,
				Summary: "IP 10.0.2.10.7 > 10.0.1.10.40000: Flags [S.], seq 1000, ack 501, win 64240, length 0"}},
		{"tcp push", ethFrame(testMAC1, testMAC2, 0x0800, ipv4Packet("10.0.1.10", "10.0.2.10", 6, 64, tcpSegment(40000, 7, 501, 1001, 0x18, []byte("hi\n")))),
			labs.Packet{Proto: "tcp", Src: "10.0.1.10", Dst: "10.0.2.10", TTL: 64, Sport: 40000, Dport: 7, Flags: "PA", Seq: 501, Ack: 1001,
				Summary: "IP 10.0.1.10.40000 > 10.0.2.10.7: Flags [P.], seq 501, ack 1001, win 64240, length 3"}},
		{"tcp rst", ethFrame(testMAC1, testMAC2, 0x0800, ipv4Packet("10.0.2.10", "10.0.1.10", 6, 64, tcpSegment(22, 40000, 0, 1, 0x14, nil))),
			labs.Packet{Proto: "tcp", Src: "10.0.2.10", Dst: "10.0.1.10", TTL: 64, Sport: 22, Dport: 40000, Flags: "RA", Ack: 1,
				Summary: "IP 10.0.2.10.22 > 10.0.1.10.40000: Flags [R.], seq 0, ack 1, win 64240, length 0"}},
		{"udp over ipv6 hop-by-hop", ethFrame(testMAC1, testMAC2, 0x86dd, ipv6Packet("fd00:1::10", "fd00:2::10", 0, 64, hbh)),
			labs.Packet{Proto: "udp", Src: "fd00:1::10", Dst: "fd00:2::10", TTL: 64, Sport: 5353, Dport: 53,
				Summary: "IP6 fd00:1::10.5353 > fd00:2::10.53: UDP, length 1"}},
		{"neighbor solicitation", ethFrame(testMAC1, testMAC2, 0x86dd, ipv6Packet("fd00:1::10", "ff02::1:ff00:1", 58, 255, ns)),
			labs.Packet{Proto: "icmpv6", Src: "fd00:1::10", Dst: "ff02::1:ff00:1", TTL: 255, ICMPType: 135,
				Summary: "IP6 fd00:1::10 > ff02::1:ff00:1: ICMP6 neighbor solicitation, who has fd00:1::1, length 24"}},
		{"later fragment", ethFrame(testMAC1, testMAC2, 0x0800, later),
			labs.Packet{Proto: "udp", Src: "10.0.1.10", Dst: "10.0.2.10", TTL: 64,
				Summary: "IP 10.0.1.10 > 10.0.2.10: ip-proto-17 fragment, length 18"}},
		{"other ethertype", ethFrame(testMAC1, testMAC2, 0x88cc, []byte{1, 2, 3}),
			labs.Packet{Proto: "other", Summary: "ethertype 0x88cc, length 17"}},
		{"runt", []byte{1, 2, 3},
			labs.Packet{Proto: "other", Summary: "truncated frame, length 3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := DecodeFrame(Frame{Data: tc.frame, OrigLen: len(tc.frame), Link: "l", Endpoint: "n:e"})
			want := tc.want
			want.Link, want.Endpoint, want.Len = "l", "n:e", len(tc.frame)
			if want.SrcMAC == "" && len(tc.frame) >= 14 {
				want.SrcMAC, want.DstMAC = got.SrcMAC, got.DstMAC
			}
			if got != want {
				t.Errorf("decoded\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// socketless returns a Capture with a ring but no socket, for the ring's
// own logic.
func socketless(size int, ports ...capPort) *Capture {
	return &Capture{
		ports: ports, ifPort: map[int]int{}, done: make(chan struct{}),
		data: make([]byte, size*CaptureSnaplen), slots: make([]ringSlot, size),
		subs: map[*frameSub]struct{}{},
	}
}

func TestCaptureRing(t *testing.T) {
	c := socketless(4, capPort{"l1", "a:eth0"}, capPort{"l1", "b:eth0"})
	t0 := time.Unix(1_700_000_000, 0)
	ch, cancel := c.Subscribe(2)
	for i := range 10 {
		c.record(t0.Add(time.Duration(i)*time.Second), i%2, []byte{byte(i)}, 60+i)
	}
	all := c.Frames(time.Time{})
	if len(all) != 4 {
		t.Fatalf("ring of 4 holds %d frames", len(all))
	}
	for k, f := range all {
		i := 6 + k // the last four
		if f.Data[0] != byte(i) || f.OrigLen != 60+i || !f.Time.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("frame %d = %+v, want frame %d", k, f, i)
		}
		if want := []string{"a:eth0", "b:eth0"}[i%2]; f.Endpoint != want || f.Link != "l1" {
			t.Errorf("frame %d from %s on %s, want %s on l1", k, f.Endpoint, f.Link, want)
		}
	}
	all[0].Data[0] = 99 // copies: the ring is unchanged
	if got := c.Frames(time.Time{})[0].Data[0]; got != 6 {
		t.Errorf("a caller's change reached the ring: %d", got)
	}
	if got := c.Frames(t0.Add(8 * time.Second)); len(got) != 2 || got[0].Data[0] != 8 {
		t.Errorf("Frames(since 8s) = %d frames", len(got))
	}
	if got := c.Frames(t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("Frames(future) = %d frames", len(got))
	}
	st := c.Stats()
	if st.Frames != 10 || st.Held != 4 || st.RingSize != 4 || st.SubscriberDrops != 8 {
		t.Errorf("stats %+v, want 10 frames, 4 held, 8 dropped by the slow subscriber", st)
	}
	if f := <-ch; f.Data[0] != 0 {
		t.Errorf("subscriber's first frame is %d, want 0", f.Data[0])
	}
	cancel()
	cancel()
	for range ch { // drained, then closed
	}
	c.record(t0, 0, []byte{1}, 1) // no subscriber left: must not block or panic
}

// TestCaptureRouted captures in the routed lab: each frame once, on the
// link it crossed, from the endpoint that sent it.
func TestCaptureRouted(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "routed"))
	// Build starts a DefaultRingSize capture; swap in a small ring so the
	// flood below wraps it.
	if sb.capture == nil || sb.CaptureStats().RingSize != DefaultRingSize {
		t.Fatalf("Build did not start a capture of %d frames: %+v", DefaultRingSize, sb.CaptureStats())
	}
	if err := sb.capture.Close(); err != nil {
		t.Fatal(err)
	}
	sb.capture = nil
	const ring = 512
	if err := sb.StartCapture(ring); err != nil {
		t.Fatal(err)
	}
	first := sb.capture
	if err := sb.StartCapture(ring); err != nil || sb.capture != first { // a second start is a no-op
		t.Fatalf("second StartCapture: %v, capture replaced: %v", err, sb.capture != first)
	}
	ctx := context.Background()
	waitRoutedServices(t, sb)

	start := time.Now()
	ping, err := sb.Ping(ctx, "h1", "h2", 0)
	if err != nil || ping.Outcome != labs.OutcomeReply {
		t.Fatalf("ping: %+v %v", ping, err)
	}
	tcp, err := sb.TCPProbe(ctx, "h1", "h2", 7, true, 0)
	if err != nil || tcp.Outcome != labs.OutcomeConnected {
		t.Fatalf("tcp: %+v %v", tcp, err)
	}

	var pkts []labs.Packet
	find := func(link, ep string, match func(p labs.Packet) bool) []labs.Packet {
		var out []labs.Packet
		for _, p := range pkts {
			if p.Link == link && p.Endpoint == ep && match(p) {
				out = append(out, p)
			}
		}
		return out
	}
	isEcho := func(typ int) func(labs.Packet) bool {
		return func(p labs.Packet) bool { return p.Proto == "icmp" && p.ICMPType == typ }
	}
	// The probe's flow is the one its SYN opened (the teardown of an
	// earlier connection to port 7 may still be on the wire).
	handshake := func() []string {
		sport := 0
		var flags []string
		for _, p := range pkts {
			if p.Link != "r2-h2" || p.Proto != "tcp" {
				continue
			}
			if sport == 0 && p.Flags == "S" && p.Dport == 7 {
				sport = p.Sport
			}
			if sport != 0 && (p.Sport == sport && p.Dport == 7 || p.Sport == 7 && p.Dport == sport) && len(flags) < 3 {
				flags = append(flags, p.Endpoint+" "+p.Flags)
			}
		}
		return flags
	}
	wantHS := "r2:eth1 S,h2:eth0 SA,r2:eth1 A"
	deadline := time.Now().Add(2 * time.Second)
	for {
		pkts = sb.Packets(start)
		if len(find("h1-r1", "r1:eth0", isEcho(0))) > 0 && strings.Join(handshake(), ",") == wantHS || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range pkts {
		t.Logf("%s %-8s %-8s %s", p.Time.Format("15:04:05.000000"), p.Link, p.Endpoint, p.Summary)
	}
	t.Logf("capture: %+v", sb.CaptureStats())
	req := find("h1-r1", "h1:eth0", isEcho(8))
	if len(req) != 1 {
		t.Fatalf("echo requests from h1:eth0 on h1-r1: %d, want exactly 1", len(req))
	}
	if r := req[0]; r.Src != "10.0.1.10" || r.Dst != "10.0.2.10" || r.TTL != 64 || !strings.Contains(r.Summary, "ICMP echo request") {
		t.Errorf("echo request %+v", r)
	}
	// Forwarded: one copy per link, each from the router that sent it, TTL
	// one lower per hop.
	for _, w := range []struct {
		link, ep string
		ttl      int
	}{{"r1-r2", "r1:eth1", 63}, {"r2-h2", "r2:eth1", 62}} {
		got := find(w.link, w.ep, isEcho(8))
		if len(got) != 1 || got[0].TTL != w.ttl {
			t.Errorf("echo request on %s from %s: %+v, want one with ttl %d", w.link, w.ep, got, w.ttl)
		}
	}
	if rep := find("h1-r1", "r1:eth0", isEcho(0)); len(rep) != 1 || rep[0].Src != "10.0.2.10" || rep[0].TTL != 62 {
		t.Errorf("echo reply on h1-r1 from r1:eth0: %+v", rep)
	}
	if got := find("h1-r1", "h1:eth0", isEcho(0)); len(got) != 0 {
		t.Errorf("the reply is attributed to its receiver too: %+v", got)
	}
	if hs := strings.Join(handshake(), ","); hs != wantHS {
		t.Errorf("handshake on r2-h2: %s, want %s", hs, wantHS)
	}
	if data := find("r2-h2", "r2:eth1", func(p labs.Packet) bool { return p.Proto == "tcp" && p.Dport == 7 && p.Flags == "PA" }); len(data) == 0 {
		t.Errorf("no nonce segment (PA) from h1 on r2-h2")
	}
	for _, p := range pkts {
		if !p.Time.After(start.Add(-time.Second)) || p.Time.After(time.Now()) {
			t.Errorf("packet time %v outside the test", p.Time)
		}
	}

	t.Run("pcapng", func(t *testing.T) {
		tcpdump, err := exec.LookPath("tcpdump")
		if err != nil {
			t.Skip("tcpdump not installed")
		}
		var buf bytes.Buffer
		w := NewPcapngWriter(&buf)
		for _, f := range sb.RingFrames(start) {
			if err := w.WriteFrame(f); err != nil {
				t.Fatal(err)
			}
		}
		file := filepath.Join(t.TempDir(), "ping.pcapng")
		if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tcpdump, "-r", file, "-n", "-e").CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
		t.Logf("tcpdump -r:\n%s", out)
		for _, want := range []string{"ICMP echo request", "ICMP echo reply", "Flags [S.]"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("tcpdump output lacks %q", want)
			}
		}
		ifaces := readPcapngIfaces(t, buf.Bytes())
		for _, want := range []string{"h1:eth0", "r1:eth0", "r2:eth1", "h2:eth0"} {
			if !ifaces[want] {
				t.Errorf("pcapng has interfaces %v, lacks %s", ifaces, want)
			}
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		ch, cancel := sb.SubscribeFrames(64)
		defer cancel()
		if _, err := sb.Ping(ctx, "h2", "h1", 0); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(2 * time.Second)
		for {
			select {
			case f := <-ch:
				p := DecodeFrame(f)
				if p.Proto == "icmp" && p.ICMPType == 8 && p.Endpoint == "h2:eth0" && p.Link == "r2-h2" {
					return
				}
			case <-timeout:
				t.Fatal("no echo request from h2 streamed")
			}
		}
	})

	t.Run("ring bound", func(t *testing.T) {
		// 2000 echo requests and replies on h1-r1: far more than the ring.
		mustRun(t, sb, "h1", "ping", "-f", "-q", "-c", "2000", "-s", "200", "10.0.1.1")
		pollUntil(t, 2*time.Second, func() bool { return sb.CaptureStats().Frames >= 4000 })
		all := sb.Packets(time.Time{})
		st := sb.CaptureStats()
		t.Logf("after the flood: %+v; ring memory %d bytes", st, ring*CaptureSlotBytes)
		if len(all) != ring || st.Held != ring {
			t.Errorf("ring of %d holds %d packets (stats %+v)", ring, len(all), st)
		}
		big := 0
		for _, p := range all {
			if p.Len == 14+20+8+200 {
				big++
			}
		}
		if big < ring/2 {
			t.Errorf("only %d of %d frames are the 242-byte flood frames", big, len(all))
		}
	})

	t.Run("close", func(t *testing.T) {
		ch, _ := sb.SubscribeFrames(1)
		if err := sb.capture.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sb.capture.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		for range ch { // closed by Close
		}
		// The ring goes back to the kernel with the capture (mapRing).
		if got := sb.Packets(time.Time{}); got != nil {
			t.Errorf("after Close the ring gave %d packets, want none: it is unmapped", len(got))
		}
		if st := sb.capture.Stats(); st.Held != 0 || st.RingSize != 0 || st.Frames == 0 {
			t.Errorf("after Close: %+v, want nothing held, no ring, the frames counted before", st)
		}
	})
}

// TestCaptureNone: a sandbox without a capture answers empty.
func TestCaptureNone(t *testing.T) {
	var sb Sandbox
	if p := sb.Packets(time.Time{}); p != nil {
		t.Errorf("Packets = %v", p)
	}
	ch, cancel := sb.SubscribeFrames(8)
	cancel()
	if _, ok := <-ch; ok {
		t.Errorf("SubscribeFrames channel is open")
	}
	if st := sb.CaptureStats(); st != (CaptureStats{}) {
		t.Errorf("stats %+v", st)
	}
	var c *Capture
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

func TestSpoofedMarksForgedSources(t *testing.T) {
	owners := map[string]map[string]string{"l1": {"10.0.0.1": "h1", "10.0.0.2": "h2"}}
	for _, tc := range []struct {
		p    labs.Packet
		want bool
	}{
		{labs.Packet{Link: "l1", Endpoint: "h1:eth0", Src: "10.0.0.1"}, false},
		{labs.Packet{Link: "l1", Endpoint: "h1:eth0", Src: "10.0.0.2"}, true},  // h1 claims to be h2
		{labs.Packet{Link: "l1", Endpoint: "h1:eth0", Src: "10.9.9.9"}, false}, // not a node of this link: forwarded or unknown
		{labs.Packet{Link: "l2", Endpoint: "r1:eth1", Src: "10.0.0.2"}, false}, // another link: routed traffic
	} {
		if got := spoofed(owners, &tc.p); got != tc.want {
			t.Errorf("spoofed(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// TestCaptureSync: Sync returns at once when nothing is in flight, and
// once it returns every frame the hub had received is on record — here,
// every frame of a ping burst that has already ended — and it fails on a
// closed capture.
func TestCaptureSync(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := sb.capture

	start := time.Now()
	if err := c.Sync(ctx); err != nil {
		t.Fatalf("idle Sync: %v", err)
	}
	t.Logf("idle Sync took %v", time.Since(start))

	for round := range 5 {
		since := time.Now()
		// The burst ends before Sync starts: ping has its replies.
		mustRun(t, sb, "h1", "ping", "-q", "-c", "100", "-i", "0", "-W", "1", "10.0.0.2")
		start := time.Now()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		echoes := 0
		for _, f := range c.Frames(since) {
			p := DecodeFrame(f)
			if p.Proto == "icmp" && (p.ICMPType == 0 || p.ICMPType == 8) {
				echoes++
			}
		}
		t.Logf("round %d: Sync took %v; %d echo frames on record", round, took, echoes)
		if echoes != 200 {
			t.Errorf("round %d: %d echo frames recorded after Sync, want 200 (100 requests, 100 replies)", round, echoes)
		}
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Sync on a closed capture: %v, want net.ErrClosed", err)
	}
}
