package grader

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"nslab/labs"
)

// answerCommand reads a learner's answer file; a missing file exits 3.
func answerCommand(a *labs.AnswerCheck) string {
	path := labs.AnswersDir + "/" + a.Question
	return fmt.Sprintf("test -f %s || exit 3; head -c 4096 %s", path, path)
}

// packetField renders one field of a packet as a learner would write it.
func packetField(p *labs.Packet, field string) string {
	switch field {
	case "ttl":
		return strconv.Itoa(p.TTL)
	case "src":
		return p.Src
	case "dst":
		return p.Dst
	case "sport":
		return strconv.Itoa(p.Sport)
	case "dport":
		return strconv.Itoa(p.Dport)
	case "seq":
		return strconv.FormatUint(uint64(p.Seq), 10)
	case "ack":
		return strconv.FormatUint(uint64(p.Ack), 10)
	case "flags":
		return p.Flags
	case "len":
		return strconv.Itoa(p.Len)
	case "src_mac":
		return p.SrcMAC
	case "dst_mac":
		return p.DstMAC
	case "icmp_type":
		return strconv.Itoa(p.ICMPType)
	}
	return ""
}

func normAnswer(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

func evalAnswer(id string, a *labs.AnswerCheck, obs *Observations) outcome {
	path := labs.AnswersDir + "/" + a.Question
	r, ok := obs.Commands[id]
	switch {
	case !ok:
		return fail(fmt.Sprintf("the answer to %q was not read", a.Question))
	case r.Err != "":
		return fail(fmt.Sprintf("could not read %s on %s: %s", path, a.Node, r.Err))
	case r.Exit == 3:
		return fail(fmt.Sprintf("no answer to %q yet: on %s, write it to %s", a.Question, a.Node, path))
	case r.Exit != 0:
		return fail(fmt.Sprintf("could not read %s on %s (exit %d): %s", path, a.Node, r.Exit, strings.TrimSpace(r.Stderr)))
	}
	got := normAnswer(r.Stdout)
	want := a.Expect
	var ev []string
	if fp := a.FromPacket; fp != nil {
		// Any matching packet in the window counts: a learner may answer
		// from their latest connection or their first.
		want = nil
		var from time.Time
		if !obs.Now.IsZero() {
			from = obs.Now.Add(-defaultWindow)
		}
		for i := range obs.Packets {
			p := &obs.Packets[i]
			if p.Link == fp.Link && !p.Probe && !p.Spoofed && !p.Time.Before(from) && packetMatches(&fp.Match, p) {
				v := packetField(p, fp.Field)
				if normAnswer(v) == got {
					ev = append(ev, "from: "+describePacket(p))
				}
				want = append(want, v)
			}
		}
		if len(want) == 0 {
			return fail(fmt.Sprintf("the answer to %q comes from a packet `%s` on link %s, and none was captured yet: make the traffic first",
				a.Question, renderPacketMatch(&fp.Match), fp.Link))
		}
	}
	if slices.ContainsFunc(want, func(w string) bool { return normAnswer(w) == got }) {
		return pass(fmt.Sprintf("answered %q correctly: %s", a.Question, strings.TrimSpace(r.Stdout)), ev...)
	}
	// No evidence: the packet would give the answer away.
	return fail(fmt.Sprintf("the answer to %q is %q, which is not right", a.Question, strings.TrimSpace(clip(r.Stdout, 80))))
}
