package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"nslab/labs"
)

// The hub capture. Every node interface is a veth whose peer is a port
// v<N> of a bridge in the hub, so one AF_PACKET socket in the hub sees
// every frame on every link. A frame is kept once: when it is received
// on the port of the endpoint that sent it. The same frame also passes
// the bridge device (for frames the hub itself would accept) and leaves
// by other ports (PACKET_OUTGOING); both copies are skipped.

const (
	// DefaultRingSize is how many frames a sandbox keeps by default.
	DefaultRingSize = 8192
	// CaptureSnaplen is how many bytes of each frame are kept: every
	// header the decoder reads (Ethernet, IPv6 with extension headers,
	// TCP with options, an ICMP error quoting a packet) fits.
	CaptureSnaplen = 256
	// captureRcvBuf is the kernel receive buffer asked for: room for
	// bursts (a flood ping, a bulk TCP transfer) while the reader sleeps.
	captureRcvBuf = 4 << 20
	// maxSubscriberBuf bounds a SubscribeFrames channel.
	maxSubscriberBuf = 4096
)

// CaptureSlotBytes is the memory one ring slot takes: the snapped bytes
// plus its header. A ring of n slots holds n*CaptureSlotBytes bytes,
// allocated once when the capture starts.
const CaptureSlotBytes = CaptureSnaplen + int(unsafe.Sizeof(ringSlot{}))

// Frame is a captured frame with where it was seen.
type Frame struct {
	Time     time.Time
	Link     string // the lab's link or segment
	Endpoint string // node:iface that sent it
	Data     []byte // the first CaptureSnaplen bytes at most; shared, do not modify
	OrigLen  int    // length on the wire
}

// CaptureStats counts what a capture saw and lost.
type CaptureStats struct {
	Frames          uint64 // frames recorded (sent by an endpoint)
	KernelDrops     uint64 // frames the socket's buffer overflowed on
	SubscriberDrops uint64 // frames a slow SubscribeFrames consumer missed
	Held            int    // frames in the ring now
	RingSize        int
}

// ringSlot describes one frame in the ring; its bytes are at the slot's
// index in Capture.data.
type ringSlot struct {
	unixNano int64
	origLen  uint32
	capLen   uint16
	port     uint16 // index into Capture.ports
}

type capPort struct{ link, endpoint string }

type frameSub struct{ ch chan Frame }

// Capture is a sandbox's hub capture: one socket, a reader goroutine and
// a fixed ring of the most recent frames.
type Capture struct {
	f     *os.File
	rc    syscall.RawConn
	ports []capPort // ports[N-1] is hub port v<N>
	// ifPort maps a hub ifindex to a port index, -1 for anything else
	// (bridges, lo). Only the reader goroutine uses it.
	ifPort map[int]int
	done   chan struct{}
	once   sync.Once
	// gen counts the reader's receive calls; busy is false only while
	// the reader waits on an empty socket. Together with the socket's
	// queue they tell Sync when every frame the hub saw is recorded.
	gen  atomic.Uint64
	busy atomic.Bool

	mu sync.Mutex
	// mem is the ring (mapRing): data, then slots. All three are nil
	// once the capture is closed.
	mem         []byte
	data        []byte // len(slots) * CaptureSnaplen
	slots       []ringSlot
	next, held  int
	frames      uint64
	kernelDrops uint64
	subDrops    uint64
	subs        map[*frameSub]struct{}
	watches     map[*probeWatch]struct{}
	syncs       []*syncWaiter
	closed      bool
}

// syncWaiter is a Sync call waiting for a receive that started after it
// (gen greater than its own) to find the socket empty.
type syncWaiter struct {
	gen uint64
	ch  chan struct{}
}

// StartCapture starts the sandbox's hub capture with a ring of ringSize
// frames (DefaultRingSize if 0). Starting it again is a no-op. It is
// meant to be called by Build and Adopt before the sandbox is shared.
func (s *Sandbox) StartCapture(ringSize int) error {
	if s.capture != nil {
		return nil
	}
	c, err := startCapture(s, ringSize)
	if err != nil {
		return err
	}
	s.capture = c
	return nil
}

