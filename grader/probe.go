package grader

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"nslab/labs"
)

// Probe outcomes are compared as the probe named them. For ping and udp,
// expecting "no-reply" is met by any outcome but a reply (a refusal,
// unreachable or timeout all mean nothing came back). For a tcp check
// with Echo, the prober reports "connected" only when the nonce came
// back; a connection that did not echo it is "no-reply".

func outcomeText(kind, o string) string {
	switch o {
	case labs.OutcomeReply:
		switch kind {
		case labs.CheckUDP:
			return "reply (the nonce came back)"
		case labs.CheckPing, labs.CheckPMTU:
			return "echo reply"
		}
		return "reply"
	case labs.OutcomeNoReply:
		if kind == labs.CheckTCP {
			return "connected, but the nonce was not echoed back"
		}
		return "no reply"
	case labs.OutcomeConnected:
		if kind == labs.CheckHTTP {
			return "a response arrived"
		}
		return "connected"
	case labs.OutcomeRefused:
		if kind == labs.CheckUDP {
			return "refused (ICMP port unreachable)"
		}
		return "connection refused (RST)"
	case labs.OutcomeTimeout:
		return "timed out (no answer at all)"
	case labs.OutcomeUnreachable:
		return "unreachable (ICMP error or no route)"
	case labs.OutcomeNotCrossed:
		return "an answer that never crossed a link (made inside the probing node)"
	case "":
		return "no outcome"
	}
	return o
}

// wantText names an expected outcome.
func wantText(kind, o string) string {
	switch o {
	case labs.OutcomeReply:
		if kind == labs.CheckUDP {
			return "a reply echoing the nonce"
		}
		return "an echo reply"
	case labs.OutcomeConnected:
		if kind == labs.CheckHTTP {
			return "a response"
		}
		return "connected"
	case labs.OutcomeNoReply:
		return "no reply"
	case labs.OutcomeRefused:
		return "refused"
	case labs.OutcomeTimeout:
		return "a timeout"
	}
	return o
}

func probeEvidence(p labs.ProbeResult) []string {
	ev := []string{"outcome: " + orNoneWord(p.Outcome)}
	if p.Detail != "" {
		ev = append(ev, p.Detail)
	}
	if p.RTT > 0 {
		ev = append(ev, "rtt "+p.RTT.Round(time.Microsecond).String())
	}
	return ev
}

// probeFor returns the probe result, or a failed outcome when there is none.
func probeFor(obs *Observations, id, what string) (labs.ProbeResult, *outcome) {
	p, ok := obs.Probes[id]
	if !ok {
		o := fail(what + ": not probed")
		return p, &o
	}
	return p, nil
}

func target(p labs.ProbeResult, to string) string {
	if p.To != "" {
		return p.To
	}
	return to
}

// replyExpected judges ping and udp outcomes against expect.
func replyExpected(expect, got string) bool {
	switch expect {
	case "", labs.OutcomeReply:
		return got == labs.OutcomeReply
	case labs.OutcomeNoReply:
		return got != labs.OutcomeReply && got != ""
	}
	return got == expect
}

func judgeProbe(kind, what, expect, defExpect string, p labs.ProbeResult, ok bool) outcome {
	if expect == "" {
		expect = defExpect
	}
	ev := probeEvidence(p)
	got := outcomeText(kind, p.Outcome)
	if !ok {
		return fail(fmt.Sprintf("%s: %s, want %s", what, got, wantText(kind, expect)), ev...)
	}
	if p.Outcome == expect {
		return pass(fmt.Sprintf("%s: %s", what, got), ev...)
	}
	return pass(fmt.Sprintf("%s: %s, as wanted (%s)", what, got, wantText(kind, expect)), ev...)
}

func evalPing(id string, c *labs.PingCheck, obs *Observations) outcome {
	what := fmt.Sprintf("ping %s from %s", c.To, c.From)
	p, bad := probeFor(obs, id, what)
	if bad != nil {
		return *bad
	}
	what = fmt.Sprintf("ping %s from %s", target(p, c.To), c.From)
	return judgeProbe(labs.CheckPing, what, c.Expect, labs.OutcomeReply, p, replyExpected(c.Expect, p.Outcome))
}

func evalUDP(id string, c *labs.UDPCheck, obs *Observations) outcome {
	what := fmt.Sprintf("udp %s from %s", hostPort(c.To, c.Port), c.From)
	p, bad := probeFor(obs, id, what)
	if bad != nil {
		return *bad
	}
	what = fmt.Sprintf("udp %s from %s", hostPort(target(p, c.To), c.Port), c.From)
	return judgeProbe(labs.CheckUDP, what, c.Expect, labs.OutcomeReply, p, replyExpected(c.Expect, p.Outcome))
}

