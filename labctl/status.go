package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) statusCommand() *cobra.Command {
	var (
		out   output
		ascii bool
	)
	cmd := &cobra.Command{
		Use:   "status [flags] ID",
		Short: "exercises, grades and instructions",
		Long: "Shows the sandbox's lab and each exercise with its latest grade (passed,\n" +
			"the score, or never graded), then every exercise's instructions.",
		Example: "  labctl status s-7f3a9c\n" +
			"  labctl status -o json s-7f3a9c | jq '.exercises[] | select(.passed | not) | .id'",
		Args:              exactArgs(1, "exactly one sandbox ID"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			return c.status(cmd.Context(), args[0], out.format, marks(ascii))
		},
	}
	out.registerFormat(cmd.Flags(), "output format: table or json")
	cmd.Flags().BoolVar(&ascii, "ascii", false, "print PASS and FAIL instead of ✓ and ✗")
	return cmd
}

// exerciseStatus is an exercise of a sandbox's lab with its latest grade.
type exerciseStatus struct {
	ex    *labsv1.Exercise
	grade *labsv1.GradeReport // nil: never graded
}

func (c *cli) status(ctx context.Context, id, format string, m passMarks) error {
	sb, err := c.getSandbox(ctx, id)
	if err != nil {
		return err
	}
	c.warnIfExpiring(sb, false)
	if sb.GetLab() == "" {
		return fmt.Errorf("status of %s: labd names no lab for the sandbox", id)
	}
	lab, err := c.getLab(ctx, sb.GetLab())
	if err != nil {
		return err
	}
	grades, err := c.listGrades(ctx, &labsv1.ListGradesRequest{Sandbox: id})
	if err != nil {
		return err
	}
	latest := map[string]*labsv1.GradeReport{}
	for _, g := range grades {
		// labd lists newest first; compare anyway, the order is its promise.
		if prev, ok := latest[g.GetExercise()]; !ok || g.GetGradeTime().AsTime().After(prev.GetGradeTime().AsTime()) {
			latest[g.GetExercise()] = g
		}
	}
	exs := make([]exerciseStatus, len(lab.GetExercises()))
	for i, ex := range lab.GetExercises() {
		exs[i] = exerciseStatus{ex: ex, grade: latest[ex.GetId()]}
	}
	if format == "json" {
		return writeStatusJSON(c.stdout, sb, lab, exs)
	}
	return writeStatus(c.stdout, sb, lab, exs, c.cfg.now(), m, c.styleFor(c.stdout))
}

func writeStatus(w io.Writer, sb *labsv1.Sandbox, lab *labsv1.Lab, exs []exerciseStatus, now time.Time, m passMarks, st styles) error {
	var b strings.Builder
	passed := 0
	for _, e := range exs {
		if e.grade.GetPassed() {
			passed++
		}
	}
	tw := newTable(&b)
	fmt.Fprintf(tw, "Sandbox:\t%s (%s)\n", sandboxID(sb), stateName(sb.GetState()))
	fmt.Fprintf(tw, "Lab:\t%s — %s\n", labID(lab), orDash(lab.GetTitle()))
	fmt.Fprintf(tw, "Progress:\t%d of %s passed\n", passed, plural(len(exs), "exercise"))
	tw.Flush()

	if len(exs) > 0 {
		b.WriteByte('\n')
		tw = newTable(&b)
		fmt.Fprintln(tw, "EXERCISE\tTITLE\tGRADED\tSTATUS")
		for _, e := range exs {
			graded := "-"
			if e.grade != nil && e.grade.GetGradeTime() != nil {
				graded = humanDuration(now.Sub(e.grade.GetGradeTime().AsTime())) + " ago"
			}
			// The status is the last column: colour escapes would upset
			// the padding of any other.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ex.GetId(), orDash(e.ex.GetTitle()), graded, gradeStatus(e.grade, m, st))
		}
		tw.Flush()
	}
	for i, e := range exs {
		b.WriteByte('\n')
		writeExercise(&b, i, len(exs), e.ex, gradeStatus(e.grade, m, st), st)
	}
	if learned := strings.TrimSpace(lab.GetLearned()); learned != "" && len(exs) > 0 && passed == len(exs) {
		b.WriteString("\n" + st.bold("What you learned") + "\n")
		if !st.on {
			b.WriteString(strings.Repeat("-", len("What you learned")) + "\n")
		}
		b.WriteString("\n" + renderMarkdown(learned, "  ", st))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// gradeStatus is a grade as status shows it: ✓ passed 4/4, ✗ failed 2/7
// or never graded.
func gradeStatus(g *labsv1.GradeReport, m passMarks, st styles) string {
	switch {
	case g == nil:
		return st.dim("never graded")
	case g.GetPassed():
		return st.green(fmt.Sprintf("%s passed %d/%d", m.pass, g.GetScore(), g.GetMaxScore()))
	}
	return st.red(fmt.Sprintf("%s failed %d/%d", m.fail, g.GetScore(), g.GetMaxScore()))
}

// statusJSON is status -o json. There is no API message for it: it joins
// three calls.
type statusJSON struct {
	Sandbox   string               `json:"sandbox"`
	State     string               `json:"state"`
	Lab       string               `json:"lab"`
	LabTitle  string               `json:"labTitle"`
	Passed    int                  `json:"passed"`
	Exercises []exerciseStatusJSON `json:"exercises"`
}

type exerciseStatusJSON struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Graded   bool   `json:"graded"`
	Passed   bool   `json:"passed"`
	Score    int32  `json:"score"`
	MaxScore int32  `json:"maxScore"`
	// RFC 3339; empty when never graded.
	GradeTime string `json:"gradeTime,omitempty"`
}

func writeStatusJSON(w io.Writer, sb *labsv1.Sandbox, lab *labsv1.Lab, exs []exerciseStatus) error {
	out := statusJSON{
		Sandbox: sandboxID(sb), State: stateName(sb.GetState()), Lab: labID(lab), LabTitle: lab.GetTitle(),
		Exercises: []exerciseStatusJSON{},
	}
	for _, e := range exs {
		j := exerciseStatusJSON{ID: e.ex.GetId(), Title: e.ex.GetTitle(), MaxScore: exercisePoints(e.ex)}
		if g := e.grade; g != nil {
			j.Graded, j.Passed, j.Score, j.MaxScore = true, g.GetPassed(), g.GetScore(), g.GetMaxScore()
			if g.GetGradeTime() != nil {
				j.GradeTime = g.GetGradeTime().AsTime().Format(time.RFC3339)
			}
			if g.GetPassed() {
				out.Passed++
			}
		}
		out.Exercises = append(out.Exercises, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
