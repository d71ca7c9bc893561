package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"nslab/labs"
)

// A probe's socket lives in the node it probes from, so whatever runs in
// that node can answer it: a raw socket can copy the request back into
// the node's own stack, an nftables redirect can hand it to a local
// server. Neither answer ever crosses a link. The hub capture sees every
// frame on every link and knows the port each one came in by, which a
// learner cannot forge, so an answer counts only when the capture saw
// the exchange cross the hub:
//
//   - the request left through one of the prober's own ports;
//   - the answer came back to the prober from a port that is not its own,
//     on one of the prober's links, carrying this attempt's nonce (the
//     echo payload, the SYN's sequence number, the datagram's text);
//   - for a reply or a connection to an address the lab gives to another
//     node, that node itself sent the answer from one of its ports (so a
//     router on the way cannot answer in its place); a refusal or an ICMP
//     error may come from any router on the path;
//   - for TCP data (an echoed nonce, an HTTP response), every byte the
//     probe read crossed the prober's link from the peer's side.
//
// An exchange may stay inside the prober only when the target is a
// loopback address, the prober's own address in the lab, or an address
// the lab places on no link and routes nowhere from the prober (a
// namespace the learner built inside the node): the hub cannot see
// those, and the result says so.
//
// A probe registers a watch before its first packet leaves; the capture
// reader hands it the matching frames as it records them. Once the
// socket has its answer, Capture.Sync waits for the reader to catch up
// (frames reach the capture socket before the bridge forwards them, so an
// answer that crossed the hub is on record by then) and the watch's
// frames are judged: no sleeps, no polling of the ring.

// probeSyncGrace is the least time Sync gets after an answer, even when
// the answer came at the end of the probe's timeout.
const probeSyncGrace = 200 * time.Millisecond

// maxWatchFrames bounds the frames one watch keeps.
const maxWatchFrames = 1024

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// --- frames as a watch sees them ---

// wirePkt is an IP packet of a captured frame, decoded only as far as a
// probe's watch needs, without allocating.
type wirePkt struct {
	v6       bool
	src, dst netip.Addr
	proto    uint8
	l4       []byte // the transport header and payload, as far as captured
	l4Len    int    // the transport length on the wire
}

// parseWire decodes an Ethernet frame carrying IPv4 or IPv6. A later
// fragment, ARP and anything else are not decoded.
func parseWire(d []byte, p *wirePkt) bool {
	if len(d) < 14 {
		return false
	}
	et := capBE16(d[12:])
	d = d[14:]
	for (et == 0x8100 || et == 0x88a8) && len(d) >= 4 {
		et = capBE16(d[2:])
		d = d[4:]
	}
	switch et {
	case 0x0800:
		return parseIP4(d, p)
	case 0x86dd:
		return parseIP6(d, p)
	}
	return false
}

func parseIP4(d []byte, p *wirePkt) bool {
	if len(d) < 20 || d[0]>>4 != 4 {
		return false
	}
	ihl := int(d[0]&0x0f) * 4
	if ihl < 20 || len(d) < ihl || capBE16(d[6:])&0x1fff != 0 {
		return false
	}
	*p = wirePkt{
		src: netip.AddrFrom4([4]byte(d[12:16])), dst: netip.AddrFrom4([4]byte(d[16:20])),
		proto: d[9], l4: d[ihl:], l4Len: max(int(capBE16(d[2:]))-ihl, 0),
	}
	p.trim()
	return true
}

