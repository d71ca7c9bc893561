package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) shellCommand() *cobra.Command {
	var (
		env        = envFlag{}
		rows, cols uint32
	)
	cmd := &cobra.Command{
		Use:   "shell [flags] ID NODE [-- CMD...]",
		Short: "an interactive shell on a node",
		Long: "Opens a shell (or runs CMD) as root of NODE on a pseudo-terminal. On a\n" +
			"terminal, labctl passes every key through as typed (Ctrl-C, Ctrl-D and\n" +
			"Ctrl-Z reach the node's processes) and follows the window's size; the\n" +
			"terminal is restored however the session ends. When stdin is not a\n" +
			"terminal its bytes are sent as typed, then Ctrl-D, and the size is\n" +
			"--rows x --cols. labctl exits with the session's exit code.",
		Example: "  labctl shell s-7f3a9c h1\n" +
			"  labctl shell s-7f3a9c r1 -- tcpdump -ni eth0\n" +
			"  printf 'ip route\\nexit\\n' | labctl shell s-7f3a9c r1",
		DisableFlagParsing: true,
		ValidArgsFunction:  c.completeSandboxNodes,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, node, command, err := c.parseNodeCommand(cmd, args)
			if err != nil || id == "" {
				return err
			}
			s := shellSession{
				start:   &labsv1.ShellStart{Sandbox: id, Node: node, Command: command, Term: c.cfg.getenv("TERM")},
				input:   true,
				rows:    rows,
				cols:    cols,
				sizeSet: cmd.Flags().Changed("rows") || cmd.Flags().Changed("cols"),
			}
			if len(env) > 0 {
				s.start.Env = env
			}
			return c.shell(cmd.Context(), s)
		},
	}
	fs := cmd.Flags()
	fs.VarP(env, "env", "e", "set `KEY=VAL` in the session's environment (repeatable)")
	fs.Uint32Var(&rows, "rows", 24, "terminal rows when stdin is not a terminal (or to override it)")
	fs.Uint32Var(&cols, "cols", 80, "terminal columns when stdin is not a terminal (or to override it)")
	return cmd
}

// parseNodeCommand parses "[FLAGS] ID NODE [--] CMD [ARG...]" as exec and
// shell take it. Without --, everything after NODE is the command, flags
// included. It returns an empty id when --help was asked for and shown.
func (c *cli) parseNodeCommand(cmd *cobra.Command, args []string) (id, node string, command []string, err error) {
	// Flag parsing is the command's own (cobra's would take the remote
	// command's flags for labctl's), so the global flags join in here.
	fs := cmd.Flags()
	fs.AddFlagSet(cmd.InheritedFlags())
	var pos []string
	if i := slices.Index(args, "--"); i >= 0 {
		if pos, _, err = parseInterspersed(fs, args[:i], -1); err == nil && len(pos) != 2 && !helpAsked(fs) {
			return "", "", nil, usagef(cmd, "want ID NODE before --")
		}
		command = args[i+1:]
	} else {
		pos, command, err = parseInterspersed(fs, args, 2)
	}
	switch {
	case err != nil:
		return "", "", nil, usagef(cmd, "%s", err)
	case helpAsked(fs):
		return "", "", nil, cmd.Help()
	case len(pos) != 2:
		return "", "", nil, usagef(cmd, "want ID NODE")
	}
	if err := c.checkGlobals(); err != nil {
		return "", "", nil, err
	}
	return pos[0], pos[1], command, nil
}

func helpAsked(fs *pflag.FlagSet) bool {
	h, _ := fs.GetBool("help")
	return h
}

// shellSession is one Shell call.
type shellSession struct {
	start *labsv1.ShellStart
	// input sends labctl's stdin; exec -t without -i does not.
	input bool
	// The size when stdin is not a terminal, or when sizeSet, always.
	rows, cols uint32
	sizeSet    bool
}

// shell runs a session and exits with its exit code.
func (c *cli) shell(ctx context.Context, s shellSession) error {
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	// Before the terminal goes raw, so the warning prints as a line.
	c.warnExpiring(ctx, s.start.GetSandbox(), true)
	st, midLine, err := c.shellSession(ctx, client, s)
	if err != nil {
		if midLine && c.cfg.terminal(c.stdout) {
			// Start labctl's message on a line of its own, not after
			// the node's prompt.
			fmt.Fprintln(c.stderr)
		}
		return err
	}
	// The terminal is restored by now: messages print as lines.
	return c.exitStatus(st)
}