// startCapture opens the capture socket in the sandbox's hub.
func startCapture(sb *Sandbox, ringSize int) (*Capture, error) {
	if ringSize <= 0 {
		ringSize = DefaultRingSize
	}
	if ringSize > 1<<20 {
		return nil, fmt.Errorf("capture of %s: ring of %d frames is too large", sb.ID, ringSize)
	}
	var ports []capPort
	for _, seg := range sb.Lab.AllSegments() {
		for _, ep := range seg.Endpoints {
			ports = append(ports, capPort{link: seg.Name, endpoint: ep})
		}
	}
	if len(ports) > 1<<16 {
		return nil, fmt.Errorf("capture of %s: %d ports", sb.ID, len(ports))
	}
	fd := -1
	err := inNetNS(sb.hub.nsFd(), func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(captureHtons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("capture of %s: open packet socket in hub: %w", sb.ID, err)
	}
	if err := setupCaptureSocket(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("capture of %s: %w", sb.ID, err)
	}
	f := os.NewFile(uintptr(fd), "capture-"+sb.ID)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture of %s: %w", sb.ID, err)
	}
	mem, data, slots, err := mapRing(ringSize)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture of %s: %w", sb.ID, err)
	}
	c := &Capture{
		f: f, rc: rc, ports: ports,
		ifPort:  map[int]int{},
		done:    make(chan struct{}),
		mem:     mem,
		data:    data,
		slots:   slots,
		subs:    map[*frameSub]struct{}{},
		watches: map[*probeWatch]struct{}{},
	}
	go c.run()
	return c, nil
}

// mapRing maps a ring of n frames outside the Go heap: anonymous memory
// takes RAM only for the slots frames have filled (a quiet sandbox's ring
// costs next to nothing, where a heap slice is zeroed, and touched, each
// time the heap reuses the memory), goes back to the kernel the moment
// the capture closes rather than at some later GC, and is not copied into
// the page tables of the processes labd forks (MADV_DONTFORK). The slots
// hold no Go pointers, and no Frame points into the ring: every Frame's
// Data is a copy.
func mapRing(n int) (mem, data []byte, slots []ringSlot, err error) {
	dataLen := n * CaptureSnaplen
	size := dataLen + n*int(unsafe.Sizeof(ringSlot{}))
	mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("map a ring of %d frames: %w", n, err)
	}
	if err := unix.Madvise(mem, unix.MADV_DONTFORK); err != nil {
		unix.Munmap(mem)
		return nil, nil, nil, fmt.Errorf("ring: madvise: %w", err)
	}
	// dataLen is a multiple of CaptureSnaplen (256): the slots are aligned.
	slots = unsafe.Slice((*ringSlot)(unsafe.Pointer(&mem[dataLen])), n)
	return mem, mem[:dataLen:dataLen], slots, nil
}

func setupCaptureSocket(fd int) error {
	// SO_RCVBUFFORCE passes net.core.rmem_max, which host root may do.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureRcvBuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureRcvBuf); err != nil {
			return fmt.Errorf("set SO_RCVBUF: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("set SO_TIMESTAMPNS: %w", err)
	}
	// The auxiliary data carries the length on the wire once the filter
	// below has cut the frame.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("set PACKET_AUXDATA: %w", err)
	}
	// Frames leaving by a port are copies of ones already seen arriving;
	// not even queueing them halves the work. (The reader checks again.)
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	// A one-instruction filter, "accept CaptureSnaplen bytes", so the
	// kernel queues only what is kept.
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: CaptureSnaplen}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &prog[0]}); err != nil {
		return fmt.Errorf("attach snaplen filter: %w", err)
	}
	return nil
}

func captureHtons(v uint16) uint16 { return v<<8 | v>>8 }