func parseIP6(d []byte, p *wirePkt) bool {
	if len(d) < 40 || d[0]>>4 != 6 {
		return false
	}
	plen := int(capBE16(d[4:]))
	nh := d[6]
	b := d[40:]
walk:
	for range 8 {
		var n int
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 2 {
				return false
			}
			n = (int(b[1]) + 1) * 8
		case 44: // fragment
			if len(b) < 8 || capBE16(b[2:])>>3 != 0 {
				return false
			}
			n = 8
		case 51: // authentication header
			if len(b) < 2 {
				return false
			}
			n = (int(b[1]) + 2) * 4
		default:
			break walk
		}
		if len(b) < n {
			return false
		}
		nh, b, plen = b[0], b[n:], plen-n
	}
	*p = wirePkt{
		v6: true, src: netip.AddrFrom16([16]byte(d[8:24])), dst: netip.AddrFrom16([16]byte(d[24:40])),
		proto: nh, l4: b, l4Len: max(plen, 0),
	}
	p.trim()
	return true
}

// trim cuts what follows the IP packet in a frame: the Ethernet padding
// of a short frame is not payload.
func (p *wirePkt) trim() {
	if len(p.l4) > p.l4Len {
		p.l4 = p.l4[:p.l4Len]
	}
}

type tcpSeg struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
	payload      []byte // as far as captured
	payloadLen   int    // on the wire
}

func (p *wirePkt) tcp() (tcpSeg, bool) {
	if p.proto != 6 || len(p.l4) < 20 {
		return tcpSeg{}, false
	}
	b := p.l4
	off := int(b[12]>>4) * 4
	s := tcpSeg{sport: capBE16(b[0:]), dport: capBE16(b[2:]), seq: capBE32(b[4:]), ack: capBE32(b[8:]), flags: b[13]}
	if off >= 20 {
		if off < len(b) {
			s.payload = b[off:]
		}
		s.payloadLen = max(p.l4Len-off, 0)
	}
	return s, true
}

// udp returns the ports and the payload (as far as captured) of a UDP
// datagram, and whether the capture cut the payload short.
func (p *wirePkt) udp() (sport, dport uint16, payload []byte, cut, ok bool) {
	if p.proto != 17 || len(p.l4) < 8 {
		return 0, 0, nil, false, false
	}
	payload = p.l4[8:]
	return capBE16(p.l4[0:]), capBE16(p.l4[2:]), payload, len(payload) < p.l4Len-8, true
}

func (p *wirePkt) isICMP() bool {
	return len(p.l4) >= 8 && (!p.v6 && p.proto == 1 || p.v6 && p.proto == 58)
}

// echo decodes an ICMP or ICMPv6 echo request (request true) or reply.
func (p *wirePkt) echo() (request bool, id, seq uint16, data []byte, ok bool) {
	if !p.isICMP() {
		return false, 0, 0, nil, false
	}
	t := p.l4[0]
	switch {
	case !p.v6 && t == 8, p.v6 && t == 128:
		request = true
	case !p.v6 && t == 0, p.v6 && t == 129:
	default:
		return false, 0, 0, nil, false
	}
	return request, capBE16(p.l4[4:]), capBE16(p.l4[6:]), p.l4[8:], true
}

// quoted decodes the packet an ICMP or ICMPv6 error quotes.
func (p *wirePkt) quoted(q *wirePkt) bool {
	if !p.isICMP() {
		return false
	}
	t := p.l4[0]
	if !(!p.v6 && (t == 3 || t == 11 || t == 12) || p.v6 && t >= 1 && t <= 4) {
		return false
	}
	if p.v6 {
		return parseIP6(p.l4[8:], q)
	}
	return parseIP4(p.l4[8:], q)
}

// quotesPort reports whether p is an ICMP error about a TCP or UDP packet
// (proto 6 or 17) sent from local port lport.
func (p *wirePkt) quotesPort(proto uint8, lport uint16) bool {
	var q wirePkt
	return p.quoted(&q) && q.proto == proto && len(q.l4) >= 4 && capBE16(q.l4) == lport
}

// --- watches ---

// probeWatch collects, while a probe runs, the frames of its exchange as
// the capture reader records them.
type probeWatch struct {
	c *Capture
	// match is called by the reader, under c.mu, for every frame
	// recorded while the watch is registered; it may keep state.
	match    func(p *wirePkt, port int) bool
	frames   []watchedFrame // guarded by c.mu; appended only
	overflow bool           // guarded by c.mu
	drops    uint64         // the capture's kernel drops when the watch began
}

