package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) checkCommand() *cobra.Command {
	var (
		out   output
		ascii bool
	)
	cmd := &cobra.Command{
		Use:   "check [flags] ID [EXERCISE]",
		Short: "grade exercises; exit 1 unless all pass",
		Long: "Grades EXERCISE, or every exercise of the sandbox's lab, and prints each\n" +
			"check's outcome with what was seen and a hint when it failed. Exits 0\n" +
			"when every exercise graded passed, else 1.",
		Example: "  labctl check s-7f3a9c\n" +
			"  labctl check s-7f3a9c follow-the-ttl\n" +
			"  labctl check s-7f3a9c && echo all done",
		Args:              rangeArgs(1, 2, "ID [EXERCISE]"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			return c.check(cmd.Context(), args, out.format, ascii)
		},
	}
	out.registerFormat(cmd.Flags(), "output format: table or json (the GradeResponse)")
	cmd.Flags().BoolVar(&ascii, "ascii", false, "print PASS and FAIL instead of ✓ and ✗")
	return cmd
}

// check is "labctl check ID [EXERCISE]": it grades and exits 0 only when
// every exercise graded passed, so that "labctl check ID && next" works.
func (c *cli) check(ctx context.Context, pos []string, format string, ascii bool) error {
	req := &labsv1.GradeRequest{Sandbox: pos[0]}
	op := "grade sandbox " + pos[0]
	if len(pos) == 2 {
		req.Exercise = pos[1]
		op = fmt.Sprintf("grade exercise %s in %s", pos[1], pos[0])
	}
	client, err := c.gradingClient()
	if err != nil {
		return err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.Grade(cctx, req)
	if err != nil {
		return rpcError(op, err).on(subject{sandbox: req.GetSandbox(), exercise: req.GetExercise()})
	}
	if format == "json" {
		err = c.printJSON(resp)
	} else {
		err = writeReports(c.stdout, resp.GetReports(), marks(ascii))
	}
	if err != nil {
		return err
	}
	reports := resp.GetReports()
	if len(reports) == 0 {
		// Nothing graded is not a pass: a script gating on the exit code
		// must not move on.
		return fmt.Errorf("%s: labd graded no exercises", op)
	}
	for _, r := range reports {
		if !r.GetPassed() {
			return exitCode(1)
		}
	}
	return nil
}

// passMarks are how check outcomes are shown.
type passMarks struct{ pass, fail string }

func marks(ascii bool) passMarks {
	if ascii {
		return passMarks{pass: "PASS", fail: "FAIL"}
	}
	return passMarks{pass: "✓", fail: "✗"}
}

// writeReports prints reports the way a learner reads them:
//
//	forward — Turn on forwarding
//	  ✓ r1 forwards IPv4 (2/2)
//	  ✗ h1 reaches h2 (0/3)
//	    no route to 10.0.2.2 on h1
//	    seen: h1: default via 10.0.1.254
//	    hint: which router does h1 know?
//	  score: 2/5
func writeReports(w io.Writer, reports []*labsv1.GradeReport, m passMarks) error {
	var b strings.Builder
	var score, maxScore int32
	for i, r := range reports {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(orDash(r.GetExercise()))
		if t := r.GetExerciseTitle(); t != "" {
			b.WriteString(" — " + t)
		}
		b.WriteByte('\n')
		for _, res := range r.GetResults() {
			writeResult(&b, res, m)
		}
		fmt.Fprintf(&b, "  score: %d/%d\n", r.GetScore(), r.GetMaxScore())
		score += r.GetScore()
		maxScore += r.GetMaxScore()
	}
	if len(reports) > 1 {
		passed := 0
		for _, r := range reports {
			if r.GetPassed() {
				passed++
			}
		}
		fmt.Fprintf(&b, "\ntotal: %d/%d (%d of %d exercises passed)\n", score, maxScore, passed, len(reports))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeResult(b *strings.Builder, res *labsv1.CheckResult, m passMarks) {
	mark, desc := m.pass, res.GetDescription()
	if !res.GetPassed() {
		mark = m.fail
	}
	switch {
	case res.GetHidden():
		// labd blanks what a failed hidden check would give away; a passed
		// one keeps its description, which still must not be shown.
		desc = "hidden check"
	case desc == "":
		desc = orDash(res.GetCheck())
	}
	fmt.Fprintf(b, "  %s %s (%d/%d)\n", mark, desc, res.GetPoints(), res.GetMaxPoints())
	if res.GetPassed() {
		return
	}
	if msg := strings.TrimSpace(res.GetMessage()); msg != "" {
		writeIndented(b, "    ", msg)
	}
	if res.GetHidden() {
		return
	}
	for _, ev := range res.GetEvidence() {
		writeIndented(b, "    seen: ", ev)
	}
	if h := strings.TrimSpace(res.GetHint()); h != "" {
		writeIndented(b, "    hint: ", h)
	}
}

// writeIndented writes text after prefix, with continuation lines aligned
// under its first character.
func writeIndented(b *strings.Builder, prefix, text string) {
	pad := strings.Repeat(" ", len(prefix))
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if i == 0 {
			b.WriteString(prefix)
		} else {
			b.WriteString(pad)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
}

func (c *cli) gradesCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:               "grades [-o json|table] ID [EXERCISE]",
		Short:             "a sandbox's stored grades",
		Long:              "Lists the grades stored for a sandbox, newest first.",
		Example:           "  labctl grades s-7f3a9c\n  labctl grades -o json s-7f3a9c follow-the-ttl",
		Args:              rangeArgs(1, 2, "ID [EXERCISE]"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, pos []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			req := &labsv1.ListGradesRequest{Sandbox: pos[0]}
			if len(pos) == 2 {
				req.Exercise = pos[1]
			}
			grades, err := c.listGrades(cmd.Context(), req)
			if err != nil {
				return err
			}
			if out.format == "json" {
				return c.printJSON(&labsv1.ListGradesResponse{Grades: grades})
			}
			tw := newTable(c.stdout)
			fmt.Fprintln(tw, "TIME\tEXERCISE\tSCORE\tPASSED")
			for _, g := range grades {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", gradeTime(g.GetGradeTime()), orDash(g.GetExercise()),
					g.GetScore(), g.GetMaxScore(), yesNo(g.GetPassed()))
			}
			return tw.Flush()
		},
	}
	out.registerFormat(cmd.Flags(), "output format: table or json")
	return cmd
}

// listGrades follows the pages of ListGrades to the end.
func (c *cli) listGrades(ctx context.Context, req *labsv1.ListGradesRequest) ([]*labsv1.GradeReport, error) {
	client, err := c.gradingClient()
	if err != nil {
		return nil, err
	}
	op := "list grades of " + req.GetSandbox()
	var (
		all  []*labsv1.GradeReport
		seen = map[string]bool{}
	)
	for {
		cctx, cancel := c.unary(ctx)
		resp, err := client.ListGrades(cctx, req)
		cancel()
		if err != nil {
			return nil, rpcError(op, err).on(subject{sandbox: req.GetSandbox()})
		}
		all = append(all, resp.GetGrades()...)
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		if req.PageToken, err = nextPage(seen, resp.GetNextPageToken()); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
}

// gradeTime is when a grade was made, in local time to the second.
func gradeTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(time.DateTime)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (c *cli) solveCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "solve [-o json|table] ID EXERCISE",
		Short: "run an exercise's reference solution",
		Long: "Runs EXERCISE's reference solution in the sandbox and prints each step\n" +
			"with its output. Exits 0 when every step succeeded, else 1.",
		Example:           "  labctl solve s-7f3a9c follow-the-ttl",
		Args:              exactArgs(2, "ID EXERCISE"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, pos []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			return c.solve(cmd.Context(), pos[0], pos[1], out.format)
		},
	}
	out.registerFormat(cmd.Flags(), "output format: table or json (the SolveResponse)")
	return cmd
}