// shellSession runs s until the exit status arrives, the stream breaks or
// ctx ends. When stdin is a terminal it is in raw mode for the session and
// restored on every way out of here.
func (c *cli) shellSession(ctx context.Context, client labsv1.SandboxServiceClient, s shellSession) (st *labsv1.ExitStatus, midLine bool, err error) {
	start := s.start
	op := fmt.Sprintf("shell in %s node %s", start.GetSandbox(), start.GetNode())
	about := subject{sandbox: start.GetSandbox(), node: start.GetNode()}
	tty := openTerm(c.stdin)
	start.Size = &labsv1.TerminalSize{Rows: s.rows, Cols: s.cols}
	if tty != nil && !s.sizeSet {
		if rows, cols, ok := tty.size(); ok {
			start.Size = &labsv1.TerminalSize{Rows: rows, Cols: cols}
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Shell(ctx)
	if err != nil {
		return nil, midLine, rpcError(op, err).on(about)
	}
	var sendMu sync.Mutex // Send is not safe from two goroutines at once
	send := func(r *labsv1.ShellRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(r)
	}
	closeSend := func() {
		sendMu.Lock()
		defer sendMu.Unlock()
		stream.CloseSend()
	}
	// io.EOF from Send means labd ended the stream; Recv says why.
	if err := send(&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Start{Start: start}}); err != nil && err != io.EOF {
		return nil, midLine, rpcError(op, err).on(about)
	}

	if tty != nil && s.input {
		if err := tty.makeRaw(); err != nil {
			return nil, midLine, fmt.Errorf("%s: put the terminal in raw mode: %w", op, err)
		}
	}
	var (
		wg        sync.WaitGroup
		stdinDone chan struct{}
		inputErr  = make(chan error, 1) // the terminal went away
	)
	// Every way out (the exit status, a dropped connection, ctx's end on
	// SIGINT, SIGTERM or SIGHUP, the terminal closing) comes through here:
	// the goroutines stop, then the terminal is as it was.
	defer func() {
		cancel()
		if stdinDone != nil {
			c.stopStdin(stdinDone)
		}
		wg.Wait()
		tty.restore()
	}()

	if tty != nil && !s.sizeSet {
		winch := c.cfg.winch
		if winch == nil {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, syscall.SIGWINCH)
			defer signal.Stop(ch)
			winch = ch
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-winch:
				}
				rows, cols, ok := tty.size()
				if !ok {
					continue
				}
				if send(&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Resize{Resize: &labsv1.TerminalSize{Rows: rows, Cols: cols}}}) != nil {
					return
				}
			}
		}()
	}

	if s.input {
		stdinDone = make(chan struct{})
		go func() {
			defer close(stdinDone)
			if err := c.pumpStdin(ctx, tty != nil, send, closeSend); err != nil {
				inputErr <- err
				cancel()
			}
		}()
	}

	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil, midLine, fmt.Errorf("%s: labd ended the session without an exit status", op)
		}
		if err != nil {
			select {
			case ierr := <-inputErr:
				return nil, midLine, fmt.Errorf("%s: %w", op, ierr)
			default:
			}
			return nil, midLine, rpcError(op, err).on(about)
		}
		switch ev := resp.GetEvent().(type) {
		case *labsv1.ShellResponse_Output:
			if n := len(ev.Output); n > 0 {
				midLine = ev.Output[n-1] != '\n'
			}
			if _, err := c.stdout.Write(ev.Output); err != nil {
				return nil, midLine, fmt.Errorf("%s: write stdout: %w", op, err)
			}
		case *labsv1.ShellResponse_Exit:
			return ev.Exit, midLine, nil
		}
	}
}

// eot is what Ctrl-D sends: at the start of a line, end of input for the
// node's program.
const eot = 0x04

// pumpStdin sends stdin to the session as it is read. Piped input ends
// with Ctrl-D, as if typed, so that a shell reading it exits; a terminal
// that reads nothing more has gone away, which is an error that ends the
// session.
func (c *cli) pumpStdin(ctx context.Context, tty bool, send func(*labsv1.ShellRequest) error, closeSend func()) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.stdin.Read(buf)
		if n > 0 {
			if send(&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Stdin{Stdin: slices.Clone(buf[:n])}}) != nil {
				return nil // the stream is over; Recv says how
			}
		}
		switch {
		case err == nil:
			continue
		case ctx.Err() != nil, errors.Is(err, os.ErrDeadlineExceeded):
			return nil // the session ended first
		case err == io.EOF && !tty:
			if send(&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Stdin{Stdin: []byte{eot}}}) == nil {
				closeSend() // no more input; labd keeps the session until it exits
			}
			return nil
		case err == io.EOF:
			return errors.New("the terminal closed")
		}
		return fmt.Errorf("read stdin: %w", err)
	}
}

// stopStdin ends the stdin reader once the session is over. A file that
// supports deadlines (a terminal opened by path, a pipe) is interrupted
// and handed back as it was; os.Stdin of a process usually is not, and its
// reader is left to the process's exit.
func (c *cli) stopStdin(done <-chan struct{}) {
	f, ok := c.stdin.(*os.File)
	if !ok {
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond): // a reader that blocks: leave it
		}
		return
	}
	if f.SetReadDeadline(time.Now()) != nil {
		return
	}
	<-done
	f.SetReadDeadline(time.Time{})
}