type watchedFrame struct {
	port    int
	data    []byte
	origLen int
}

// watch registers a watch; stop it when done. On a closed capture it
// never sees a frame.
func (c *Capture) watch(match func(p *wirePkt, port int) bool) *probeWatch {
	w := &probeWatch{c: c, match: match, drops: c.Stats().KernelDrops}
	c.mu.Lock()
	if !c.closed {
		c.watches[w] = struct{}{}
	}
	c.mu.Unlock()
	return w
}

func (w *probeWatch) stop() {
	w.c.mu.Lock()
	delete(w.c.watches, w)
	w.c.mu.Unlock()
}

// seen returns the frames collected so far.
func (w *probeWatch) seen() []watchedFrame {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.frames[:len(w.frames):len(w.frames)]
}

// lossNote says why a verdict may be wrong through no fault of the
// learner's: frames the capture or the watch had to drop.
func (w *probeWatch) lossNote() string {
	w.c.mu.Lock()
	over := w.overflow
	w.c.mu.Unlock()
	var parts []string
	if lost := w.c.Stats().KernelDrops - w.drops; lost > 0 {
		parts = append(parts, fmt.Sprintf("the hub capture lost %d frames meanwhile", lost))
	}
	if over {
		parts = append(parts, fmt.Sprintf("more than %d frames matched the probe", maxWatchFrames))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " and ") + ": under heavy traffic; if nothing was forged, grade again)"
}

// showWatches offers a recorded frame to the watches. c.mu is held.
func (c *Capture) showWatches(port int, data []byte, origLen int) {
	var p wirePkt
	if !parseWire(data, &p) {
		return
	}
	for w := range c.watches {
		if !w.match(&p, port) {
			continue
		}
		if len(w.frames) >= maxWatchFrames {
			w.overflow = true
			continue
		}
		w.frames = append(w.frames, watchedFrame{port: port, data: bytes.Clone(data), origLen: origLen})
	}
}

// --- where an answer must come from ---

// probeScope is what the lab says about where a probe's answer must
// come from.
type probeScope struct {
	from  string
	dst   netip.Addr
	ports []capPort
	// local is non-empty when the exchange may stay inside the prober:
	// it says why, for the result's detail.
	local  string
	own    map[netip.Addr]bool // the prober's addresses in the lab
	mine   map[int]bool        // the prober's hub ports
	links  map[string]bool     // the links those ports are on
	owners []string            // the other nodes the lab gives dst to
	owns   map[int]bool        // their hub ports
	toward string              // the prober's link towards dst, as the lab draws it
}

// ownStack reports whether an ICMP error is one the prober's own stack
// makes about its own packet: host (address) unreachable, from its own
// address, when no neighbour answered its ARP or neighbour solicitation.
// That answer is the node's, as a "no route" error is, and crosses no
// link; every other ICMP error comes from a router or the target.
func (sp *probeScope) ownStack(from netip.Addr, v6 bool, typ, code uint8) bool {
	neigh := !v6 && typ == 3 && code == 1 || v6 && typ == 1 && code == 3
	return neigh && (from.IsLoopback() || sp.own[from.Unmap()])
}

func (sp *probeScope) node(port int) string {
	n, _, _ := strings.Cut(sp.ports[port].endpoint, ":")
	return n
}

// near reports whether a frame came into the hub on one of the prober's
// links from a port that is not the prober's: the last hop of an answer.
func (sp *probeScope) near(port int) bool {
	return !sp.mine[port] && sp.links[sp.ports[port].link]
}

