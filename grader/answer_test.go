package grader

import (
	"strings"
	"testing"

	"nslab/labs"
)

func TestAnswer(t *testing.T) {
	pkts := []labs.Packet{
		{Link: "l1", Proto: "icmp", Src: "10.0.0.2", Dst: "10.0.0.1", ICMPType: 0, TTL: 64, Probe: true},
		{Link: "l1", Proto: "icmp", Src: "10.0.0.2", Dst: "10.0.0.1", ICMPType: 0, TTL: 63},
	}
	fromPkt := &labs.AnswerFromPacket{Link: "l1", Match: labs.PacketMatch{Proto: "icmp", Src: "10.0.0.2"}, Field: "ttl"}
	tests := []struct {
		name   string
		a      labs.AnswerCheck
		cmd    *CommandResult
		pass   bool
		substr string
	}{
		{"fixed right", labs.AnswerCheck{Node: "h1", Question: "q", Expect: []string{"SYN"}}, &CommandResult{Stdout: " syn\n"}, true, "correctly"},
		{"fixed wrong", labs.AnswerCheck{Node: "h1", Question: "q", Expect: []string{"SYN"}}, &CommandResult{Stdout: "ack"}, false, "not right"},
		{"missing", labs.AnswerCheck{Node: "h1", Question: "q", Expect: []string{"x"}}, &CommandResult{Exit: 3}, false, "write it to /run/nslab/answers/q"},
		{"from packet, probe ignored", labs.AnswerCheck{Node: "h1", Question: "ttl", FromPacket: fromPkt}, &CommandResult{Stdout: "63"}, true, "correctly"},
		{"from packet wrong", labs.AnswerCheck{Node: "h1", Question: "ttl", FromPacket: fromPkt}, &CommandResult{Stdout: "64"}, false, "not right"},
		{"not read", labs.AnswerCheck{Node: "h1", Question: "q", Expect: []string{"x"}}, nil, false, "not read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &Observations{Packets: pkts, Commands: map[string]CommandResult{}}
			if tc.cmd != nil {
				obs.Commands["c"] = *tc.cmd
			}
			c := &labs.Check{ID: "c", Description: "d", Answer: &tc.a}
			r := Evaluate(c, obs)
			if r.Passed != tc.pass || !strings.Contains(r.Message, tc.substr) {
				t.Errorf("got %v %q, want %v containing %q", r.Passed, r.Message, tc.pass, tc.substr)
			}
			if !r.Passed && strings.Contains(strings.Join(r.Evidence, " "), "63") {
				t.Errorf("a wrong answer's evidence gives the answer away: %v", r.Evidence)
			}
		})
	}
	if n := Plan(&labs.Exercise{Checks: []labs.Check{{ID: "c", Answer: &labs.AnswerCheck{Node: "h1", Question: "q", FromPacket: fromPkt}}}}); !n.Packets || len(n.Commands) != 1 {
		t.Errorf("Plan = %+v", n)
	}
}
