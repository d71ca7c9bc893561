package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

// cmdStart is "labctl start LAB". Its stdout is the new sandbox's id and
// nothing else, so that ID=$(labctl start routed) works.
func (c *cli) cmdStart(ctx context.Context, args []string) error {
	fs := c.newFlags("start", "start LAB\n\nCreates a sandbox from LAB, waits until it is ready and prints its id.")
	pos, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr{cmd: "start", msg: "start: want exactly one LAB"}
	}
	lab := pos[0]
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	progress := progressWriter(c.stderr)
	fmt.Fprintf(progress, "labctl: creating a sandbox from %s...\n", lab)
	began := c.cfg.now()
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.CreateSandbox(cctx, &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		return rpcError("start lab "+lab, err)
	}
	sb := resp.GetSandbox()
	id := sandboxID(sb)
	switch {
	case id == "":
		return fmt.Errorf("start lab %s: labd returned no sandbox id", lab)
	case sb.GetState() == labsv1.Sandbox_STATE_FAILED:
		return fmt.Errorf("start lab %s: sandbox %s failed: %s", lab, id, orDash(sb.GetFailureReason()))
	}
	fmt.Fprintf(progress, "labctl: sandbox %s is %s (%d nodes, %s)\n", id, stateName(sb.GetState()),
		len(sb.GetNodes()), c.cfg.now().Sub(began).Round(100*time.Millisecond))
	_, err = fmt.Fprintln(c.stdout, id)
	return err
}

// progressWriter is stderr when a person watches it, else nothing: scripts
// that capture stderr want diagnostics, not chatter.
func progressWriter(stderr io.Writer) io.Writer {
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return stderr
		}
	}
	return io.Discard
}

// cmdLs is "labctl ls".
func (c *cli) cmdLs(ctx context.Context, args []string) error {
	fs := c.newFlags("ls", "ls [-o json|table] [-q]")
	var out output
	out.register(fs, "sandbox ids")
	pos, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr{cmd: "ls", msg: fmt.Sprintf("ls: unexpected argument %q", pos[0])}
	}
	if err := out.check("ls"); err != nil {
		return err
	}
	sandboxes, err := c.listSandboxes(ctx)
	if err != nil {
		return err
	}
	switch {
	case out.quiet:
		for _, sb := range sandboxes {
			fmt.Fprintln(c.stdout, sandboxID(sb))
		}
		return nil
	case out.format == "json":
		return c.printJSON(&labsv1.ListSandboxesResponse{Sandboxes: sandboxes})
	}
	now := c.cfg.now()
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tLAB\tSTATE\tNODES\tAGE")
	for _, sb := range sandboxes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", sandboxID(sb), orDash(lastSegment(sb.GetLab())),
			stateName(sb.GetState()), len(sb.GetNodes()), age(now, sb.GetCreateTime()))
	}
	return tw.Flush()
}

// listSandboxes follows the pages of ListSandboxes to the end.
func (c *cli) listSandboxes(ctx context.Context) ([]*labsv1.Sandbox, error) {
	client, err := c.sandboxClient()
	if err != nil {
		return nil, err
	}
	var (
		all   []*labsv1.Sandbox
		token string
		seen  = map[string]bool{}
	)
	for {
		cctx, cancel := c.unary(ctx)
		resp, err := client.ListSandboxes(cctx, &labsv1.ListSandboxesRequest{PageToken: token})
		cancel()
		if err != nil {
			return nil, rpcError("list sandboxes", err)
		}
		all = append(all, resp.GetSandboxes()...)
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		if token, err = nextPage(seen, resp.GetNextPageToken()); err != nil {
			return nil, fmt.Errorf("list sandboxes: %w", err)
		}
	}
}

