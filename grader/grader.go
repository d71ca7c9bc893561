// Package grader turns observations into a graded report.
//
// It owns the meaning of every check kind in labs.Check: given what the
// sandbox read from the kernel (labs.NodeState), what the probes saw
// (labs.ProbeResult), what the hub captured (labs.Packet) and what
// command checks printed, it decides pass or fail and says, in learner
// terms, what is right or what is still wrong, with the evidence it
// looked at. It does no I/O: Plan says what to collect, the caller
// collects it, Grade judges it.
package grader

import (
	"fmt"
	"strings"
	"time"

	"nslab/labs"
)

// Observations is everything the sandbox collected for one grading run.
type Observations struct {
	// Now is the grading time; packet windows count back from it. When it
	// is zero, packets are not filtered by time.
	Now    time.Time
	States map[string]*labs.NodeState // by node name
	// Probes holds behaviour probe results by check id (and, for packet
	// checks with Generate, the generated traffic's outcome).
	Probes map[string]labs.ProbeResult
	// Packets is everything the capture ring holds; the grader filters
	// by link, node and window itself.
	Packets  []labs.Packet
	Commands map[string]CommandResult // by check id
}

// CommandResult is how a command check's command ended.
type CommandResult struct {
	Exit           int
	Stdout, Stderr string
	// Err says why the command could not run at all (no such node,
	// timeout, exec failure); empty when it ran.
	Err string
}

// Result is the verdict on one check.
type Result struct {
	CheckID, Kind, Description string
	Passed                     bool
	Points, Max                int // Max = check points (0 means 1); Points = Max if passed, else 0
	// Message says precisely what is right or what is still wrong.
	Message string
	// Evidence is what was observed: the state found, the probe outcome,
	// matching packets, or the closest miss.
	Evidence []string
	Hint     string // only when failed
	// Hidden: a failed hidden check shows only HiddenMessage, with no
	// description, evidence or hint.
	Hidden bool
}

// Report is the verdict on one exercise.
type Report struct {
	Exercise   string
	Results    []Result // in check order
	Score, Max int
	// Passed: every check passed (and there was at least one).
	Passed bool
}

// HiddenMessage is all a learner sees of a hidden check that failed.
const HiddenMessage = "a hidden check failed"

// maxEvidence bounds the lines of evidence per result, so a busy link or
// a big ruleset cannot bloat a report.
const maxEvidence = 8

// Grade evaluates every check of ex against obs, in order.
func Grade(ex *labs.Exercise, obs *Observations) *Report {
	r := &Report{}
	if ex == nil {
		return r
	}
	r.Exercise = ex.ID
	r.Results = make([]Result, 0, len(ex.Checks))
	for i := range ex.Checks {
		c := checkWithID(&ex.Checks[i], i)
		res := Evaluate(c, obs)
		r.Results = append(r.Results, res)
		r.Score += res.Points
		r.Max += res.Max
	}
	r.Passed = len(r.Results) > 0
	for _, res := range r.Results {
		if !res.Passed {
			r.Passed = false
		}
	}
	RedactAnswers(ex, r)
	return r
}

// checkWithID gives a check without an id the positional id "check<N>",
// so Plan's keys and Grade's lookups agree. Valid labs always name
// their checks; this only keeps a bad definition from colliding on "".
func checkWithID(c *labs.Check, i int) *labs.Check {
	if c.ID != "" {
		return c
	}
	cc := *c
	cc.ID = fmt.Sprintf("check%d", i+1)
	return &cc
}

// outcome is what an evaluator decides before points and hiding apply.
type outcome struct {
	passed   bool
	message  string
	evidence []string
}

func pass(msg string, ev ...string) outcome { return outcome{passed: true, message: msg, evidence: ev} }
func fail(msg string, ev ...string) outcome { return outcome{message: msg, evidence: ev} }

// Evaluate judges one check.
func Evaluate(c *labs.Check, obs *Observations) (res Result) {
	if c == nil {
		return Result{Kind: "", Max: 1, Message: "no check given"}
	}
	if obs == nil {
		obs = &Observations{}
	}
	res = Result{
		CheckID:     c.ID,
		Kind:        c.Kind(),
		Description: c.Description,
		Max:         c.Points,
		Hidden:      c.Hidden,
	}
	if res.Max <= 0 {
		res.Max = 1
	}
	// A grader bug must cost one check, not the server or the report.
	defer func() {
		if p := recover(); p != nil {
			res.Passed, res.Points = false, 0
			res.Message = fmt.Sprintf("internal grader error on check %q: %v", c.ID, p)
			res.Evidence = nil
			finish(&res, c)
		}
	}()
	o := evaluate(c, obs)
	res.Passed = o.passed
	res.Message = o.message
	res.Evidence = capEvidence(o.evidence)
	finish(&res, c)
	return res
}

func finish(res *Result, c *labs.Check) {
	if res.Passed {
		res.Points = res.Max
		res.Hint = ""
		return
	}
	res.Points = 0
	res.Hint = c.Hint
	if c.Hidden {
		res.Description = ""
		res.Message = HiddenMessage
		res.Evidence = nil
		res.Hint = ""
	}
}

func capEvidence(ev []string) []string {
	var out []string
	for _, e := range ev {
		if e != "" {
			out = append(out, e)
		}
	}
	if len(out) > maxEvidence {
		n := len(out) - maxEvidence
		out = append(out[:maxEvidence:maxEvidence], fmt.Sprintf("(%d more not shown)", n))
	}
	return out
}

func evaluate(c *labs.Check, obs *Observations) outcome {
	kinds := c.Kinds()
	switch len(kinds) {
	case 0:
		return fail("the check sets no kind (link, address, route, ...); nothing to grade")
	case 1:
	default:
		return fail(fmt.Sprintf("the check sets %d kinds (%s); exactly one is allowed", len(kinds), strings.Join(kinds, ", ")))
	}
	switch {
	case c.Link != nil:
		return evalLink(c.Link, obs)
	case c.Address != nil:
		return evalAddress(c.Address, obs)
	case c.Route != nil:
		return evalRoute(c.Route, obs)
	case c.Rule != nil:
		return evalRule(c.Rule, obs)
	case c.Neighbor != nil:
		return evalNeighbor(c.Neighbor, obs)
	case c.Sysctl != nil:
		return evalSysctl(c.Sysctl, obs)
	case c.NFTables != nil:
		return evalNFT(c.NFTables, obs)
	case c.Socket != nil:
		return evalSocket(c.Socket, obs)
	case c.Conntrack != nil:
		return evalConntrack(c.Conntrack, obs)
	case c.Ping != nil:
		return evalPing(c.ID, c.Ping, obs)
	case c.TCP != nil:
		return evalTCP(c.ID, c.TCP, obs)
	case c.UDP != nil:
		return evalUDP(c.ID, c.UDP, obs)
	case c.HTTP != nil:
		return evalHTTP(c.ID, c.HTTP, obs)
	case c.PMTU != nil:
		return evalPMTU(c.ID, c.PMTU, obs)
	case c.Packets != nil:
		return evalPackets(c.ID, c.Packets, obs)
	case c.Command != nil:
		return evalCommand(c.ID, c.Command, obs)
	case c.Answer != nil:
		return evalAnswer(c.ID, c.Answer, obs)
	}
	return fail(fmt.Sprintf("unknown check kind %q", kinds[0]))
}
