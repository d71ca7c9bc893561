package grader

import (
	"strings"
	"testing"

	"nslab/labs"
)

func TestRedactAnswers(t *testing.T) {
	ex := &labs.Exercise{Checks: []labs.Check{
		{ID: "hs", Packets: &labs.PacketCheck{Link: "l1"}},
		{ID: "isn", Answer: &labs.AnswerCheck{Node: "c", Question: "isn", FromPacket: &labs.AnswerFromPacket{Link: "l1", Field: "seq"}}},
		{ID: "mac", Answer: &labs.AnswerCheck{Node: "c", Question: "mac", FromPacket: &labs.AnswerFromPacket{Link: "l1", Field: "src_mac"}}},
		{ID: "port", Answer: &labs.AnswerCheck{Node: "c", Question: "port", FromPacket: &labs.AnswerFromPacket{Link: "l1", Field: "sport"}}},
	}}
	r := &Report{Results: []Result{
		{CheckID: "hs", Kind: "packets", Message: "ok", Evidence: []string{
			"12:00:00 c:eth0 IP 10.0.0.1.48106 > 10.0.0.2.7: Flags [S], seq 2670617597, win 64240, length 0",
			"12:00:00 s:eth0 IP 10.0.0.2.7 > 10.0.0.1.48106: Flags [S.], seq 11, ack 2670617598, win 1",
			"from 02:00:00:00:00:01",
		}},
		{CheckID: "isn", Kind: "answer", Evidence: []string{"seq 2670617597"}},
	}}
	RedactAnswers(ex, r)
	all := strings.Join(r.Results[0].Evidence, "\n")
	for _, leak := range []string{"2670617597", "2670617598", "48106", "02:00:00:00:00:01"} {
		if strings.Contains(all, leak) {
			t.Errorf("evidence still shows %s:\n%s", leak, all)
		}
	}
	if !strings.Contains(all, "10.0.0.1.… > 10.0.0.2.…") || !strings.Contains(all, "seq …") {
		t.Errorf("redaction mangled the summary:\n%s", all)
	}
	if r.Results[1].Evidence[0] != "seq 2670617597" {
		t.Errorf("the answer check's own evidence was touched: %v", r.Results[1].Evidence)
	}
}