// probeScope works out, from the lab definition (never from the node's
// present state, which the learner controls), where an answer from dst to
// node from must come from.
func (s *Sandbox) probeScope(from string, dst netip.Addr) (*probeScope, error) {
	if s.capture == nil {
		return nil, fmt.Errorf("probe from %s: sandbox %s has no hub capture to confirm answers with", from, s.ID)
	}
	sp := &probeScope{from: from, dst: dst, ports: s.capture.ports,
		own: map[netip.Addr]bool{}, mine: map[int]bool{}, links: map[string]bool{}, owns: map[int]bool{}}
	var myLinks []string
	ifLink := map[string]string{} // node:iface -> link
	for i, p := range sp.ports {
		ifLink[p.endpoint] = p.link
		if sp.node(i) == from {
			sp.mine[i] = true
			if !sp.links[p.link] {
				sp.links[p.link] = true
				myLinks = append(myLinks, p.link)
			}
		}
	}
	self, inSubnet := false, false
	subnetLink := ""
	for _, n := range s.Lab.Nodes {
		for _, ifc := range n.Interfaces {
			link := ifLink[n.Name+":"+ifc.Name]
			for _, a := range ifc.Addresses {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					continue
				}
				if n.Name == from {
					sp.own[p.Addr().Unmap()] = true
				}
				if p.Addr().Unmap() == dst {
					if n.Name == from {
						self = true
					} else if !slices.Contains(sp.owners, n.Name) {
						sp.owners = append(sp.owners, n.Name)
					}
				}
				if p.Masked().Contains(dst) && link != "" {
					inSubnet = true
					if n.Name == from && subnetLink == "" {
						subnetLink = link
					}
				}
			}
		}
	}
	for i := range sp.ports {
		if slices.Contains(sp.owners, sp.node(i)) {
			sp.owns[i] = true
		}
	}
	routed, viaLink := s.labRoutes(from, dst, ifLink)
	switch {
	case dst.IsLoopback() || dst.IsUnspecified():
		sp.local = fmt.Sprintf("%s is a loopback address: the answer needs no link", dst)
	case self && len(sp.owners) == 0:
		sp.local = fmt.Sprintf("%s is %s's own address: the answer needs no link", dst, from)
	case len(sp.owners) == 0 && !inSubnet && !routed:
		sp.local = fmt.Sprintf("%s is on no lab link and %s has no lab route to it: the exchange may stay inside %s, where the hub capture cannot vouch for it", dst, from, from)
	}
	// The link to name when nothing crossed: the prober's link on dst's
	// subnet, else one it shares with dst's owner, else the one its
	// route to dst leaves by, else its only link.
	sp.toward = subnetLink
	for i := range sp.ports {
		if sp.toward == "" && sp.owns[i] && sp.links[sp.ports[i].link] {
			sp.toward = sp.ports[i].link
		}
	}
	if sp.toward == "" && sp.links[viaLink] {
		sp.toward = viaLink
	}
	if sp.toward == "" {
		sp.toward = strings.Join(myLinks, " or ")
	}
	return sp, nil
}

// labRoutes reports whether the lab gives node from a route covering dst
// other than a default route, and the link of its most specific route
// to dst (a default one too) when its gateway is on one of the node's
// subnets. A default route says nothing about where the lab puts dst:
// an address it places on no link may be a namespace the learner builds
// inside the node.
func (s *Sandbox) labRoutes(from string, dst netip.Addr, ifLink map[string]string) (routed bool, link string) {
	n := s.Lab.Node(from)
	if n == nil {
		return false, ""
	}
	linkOf := func(gw, dev string) string {
		if dev != "" {
			if l := ifLink[from+":"+dev]; l != "" {
				return l
			}
		}
		g, err := netip.ParseAddr(gw)
		if err != nil {
			return ""
		}
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil && p.Masked().Contains(g.Unmap()) {
					return ifLink[from+":"+ifc.Name]
				}
			}
		}
		return ""
	}
	best := -1
	for _, r := range n.Routes {
		var p netip.Prefix
		switch r.Dst {
		case "default":
			p = netip.MustParsePrefix("0.0.0.0/0")
		case "default6":
			p = netip.MustParsePrefix("::/0")
		default:
			var err error
			if p, err = netip.ParsePrefix(r.Dst); err != nil {
				continue
			}
		}
		if !p.Masked().Contains(dst) || p.Bits() <= best {
			continue
		}
		best = p.Bits()
		routed = routed || p.Bits() > 0
		link = linkOf(r.Via, r.Dev)
		for _, nh := range r.Nexthops {
			link = cmp.Or(link, linkOf(nh.Via, nh.Dev))
		}
	}
	return routed, link
}