func (c *cli) solve(ctx context.Context, id, exercise, format string) error {
	op := fmt.Sprintf("solve exercise %s in %s", exercise, id)
	client, err := c.gradingClient()
	if err != nil {
		return err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.Solve(cctx, &labsv1.SolveRequest{Sandbox: id, Exercise: exercise})
	if err != nil {
		return rpcError(op, err).on(subject{sandbox: id, exercise: exercise})
	}
	if format == "json" {
		err = c.printJSON(resp)
	} else {
		err = writeSteps(c.stdout, resp.GetSteps())
	}
	if err != nil {
		return err
	}
	// labd fails the call when a step fails; a response that says so
	// anyway must not pass for a success.
	for i, s := range resp.GetSteps() {
		if s.GetExitCode() != 0 {
			return fmt.Errorf("%s: step %d on %s exited with %d", op, i+1, orDash(s.GetNode()), s.GetExitCode())
		}
	}
	return nil
}

// writeSteps prints solution steps as a shell transcript:
//
//	r1$ sysctl -w net.ipv4.ip_forward=1
//	  net.ipv4.ip_forward = 1
func writeSteps(w io.Writer, steps []*labsv1.SolveStep) error {
	var b bytes.Buffer
	for _, s := range steps {
		// A multi-line script continues as a shell's PS2 would show it.
		run := strings.ReplaceAll(strings.TrimRight(s.GetRun(), "\n"), "\n", "\n> ")
		fmt.Fprintf(&b, "%s$ %s\n", orDash(s.GetNode()), run)
		if out := bytes.TrimRight(s.GetOutput(), "\n"); len(out) > 0 {
			for line := range bytes.SplitSeq(out, []byte("\n")) {
				b.WriteString("  ")
				b.Write(line)
				b.WriteByte('\n')
			}
		}
		if s.GetExitCode() != 0 {
			fmt.Fprintf(&b, "  (exit status %d)\n", s.GetExitCode())
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
