package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
)

// cmdCapture is "labctl capture ID": the packets a sandbox's links carried,
// as one pcapng file written chunk by chunk as labd sends it, so that
// "labctl capture -f ID | tcpdump -nr -" shows traffic live.
func (c *cli) cmdCapture(ctx context.Context, args []string) error {
	fs := c.newFlags("capture", "capture [--link LINK] [--node NODE] [--follow|-f] [--since DURATION] [-w FILE|-] ID\n\n"+
		"Writes the packets of the sandbox's links as one pcapng file: what labd's\n"+
		"capture ring holds, then with --follow live packets until Ctrl-C. Stdout\n"+
		"must be a pipe or a file: labctl capture -f ID | tcpdump -nr -")
	link := fs.String("link", "", "only packets on `LINK`")
	node := fs.String("node", "", "only packets sent or received by `NODE`")
	var follow bool
	fs.BoolVar(&follow, "follow", false, "after the ring, stream live packets until Ctrl-C")
	fs.BoolVar(&follow, "f", false, "short for --follow")
	since := fs.Duration("since", 0, "only packets of the last `DURATION` (default: all the ring holds)")
	path := fs.String("w", "-", "write to `FILE`; - is stdout")
	pos, _, err := fs.parse(args, -1)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usageErr{cmd: "capture", msg: "capture: want exactly one sandbox ID"}
	case *since < 0:
		return usageErr{cmd: "capture", msg: "capture: --since must not be negative"}
	case *path == "":
		return usageErr{cmd: "capture", msg: "capture: -w wants a FILE, or - for stdout"}
	case *path == "-" && isTerminal(c.stdout):
		return usageErr{cmd: "capture", msg: "capture: will not write binary pcapng to a terminal; " +
			"use -w FILE or a pipe (labctl capture ID | tcpdump -nr -)"}
	}
	id := pos[0]
	op := "capture sandbox " + id
	req := &labsv1.CaptureRequest{Sandbox: id, Link: *link, Node: *node, Follow: follow}
	if *since > 0 {
		req.Since = durationpb.New(*since)
	}

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
		return rpcError(op, err)
	}
	out := &captureOutput{path: *path, stdout: c.stdout}
	dropped, err := copyCapture(stream, out)
	var werr writeErr
	switch {
	case err == nil, errors.As(err, &werr):
	case follow && ctx.Err() != nil:
		err = nil // Ctrl-C is how a followed capture ends
	default:
		err = rpcError(op, err)
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

// isTerminal says whether w is a terminal, as far as Stat can tell: a
// character device other than /dev/null (golang.org/x/term is not a
// dependency of this module).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}
