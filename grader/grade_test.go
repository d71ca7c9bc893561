package grader

import (
	"reflect"
	"strings"
	"testing"

	"nslab/labs"
)

func sshExercise() *labs.Exercise {
	return &labs.Exercise{
		ID: "ssh-from-admins",
		Checks: []labs.Check{
			{ID: "forward", Description: "r1 forwards IPv4", Points: 2,
				Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.ip_forward", Value: "1"}},
			{ID: "route", Description: "r1 routes to h2's subnet", Hint: "ip route add 10.0.2.0/24 via 10.0.12.2",
				Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.0/24", Via: "10.0.12.2"}},
			{ID: "ssh", Description: "SSH only from the admin subnet", Hint: "add ip saddr to the rule", Points: 3,
				NFTables: &labs.NFTCheck{Node: "fw", Chain: "input", Rule: &labs.RuleMatch{Proto: "tcp", Dport: []int{22}, Saddr: "192.168.1.0/24", Verdict: "accept"}}},
			{ID: "no-telnet", Description: "secret", Hint: "secret hint", Hidden: true,
				NFTables: &labs.NFTCheck{Node: "fw", Chain: "input", Rule: &labs.RuleMatch{Dport: []int{22}, Saddr: "any"}, Absent: true}},
			{ID: "tcp-refused", Description: "h1 reaches h2 on 22", Hint: "is sshd listening?",
				TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22}},
		},
	}
}

func TestGrade(t *testing.T) {
	obs := fixture(t, "", "r1", "fw_open")
	r := Grade(sshExercise(), obs)
	if r.Exercise != "ssh-from-admins" || len(r.Results) != 5 {
		t.Fatalf("report %q with %d results", r.Exercise, len(r.Results))
	}
	wantIDs := []string{"forward", "route", "ssh", "no-telnet", "tcp-refused"}
	wantPassed := []bool{true, false, false, false, false}
	for i, res := range r.Results {
		if res.CheckID != wantIDs[i] || res.Passed != wantPassed[i] {
			t.Errorf("result %d = %s passed=%v, want %s passed=%v (%s)", i, res.CheckID, res.Passed, wantIDs[i], wantPassed[i], res.Message)
		}
		if res.Passed && res.Hint != "" {
			t.Errorf("%s passed but has a hint", res.CheckID)
		}
	}
	if r.Score != 2 || r.Max != 8 || r.Passed {
		t.Errorf("score %d/%d passed=%v, want 2/8 false", r.Score, r.Max, r.Passed)
	}
	if got := r.Results[1]; got.Hint != "ip route add 10.0.2.0/24 via 10.0.12.2" || got.Kind != labs.CheckRoute || got.Description == "" {
		t.Errorf("route result: %+v", got)
	}
	if got := r.Results[2]; !strings.Contains(got.Message, "accepts port 22 from every source, not only 192.168.1.0/24") || got.Points != 0 || got.Max != 3 {
		t.Errorf("ssh result: %+v", got)
	}
	hidden := r.Results[3]
	if hidden.Message != "a hidden check failed" || hidden.Evidence != nil || hidden.Hint != "" || hidden.Description != "" || !hidden.Hidden {
		t.Errorf("hidden result leaks: %+v", hidden)
	}

	// After the fix, every check passes.
	obs = fixture(t, "", "r1", "fw_subnet")
	obs.States["r1"].Routes = append(obs.States["r1"].Routes, labs.RouteState{Table: 254, Dst: "10.0.2.0/24", Via: "10.0.12.2", Dev: "eth1"})
	obs.Probes["tcp-refused"] = labs.ProbeResult{Kind: "tcp", Outcome: labs.OutcomeConnected}
	r = Grade(sshExercise(), obs)
	if !r.Passed || r.Score != r.Max || r.Max != 8 {
		for _, res := range r.Results {
			t.Logf("%s %v %s", res.CheckID, res.Passed, res.Message)
		}
		t.Fatalf("score %d/%d passed=%v, want 8/8 passed", r.Score, r.Max, r.Passed)
	}
	if hidden := r.Results[3]; hidden.Description != "secret" || hidden.Message == HiddenMessage {
		t.Errorf("a passed hidden check shows normally, got %+v", hidden)
	}
}

func TestMalformedChecks(t *testing.T) {
	obs := fixture(t, "", "r1")
	for _, tc := range []struct {
		name  string
		check labs.Check
		msg   string
	}{
		{"no kind", labs.Check{ID: "x"}, "the check sets no kind"},
		{"two kinds", labs.Check{ID: "x", Link: &labs.LinkCheck{Node: "r1", Name: "eth0"}, Sysctl: &labs.SysctlCheck{Node: "r1"}}, "sets 2 kinds (link, sysctl)"},
		{"no node", labs.Check{ID: "x", Link: &labs.LinkCheck{Name: "eth0"}}, "the check names no node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Evaluate(&tc.check, obs)
			if r.Passed || !strings.Contains(r.Message, tc.msg) || r.Max != 1 {
				t.Errorf("got %+v, want failed with %q", r, tc.msg)
			}
		})
	}
	if r := Evaluate(nil, obs); r.Passed {
		t.Error("nil check passed")
	}
	if r := Evaluate(&labs.Check{ID: "l", Link: &labs.LinkCheck{Node: "r1", Name: "eth0"}}, nil); r.Passed || !strings.Contains(r.Message, "not observed") {
		t.Errorf("nil observations: %+v", r)
	}
	if r := Grade(nil, obs); r.Passed || len(r.Results) != 0 {
		t.Errorf("nil exercise: %+v", r)
	}
	if r := Grade(&labs.Exercise{ID: "empty"}, obs); r.Passed {
		t.Error("an exercise without checks passed")
	}
}

