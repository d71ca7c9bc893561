package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) startCommand() *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "start [--ttl DURATION] LAB",
		Short: "create a sandbox; prints its id",
		Long: "Creates a sandbox from LAB and waits until it is ready. When stdout is\n" +
			"not a terminal labctl prints only the sandbox's id, for scripts; on a\n" +
			"terminal it shows progress, then the id, the topology and the first\n" +
			"exercise.\n\n" +
			"The sandbox lives for labd's default lifetime (--ttl asks for another, up\n" +
			"to labd's maximum) and is deleted sooner when nothing is done in it for\n" +
			"labd's idle timeout; `labctl extend` gives it more time.",
		Example: "  labctl start routed\n" +
			"  ID=$(labctl start routed)\n" +
			"  labctl start --ttl 8h routed",
		Args:              exactArgs(1, "exactly one LAB"),
		ValidArgsFunction: c.completeLabs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 || (cmd.Flags().Changed("ttl") && ttl == 0) {
				return usagef(cmd, "--ttl must be positive")
			}
			return c.start(cmd.Context(), args[0], ttl)
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the sandbox may live (default: labd's --ttl)")
	return cmd
}

// start is "labctl start LAB". Unless a person watches stdout it prints
// the new sandbox's id and nothing else, so that ID=$(labctl start routed)
// works.
func (c *cli) start(ctx context.Context, lab string, ttl time.Duration) error {
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	var spin *spinner
	if c.cfg.terminal(c.stderr) {
		spin = startSpinner(c.stderr, "creating a sandbox from "+lastSegment(lab), c.cfg.now)
	}
	began := c.cfg.now()
	cctx, cancel := c.unary(ctx)
	defer cancel()
	req := &labsv1.CreateSandboxRequest{Lab: lab}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := client.CreateSandbox(cctx, req)
	if spin != nil {
		spin.end()
	}
	if err != nil {
		return rpcError("start lab "+lab, err).on(subject{lab: lab})
	}
	sb := resp.GetSandbox()
	id := sandboxID(sb)
	switch {
	case id == "":
		return fmt.Errorf("start lab %s: labd returned no sandbox id", lab)
	case sb.GetState() == labsv1.Sandbox_STATE_FAILED:
		return fmt.Errorf("start lab %s: sandbox %s failed: %s", lab, id, orDash(sb.GetFailureReason()))
	}
	if spin != nil {
		st := c.styleFor(c.stderr)
		fmt.Fprintf(c.stderr, "%s sandbox %s is %s (%s, %s)\n", st.green("✓"), id, stateName(sb.GetState()),
			plural(len(sb.GetNodes()), "node"), c.cfg.now().Sub(began).Round(100*time.Millisecond))
	}
	if !c.cfg.terminal(c.stdout) {
		_, err = fmt.Fprintln(c.stdout, id)
		return err
	}
	return c.welcome(ctx, sb, lab)
}

// welcome is what start shows a person: the id, the topology, the first
// exercise and what to do next. The sandbox exists by now, so a failure to
// read its lab is a warning, not a failed start.
func (c *cli) welcome(ctx context.Context, sb *labsv1.Sandbox, lab string) error {
	st := c.styleFor(c.stdout)
	id := sandboxID(sb)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", id)
	if err := writeTopo(&b, sb, st); err != nil {
		return err
	}
	if sb.GetLab() != "" {
		lab = sb.GetLab()
	}
	l, err := c.getLab(ctx, lab)
	if err != nil {
		c.report(ctx, err)
	} else if exs := l.GetExercises(); len(exs) > 0 {
		b.WriteString("\n")
		writeExercise(&b, 0, len(exs), exs[0], "", st)
	}
	first := "NODE"
	if len(sb.GetNodes()) > 0 {
		first = sb.GetNodes()[0].GetName()
	}
	tw := newTable(&b)
	fmt.Fprintf(tw, "\nNext:\tlabctl shell %s %s\t%s\n", id, first, st.dim("# a shell on "+first))
	fmt.Fprintf(tw, "\tlabctl status %s\t%s\n", id, st.dim("# every exercise and your progress"))
	fmt.Fprintf(tw, "\tlabctl check %s\t%s\n", id, st.dim("# grade your work"))
	fmt.Fprintf(tw, "\tlabctl stop %s\t%s\n", id, st.dim("# when you are done"))
	tw.Flush()
	_, err = io.WriteString(c.stdout, b.String())
	return err
}

func (c *cli) lsCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:     "ls [-o json|table] [-q]",
		Short:   "list your sandboxes",
		Example: "  labctl ls\n  labctl ls -q | xargs labctl stop",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			return c.ls(cmd.Context(), out)
		},
	}
	out.register(cmd.Flags(), "sandbox ids")
	return cmd
}

func (c *cli) ls(ctx context.Context, out output) error {
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
	fmt.Fprintln(tw, "ID\tLAB\tSTATE\tNODES\tAGE\tEXPIRES")
	for _, sb := range sandboxes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", sandboxID(sb), orDash(lastSegment(sb.GetLab())),
			stateName(sb.GetState()), len(sb.GetNodes()), age(now, sb.GetCreateTime()), expires(now, sb))
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

func (c *cli) showCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show [-o json|table] [-q] ID",
		Short: "a sandbox's nodes, interfaces and links",
		Example: "  labctl show s-7f3a9c\n" +
			"  labctl show -q s-7f3a9c          # node names\n" +
			"  labctl show -o json s-7f3a9c | jq '.nodes[].name'",
		Args:              exactArgs(1, "exactly one sandbox ID"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			sb, err := c.getSandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
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
		},
	}
	out.register(cmd.Flags(), "node names")
	return cmd
}

func writeSandbox(w io.Writer, sb *labsv1.Sandbox, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", sandboxID(sb))
	fmt.Fprintf(tw, "Lab:\t%s\n", orDash(lastSegment(sb.GetLab())))
	fmt.Fprintf(tw, "State:\t%s\n", stateName(sb.GetState()))
	fmt.Fprintf(tw, "Created:\t%s\n", when(now, sb.GetCreateTime()))
	fmt.Fprintf(tw, "Ready:\t%s\n", when(now, sb.GetReadyTime()))
	if exp := sb.GetExpireTime(); exp != nil {
		fmt.Fprintf(tw, "Expires:\t%s\n", until(now, exp))
	}
	if idle := sb.GetIdleExpireTime(); idle != nil {
		fmt.Fprintf(tw, "Idle:\texpires %s unless used\n", until(now, idle))
	}
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

func (c *cli) stopCommand() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "stop [-v] ID [ID...]",
		Short: "delete sandboxes",
		Long: "Deletes each sandbox. It tries every ID and exits 1 if any failed;\n" +
			"deleting a sandbox that is gone is not an error.",
		Example:           "  labctl stop s-7f3a9c\n  labctl stop $(labctl ls -q)",
		Args:              rangeArgs(1, -1, "at least one sandbox ID"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, ids []string) error {
			return c.stop(cmd.Context(), ids, verbose)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print each id once its sandbox is deleted")
	return cmd
}

func (c *cli) stop(ctx context.Context, ids []string, verbose bool) error {
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
			c.report(ctx, rpcError("stop sandbox "+id, err).on(subject{sandbox: id}))
			failed = true
			if ctx.Err() != nil {
				return exitCode(130)
			}
			continue
		}
		if verbose {
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
