package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	labsv1 "nslab/proto/labs/v1"
)

// cmdLabs is "labctl labs [show LAB]".
func (c *cli) cmdLabs(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "show" {
		return c.cmdLabsShow(ctx, args[1:])
	}
	fs := c.newFlags("labs", "labs [-o json|table] [-q]\n       labctl labs show [-o json|table] [-q] LAB")
	var out output
	out.register(fs, "lab ids")
	pos, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr{cmd: "labs", msg: fmt.Sprintf("labs: unexpected argument %q", pos[0])}
	}
	if err := out.check("labs"); err != nil {
		return err
	}
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

// cmdLabsShow is "labctl labs show LAB".
func (c *cli) cmdLabsShow(ctx context.Context, args []string) error {
	fs := c.newFlags("labs show", "labs show [-o json|table] [-q] LAB")
	var out output
	out.register(fs, "node names")
	pos, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr{cmd: "labs show", msg: "labs show: want exactly one LAB"}
	}
	if err := out.check("labs show"); err != nil {
		return err
	}
	client, err := c.labClient()
	if err != nil {
		return err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.GetLab(cctx, &labsv1.GetLabRequest{Name: pos[0]})
	if err != nil {
		return rpcError("get lab "+pos[0], err)
	}
	lab := resp.GetLab()
	switch {
	case out.quiet:
		for _, n := range lab.GetNodes() {
			fmt.Fprintln(c.stdout, n.GetName())
		}
		return nil
	case out.format == "json":
		return c.printJSON(lab)
	}
	return writeLab(c.stdout, lab)
}

func writeLab(w io.Writer, lab *labsv1.Lab) error {
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
		var points int32
		for _, ch := range ex.GetChecks() {
			points += ch.GetPoints()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", ex.GetId(), orDash(ex.GetTitle()), len(ex.GetChecks()), points)
	}
	return tw.Flush()
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