// cmdShow is "labctl show ID".
func (c *cli) cmdShow(ctx context.Context, args []string) error {
	fs := c.newFlags("show", "show [-o json|table] [-q] ID")
	var out output
	out.register(fs, "node names")
	pos, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr{cmd: "show", msg: "show: want exactly one sandbox ID"}
	}
	if err := out.check("show"); err != nil {
		return err
	}
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.GetSandbox(cctx, &labsv1.GetSandboxRequest{Name: pos[0]})
	if err != nil {
		return rpcError("get sandbox "+pos[0], err)
	}
	sb := resp.GetSandbox()
	switch {
	case out.quiet:
		for _, n := range sb.GetNodes() {
			fmt.Fprintln(c.stdout, n.GetName())
		}
		return nil
	case out.format == "json":
		return c.printJSON(sb)
	}
	return writeSandbox(c.stdout, sb, c.cfg.now())
}

func writeSandbox(w io.Writer, sb *labsv1.Sandbox, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", sandboxID(sb))
	fmt.Fprintf(tw, "Lab:\t%s\n", orDash(lastSegment(sb.GetLab())))
	fmt.Fprintf(tw, "State:\t%s\n", stateName(sb.GetState()))
	fmt.Fprintf(tw, "Created:\t%s\n", when(now, sb.GetCreateTime()))
	fmt.Fprintf(tw, "Ready:\t%s\n", when(now, sb.GetReadyTime()))
	if r := sb.GetFailureReason(); r != "" {
		fmt.Fprintf(tw, "Failure:\t%s\n", r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "NODE\tINTERFACE\tSTATE\tMTU\tMAC\tADDRESSES\tLINK")
	for _, n := range sb.GetNodes() {
		if len(n.GetInterfaces()) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\n", n.GetName())
			continue
		}
		for i, ifc := range n.GetInterfaces() {
			node := n.GetName()
			if i > 0 {
				node = ""
			}
			updown := "down"
			if ifc.GetUp() {
				updown = "up"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", node, ifc.GetName(), updown, mtu(ifc.GetMtu()),
				orDash(ifc.GetMac()), orDash(strings.Join(ifc.GetAddresses(), ", ")), orDash(ifc.GetLink()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(sb.GetLinks()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "LINK\tENDPOINTS")
	for _, l := range sb.GetLinks() {
		fmt.Fprintf(tw, "%s\t%s\n", l.GetName(), orDash(strings.Join(l.GetEndpoints(), " ")))
	}
	return tw.Flush()
}

// cmdStop is "labctl stop ID [ID...]". It tries every id and fails if any
// failed.
func (c *cli) cmdStop(ctx context.Context, args []string) error {
	fs := c.newFlags("stop", "stop [-v] ID [ID...]")
	verbose := fs.Bool("v", false, "print each id once its sandbox is deleted")
	ids, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usageErr{cmd: "stop", msg: "stop: want at least one sandbox ID"}
	}
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	failed := false
	for _, id := range ids {
		cctx, cancel := c.unary(ctx)
		_, err := client.DeleteSandbox(cctx, &labsv1.DeleteSandboxRequest{Name: id})
		cancel()
		if err != nil {
			c.report(ctx, rpcError("stop sandbox "+id, err))
			failed = true
			if ctx.Err() != nil {
				return exitCode(130)
			}
			continue
		}
		if *verbose {
			fmt.Fprintln(c.stdout, id)
		}
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

func sandboxID(sb *labsv1.Sandbox) string {
	if sb.GetId() != "" {
		return sb.GetId()
	}
	return lastSegment(sb.GetName())
}

// stateName is STATE_READY as "ready".
func stateName(s labsv1.Sandbox_State) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STATE_"))
}

// age is how long ago ts was, as ls shows it: 5s, 3m, 2h, 4d.
func age(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return humanDuration(now.Sub(ts.AsTime()))
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s" // clock skew between labd and here
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// when renders a timestamp for show: local time and how long ago.
func when(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	t := ts.AsTime()
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC3339), humanDuration(now.Sub(t)))
}