// --- verdicts ---

// crossing is what a watch's frames show of one exchange.
type crossing struct {
	request string // the request's noun: "echo request", "SYN", "datagram"
	answer  string // the answer's noun: "echo reply", "SYN-ACK", "RST", "ICMP error"
	sentOn  string // the link the request left the prober on; "" if it never did
	nearBy  string // the endpoint that brought the answer onto the prober's link
	// needOwner: the answer must come from the node the lab gives the
	// target to (a reply or a connection, not a refusal or an error).
	needOwner bool
	ownerBy   string // the owner's endpoint that sent the answer
}

// judge turns what the frames show into a verdict: "" when the answer
// crossed the hub as it must, else the reason it does not count.
func (sp *probeScope) judge(x crossing) string {
	toward := sp.toward
	if x.sentOn != "" {
		toward = x.sentOn
	}
	switch {
	case x.nearBy == "" && toward == "":
		return fmt.Sprintf("the reply never crossed a link: %s has no link to the hub, so the answer came from %s itself (%s that no other node sent)",
			sp.from, sp.from, article(x.answer))
	case x.nearBy == "" && x.sentOn == "":
		return fmt.Sprintf("the reply never crossed link %s: the answer came from %s itself (its %s to %s never left %s: a local address, a redirect or a forged %s answered it)",
			toward, sp.from, x.request, sp.dst, sp.from, x.answer)
	case x.nearBy == "":
		return fmt.Sprintf("the reply never crossed link %s: the answer came from %s itself (its %s to %s left on %s, but no %s came back to %s across a link)",
			toward, sp.from, x.request, sp.dst, x.sentOn, x.answer, sp.from)
	case x.needOwner && len(sp.owners) > 0 && x.ownerBy == "":
		return fmt.Sprintf("the reply never came from %s: %s reached %s from %s, but %s, which holds %s, sent none on any of its links (something on the way answered in its place)",
			strings.Join(sp.owners, " or "), article(x.answer), sp.from, x.nearBy, strings.Join(sp.owners, " or "), sp.dst)
	}
	return ""
}

// article puts "a" or "an" before a noun.
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiouAEIOU", rune(noun[0])) || strings.HasPrefix(noun, "RST") {
		return "an " + noun
	}
	return "a " + noun
}

// confirm waits until the capture has recorded every frame it had
// received (so an answer that crossed the hub is on record), bounded by
// the probe's deadline but at least probeSyncGrace from now.
func (pr *probeRun) confirmSync() ([]watchedFrame, error) {
	deadline, _ := pr.ctx.Deadline()
	deadline = probeMaxTime(deadline, time.Now().Add(probeSyncGrace))
	ctx, cancel := context.WithDeadline(pr.parent, deadline)
	defer cancel()
	if err := pr.sb.capture.Sync(ctx); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, fmt.Errorf("confirm the answer in the hub capture: sandbox %s: %w", pr.sb.ID, ErrGone)
		}
		return nil, fmt.Errorf("confirm the answer in the hub capture: %w", err)
	}
	return pr.watch().seen(), nil
}

// verdict applies sp.judge to the frames, naming losses that may explain
// a failure.
func (pr *probeRun) verdict(x crossing) string {
	v := pr.scope.judge(x)
	if v != "" {
		v += pr.watch().lossNote()
	}
	return v
}

