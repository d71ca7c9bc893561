package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
)

// maxStdin is what labd accepts as an exec's stdin.
const maxStdin = 1 << 20

// cmdExec is "labctl exec ID NODE -- CMD [ARG...]": the command's output is
// copied as it arrives and labctl exits with the command's exit code.
func (c *cli) cmdExec(ctx context.Context, args []string) error {
	fs := c.newFlags("exec", "exec [--timeout DURATION] [-e KEY=VAL]... [-w DIR] [-i] ID NODE [--] CMD [ARG...]\n\n"+
		"Runs CMD as root of NODE and exits with its exit code. Without --, everything\n"+
		"after NODE is the command, flags included.")
	timeout := fs.Duration("timeout", 0, "kill the command after this long (labd's default is 60s, at most 1h)")
	env := envFlag{}
	fs.Var(env, "e", "set `KEY=VAL` in the command's environment (repeatable)")
	dir := fs.String("w", "", "working `DIR` inside the node (default /)")
	withStdin := fs.Bool("i", false, "send labctl's stdin (at most 1 MiB) to the command")

	var (
		pos, command []string
		err          error
	)
	if i := slices.Index(args, "--"); i >= 0 {
		if pos, _, err = fs.parse(args[:i], -1); err != nil {
			return err
		}
		if len(pos) != 2 {
			return usageErr{cmd: "exec", msg: "exec: want ID NODE before --"}
		}
		command = args[i+1:]
	} else if pos, command, err = fs.parse(args, 2); err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr{cmd: "exec", msg: "exec: want ID NODE CMD"}
	}
	if len(command) == 0 {
		return usageErr{cmd: "exec", msg: "exec: no command given"}
	}
	if *timeout < 0 {
		return usageErr{cmd: "exec", msg: "exec: --timeout must not be negative"}
	}
	id, node := pos[0], pos[1]
	op := fmt.Sprintf("exec in %s node %s", id, node)

	req := &labsv1.ExecRequest{Sandbox: id, Node: node, Command: command, WorkingDir: *dir}
	if len(env) > 0 {
		req.Env = env
	}
	if *timeout > 0 {
		req.Timeout = durationpb.New(*timeout)
	}
	if *withStdin {
		b, err := io.ReadAll(io.LimitReader(c.stdin, maxStdin+1))
		if err != nil {
			return fmt.Errorf("%s: read stdin: %w", op, err)
		}
		if len(b) > maxStdin {
			return fmt.Errorf("%s: stdin is larger than 1 MiB, the most exec -i sends", op)
		}
		req.Stdin = b
	}

	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	// The stream lives until the exit status arrives or Ctrl-C cancels ctx;
	// --timeout bounds unary calls only, the command has its own.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Exec(ctx, req)
	if err != nil {
		return rpcError(op, err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return fmt.Errorf("%s: labd ended the stream without an exit status", op)
		}
		if err != nil {
			return rpcError(op, err)
		}
		switch ev := resp.GetEvent().(type) {
		case *labsv1.ExecResponse_Stdout:
			if _, err := c.stdout.Write(ev.Stdout); err != nil {
				return fmt.Errorf("%s: write stdout: %w", op, err)
			}
		case *labsv1.ExecResponse_Stderr:
			if _, err := c.stderr.Write(ev.Stderr); err != nil {
				return fmt.Errorf("%s: write stderr: %w", op, err)
			}
		case *labsv1.ExecResponse_Exit:
			return c.exitStatus(ev.Exit)
		}
	}
}

// exitStatus reports how the remote command ended and turns it into
// labctl's exit code.
func (c *cli) exitStatus(st *labsv1.ExitStatus) error {
	if st.GetOutputTruncated() {
		fmt.Fprintln(c.stderr, "labctl: some output was dropped because labctl could not keep up")
	}
	code := int(st.GetCode())
	switch {
	case st.GetTimedOut():
		fmt.Fprintln(c.stderr, "labctl: command timed out")
		if code == 0 {
			code = 124 // never report a killed command as a success; timeout(1)'s code
		}
	case st.GetSignal() != "":
		fmt.Fprintf(c.stderr, "labctl: command killed by %s\n", st.GetSignal())
	}
	return exitCode(code)
}

// envFlag collects repeated -e KEY=VAL.
type envFlag map[string]string

func (e envFlag) String() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + e[k])
	}
	return b.String()
}

func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VAL, got %q", v)
	}
	e[k] = val
	return nil
}
