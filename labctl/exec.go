package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
)

// maxStdin is what labd accepts as an exec's stdin.
const maxStdin = 1 << 20

func (c *cli) execCommand() *cobra.Command {
	var (
		timeout          time.Duration
		env              = envFlag{}
		dir              string
		withStdin, ttyed bool
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] ID NODE [--] CMD...",
		Short: "run a command as root of a node",
		Long: "Runs CMD as root of NODE and exits with its exit code; its stdout and\n" +
			"stderr are copied as they arrive. Without --, everything after NODE is the\n" +
			"command, flags included.\n\n" +
			"-t runs CMD on a pseudo-terminal, as labctl shell does (its output is one\n" +
			"stream); -it also passes the keyboard through, for programs such as top\n" +
			"or vi. Before the command, --timeout is the command's own (not labctl's).",
		Example: "  labctl exec s-7f3a9c h1 -- ping -c1 10.0.2.10\n" +
			"  labctl exec s-7f3a9c r1 ip -br addr\n" +
			"  labctl exec -i s-7f3a9c h1 -- sh -c 'cat > /tmp/x' < x\n" +
			"  labctl exec -it s-7f3a9c r1 -- top",
		DisableFlagParsing: true,
		ValidArgsFunction:  c.completeSandboxNodes,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, node, command, err := c.parseNodeCommand(cmd, args)
			if err != nil || id == "" {
				return err
			}
			switch {
			case len(command) == 0:
				return usagef(cmd, "no command given")
			case timeout < 0:
				return usagef(cmd, "--timeout must not be negative")
			case ttyed && timeout > 0:
				return usagef(cmd, "--timeout does not apply with -t; end the command with Ctrl-C")
			case ttyed && dir != "":
				return usagef(cmd, "-w does not apply with -t; use -- sh -c 'cd DIR && CMD'")
			}
			if ttyed {
				s := shellSession{
					start: &labsv1.ShellStart{Sandbox: id, Node: node, Command: command, Term: c.cfg.getenv("TERM")},
					input: withStdin,
					rows:  24, cols: 80,
				}
				if len(env) > 0 {
					s.start.Env = env
				}
				return c.shell(cmd.Context(), s)
			}
			req := &labsv1.ExecRequest{Sandbox: id, Node: node, Command: command, WorkingDir: dir}
			if len(env) > 0 {
				req.Env = env
			}
			if timeout > 0 {
				req.Timeout = durationpb.New(timeout)
			}
			return c.exec(cmd.Context(), req, withStdin)
		},
	}
	fs := cmd.Flags()
	fs.DurationVar(&timeout, "timeout", 0, "kill the command after this long (labd's default is 60s, at most 1h)")
	fs.VarP(env, "env", "e", "set `KEY=VAL` in the command's environment (repeatable)")
	fs.StringVarP(&dir, "workdir", "w", "", "working `DIR` inside the node (default /)")
	fs.BoolVarP(&withStdin, "stdin", "i", false, "send labctl's stdin to the command (at most 1 MiB without -t)")
	fs.BoolVarP(&ttyed, "tty", "t", false, "run the command on a pseudo-terminal; with -i, interactively")
	return cmd
}

// exec runs req and exits with the command's exit code.
func (c *cli) exec(ctx context.Context, req *labsv1.ExecRequest, withStdin bool) error {
	op := fmt.Sprintf("exec in %s node %s", req.GetSandbox(), req.GetNode())
	if withStdin {
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
	c.warnExpiring(ctx, req.GetSandbox(), true)
	about := subject{sandbox: req.GetSandbox(), node: req.GetNode()}
	// The stream lives until the exit status arrives or Ctrl-C cancels ctx;
	// --timeout bounds unary calls only, the command has its own.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Exec(ctx, req)
	if err != nil {
		return rpcError(op, err).on(about)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return fmt.Errorf("%s: labd ended the stream without an exit status", op)
		}
		if err != nil {
			return rpcError(op, err).on(about)
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

func (e envFlag) Type() string { return "KEY=VAL" }

func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VAL, got %q", v)
	}
	e[k] = val
	return nil
}
