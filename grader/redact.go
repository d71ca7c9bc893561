package grader

import (
	"regexp"

	"nslab/labs"
)

type redaction struct {
	re   *regexp.Regexp
	with string
}

var (
	seqAck = []redaction{
		// Either number gives the other away (ack = peer's seq + 1).
		{regexp.MustCompile(`\b(seq|ack) \d+`), "$1 …"},
		{regexp.MustCompile(`\b(Seq|Ack):? ?\d+`), "$1 …"},
	}
	macs  = []redaction{{regexp.MustCompile(`(?i)\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b`), "…"}}
	ports = []redaction{
		{regexp.MustCompile(`\b(\d{1,3}(?:\.\d{1,3}){3})\.\d+\b`), "$1.…"},
		{regexp.MustCompile(`\b(sport|dport|port) \d+`), "$1 …"},
	}
	// What a packet's one-line summary would give away, by answer field.
	redactions = map[string][]redaction{
		"seq": seqAck, "ack": seqAck,
		"ttl":     {{regexp.MustCompile(`\b(ttl|hlim|hop limit) \d+`), "$1 …"}},
		"src_mac": macs, "dst_mac": macs,
		"sport": ports, "dport": ports,
	}
)

// RedactAnswers hides, in every other check's message and evidence, the
// packet fields the exercise's answer checks ask the learner to read off
// the capture — otherwise a passing packet check would print the answer.
func RedactAnswers(ex *labs.Exercise, r *Report) {
	var rs []redaction
	for _, c := range ex.Checks {
		if c.Answer != nil && c.Answer.FromPacket != nil {
			rs = append(rs, redactions[c.Answer.FromPacket.Field]...)
		}
	}
	if len(rs) == 0 {
		return
	}
	hide := func(s string) string {
		for _, x := range rs {
			s = x.re.ReplaceAllString(s, x.with)
		}
		return s
	}
	for i := range r.Results {
		if r.Results[i].Kind == labs.CheckAnswer {
			continue
		}
		r.Results[i].Message = hide(r.Results[i].Message)
		for j, e := range r.Results[i].Evidence {
			r.Results[i].Evidence[j] = hide(e)
		}
	}
}
