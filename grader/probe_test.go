package grader

import (
	"testing"

	"nslab/labs"
)

// Probe fixtures are keyed by check id, so each case's name is the id of
// the probe result it is judged against.
func TestProbes(t *testing.T) {
	obs := fixture(t, "")
	runCases(t, obs, []checkCase{
		{name: "ping-ok", check: labs.Check{Ping: &labs.PingCheck{From: "h1", To: "h2"}},
			pass: true, msg: []string{"ping 10.0.2.10 from h1: echo reply"}, ev: []string{"rtt 412µs"}},
		{name: "ping-none", check: labs.Check{Ping: &labs.PingCheck{From: "h1", To: "h2"}},
			msg: []string{"ping 10.0.2.10 from h1: no reply, want an echo reply"}},
		{name: "ping-unreach", check: labs.Check{Ping: &labs.PingCheck{From: "h1", To: "h2", Expect: "no-reply"}},
			pass: true, msg: []string{"unreachable (ICMP error or no route), as wanted (no reply)"}, ev: []string{"ICMP host unreachable from 10.0.1.1"}},
		{name: "ping-missing", check: labs.Check{Ping: &labs.PingCheck{From: "h1", To: "h2"}},
			msg: []string{"ping h2 from h1: not probed"}},
		{name: "tcp-ok", check: labs.Check{TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22}},
			pass: true, msg: []string{"tcp 10.0.2.10:22 from h1: connected"}},
		{name: "tcp-refused", check: labs.Check{TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22}},
			msg: []string{"tcp 10.0.2.10:22 from h1: connection refused (RST), want connected"}, ev: []string{"outcome: refused", "RST from 10.0.2.10"}},
		{name: "tcp-timeout", check: labs.Check{TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22}},
			msg: []string{"tcp 10.0.2.10:22 from h1: timed out (no answer at all), want connected"}},
		{name: "tcp-refused", check: labs.Check{TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22, Expect: "timeout"}},
			msg: []string{"connection refused (RST), want a timeout"}},
		{name: "tcp-timeout", check: labs.Check{TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 22, Expect: "timeout"}},
			pass: true},
		{name: "tcp-noecho", check: labs.Check{TCP: &labs.TCPCheck{From: "h1", To: "h2", Port: 7, Echo: true}},
			msg: []string{"connected, but the nonce was not echoed back, want connected"}},
		{name: "udp-ok", check: labs.Check{UDP: &labs.UDPCheck{From: "h1", To: "h2", Port: 7}}, pass: true},
		{name: "udp-refused", check: labs.Check{UDP: &labs.UDPCheck{From: "h1", To: "h2", Port: 7}},
			msg: []string{"udp 10.0.2.10:7 from h1: refused (ICMP port unreachable), want a reply echoing the nonce"}},
		{name: "udp-refused", check: labs.Check{UDP: &labs.UDPCheck{From: "h1", To: "h2", Port: 7, Expect: "no-reply"}}, pass: true},
		{name: "http-ok", check: labs.Check{HTTP: &labs.HTTPCheck{From: "h1", URL: "http://h2/", Status: 200, BodyContains: "hello from h2"}},
			pass: true, msg: []string{"http GET http://h2/ from h1: status 200"}},
		{name: "http-ok", check: labs.Check{HTTP: &labs.HTTPCheck{From: "h1", URL: "http://h2/", BodyContains: "goodbye"}},
			msg: []string{`the body does not contain "goodbye"`}, ev: []string{"body: hello from h2"}},
		{name: "http-404", check: labs.Check{HTTP: &labs.HTTPCheck{From: "h1", URL: "http://h2/", Status: 200}},
			msg: []string{"status 404, want 200"}},
		{name: "http-404", check: labs.Check{HTTP: &labs.HTTPCheck{From: "h1", URL: "http://h2/"}}, pass: true},
		{name: "http-refused", check: labs.Check{HTTP: &labs.HTTPCheck{From: "h1", URL: "http://h2/"}},
			msg: []string{"connection refused (RST), want a response"}},
		{name: "http-refused", check: labs.Check{HTTP: &labs.HTTPCheck{From: "h1", URL: "http://h2/", Expect: "refused"}}, pass: true},
		{name: "pmtu-1400", check: labs.Check{PMTU: &labs.PMTUCheck{From: "h1", To: "h2", MTU: 1400}},
			pass: true, msg: []string{"path MTU from h1 to 10.0.2.10 is 1400"}},
		{name: "pmtu-1400", check: labs.Check{PMTU: &labs.PMTUCheck{From: "h1", To: "h2", MTU: 1500}},
			msg: []string{"path MTU from h1 to 10.0.2.10 is 1400, want 1500"}},
		{name: "pmtu-none", check: labs.Check{PMTU: &labs.PMTUCheck{From: "h1", To: "h2", MTU: 1500}},
			msg: []string{"no DF packet got through (no reply), want 1500"}},
	})
}

func TestCommand(t *testing.T) {
	obs := fixture(t, "")
	runCases(t, obs, []checkCase{
		{name: "cmd-ok", check: labs.Check{Command: &labs.CommandCheck{Node: "h1", Run: "ping -c3 h2", Stdout: `3 received`}},
			pass: true, msg: []string{"`ping -c3 h2` on h1 exited 0 and its output matched"}},
		{name: "cmd-ok", check: labs.Check{Command: &labs.CommandCheck{Node: "h1", Run: "ping -c3 h2", Stdout: `0 received`}},
			msg: []string{"its stdout does not match /0 received/"}, ev: []string{"stdout: PING ok"}},
		{name: "cmd-fail", check: labs.Check{Command: &labs.CommandCheck{Node: "h1", Run: "ping -c1 10.9.9.9"}},
			msg: []string{"exited 1, want 0"}, ev: []string{"stderr: connect: Network is unreachable"}},
		{name: "cmd-fail", check: labs.Check{Command: &labs.CommandCheck{Node: "h1", Run: "ping -c1 10.9.9.9", Exit: ptr(1), Stderr: "unreachable"}}, pass: true},
		{name: "cmd-err", check: labs.Check{Command: &labs.CommandCheck{Node: "h9", Run: "true"}},
			msg: []string{"`true` on h9 could not run: node h9 does not exist"}},
		{name: "cmd-missing", check: labs.Check{Command: &labs.CommandCheck{Node: "h1", Run: "true"}},
			msg: []string{"not run"}},
		{name: "cmd-ok", check: labs.Check{Command: &labs.CommandCheck{Node: "h1", Run: "true", Stdout: "("}},
			msg: []string{"not a valid regexp"}},
	})
}