// noteLocal adds to a detail why an answer that needs no link counts.
func (pr *probeRun) noteLocal(detail string) string {
	if pr.scope.local == "" {
		return detail
	}
	if detail == "" {
		return pr.scope.local
	}
	return detail + "; " + pr.scope.local
}

// --- per protocol ---

// watchEcho watches ICMP echo requests and replies carrying nonce, and
// ICMP errors quoting an echo request with identifier id.
func (pr *probeRun) watchEcho(id uint16, nonce []byte) {
	pr.setWatch(func(p *wirePkt, port int) bool {
		if _, _, _, data, ok := p.echo(); ok {
			return bytes.HasPrefix(data, nonce)
		}
		var q wirePkt
		if p.quoted(&q) {
			_, qid, _, _, ok := q.echo()
			return ok && qid == id
		}
		return false
	})
}

// crossedEcho judges echo request seq: an echo reply (reply true) or an
// ICMP error quoting the request.
func (pr *probeRun) crossedEcho(frames []watchedFrame, id, seq uint16, nonce []byte, reply bool) string {
	sp := pr.scope
	x := crossing{request: "echo request", answer: "echo reply", needOwner: reply}
	if !reply {
		x.answer = "ICMP error"
	}
	for _, f := range frames {
		var p wirePkt
		if !parseWire(f.data, &p) {
			continue
		}
		if req, _, s, data, ok := p.echo(); ok && s == seq && bytes.HasPrefix(data, nonce) {
			switch {
			case req && sp.mine[f.port]:
				x.sentOn = cmp.Or(x.sentOn, sp.ports[f.port].link)
			case !req && reply && sp.near(f.port):
				x.nearBy = cmp.Or(x.nearBy, sp.ports[f.port].endpoint)
			}
			if !req && reply && sp.owns[f.port] {
				x.ownerBy = cmp.Or(x.ownerBy, sp.ports[f.port].endpoint)
			}
			continue
		}
		var q wirePkt
		if !reply && sp.near(f.port) && p.quoted(&q) {
			if req, qid, qseq, _, ok := q.echo(); ok && req && qid == id && qseq == seq {
				x.nearBy = cmp.Or(x.nearBy, sp.ports[f.port].endpoint)
			}
		}
	}
	return pr.verdict(x)
}

// tcpWatch follows one TCP connection from local port lport. The SYN
// the prober sends (seen leaving by one of its ports) gives the initial
// sequence number, which any answer to it acknowledges: that finds the
// answer where it was sent, even behind a NAT that changed the ports.
type tcpWatch struct {
	lport  uint16
	iss    uint32
	hasISS bool // guarded by the capture's mu
}

func (pr *probeRun) watchTCP(lport uint16) {
	tw := &tcpWatch{lport: lport}
	sp := pr.scope
	pr.setWatch(func(p *wirePkt, port int) bool {
		t, ok := p.tcp()
		if !ok {
			return p.quotesPort(6, lport)
		}
		if t.sport == lport || t.dport == lport {
			if !tw.hasISS && sp.mine[port] && t.sport == lport && t.flags&(tcpSYN|tcpACK) == tcpSYN {
				tw.iss, tw.hasISS = t.seq, true
			}
			return true
		}
		return tw.hasISS && t.flags&tcpACK != 0 && t.flags&(tcpSYN|tcpRST) != 0 && t.ack == tw.iss+1
	})
}

// tcpAnswer is what answered a probe's SYN.
type tcpAnswer int

const (
	tcpConnected tcpAnswer = iota // a SYN-ACK
	tcpRefused                    // a RST
	tcpICMP                       // an ICMP error
)

