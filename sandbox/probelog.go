package sandbox

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"nslab/labs"
)

// probeLog remembers the flows of the grader's own probes — the local
// TCP/UDP port or ICMP echo id each one used, and when — so that their
// packets in the capture can be told apart from the learner's. A port or
// id matches only inside its probe's time window (plus a grace for
// retransmissions and late replies), so a learner who happens to use the
// same number later is not affected.
type probeLog struct {
	mu    sync.Mutex
	marks []probeMark // oldest first, bounded
}

type probeMark struct {
	proto       string // tcp, udp, icmp
	port        uint16
	from, until time.Time
}

const (
	maxProbeMarks = 4096
	probeGrace    = 3 * time.Second
)

func (l *probeLog) add(proto string, port uint16, from, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.marks) >= maxProbeMarks {
		l.marks = append(l.marks[:0], l.marks[len(l.marks)/2:]...)
	}
	l.marks = append(l.marks, probeMark{proto: proto, port: port, from: from.Add(-time.Millisecond), until: until.Add(probeGrace)})
}

// matches reports whether p belongs to a probe's flow.
func (l *probeLog) matches(p *labs.Packet) bool {
	var proto string
	var ports [2]int
	switch p.Proto {
	case "tcp", "udp":
		proto, ports = p.Proto, [2]int{p.Sport, p.Dport}
	case "icmp", "icmpv6":
		if p.Quoted != "" {
			// An error caused by a probe's packet belongs to the probe.
			f := strings.Split(p.Quoted, ":")
			proto = f[0]
			ports = [2]int{-1, -1}
			for i := 1; i < len(f) && i <= 2; i++ {
				ports[i-1], _ = strconv.Atoi(f[i])
			}
			break
		}
		if !isEcho(p) {
			return false
		}
		proto, ports = "icmp", [2]int{p.EchoID, -1}
	default:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.marks) - 1; i >= 0; i-- {
		m := &l.marks[i]
		if m.proto != proto || p.Time.Before(m.from) || p.Time.After(m.until) {
			continue
		}
		if int(m.port) == ports[0] || int(m.port) == ports[1] {
			return true
		}
	}
	return false
}

func isEcho(p *labs.Packet) bool {
	if p.Proto == "icmp" {
		return p.ICMPType == 0 || p.ICMPType == 8
	}
	return p.ICMPType == 128 || p.ICMPType == 129
}