// Close stops the reader and closes the socket; subscriber channels are
// closed. It is idempotent and safe on a nil Capture.
func (c *Capture) Close() error {
	if c == nil {
		return nil
	}
	var err error
	c.once.Do(func() {
		err = c.f.Close() // wakes the reader
		<-c.done
		c.mu.Lock()
		c.closed = true
		// The reader has ended (done), and every other use of the ring
		// holds mu and checks closed (or finds it empty) first.
		if c.mem != nil {
			unix.Munmap(c.mem)
		}
		c.mem, c.data, c.slots = nil, nil, nil
		c.next, c.held = 0, 0
		for sub := range c.subs {
			close(sub.ch)
		}
		c.subs = nil
		for _, w := range c.syncs {
			close(w.ch)
		}
		c.syncs = nil
		c.mu.Unlock()
	})
	return err
}

func (c *Capture) run() {
	defer close(c.done)
	buf := make([]byte, CaptureSnaplen)
	oob := make([]byte, 128)
	for {
		var (
			n, oobn int
			from    unix.Sockaddr
			rerr    error
		)
		err := c.rc.Read(func(fd uintptr) bool {
			for {
				g := c.gen.Add(1)
				c.busy.Store(true)
				n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
				if !errors.Is(rerr, unix.EAGAIN) {
					return true
				}
				if !c.caughtUp(g) {
					return false // wait for the next frame
				}
				// A Sync arrived during that receive: look once more, so
				// that a receive that started after it finds the queue empty.
			}
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			if errors.Is(rerr, unix.EBADF) {
				return
			}
			continue // e.g. ENETDOWN from a port going away
		}
		sll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		port := c.portOf(sll.Ifindex)
		if port < 0 {
			continue
		}
		n = min(n, len(buf))
		t, origLen := time.Time{}, n
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				switch {
				case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16:
					ne := binary.NativeEndian
					t = time.Unix(int64(ne.Uint64(m.Data)), int64(ne.Uint64(m.Data[8:])))
				case m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 8:
					origLen = int(binary.NativeEndian.Uint32(m.Data[4:])) // tp_len
				}
			}
		}
		if t.IsZero() {
			t = time.Now()
		}
		c.record(t, port, buf[:n], origLen)
	}
}

// portOf maps a hub ifindex to a port, asking the kernel the name of an
// ifindex it has not seen yet. SIOCGIFNAME on the capture socket answers
// in the socket's namespace, the hub's.
func (c *Capture) portOf(ifindex int) int {
	if p, ok := c.ifPort[ifindex]; ok {
		return p
	}
	p := -1
	var name string
	err := sockControl(c.rc, func(fd int) error {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return err
		}
		ifr.SetUint32(uint32(ifindex))
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
			return err
		}
		name = ifr.Name()
		return nil
	})
	if err == nil {
		if rest, ok := strings.CutPrefix(name, "v"); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= len(c.ports) {
				p = n - 1
			}
		}
	}
	c.ifPort[ifindex] = p // an ifindex is never reused for another hub port
	return p
}

