package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

// expiryWarning is how close to its end a sandbox must be for exec, shell
// and status to warn about it.
const expiryWarning = 5 * time.Minute

// warnTimeout bounds the GetSandbox call behind the warning, so that a
// slow labd delays the command only a little.
const warnTimeout = 2 * time.Second

func (c *cli) extendCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "extend [-o json|table] ID [DURATION]",
		Short: "give a sandbox more time; prints its new expiry",
		Long: "Pushes the sandbox's expiry back by DURATION (default 1h) and counts as\n" +
			"activity, so it also restarts the idle timeout. labd caps an expiry at\n" +
			"its maximum lifetime from now (labd --max-ttl); a capped extension is\n" +
			"not an error, labctl says so on stderr.",
		Example: "  labctl extend s-7f3a9c\n" +
			"  labctl extend s-7f3a9c 30m\n" +
			"  labctl extend -o json s-7f3a9c 2h | jq -r .sandbox.expireTime",
		Args:              rangeArgs(1, 2, "ID and an optional DURATION"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			req := &labsv1.ExtendSandboxRequest{Name: args[0]}
			if len(args) == 2 {
				d, err := time.ParseDuration(args[1])
				if err != nil || d <= 0 {
					return usagef(cmd, "DURATION %q: want a positive duration such as 30m or 2h", args[1])
				}
				req.Duration = durationpb.New(d)
			}
			return c.extend(cmd.Context(), req, out.format)
		},
	}
	out.registerFormat(cmd.Flags(), "output format: table or json")
	return cmd
}

func (c *cli) extend(ctx context.Context, req *labsv1.ExtendSandboxRequest, format string) error {
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.ExtendSandbox(cctx, req)
	if err != nil {
		return rpcError("extend sandbox "+req.GetName(), err).on(subject{sandbox: req.GetName()})
	}
	sb := resp.GetSandbox()
	if resp.GetCapped() {
		fmt.Fprintln(c.stderr, "labctl: capped: labd keeps a sandbox at most its maximum lifetime (labd --max-ttl) from now")
	}
	if format == "json" {
		return c.printJSON(resp)
	}
	id := sandboxID(sb)
	if id == "" {
		id = lastSegment(req.GetName())
	}
	_, err = fmt.Fprintf(c.stdout, "%s expires %s\n", id, until(c.cfg.now(), sb.GetExpireTime()))
	return err
}

// warnExpiring prints a warning on stderr when sandbox id has less than
// expiryWarning left. With activity the command about to run is itself
// activity, so only the expiry counts; otherwise the idle timeout does
// too. It costs one GetSandbox and is silent when that fails: the
// command itself will say what is wrong.
func (c *cli) warnExpiring(ctx context.Context, id string, activity bool) {
	client, err := c.sandboxClient()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, warnTimeout)
	defer cancel()
	resp, err := client.GetSandbox(cctx, &labsv1.GetSandboxRequest{Name: id})
	if err != nil {
		return
	}
	c.warnIfExpiring(resp.GetSandbox(), activity)
}

// warnIfExpiring is warnExpiring for a sandbox already fetched.
func (c *cli) warnIfExpiring(sb *labsv1.Sandbox, activity bool) {
	now := c.cfg.now()
	id := sandboxID(sb)
	if exp := sb.GetExpireTime(); exp != nil && exp.AsTime().Sub(now) < expiryWarning {
		if activity || !earlier(sb.GetIdleExpireTime(), exp) {
			fmt.Fprintf(c.stderr, "labctl: warning: sandbox %s expires %s; `labctl extend %s` gives it more time\n",
				id, until(now, exp), id)
			return
		}
	}
	if idle := sb.GetIdleExpireTime(); !activity && idle != nil && idle.AsTime().Sub(now) < expiryWarning {
		fmt.Fprintf(c.stderr, "labctl: warning: sandbox %s is idle and will be deleted %s unless it is used (exec, shell, check) or extended\n",
			id, until(now, idle))
	}
}

// earlier says whether a is set and before b.
func earlier(a, b *timestamppb.Timestamp) bool {
	return a != nil && (b == nil || a.AsTime().Before(b.AsTime()))
}

// expires is ls's EXPIRES cell: the time left until the sandbox is
// deleted if nothing more is done in it, marked when the idle timeout is
// what ends it first.
func expires(now time.Time, sb *labsv1.Sandbox) string {
	exp, idle := sb.GetExpireTime(), sb.GetIdleExpireTime()
	switch {
	case earlier(idle, exp):
		return timeLeft(now, idle) + " (idle)"
	case exp != nil:
		return timeLeft(now, exp)
	}
	return "-"
}

// timeLeft is how long until ts, precise enough to act on: 45s, 4m30s,
// 59m, 3h59m, 2d3h; "0s" once past.
func timeLeft(now time.Time, ts *timestamppb.Timestamp) string {
	d := ts.AsTime().Sub(now).Truncate(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case d <= 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", s)
	case d < 10*time.Minute && s != 0:
		return fmt.Sprintf("%dm%ds", m, s)
	case d < time.Hour:
		return fmt.Sprintf("%dm", m)
	case d < 48*time.Hour && m != 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", h)
	case h%24 != 0:
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	}
	return fmt.Sprintf("%dd", h/24)
}

// until renders a coming time for show and extend: "in 3h59m
// (2026-03-01T15:59:00Z)", or "now" once it has passed.
func until(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	at := ts.AsTime().Local().Format(time.RFC3339)
	if !ts.AsTime().After(now) {
		return fmt.Sprintf("now (%s)", at)
	}
	return fmt.Sprintf("in %s (%s)", timeLeft(now, ts), at)
}
