package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	labsv1 "nslab/proto/labs/v1"
)

// labsCommands is "labctl labs" with "labs show" under it.
func (c *cli) labsCommands() []*cobra.Command {
	var out output
	labs := &cobra.Command{
		Use:   "labs [-o json|table] [-q]",
		Short: "list the labs",
		Long:  "Lists the labs labd can build, grouped by topic, easiest first.",
		Example: "  labctl labs\n" +
			"  labctl labs -q",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			return c.labs(cmd.Context(), out)
		},
	}
	out.register(labs.Flags(), "lab ids")
	labs.AddCommand(c.labsShowCommand())
	return []*cobra.Command{labs}
}

func (c *cli) labs(ctx context.Context, out output) error {
	labs, err := c.listLabs(ctx)
	if err != nil {
		return err
	}
	switch {
	case out.quiet:
		for _, l := range labs {
			fmt.Fprintln(c.stdout, labID(l))
		}
		return nil
	case out.format == "json":
		return c.printJSON(&labsv1.ListLabsResponse{Labs: labs})
	}
	// Grouped by each lab's first (primary) topic, easiest first.
	sorted := slices.Clone(labs)
	slices.SortStableFunc(sorted, func(a, b *labsv1.Lab) int {
		if c := cmp.Compare(primaryTopic(a), primaryTopic(b)); c != 0 {
			return c
		}
		if c := cmp.Compare(levelRank(a.GetLevel()), levelRank(b.GetLevel())); c != 0 {
			return c
		}
		return cmp.Compare(labID(a), labID(b))
	})
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "TOPIC\tID\tTITLE\tLEVEL\tMINUTES\tEXERCISES")
	prev := ""
	for _, l := range sorted {
		topic := primaryTopic(l)
		shown := topic
		if topic == prev {
			shown = ""
		}
		prev = topic
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", shown, labID(l), orDash(l.GetTitle()), orDash(l.GetLevel()), l.GetMinutes(), len(l.GetExercises()))
	}
	return tw.Flush()
}

func primaryTopic(l *labsv1.Lab) string {
	if len(l.GetTopics()) == 0 {
		return "-"
	}
	return l.GetTopics()[0]
}

func levelRank(level string) int {
	switch level {
	case "beginner":
		return 0
	case "intermediate":
		return 1
	case "advanced":
		return 2
	}
	return 3
}

// listLabs follows the pages of ListLabs to the end.
func (c *cli) listLabs(ctx context.Context) ([]*labsv1.Lab, error) {
	client, err := c.labClient()
	if err != nil {
		return nil, err
	}
	var (
		all   []*labsv1.Lab
		token string
		seen  = map[string]bool{}
	)
	for {
		cctx, cancel := c.unary(ctx)
		resp, err := client.ListLabs(cctx, &labsv1.ListLabsRequest{PageToken: token})
		cancel()
		if err != nil {
			return nil, rpcError("list labs", err)
		}
		all = append(all, resp.GetLabs()...)
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		if token, err = nextPage(seen, resp.GetNextPageToken()); err != nil {
			return nil, fmt.Errorf("list labs: %w", err)
		}
	}
}

func (c *cli) labsShowCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show [-o json|table] [-q] LAB",
		Short: "a lab's topology, exercises, instructions",
		Long: "Shows a lab: what it is about, its nodes and links, its exercises and\n" +
			"their instructions. With a sandbox, labctl status shows the same\n" +
			"exercises with your grades.",
		Example: "  labctl labs show routed\n" +
			"  labctl labs show -o json routed | jq '.exercises[].id'",
		Args:              exactArgs(1, "exactly one LAB"),
		ValidArgsFunction: c.completeLabs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			lab, err := c.getLab(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch {
			case out.quiet:
				for _, n := range lab.GetNodes() {
					fmt.Fprintln(c.stdout, n.GetName())
				}
				return nil
			case out.format == "json":
				return c.printJSON(lab)
			}
			return writeLab(c.stdout, lab, c.styleFor(c.stdout))
		},
	}
	out.register(cmd.Flags(), "node names")
	return cmd
}

