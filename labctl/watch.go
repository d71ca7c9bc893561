package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) watchCommand() *cobra.Command {
	var (
		out     output
		current bool
	)
	cmd := &cobra.Command{
		Use:   "watch [-o json|table] [--current] [ID]",
		Short: "print sandbox events as they happen",
		Long: "Prints what happens to your sandboxes, or to sandbox ID, one line per\n" +
			"event until Ctrl-C: state changes (creating, ready, deleting, failed),\n" +
			"deletions and why, warnings that a sandbox is about to expire, and\n" +
			"extensions. Watching one sandbox ends when it is deleted. With -o json\n" +
			"each event is one JSON object on a line of its own.",
		Example: "  labctl watch\n" +
			"  labctl watch --current s-7f3a9c\n" +
			"  labctl watch -o json | jq -r 'select(.type == \"TYPE_EXPIRING\") | .sandbox.id'",
		Args:              rangeArgs(0, 1, "at most one sandbox ID"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			req := &labsv1.WatchSandboxesRequest{SendCurrent: current}
			if len(args) == 1 {
				req.Sandbox = args[0]
			}
			return c.watch(cmd.Context(), req, out.format)
		},
	}
	out.registerFormat(cmd.Flags(), "output format: table or json (one object per line)")
	cmd.Flags().BoolVar(&current, "current", false, "first print the current state of every sandbox watched")
	return cmd
}

// watch is "labctl watch [ID]". Like capture --follow it is not bounded
// by --timeout; Ctrl-C is how it ends.
func (c *cli) watch(ctx context.Context, req *labsv1.WatchSandboxesRequest, format string) error {
	op := "watch sandboxes"
	if req.GetSandbox() != "" {
		op = "watch sandbox " + req.GetSandbox()
	}
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchSandboxes(sctx, req)
	if err != nil {
		return rpcError(op, err).on(subject{sandbox: req.GetSandbox()})
	}
	if format == "table" {
		fmt.Fprintf(c.stdout, "%-8s  %-8s  %-8s  %s\n", "TIME", "SANDBOX", "EVENT", "DETAIL")
	}
	for {
		ev, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return nil // Ctrl-C
		case err != nil:
			return rpcError(op, err).on(subject{sandbox: req.GetSandbox()})
		}
		if ev.GetType() == labsv1.WatchSandboxesResponse_TYPE_EVENTS_LOST {
			fmt.Fprintf(c.stderr, "labctl: this watch fell behind and missed %d events; the current state follows\n", ev.GetLost())
		}
		if format == "json" {
			b, err := protojson.Marshal(ev)
			if err != nil {
				return fmt.Errorf("encode json: %w", err)
			}
			_, err = c.stdout.Write(append(b, '\n'))
			if err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintln(c.stdout, c.eventLine(ev)); err != nil {
			return err
		}
	}
}

// eventLine is one event as watch prints it.
func (c *cli) eventLine(ev *labsv1.WatchSandboxesResponse) string {
	now := c.cfg.now()
	sb := ev.GetSandbox()
	id := sandboxID(sb)
	if sb == nil {
		id = "-"
	}
	what, detail := "", ev.GetReason()
	switch ev.GetType() {
	case labsv1.WatchSandboxesResponse_TYPE_STATE_CHANGED:
		what = strings.ToUpper(stateName(sb.GetState()))
		switch sb.GetState() {
		case labsv1.Sandbox_STATE_CREATING:
			detail = "lab " + lastSegment(sb.GetLab())
		case labsv1.Sandbox_STATE_READY:
			detail = "expires " + until(now, sb.GetExpireTime())
		}
	case labsv1.WatchSandboxesResponse_TYPE_DELETED:
		what = "DELETED"
	case labsv1.WatchSandboxesResponse_TYPE_EXPIRING:
		what = "EXPIRING"
		e := ev.GetExpiry()
		left := e.GetRemaining().AsDuration().Round(time.Second / 10)
		if e.GetCause() == labsv1.ExpiryWarning_CAUSE_IDLE {
			detail = fmt.Sprintf("idle: deleted in %s unless it is used or extended (labctl extend %s)", left, id)
		} else {
			detail = fmt.Sprintf("ttl: deleted in %s unless extended (labctl extend %s)", left, id)
		}
	case labsv1.WatchSandboxesResponse_TYPE_EXTENDED:
		what = "EXTENDED"
		detail = "expires " + until(now, sb.GetExpireTime())
	case labsv1.WatchSandboxesResponse_TYPE_CURRENT:
		what = "CURRENT"
		detail = stateName(sb.GetState()) + ", lab " + lastSegment(sb.GetLab())
		if sb.GetFailureReason() != "" {
			detail += ": " + sb.GetFailureReason()
		} else if sb.GetState() == labsv1.Sandbox_STATE_READY {
			detail += ", expires " + until(now, sb.GetExpireTime())
		}
	case labsv1.WatchSandboxesResponse_TYPE_SYNCED:
		what, detail = "SYNCED", "the current state is above; events follow"
	case labsv1.WatchSandboxesResponse_TYPE_EVENTS_LOST:
		what, detail = "LOST", fmt.Sprintf("%d events missed", ev.GetLost())
	default:
		what = ev.GetType().String()
	}
	at := ev.GetTime().AsTime().Local().Format(time.TimeOnly)
	return strings.TrimRight(fmt.Sprintf("%-8s  %-8s  %-8s  %s", at, id, what, detail), " ")
}