// crossedTCP judges the handshake of the connection from lport and, when
// read is not nil, that the n bytes it read (read holds the first of
// them) came across the prober's link from the peer.
func (pr *probeRun) crossedTCP(frames []watchedFrame, lport uint16, ans tcpAnswer, read []byte, n int) string {
	sp := pr.scope
	x := crossing{request: "SYN", answer: "SYN-ACK", needOwner: ans == tcpConnected}
	switch ans {
	case tcpRefused:
		x.answer = "RST"
	case tcpICMP:
		x.answer = "ICMP error"
	}
	var (
		iss, irs     uint32
		hasISS       bool
		rport, wport uint16 // the peer's port and the prober's, on the prober's link
	)
	var data []tcpSeg // from the peer, on the prober's link
	for _, f := range frames {
		var p wirePkt
		if !parseWire(f.data, &p) {
			continue
		}
		t, ok := p.tcp()
		if !ok {
			if ans == tcpICMP && sp.near(f.port) && p.quotesPort(6, lport) {
				x.nearBy = cmp.Or(x.nearBy, sp.ports[f.port].endpoint)
			}
			continue
		}
		if sp.mine[f.port] && t.sport == lport && t.flags&(tcpSYN|tcpACK) == tcpSYN {
			if !hasISS {
				iss, hasISS, wport, rport = t.seq, true, t.sport, t.dport
			}
			if t.seq == iss {
				x.sentOn = cmp.Or(x.sentOn, sp.ports[f.port].link)
			}
			continue
		}
		if !hasISS || t.flags&tcpACK == 0 {
			continue
		}
		answers := t.ack == iss+1 && (ans == tcpConnected && t.flags&tcpSYN != 0 && t.flags&tcpRST == 0 ||
			ans == tcpRefused && t.flags&tcpRST != 0)
		if answers && sp.near(f.port) && t.dport == wport {
			if x.nearBy == "" && ans == tcpConnected {
				irs = t.seq
			}
			x.nearBy = cmp.Or(x.nearBy, sp.ports[f.port].endpoint)
		}
		if answers && sp.owns[f.port] {
			x.ownerBy = cmp.Or(x.ownerBy, sp.ports[f.port].endpoint)
		}
		if sp.near(f.port) && t.dport == wport && t.sport == rport && t.payloadLen > 0 {
			data = append(data, t)
		}
	}
	if v := pr.verdict(x); v != "" || read == nil {
		return v
	}
	if v := tcpStreamCrossed(data, irs+1, read, n); v != "" {
		return fmt.Sprintf("the reply never crossed link %s: %s (they were made inside %s itself)%s",
			cmp.Or(x.sentOn, sp.toward), v, sp.from, pr.watch().lossNote())
	}
	return ""
}