// caughtUp is called by the reader when the receive numbered g found the
// socket empty: every frame queued before that receive started is
// recorded, which answers the Sync calls made before it. It reports
// whether Sync calls are still waiting.
func (c *Capture) caughtUp(g uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.syncs[:0]
	for _, w := range c.syncs {
		if w.gen < g {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(c.syncs[len(kept):])
	c.syncs = kept
	if len(kept) > 0 {
		return true
	}
	c.busy.Store(false)
	return false
}

// Sync returns once every frame the hub's capture socket had received
// when Sync was called is recorded (and shown to watches), or when ctx
// ends. Frames reach the capture socket before the bridge forwards them,
// so after an answer has reached a node, Sync makes sure that the
// answer's frames, if they crossed the hub, are on record. It waits on
// the reader, not on a clock.
func (c *Capture) Sync(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	// The queue first, then busy: a frame the reader took off the queue
	// before queued() looked was taken after busy was set, and busy
	// cannot go false while c.mu is held. Both empty and idle: nothing
	// is in flight.
	if c.queued() == 0 && !c.busy.Load() {
		c.mu.Unlock()
		return nil
	}
	w := &syncWaiter{gen: c.gen.Load(), ch: make(chan struct{})}
	c.syncs = append(c.syncs, w)
	c.mu.Unlock()
	select {
	case <-w.ch:
		if c.isClosed() {
			return net.ErrClosed
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		for i, x := range c.syncs {
			if x == w {
				c.syncs = append(c.syncs[:i], c.syncs[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *Capture) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// queued is the length of the next frame waiting in the socket (SIOCINQ
// on a packet socket), 0 when none is.
func (c *Capture) queued() int {
	n := 0
	err := sockControl(c.rc, func(fd int) error {
		var err error
		n, err = unix.IoctlGetInt(fd, unix.SIOCINQ)
		return err
	})
	if err != nil {
		return 1 // unknown: let the reader answer
	}
	return n
}

func (c *Capture) record(t time.Time, port int, data []byte, origLen int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	i := c.next
	c.slots[i] = ringSlot{unixNano: t.UnixNano(), origLen: uint32(origLen), capLen: uint16(len(data)), port: uint16(port)}
	copy(c.data[i*CaptureSnaplen:], data)
	c.next = (i + 1) % len(c.slots)
	c.held = min(c.held+1, len(c.slots))
	c.frames++
	if len(c.watches) > 0 {
		c.showWatches(port, data, origLen)
	}
	if len(c.subs) > 0 {
		f := c.frameAt(i, nil)
		for sub := range c.subs {
			select {
			case sub.ch <- f:
			default:
				c.subDrops++
			}
		}
	}
}

// frameAt returns slot i as a Frame whose Data is a copy made in dst
// (allocated when dst is nil).
func (c *Capture) frameAt(i int, dst []byte) Frame {
	s := c.slots[i]
	if dst == nil {
		dst = make([]byte, s.capLen)
	}
	off := i * CaptureSnaplen
	copy(dst, c.data[off:off+int(s.capLen)])
	p := c.ports[s.port]
	return Frame{Time: time.Unix(0, s.unixNano), Link: p.link, Endpoint: p.endpoint, Data: dst, OrigLen: int(s.origLen)}
}

// Frames returns copies of the frames in the ring captured at or after
// since (all of them for the zero time), oldest first.
func (c *Capture) Frames(since time.Time) []Frame {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil // the ring went with the capture
	}
	start := (c.next - c.held + len(c.slots)) % len(c.slots)
	from := int64(0)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	var n, size int
	for k := range c.held {
		if s := c.slots[(start+k)%len(c.slots)]; s.unixNano >= from {
			n++
			size += int(s.capLen)
		}
	}
	out := make([]Frame, 0, n)
	buf := make([]byte, size) // one allocation for every frame's bytes
	for k := range c.held {
		i := (start + k) % len(c.slots)
		if c.slots[i].unixNano < from {
			continue
		}
		l := int(c.slots[i].capLen)
		out = append(out, c.frameAt(i, buf[:l:l]))
		buf = buf[l:]
	}
	return out
}

// Subscribe streams every frame recorded from now on. A consumer that
// falls buf frames behind loses frames (counted in SubscriberDrops)
// rather than slowing the capture. cancel is idempotent; the channel is
// closed by cancel or when the capture closes.
func (c *Capture) Subscribe(buf int) (<-chan Frame, func()) {
	if buf <= 0 {
		buf = 256
	}
	sub := &frameSub{ch: make(chan Frame, min(buf, maxSubscriberBuf))}
	if c == nil {
		close(sub.ch)
		return sub.ch, func() {}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		close(sub.ch)
		return sub.ch, func() {}
	}
	c.subs[sub] = struct{}{}
	c.mu.Unlock()
	return sub.ch, sync.OnceFunc(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.subs[sub]; ok {
			delete(c.subs, sub)
			close(sub.ch)
		}
	})
}

// Stats reports the capture's counters.
func (c *Capture) Stats() CaptureStats {
	if c == nil {
		return CaptureStats{}
	}
	var st *unix.TpacketStats
	if c.rc != nil { // fails harmlessly once closed
		sockControl(c.rc, func(fd int) error {
			var err error
			st, err = unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
			return err
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st != nil { // the kernel resets its counters on every read
		c.kernelDrops += uint64(st.Drops)
	}
	return CaptureStats{
		Frames: c.frames, KernelDrops: c.kernelDrops, SubscriberDrops: c.subDrops,
		Held: c.held, RingSize: len(c.slots),
	}
}

// Packets decodes the frames captured at or after since, oldest first.
// Without a capture it returns nil.
func (s *Sandbox) Packets(since time.Time) []labs.Packet {
	frames := s.capture.Frames(since)
	if frames == nil {
		return nil
	}
	owners := s.linkOwners()
	out := make([]labs.Packet, len(frames))
	for i, f := range frames {
		out[i] = DecodeFrame(f)
		out[i].Probe = s.probes.matches(&out[i])
		out[i].Spoofed = spoofed(owners, &out[i])
	}
	return out
}

// linkOwners maps, per point-to-point link, each address the lab assigns
// to a node on that link to the node. Shared segments are left out: there
// a router may legitimately send a neighbour's packet back onto the same
// segment (the textbook ICMP-redirect case), which looks like a forgery.
func (s *Sandbox) linkOwners() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, seg := range s.Lab.AllSegments() {
		if len(seg.Endpoints) != 2 {
			continue
		}
		m := map[string]string{}
		for _, e := range seg.Endpoints {
			ep, err := labs.ParseEndpoint(e)
			if err != nil {
				continue
			}
			n := s.Lab.Node(ep.Node)
			if n == nil {
				continue
			}
			for _, ifc := range n.Interfaces {
				for _, a := range ifc.Addresses {
					if p, err := netip.ParsePrefix(a); err == nil {
						m[p.Addr().String()] = ep.Node
					}
				}
			}
		}
		out[seg.Name] = m
	}
	return out
}

// spoofed: the hub knows which port a frame came in through, which no
// learner can forge; on a point-to-point link, a source address owned by
// the other end means the sender lied about who it is (a node never
// forwards its peer's packet back to that peer).
func spoofed(owners map[string]map[string]string, p *labs.Packet) bool {
	owner, ok := owners[p.Link][p.Src]
	if !ok || p.Src == "" {
		return false
	}
	sender, _, _ := strings.Cut(p.Endpoint, ":")
	return owner != sender
}

// RingFrames returns the raw frames captured at or after since.
func (s *Sandbox) RingFrames(since time.Time) []Frame { return s.capture.Frames(since) }

// SubscribeFrames streams raw frames as they are captured (for a live
// pcapng stream); see Capture.Subscribe. Without a capture the channel
// is closed at once.
func (s *Sandbox) SubscribeFrames(buf int) (<-chan Frame, func()) { return s.capture.Subscribe(buf) }

// CaptureStats reports the sandbox capture's counters.
func (s *Sandbox) CaptureStats() CaptureStats { return s.capture.Stats() }

// --- decoding ---

// DecodeFrame decodes Ethernet, ARP, IPv4, IPv6 (with extension
// headers), ICMP, ICMPv6, TCP and UDP into a Packet with a tcpdump-like
// one-line Summary.
func DecodeFrame(f Frame) labs.Packet {
	p := labs.Packet{Time: f.Time, Link: f.Link, Endpoint: f.Endpoint, Len: max(f.OrigLen, len(f.Data)), Proto: "other"}
	d := f.Data
	if len(d) < 14 {
		p.Summary = fmt.Sprintf("truncated frame, length %d", p.Len)
		return p
	}
	p.DstMAC = net.HardwareAddr(d[0:6]).String()
	p.SrcMAC = net.HardwareAddr(d[6:12]).String()
	et := capBE16(d[12:])
	d = d[14:]
	for (et == 0x8100 || et == 0x88a8) && len(d) >= 4 { // VLAN tags
		et = capBE16(d[2:])
		d = d[4:]
	}
	switch et {
	case 0x0806:
		capDecodeARP(&p, d)
	case 0x0800:
		capDecodeIPv4(&p, d)
	case 0x86dd:
		capDecodeIPv6(&p, d)
	default:
		p.Summary = fmt.Sprintf("ethertype 0x%04x, length %d", et, p.Len)
	}
	return p
}

func capBE16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func capBE32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

func capDecodeARP(p *labs.Packet, d []byte) {
	p.Proto = "arp"
	if len(d) < 28 || capBE16(d[0:]) != 1 || capBE16(d[2:]) != 0x0800 || d[4] != 6 || d[5] != 4 {
		p.Summary = "ARP, unknown format"
		return
	}
	sha := net.HardwareAddr(d[8:14]).String()
	spa := netip.AddrFrom4([4]byte(d[14:18])).String()
	tpa := netip.AddrFrom4([4]byte(d[24:28])).String()
	p.Src, p.Dst = spa, tpa
	switch op := capBE16(d[6:]); op {
	case 1:
		p.Summary = fmt.Sprintf("ARP, Request who-has %s tell %s, length 28", tpa, spa)
	case 2:
		p.Summary = fmt.Sprintf("ARP, Reply %s is-at %s, length 28", spa, sha)
	default:
		p.Summary = fmt.Sprintf("ARP, op %d, length 28", op)
	}
}

func capDecodeIPv4(p *labs.Packet, d []byte) {
	p.Proto = "ipv4"
	if len(d) < 20 || d[0]>>4 != 4 {
		p.Summary = "IP, truncated"
		return
	}
	ihl := int(d[0]&0x0f) * 4
	total := int(capBE16(d[2:]))
	p.TTL = int(d[8])
	p.Src = netip.AddrFrom4([4]byte(d[12:16])).String()
	p.Dst = netip.AddrFrom4([4]byte(d[16:20])).String()
	laterFragment := capBE16(d[6:])&0x1fff != 0
	var l4 []byte
	if ihl >= 20 && len(d) >= ihl {
		l4 = d[ihl:]
	}
	capDecodeL4(p, "IP", d[9], l4, max(total-ihl, 0), laterFragment)
}

func capDecodeIPv6(p *labs.Packet, d []byte) {
	p.Proto = "ipv6"
	if len(d) < 40 || d[0]>>4 != 6 {
		p.Summary = "IP6, truncated"
		return
	}
	plen := int(capBE16(d[4:]))
	nh := d[6]
	p.TTL = int(d[7])
	p.Src = netip.AddrFrom16([16]byte(d[8:24])).String()
	p.Dst = netip.AddrFrom16([16]byte(d[24:40])).String()
	b := d[40:]
	laterFragment := false
walk:
	for range 8 {
		var n int
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 2 {
				break walk
			}
			n = (int(b[1]) + 1) * 8
		case 44: // fragment
			if len(b) < 8 {
				break walk
			}
			n = 8
			laterFragment = capBE16(b[2:])>>3 != 0
		case 51: // authentication header
			if len(b) < 2 {
				break walk
			}
			n = (int(b[1]) + 2) * 4
		default:
			break walk
		}
		nh = b[0]
		plen -= n
		if len(b) < n {
			b = nil
			break
		}
		b = b[n:]
	}
	capDecodeL4(p, "IP6", nh, b, max(plen, 0), laterFragment)
}

// capDecodeL4 decodes the transport header b of an IP packet whose payload
// is l4len bytes on the wire (b holds only what the snaplen kept).
func capDecodeL4(p *labs.Packet, ip string, proto uint8, b []byte, l4len int, laterFragment bool) {
	hosts := fmt.Sprintf("%s %s > %s", ip, p.Src, p.Dst)
	withPorts := func() string {
		return fmt.Sprintf("%s %s.%d > %s.%d", ip, p.Src, p.Sport, p.Dst, p.Dport)
	}
	if laterFragment {
		if name := capL4Name(proto); name != "" {
			p.Proto = name
		}
		p.Summary = fmt.Sprintf("%s: ip-proto-%d fragment, length %d", hosts, proto, l4len)
		return
	}
	switch {
	case proto == 6:
		p.Proto = "tcp"
		if len(b) < 20 {
			p.Summary = hosts + ": TCP, truncated"
			return
		}
		p.Sport, p.Dport = int(capBE16(b[0:])), int(capBE16(b[2:]))
		p.Seq, p.Ack = capBE32(b[4:]), capBE32(b[8:])
		p.Flags = capTCPFlags(b[13], "FSRPAUEC")
		shown := capTCPFlags(b[13], "FSRP.UEW")
		if shown == "" {
			shown = "none"
		}
		payload := max(l4len-int(b[12]>>4)*4, 0)
		s := fmt.Sprintf("%s: Flags [%s], seq %d", withPorts(), shown, p.Seq)
		if b[13]&0x10 != 0 {
			s += fmt.Sprintf(", ack %d", p.Ack)
		}
		p.Summary = s + fmt.Sprintf(", win %d, length %d", capBE16(b[14:]), payload)
	case proto == 17:
		p.Proto = "udp"
		if len(b) < 8 {
			p.Summary = hosts + ": UDP, truncated"
			return
		}
		p.Sport, p.Dport = int(capBE16(b[0:])), int(capBE16(b[2:]))
		p.Summary = fmt.Sprintf("%s: UDP, length %d", withPorts(), max(int(capBE16(b[4:]))-8, 0))
	case proto == 1 && ip == "IP", proto == 58 && ip == "IP6":
		v6 := proto == 58
		p.Proto = "icmp"
		if v6 {
			p.Proto = "icmpv6"
		}
		if len(b) < 4 {
			p.Summary = hosts + ": ICMP, truncated"
			return
		}
		p.ICMPType, p.ICMPCode = int(b[0]), int(b[1])
		var info uint32
		if len(b) >= 8 {
			info = capBE32(b[4:])
			if !v6 {
				info &= 0xffff // next-hop MTU in the low half
			}
		}
		s := hosts + ": " + icmpText(v6, b[0], b[1], info)
		switch {
		case len(b) >= 8 && (!v6 && (b[0] == 0 || b[0] == 8) || v6 && (b[0] == 128 || b[0] == 129)):
			p.EchoID = int(capBE16(b[4:]))
			s += fmt.Sprintf(", id %d, seq %d", capBE16(b[4:]), capBE16(b[6:]))
		case len(b) >= 8+20 && (!v6 && (b[0] == 3 || b[0] == 11 || b[0] == 12) || v6 && b[0] >= 1 && b[0] <= 4):
			// An error quotes the packet that caused it: keep its ports
			// (or echo id) so errors caused by probes can be told apart.
			p.Quoted = quotedFlow(b[8:], v6)
		case v6 && (b[0] == 135 || b[0] == 136) && len(b) >= 24:
			tgt := netip.AddrFrom16([16]byte(b[8:24]))
			if b[0] == 135 {
				s += ", who has " + tgt.String()
			} else {
				s += ", tgt is " + tgt.String()
			}
		}
		p.Summary = s + fmt.Sprintf(", length %d", l4len)
	default:
		if name := capL4Name(proto); name != "" {
			p.Proto = name
		}
		p.Summary = fmt.Sprintf("%s: ip-proto-%d, length %d", hosts, proto, l4len)
	}
}

// quotedFlow decodes the start of the packet an ICMP error quotes into
// "proto:port:port" (tcp/udp) or "icmp:id" (an echo request).
func quotedFlow(b []byte, v6 bool) string {
	var proto uint8
	var l4 []byte
	if v6 {
		if len(b) < 40 {
			return ""
		}
		proto, l4 = b[6], b[40:]
	} else {
		ihl := int(b[0]&0x0f) * 4
		if b[0]>>4 != 4 || ihl < 20 || len(b) < ihl {
			return ""
		}
		proto, l4 = b[9], b[ihl:]
	}
	switch {
	case (proto == 6 || proto == 17) && len(l4) >= 4:
		name := "tcp"
		if proto == 17 {
			name = "udp"
		}
		return fmt.Sprintf("%s:%d:%d", name, capBE16(l4[0:]), capBE16(l4[2:]))
	case (proto == 1 && len(l4) >= 6 && l4[0] == 8) || (proto == 58 && len(l4) >= 6 && l4[0] == 128):
		return fmt.Sprintf("icmp:%d", capBE16(l4[4:]))
	}
	return ""
}

func capL4Name(proto uint8) string {
	switch proto {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	}
	return ""
}

// capTCPFlags spells the flag bits FIN..CWR with the given letters.
func capTCPFlags(bits byte, letters string) string {
	var b strings.Builder
	for i := range 8 {
		if bits&(1<<i) != 0 {
			b.WriteByte(letters[i])
		}
	}
	return b.String()
}