func TestPlan(t *testing.T) {
	ex := &labs.Exercise{Checks: []labs.Check{
		{ID: "a", Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.ip_forward"}},
		{ID: "b", Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net/ipv4/ip_forward"}},
		{ID: "c", Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.conf.all.rp_filter"}},
		{ID: "d", NFTables: &labs.NFTCheck{Node: "fw", Table: "filter"}},
		{ID: "e", Route: &labs.RouteCheck{Node: "r2", Dst: "default"}},
		{ID: "f", Neighbor: &labs.NeighborCheck{Node: "r1", Address: "10.0.1.10"}},
		{ID: "g", Socket: &labs.SocketCheck{Node: "h2", Port: 22}},
		{ID: "h", Conntrack: &labs.ConntrackCheck{Node: "r1"}},
		{ID: "i", TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22}},
		{ID: "j", Packets: &labs.PacketCheck{Link: "r2-h2", Node: "h2", Generate: &labs.Traffic{From: "h1", Ping: "h2"}}},
		{ID: "k", Packets: &labs.PacketCheck{Link: "r2-h2"}},
		{ID: "l", Command: &labs.CommandCheck{Node: "h1", Run: "true"}},
		{Ping: &labs.PingCheck{From: "h1", To: "h2"}},
	}}
	n := Plan(ex)
	want := map[string]*StateNeeds{
		"r1": {Sysctls: []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter"}, Neighbors: true, Conntrack: true},
		"fw": {NFT: true},
		"r2": {},
		"h2": {Sockets: true},
	}
	if !reflect.DeepEqual(n.StateNodes, want) {
		for k, v := range n.StateNodes {
			t.Logf("%s: %+v", k, *v)
		}
		t.Errorf("state needs differ")
	}
	var probes []string
	for _, p := range n.Probes {
		probes = append(probes, p.CheckID)
	}
	if !reflect.DeepEqual(probes, []string{"i", "j", "check13"}) {
		t.Errorf("probes = %v", probes)
	}
	if n.Probes[1].Check.Packets == nil || n.Probes[1].Check.Packets.Generate == nil {
		t.Error("packet probe need does not carry its check")
	}
	if !n.Packets || len(n.Commands) != 1 || n.Commands[0] != (CommandNeed{CheckID: "l", Node: "h1", Run: "true"}) {
		t.Errorf("packets=%v commands=%+v", n.Packets, n.Commands)
	}

	// Grade finds the positional id Plan handed out.
	obs := &Observations{Probes: map[string]labs.ProbeResult{"check13": {Kind: "ping", Outcome: labs.OutcomeReply}}}
	if r := Grade(ex, obs).Results[12]; r.CheckID != "check13" || !r.Passed {
		t.Errorf("positional id not found: %+v", r)
	}
}

// BenchmarkGrade grades a 10-check exercise mixing every sort of check.
func BenchmarkGrade(b *testing.B) {
	obs := fixture(b, "handshake", "r1", "h2", "fw_open")
	ex := &labs.Exercise{ID: "bench", Checks: []labs.Check{
		{ID: "link", Link: &labs.LinkCheck{Node: "r1", Name: "eth0", Up: ptr(true), MTU: 1500}},
		{ID: "addr", Address: &labs.AddressCheck{Node: "r1", Dev: "eth1", Address: "10.0.12.1/24"}},
		{ID: "route", Route: &labs.RouteCheck{Node: "r1", Dst: "10.0.2.0/24", Via: "10.0.12.2"}},
		{ID: "rule", Rule: &labs.RuleCheck{Node: "r1", From: "10.0.1.0/24", Table: 100}},
		{ID: "sysctl", Sysctl: &labs.SysctlCheck{Node: "r1", Key: "net.ipv4.tcp_rmem", Value: "4096 87380 6291456"}},
		{ID: "nft", NFTables: &labs.NFTCheck{Node: "fw", Chain: "input", Rule: &labs.RuleMatch{Proto: "tcp", Dport: []int{22}, Saddr: "192.168.1.0/24", Verdict: "accept"}}},
		{ID: "socket", Socket: &labs.SocketCheck{Node: "h2", Proto: "tcp", Port: 22}},
		{ID: "tcp-refused", TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22}},
		{ID: "count", Packets: &labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "icmp", ICMPType: ptr(8)}}},
		{ID: "seq", Packets: &labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "tcp", Port: 22}, Sequence: handshake}},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if r := Grade(ex, obs); len(r.Results) != 10 {
			b.Fatal("wrong result count")
		}
	}
}
