package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pcapngRecord is an Enhanced Packet Block as read back.
type pcapngRecord struct {
	iface   string
	ts      time.Time
	data    []byte
	origLen int
}

// readPcapng is a strict reader for what PcapngWriter writes: it checks
// every block's framing and returns the interfaces (by id) and packets.
func readPcapng(t *testing.T, b []byte) (ifaces []string, recs []pcapngRecord) {
	t.Helper()
	le := binary.LittleEndian
	sawSHB := false
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("trailing %d bytes", len(b))
		}
		typ, total := le.Uint32(b), int(le.Uint32(b[4:]))
		if total < 12 || total%4 != 0 || total > len(b) || int(le.Uint32(b[total-4:])) != total {
			t.Fatalf("block type %#x: bad length %d", typ, total)
		}
		body := b[8 : total-4]
		b = b[total:]
		switch typ {
		case pcapngSHB:
			if le.Uint32(body) != pcapngByteOrderMagic || le.Uint16(body[4:]) != 1 {
				t.Fatalf("section header %x", body[:8])
			}
			sawSHB = true
		case pcapngIDB:
			if !sawSHB {
				t.Fatal("interface before the section header")
			}
			if le.Uint16(body) != pcapngLinkEthernet || le.Uint32(body[4:]) != CaptureSnaplen {
				t.Errorf("interface linktype %d snaplen %d", le.Uint16(body), le.Uint32(body[4:]))
			}
			name, tsresol := "", byte(6)
			for opts := body[8:]; len(opts) >= 4; {
				code, l := le.Uint16(opts), int(le.Uint16(opts[2:]))
				if code == pcapngOptEnd {
					break
				}
				v := opts[4 : 4+l]
				switch code {
				case pcapngOptIfName:
					name = string(v)
				case pcapngOptIfTsresol:
					tsresol = v[0]
				}
				opts = opts[4+(l+3)/4*4:]
			}
			if tsresol != 9 {
				t.Errorf("interface %s: tsresol %d", name, tsresol)
			}
			ifaces = append(ifaces, name)
		case pcapngEPB:
			id := int(le.Uint32(body))
			if id >= len(ifaces) {
				t.Fatalf("packet on undeclared interface %d", id)
			}
			ts := uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:]))
			capLen, origLen := int(le.Uint32(body[12:])), int(le.Uint32(body[16:]))
			if 20+(capLen+3)/4*4 != len(body) {
				t.Fatalf("packet block of %d bytes for %d captured", len(body), capLen)
			}
			recs = append(recs, pcapngRecord{ifaces[id], time.Unix(0, int64(ts)), body[20 : 20+capLen], origLen})
		default:
			t.Fatalf("unexpected block type %#x", typ)
		}
	}
	if !sawSHB {
		t.Fatal("no section header")
	}
	return ifaces, recs
}

func readPcapngIfaces(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	ifaces, _ := readPcapng(t, b)
	out := map[string]bool{}
	for _, n := range ifaces {
		out[n] = true
	}
	return out
}

func testFrames() []Frame {
	t0 := time.Unix(1_700_000_000, 123_456_789)
	req := ethFrame(testMAC1, testMAC2, 0x0800, ipv4Packet("10.0.1.10", "10.0.2.10", 1, 64, icmpEcho(8, 4660, 1, make([]byte, 56))))
	rep := ethFrame(testMAC2, testMAC1, 0x0800, ipv4Packet("10.0.2.10", "10.0.1.10", 1, 62, icmpEcho(0, 4660, 1, make([]byte, 56))))
	syn := ethFrame(testMAC1, testMAC2, 0x0800, ipv4Packet("10.0.1.10", "10.0.2.10", 6, 64, tcpSegment(40000, 7, 1, 0, 0x02, nil)))
	big := ethFrame(testMAC1, testMAC2, 0x0800, ipv4Packet("10.0.1.10", "10.0.2.10", 17, 64, udpDatagram(5000, 7, make([]byte, 1400))))
	return []Frame{
		{Time: t0, Link: "h1-r1", Endpoint: "h1:eth0", Data: req, OrigLen: len(req)},
		{Time: t0.Add(time.Millisecond), Link: "h1-r1", Endpoint: "r1:eth0", Data: rep, OrigLen: len(rep)},
		{Time: t0.Add(2 * time.Millisecond), Link: "h1-r1", Endpoint: "h1:eth0", Data: syn, OrigLen: len(syn)},
		// As the capture keeps it: cut to the snaplen, with the wire length.
		{Time: t0.Add(3 * time.Millisecond), Link: "h1-r1", Endpoint: "h1:eth0", Data: big[:CaptureSnaplen], OrigLen: len(big)},
	}
}

func TestPcapngRoundTrip(t *testing.T) {
	frames := testFrames()
	var buf bytes.Buffer
	w := NewPcapngWriter(&buf)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	ifaces, recs := readPcapng(t, buf.Bytes())
	if strings.Join(ifaces, ",") != "h1:eth0,r1:eth0" {
		t.Errorf("interfaces %v, want one per endpoint in order of appearance", ifaces)
	}
	if len(recs) != len(frames) {
		t.Fatalf("%d packets read, %d written", len(recs), len(frames))
	}
	for i, r := range recs {
		f := frames[i]
		if r.iface != f.Endpoint || !r.ts.Equal(f.Time) || !bytes.Equal(r.data, f.Data) || r.origLen != f.OrigLen {
			t.Errorf("packet %d: read %s %v %d/%d bytes, wrote %s %v %d/%d", i, r.iface, r.ts, len(r.data), r.origLen, f.Endpoint, f.Time, len(f.Data), f.OrigLen)
		}
	}
}

func TestPcapngTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed")
	}
	var buf bytes.Buffer
	w := NewPcapngWriter(&buf)
	for _, f := range testFrames() {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "t.pcapng")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tcpdump, "-r", file, "-n", "-e", "-tt").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	t.Logf("tcpdump -r -n -e:\n%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var pkts []string
	for _, l := range lines {
		if strings.HasPrefix(l, "1700000000.") {
			pkts = append(pkts, l)
		}
	}
	if len(pkts) != 4 {
		t.Fatalf("tcpdump printed %d packets, want 4", len(pkts))
	}
	for i, want := range []string{
		"1700000000.123456 02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 (0x0800), length 98: 10.0.1.10 > 10.0.2.10: ICMP echo request, id 4660, seq 1, length 64",
		"ICMP echo reply",
		"Flags [S], seq 1",
		"10.0.1.10.5000 > 10.0.2.10.7: UDP, length 1400",
	} {
		if !strings.Contains(pkts[i], want) {
			t.Errorf("tcpdump line %d: %q lacks %q", i, pkts[i], want)
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestPcapngWriteError(t *testing.T) {
	for n := range 3 { // fail the header, the interface, the packet
		w := NewPcapngWriter(&failWriter{n: n})
		if err := w.WriteFrame(testFrames()[0]); err == nil {
			t.Errorf("write %d failed, WriteFrame did not", n)
		}
	}
}
