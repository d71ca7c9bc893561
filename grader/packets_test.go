package grader

import (
	"testing"

	"nslab/labs"
)

func pk(c labs.PacketCheck) labs.Check { return labs.Check{Packets: &c} }

var handshake = []labs.PacketMatch{{Flags: "S"}, {Flags: "SA"}, {Flags: "A"}}

func TestPacketCounts(t *testing.T) {
	obs := fixture(t, "handshake", "h2")
	runCases(t, obs, []checkCase{
		{name: "syn seen", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "tcp", Dst: "10.0.2.10", Dport: 22, Flags: "S"}}),
			pass: true, msg: []string{"saw 1 packet matching `tcp dst 10.0.2.10 dport 22 flags S` on link r2-h2 in the last 5m"},
			ev: []string{"r2:eth1 SYN 10.0.1.10:40000 > 10.0.2.10:22 ttl 62"}, notEv: []string{"40001"}},
		{name: "wider window sees the old syn", check: pk(labs.PacketCheck{Link: "r2-h2", Window: "15m", Match: labs.PacketMatch{Flags: "S"}, AtLeast: ptr(2)}),
			pass: true, ev: []string{"40001"}},
		{name: "at most", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Flags: "S"}, AtMost: ptr(1)}), pass: true},
		{name: "at most exceeded", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "tcp"}, AtMost: ptr(2)}),
			msg: []string{"saw 4 packets", "want at most 2"}},
		{name: "flags in any order", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Flags: "AS"}}), pass: true},
		{name: "echo request with ttl", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "icmp", ICMPType: ptr(8), TTL: 62}}), pass: true},
		{name: "ttl differs", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "icmp", ICMPType: ptr(8), TTL: 64}}),
			msg: []string{"saw 0 packets", "want at least 1"},
			ev:  []string{"closest: 11:59:01.000 r2:eth1 ICMP echo request 10.0.1.10 > 10.0.2.10 ttl 62 (ttl 62, want 64)"}},
		{name: "ipv4 family", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "ipv4"}, AtLeast: ptr(7), AtMost: ptr(7)}), pass: true},
		{name: "no ipv6", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "ipv6"}, None: true}), pass: true},
		{name: "cidr source", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "udp", Src: "10.0.1.0/24", Dst: "10.0.2.10", Port: 7}}), pass: true},
		{name: "mac any case", check: pk(labs.PacketCheck{Match: labs.PacketMatch{Proto: "arp", SrcMAC: "02:00:00:00:22:01", DstMAC: "FF:FF:FF:FF:FF:FF"}}), pass: true},
		{name: "none but some", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "icmp"}, None: true}),
			msg: []string{"saw 2 packets matching `icmp`", "want none"}, ev: []string{"ICMP echo reply 10.0.2.10 > 10.0.1.10"}},
		{name: "wrong port", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "tcp", Dport: 80}}),
			msg: []string{"saw 0 packets"}, ev: []string{"(dport 22, want 80)", "8 packets captured on link r2-h2 in the last 5m in all"}},
		{name: "nothing captured", check: pk(labs.PacketCheck{Link: "h1-r1", Match: labs.PacketMatch{Proto: "icmp"}}),
			ev: []string{"no packets were captured on link h1-r1"}},
		{name: "node by mac", check: pk(labs.PacketCheck{Node: "h2", Match: labs.PacketMatch{Flags: "S"}, AtLeast: ptr(1), AtMost: ptr(1)}), pass: true},
		{name: "node without state falls back to its links", check: pk(labs.PacketCheck{Node: "r2", Match: labs.PacketMatch{Flags: "S"}, AtMost: ptr(1)}), pass: true},
		{name: "other link", check: pk(labs.PacketCheck{Link: "r1-r2", Match: labs.PacketMatch{Flags: "S", TTL: 63}}), pass: true},
		{name: "bad window", check: pk(labs.PacketCheck{Window: "5 minutes"}), msg: []string{"not a positive Go duration"}},
		{name: "pkt-gen", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Flags: "SA"}, Generate: &labs.Traffic{From: "h1", TCP: "10.0.2.10:22"}}),
			pass: true, ev: []string{"traffic generated first from h1: connected"}},
	})
}

func TestPacketSequence(t *testing.T) {
	runCases(t, fixture(t, "handshake"), []checkCase{
		{name: "handshake", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "tcp", Port: 22}, Sequence: handshake}),
			pass: true, msg: []string{"saw flags S, flags SA, flags A in flow tcp 10.0.1.10:40000 <> 10.0.2.10:22"},
			ev: []string{"SYN 10.0.1.10:40000 > 10.0.2.10:22", "h2:eth0 SYN-ACK 10.0.2.10:22 > 10.0.1.10:40000", "ACK 10.0.1.10:40000 > 10.0.2.10:22"}},
		{name: "client-side match keeps the reply direction", check: pk(labs.PacketCheck{Match: labs.PacketMatch{Src: "10.0.1.10", Dport: 22}, Sequence: handshake}), pass: true},
		{name: "echo", check: pk(labs.PacketCheck{Link: "r2-h2", Sequence: []labs.PacketMatch{{Proto: "icmp", ICMPType: ptr(8)}, {Proto: "icmp", ICMPType: ptr(0)}}}), pass: true},
		{name: "order matters", check: pk(labs.PacketCheck{Link: "r2-h2", Sequence: []labs.PacketMatch{{Flags: "A"}, {Flags: "S"}}}),
			msg: []string{"stopped at step 1 of 2"}},
		{name: "no first step", check: pk(labs.PacketCheck{Link: "r2-h2", Sequence: []labs.PacketMatch{{Proto: "tcp", Flags: "FA"}, {Flags: "A"}}}),
			msg: []string{"no packet matched the first step `tcp flags FA`"}, ev: []string{"closest:"}},
	})
	runCases(t, fixture(t, "syn_rst"), []checkCase{
		{name: "syn answered by rst", check: pk(labs.PacketCheck{Link: "r2-h2", Match: labs.PacketMatch{Proto: "tcp", Port: 22}, Sequence: handshake}),
			msg: []string{
				"flow tcp 10.0.1.10:40000 <> 10.0.2.10:22 stopped at step 1 of 3",
				"SYN 10.0.1.10:40000 > 10.0.2.10:22 was answered by RST-ACK 10.0.2.10:22 > 10.0.1.10:40000, want flags SA",
			},
			ev: []string{"r2:eth1 SYN 10.0.1.10:40000 > 10.0.2.10:22", "answer: 11:59:00.101 h2:eth0 RST-ACK 10.0.2.10:22 > 10.0.1.10:40000"}},
	})
	runCases(t, fixture(t, "syn_noanswer"), []checkCase{
		{name: "syn without syn-ack", check: pk(labs.PacketCheck{Link: "r2-h2", Sequence: handshake}),
			msg: []string{"SYN 10.0.1.10:40000 > 10.0.2.10:22 got no answer (sent again 2 times), want flags SA"},
			ev:  []string{"SYN 10.0.1.10:40000 > 10.0.2.10:22"}},
	})
}
