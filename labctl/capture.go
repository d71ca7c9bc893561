package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) captureCommand() *cobra.Command {
	var (
		link, node, path string
		follow           bool
		since            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "capture [flags] ID",
		Short: "the sandbox's packets as pcapng",
		Long: "Writes the packets of the sandbox's links as one pcapng file: what labd's\n" +
			"capture ring holds, then with --follow live packets until Ctrl-C. Stdout\n" +
			"must be a pipe or a file.",
		Example: "  labctl capture -f s-7f3a9c | tcpdump -nr -\n" +
			"  labctl capture --link h1-r1 --since 1m -w h1-r1.pcapng s-7f3a9c",
		Args:              exactArgs(1, "exactly one sandbox ID"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case since < 0:
				return usagef(cmd, "--since must not be negative")
			case path == "":
				return usagef(cmd, "-w wants a FILE, or - for stdout")
			case path == "-" && isTerminal(c.stdout):
				return usagef(cmd, "will not write binary pcapng to a terminal; "+
					"use -w FILE or a pipe (labctl capture ID | tcpdump -nr -)")
			}
			req := &labsv1.CaptureRequest{Sandbox: args[0], Link: link, Node: node, Follow: follow}
			if since > 0 {
				req.Since = durationpb.New(since)
			}
			return c.capture(cmd.Context(), req, path)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&link, "link", "", "only packets on `LINK`")
	fs.StringVar(&node, "node", "", "only packets sent or received by `NODE`")
	fs.BoolVarP(&follow, "follow", "f", false, "after the ring, stream live packets until Ctrl-C")
	fs.DurationVar(&since, "since", 0, "only packets of the last `DURATION` (default: all the ring holds)")
	fs.StringVarP(&path, "write", "w", "-", "write to `FILE`; - is stdout")
	return cmd
}

// capture is "labctl capture ID": the packets a sandbox's links carried,
// as one pcapng file written chunk by chunk as labd sends it, so that
// "labctl capture -f ID | tcpdump -nr -" shows traffic live.
func (c *cli) capture(ctx context.Context, req *labsv1.CaptureRequest, path string) error {
	op := "capture sandbox " + req.GetSandbox()
	follow := req.GetFollow()
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	// Like exec, the stream is not bounded by --timeout: it ends with the
	// ring or, with --follow, with Ctrl-C.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Capture(sctx, req)
	if err != nil {
		return rpcError(op, err).on(subject{sandbox: req.GetSandbox(), node: req.GetNode()})
	}
	out := &captureOutput{path: path, stdout: c.stdout}
	dropped, err := copyCapture(stream, out)
	var werr writeErr
	switch {
	case err == nil, errors.As(err, &werr):
	case follow && ctx.Err() != nil:
		err = nil // Ctrl-C is how a followed capture ends
	default:
		err = rpcError(op, err).on(subject{sandbox: req.GetSandbox(), node: req.GetNode()})
	}
	if cerr := out.close(); err == nil && cerr != nil {
		err = cerr
	}
	if dropped > 0 {
		fmt.Fprintf(c.stderr, "labctl: the capture dropped %d packets\n", dropped)
	}
	if errors.As(err, &werr) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return err
}

// copyCapture writes every chunk of the stream to out as it arrives and
// returns the packets the capture reported dropped.
func copyCapture(stream grpc.ServerStreamingClient[labsv1.CaptureResponse], out *captureOutput) (dropped int64, err error) {
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return dropped, out.open()
		}
		if err != nil {
			return dropped, err
		}
		// The count is cumulative, but take the largest in case labd
		// ever sends a chunk without it.
		dropped = max(dropped, resp.GetDropped())
		if err := out.write(resp.GetData()); err != nil {
			return dropped, err
		}
	}
}

// captureOutput is where a capture goes. A file is created only once labd
// has accepted the capture, so that a refused one (no such sandbox) does
// not truncate an existing file.
type captureOutput struct {
	path   string // "-" is stdout
	stdout io.Writer

	w    io.Writer
	file *os.File
}

// writeErr is a failure to write the capture, as opposed to receive it.
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

func (o *captureOutput) open() error {
	if o.w != nil {
		return nil
	}
	if o.path == "-" {
		o.w = o.stdout
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return writeErr{fmt.Errorf("create %s: %w", o.path, err)}
	}
	o.file, o.w = f, f
	return nil
}

func (o *captureOutput) write(p []byte) error {
	if err := o.open(); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	if _, err := o.w.Write(p); err != nil {
		return writeErr{fmt.Errorf("write %s: %w", o.name(), err)}
	}
	// A reader such as tcpdump -r - must see each chunk now, not when a
	// buffer fills.
	if f, ok := o.w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return writeErr{fmt.Errorf("write %s: %w", o.name(), err)}
		}
	}
	return nil
}

func (o *captureOutput) close() error {
	if o.file == nil {
		return nil
	}
	if err := o.file.Close(); err != nil {
		return writeErr{fmt.Errorf("close %s: %w", o.path, err)}
	}
	return nil
}

func (o *captureOutput) name() string {
	if o.path == "-" {
		return "stdout"
	}
	return o.path
}