func writeLab(w io.Writer, lab *labsv1.Lab, st styles) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", labID(lab))
	fmt.Fprintf(tw, "Title:\t%s\n", orDash(lab.GetTitle()))
	fmt.Fprintf(tw, "Level:\t%s\n", orDash(lab.GetLevel()))
	fmt.Fprintf(tw, "Topics:\t%s\n", orDash(strings.Join(lab.GetTopics(), ", ")))
	fmt.Fprintf(tw, "Minutes:\t%d\n", lab.GetMinutes())
	if len(lab.GetRequires()) > 0 {
		fmt.Fprintf(tw, "Requires:\t%s\n", strings.Join(lab.GetRequires(), ", "))
	}
	if lab.GetSource() != "" {
		fmt.Fprintf(tw, "Source:\t%s\n", lab.GetSource())
	}
	fmt.Fprintf(tw, "Summary:\t%s\n", orDash(strings.TrimSpace(lab.GetSummary())))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "NODE\tINTERFACE\tMTU\tADDRESSES\tSERVICES")
	for _, n := range lab.GetNodes() {
		services := orDash(strings.Join(n.GetServices(), ", "))
		if len(n.GetInterfaces()) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", n.GetName(), services)
			continue
		}
		for i, ifc := range n.GetInterfaces() {
			node := n.GetName()
			if i > 0 {
				node, services = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s", node, ifc.GetName(), mtu(ifc.GetMtu()),
				orDash(strings.Join(ifc.GetAddresses(), ", ")))
			if services != "" { // no padding after the last cell
				fmt.Fprintf(tw, "\t%s", services)
			}
			fmt.Fprintln(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(lab.GetLinks()) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "LINK\tENDPOINTS")
		for _, l := range lab.GetLinks() {
			fmt.Fprintf(tw, "%s\t%s\n", l.GetName(), orDash(strings.Join(l.GetEndpoints(), " ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(lab.GetExercises()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "EXERCISE\tTITLE\tCHECKS\tPOINTS")
	for _, ex := range lab.GetExercises() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", ex.GetId(), orDash(ex.GetTitle()), len(ex.GetChecks()), exercisePoints(ex))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for i, ex := range lab.GetExercises() {
		b.WriteByte('\n')
		writeExercise(&b, i, len(lab.GetExercises()), ex, "", st)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func exercisePoints(ex *labsv1.Exercise) int32 {
	var points int32
	for _, ch := range ex.GetChecks() {
		points += ch.GetPoints()
	}
	return points
}

// writeExercise writes an exercise's heading (with its status in a
// sandbox, when known) and its instructions rendered for the terminal:
//
//	Exercise 1 of 3: Follow a packet hop by hop (follow-the-ttl, 4 points)
//	──────────────────────────────────────────────────────────────────────
//	  h1 (10.0.1.10) and h2 (10.0.2.10) are on different subnets...
func writeExercise(b *strings.Builder, i, n int, ex *labsv1.Exercise, status string, st styles) {
	title := fmt.Sprintf("Exercise %d of %d: %s", i+1, n, orDash(ex.GetTitle()))
	meta := fmt.Sprintf("(%s, %s)", ex.GetId(), plural(int(exercisePoints(ex)), "point"))
	if st.on {
		fmt.Fprintf(b, "%s %s", st.bold(st.underline(title)), st.dim(meta))
	} else {
		fmt.Fprintf(b, "%s %s", title, meta)
	}
	if status != "" {
		b.WriteString("  " + status)
	}
	b.WriteByte('\n')
	if !st.on {
		b.WriteString(strings.Repeat("-", width(title)+1+width(meta)) + "\n")
	}
	if text := strings.TrimSpace(ex.GetInstructions()); text != "" {
		b.WriteByte('\n')
		b.WriteString(renderMarkdown(text, "  ", st))
	}
}

func labID(l *labsv1.Lab) string {
	if l.GetId() != "" {
		return l.GetId()
	}
	return lastSegment(l.GetName())
}

// mtu renders an MTU; 0 means the kernel default.
func mtu(v int32) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}