// tcpStreamCrossed checks that the peer's segments seen on the link cover
// the first n bytes of its stream (starting at sequence number start) and
// that the bytes captured equal read, the first bytes the probe read. It
// returns "" or what is wrong.
func tcpStreamCrossed(segs []tcpSeg, start uint32, read []byte, n int) string {
	type span struct{ off, end int }
	spans := make([]span, 0, len(segs))
	for _, s := range segs {
		off := int(int32(s.seq - start))
		end := off + s.payloadLen
		if end <= 0 || off >= n {
			continue
		}
		spans = append(spans, span{off, end})
		for i, b := range s.payload {
			k := off + i
			if i >= s.payloadLen || k >= len(read) {
				break
			}
			if k >= 0 && b != read[k] {
				return fmt.Sprintf("byte %d of what the probe read is not what crossed the link", k)
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.off - b.off })
	covered := 0
	for _, s := range spans {
		if s.off > covered {
			break
		}
		covered = max(covered, s.end)
	}
	if covered < n {
		return fmt.Sprintf("the probe read %d bytes from the peer, but only the first %d crossed the link", n, covered)
	}
	return ""
}

// watchUDP watches datagrams from or to local port lport, datagrams
// carrying nonce (found behind a NAT too), and ICMP errors quoting a
// datagram from lport.
func (pr *probeRun) watchUDP(lport uint16, nonce []byte) {
	pr.setWatch(func(p *wirePkt, port int) bool {
		if sport, dport, payload, _, ok := p.udp(); ok {
			return sport == lport || dport == lport || bytes.Contains(payload, nonce)
		}
		return p.quotesPort(17, lport)
	})
}

// crossedUDP judges a datagram exchange from lport to port: a reply
// carrying nonce (reply true) or an ICMP error quoting the datagram.
func (pr *probeRun) crossedUDP(frames []watchedFrame, lport, port uint16, nonce []byte, reply bool) string {
	sp := pr.scope
	x := crossing{request: "datagram", answer: "reply", needOwner: reply}
	if !reply {
		x.answer = "ICMP error"
	}
	for _, f := range frames {
		var p wirePkt
		if !parseWire(f.data, &p) {
			continue
		}
		sport, dport, payload, cut, ok := p.udp()
		if !ok {
			if !reply && sp.near(f.port) && p.quotesPort(17, lport) {
				x.nearBy = cmp.Or(x.nearBy, sp.ports[f.port].endpoint)
			}
			continue
		}
		// The nonce names the datagram and its echo whatever a NAT did
		// to the ports; the ports stand in only where the capture cut
		// the nonce off.
		has := bytes.Contains(payload, nonce)
		switch {
		case sp.mine[f.port] && (has || cut && sport == lport):
			x.sentOn = cmp.Or(x.sentOn, sp.ports[f.port].link)
		case reply && sp.near(f.port) && (has || cut && sport == port && dport == lport):
			x.nearBy = cmp.Or(x.nearBy, sp.ports[f.port].endpoint)
		}
		if reply && sp.owns[f.port] && (has || cut && sport == port) {
			x.ownerBy = cmp.Or(x.ownerBy, sp.ports[f.port].endpoint)
		}
	}
	return pr.verdict(x)
}

// tcpAnswerOf says what answered a SYN that must cross the hub, from
// the error a connect ended with and its outcome; ok is false when
// nothing from the network did (a timeout, the node's own stack).
func (pr *probeRun) tcpAnswerOf(err error, outcome string) (tcpAnswer, bool) {
	var ie *icmpError
	if errors.As(err, &ie) && !ie.local {
		if pr.scope.ownStack(ie.from, ie.v6, ie.typ, ie.code) {
			return 0, false
		}
		return tcpICMP, true
	}
	if outcome == labs.OutcomeRefused {
		return tcpRefused, true
	}
	return 0, false
}

// udpAnswered reports whether a UDP socket error is an answer that must
// cross the hub: an ICMP error not made by the node's own stack.
func (pr *probeRun) udpAnswered(err error) bool {
	var ie *icmpError
	if errors.As(err, &ie) && !ie.local {
		return !pr.scope.ownStack(ie.from, ie.v6, ie.typ, ie.code)
	}
	return errors.Is(err, unix.ECONNREFUSED) // an ICMP port unreachable
}

// readRecorder counts the bytes read through a connection and keeps the
// first of them, so that they can be compared with what crossed the link.
// The HTTP transport reads from its own goroutine.
type readRecorder struct {
	net.Conn
	mu   sync.Mutex
	n    int
	head []byte
}

const readRecordLimit = 16 << 10

func (r *readRecorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.mu.Lock()
	r.n += n
	if k := min(n, readRecordLimit-len(r.head)); k > 0 {
		r.head = append(r.head, b[:k]...)
	}
	r.mu.Unlock()
	return n, err
}

// snapshot returns the first bytes read and how many were read in all.
func (r *readRecorder) snapshot() ([]byte, int) {
	if r == nil {
		return nil, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.head), r.n
}

func probeMaxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// notCrossed turns a result whose answer did not cross the hub into the
// outcome that says so.
func notCrossed(res *labs.ProbeResult, why string) {
	res.Outcome, res.Detail, res.RTT = labs.OutcomeNotCrossed, why, 0
}