func evalTCP(id string, c *labs.TCPCheck, obs *Observations) outcome {
	what := fmt.Sprintf("tcp %s from %s", hostPort(c.To, c.Port), c.From)
	p, bad := probeFor(obs, id, what)
	if bad != nil {
		return *bad
	}
	what = fmt.Sprintf("tcp %s from %s", hostPort(target(p, c.To), c.Port), c.From)
	expect := c.Expect
	if expect == "" {
		expect = labs.OutcomeConnected
	}
	return judgeProbe(labs.CheckTCP, what, expect, labs.OutcomeConnected, p, p.Outcome == expect)
}

func evalHTTP(id string, c *labs.HTTPCheck, obs *Observations) outcome {
	what := fmt.Sprintf("http GET %s from %s", c.URL, c.From)
	p, bad := probeFor(obs, id, what)
	if bad != nil {
		return *bad
	}
	expect := c.Expect
	if expect == "" {
		expect = labs.OutcomeConnected
	}
	ev := probeEvidence(p)
	if p.Outcome == labs.OutcomeConnected {
		ev = append(ev, fmt.Sprintf("status %d", p.Status))
		if p.Body != "" {
			ev = append(ev, "body: "+clip(p.Body, 120))
		}
	}
	if p.Outcome != expect {
		return fail(fmt.Sprintf("%s: %s, want %s", what, outcomeText(labs.CheckHTTP, p.Outcome), wantText(labs.CheckHTTP, expect)), ev...)
	}
	if expect != labs.OutcomeConnected {
		return pass(fmt.Sprintf("%s: %s, as wanted", what, outcomeText(labs.CheckHTTP, p.Outcome)), ev...)
	}
	var wrong []string
	if c.Status != 0 && p.Status != c.Status {
		wrong = append(wrong, fmt.Sprintf("status %d, want %d", p.Status, c.Status))
	}
	if c.BodyContains != "" && !strings.Contains(p.Body, c.BodyContains) {
		wrong = append(wrong, fmt.Sprintf("the body does not contain %q", c.BodyContains))
	}
	if len(wrong) > 0 {
		return fail(fmt.Sprintf("%s: %s", what, strings.Join(wrong, "; ")), ev...)
	}
	return pass(fmt.Sprintf("%s: status %d", what, p.Status), ev...)
}

func evalPMTU(id string, c *labs.PMTUCheck, obs *Observations) outcome {
	what := fmt.Sprintf("path MTU from %s to %s", c.From, c.To)
	p, bad := probeFor(obs, id, what)
	if bad != nil {
		return *bad
	}
	what = fmt.Sprintf("path MTU from %s to %s", c.From, target(p, c.To))
	ev := probeEvidence(p)
	ev = append(ev, fmt.Sprintf("largest DF packet answered: %d bytes", p.MTU))
	if p.MTU == 0 {
		return fail(fmt.Sprintf("%s: no DF packet got through (%s), want %d", what, outcomeText(labs.CheckPMTU, p.Outcome), c.MTU), ev...)
	}
	if p.MTU != c.MTU {
		return fail(fmt.Sprintf("%s is %d, want %d", what, p.MTU, c.MTU), ev...)
	}
	return pass(fmt.Sprintf("%s is %d", what, p.MTU), ev...)
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func evalCommand(id string, c *labs.CommandCheck, obs *Observations) outcome {
	what := fmt.Sprintf("`%s` on %s", clip(c.Run, 60), c.Node)
	r, ok := obs.Commands[id]
	if !ok {
		return fail(what + ": not run")
	}
	if r.Err != "" {
		return fail(fmt.Sprintf("%s could not run: %s", what, r.Err))
	}
	ev := []string{fmt.Sprintf("exit %d", r.Exit)}
	if s := strings.TrimSpace(r.Stdout); s != "" {
		ev = append(ev, "stdout: "+clip(s, 300))
	}
	if s := strings.TrimSpace(r.Stderr); s != "" {
		ev = append(ev, "stderr: "+clip(s, 300))
	}
	wantExit := 0
	if c.Exit != nil {
		wantExit = *c.Exit
	}
	var wrong []string
	if r.Exit != wantExit {
		wrong = append(wrong, fmt.Sprintf("exited %d, want %d", r.Exit, wantExit))
	}
	for _, m := range []struct{ name, re, out string }{{"stdout", c.Stdout, r.Stdout}, {"stderr", c.Stderr, r.Stderr}} {
		if m.re == "" {
			continue
		}
		re, err := regexp.Compile(m.re)
		if err != nil {
			return fail(fmt.Sprintf("the check's %s pattern %q is not a valid regexp: %s", m.name, m.re, err), ev...)
		}
		if !re.MatchString(m.out) {
			wrong = append(wrong, fmt.Sprintf("its %s does not match /%s/", m.name, m.re))
		}
	}
	if len(wrong) > 0 {
		return fail(what+": "+andList(wrong), ev...)
	}
	msg := fmt.Sprintf("%s exited %d", what, r.Exit)
	if c.Stdout != "" || c.Stderr != "" {
		msg += " and its output matched"
	}
	return pass(msg, ev...)
}
