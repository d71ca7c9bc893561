package main

import (
	"context"
	"errors"
	"io"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	labsv1 "nslab/proto/labs/v1"
)

// shellClient drives a Shell stream as a terminal would, collecting
// what the server sends for expect-style checks.
type shellClient struct {
	stream labsv1.SandboxService_ShellClient

	mu      sync.Mutex
	raw     []byte
	pos     int // of the normalised text, consumed by expect
	exit    *labsv1.ExitStatus
	err     error // how the stream ended: io.EOF after a clean end
	changed chan struct{}
}

func openShell(t *testing.T, ctx context.Context, l *labd, start *labsv1.ShellStart) *shellClient {
	t.Helper()
	stream, err := l.sbx.Shell(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Start{Start: start}}); err != nil {
		t.Fatal(err)
	}
	sc := &shellClient{stream: stream, changed: make(chan struct{}, 1)}
	go func() {
		for {
			msg, err := stream.Recv()
			sc.mu.Lock()
			switch {
			case err != nil:
				sc.err = err
			case sc.exit != nil:
				sc.err = errors.New("a message after the exit status")
			case msg.GetExit() != nil:
				sc.exit = msg.GetExit()
			default:
				if len(msg.GetOutput()) > 32<<10 {
					sc.err = errors.New("an output message over 32 KiB")
				}
				sc.raw = append(sc.raw, msg.GetOutput()...)
			}
			stop := sc.err != nil
			sc.mu.Unlock()
			select {
			case sc.changed <- struct{}{}:
			default:
			}
			if stop {
				return
			}
		}
	}()
	return sc
}

func (sc *shellClient) send(t *testing.T, req *labsv1.ShellRequest) {
	t.Helper()
	if err := sc.stream.Send(req); err != nil {
		t.Fatalf("send %v: %v", req, err)
	}
}

func (sc *shellClient) typeText(t *testing.T, s string) {
	t.Helper()
	sc.send(t, &labsv1.ShellRequest{Event: &labsv1.ShellRequest_Stdin{Stdin: []byte(s)}})
}

var ansiEscape = regexp.MustCompile(`\x1b(\[[?0-9;]*[a-zA-Z]|\][^\a]*\a|[()][0-9A-Za-z])`)

func (sc *shellClient) text() (string, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	s := ansiEscape.ReplaceAllString(string(sc.raw), "")
	return strings.ReplaceAll(s, "\r", ""), sc.err
}

// expect waits until the output after what earlier expects consumed
// matches re, and consumes it up to the end of the match.
func (sc *shellClient) expect(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		s, err := sc.text()
		if loc := rx.FindStringIndex(s[sc.pos:]); loc != nil {
			sc.pos += loc[1]
			return
		}
		if err != nil {
			t.Fatalf("stream ended (%v) before %q; unread output:\n%q", err, re, s[sc.pos:])
		}
		select {
		case <-sc.changed:
		case <-deadline:
			t.Fatalf("no %q within 10s; unread output:\n%q", re, s[sc.pos:])
		}
	}
}

// end waits for the stream to end and returns the exit status and the
// final Recv error.
func (sc *shellClient) end(t *testing.T) (*labsv1.ExitStatus, error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		sc.mu.Lock()
		exit, err := sc.exit, sc.err
		sc.mu.Unlock()
		if err != nil {
			return exit, err
		}
		select {
		case <-sc.changed:
		case <-deadline:
			t.Fatal("shell stream did not end within 10s")
		}
	}
}

// pollExitCode runs argv in node through Exec until it exits with code.
func pollExitCode(t *testing.T, l *labd, id, node string, code int32, d time.Duration, argv ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, err := l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: node, Command: argv})
		if err != nil {
			t.Fatalf("exec %q: %v", argv, err)
		}
		if r.exit.GetCode() == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q still exits %d after %s, want %d\n%s", node, argv, r.exit.GetCode(), d, code, r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settledGoroutines is the goroutine count once it has stopped falling.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return min(n, m)
		}
		n = m
	}
	return n
}

// waitGoroutines waits up to 5s for the goroutine count to be back at n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	start := time.Now()
	for runtime.NumGoroutine() > n {
		if time.Since(start) > 5*time.Second {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the session:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("goroutines back to %d within %s", n, time.Since(start).Round(time.Millisecond))
}

// assertNodeIdle checks that node runs nothing but its init, its
// services and the ps looking.
func assertNodeIdle(t *testing.T, l *labd, id, node string) {
	t.Helper()
	out := l.mustExec(t, id, node, "ps", "-e", "-o", "pid=,comm=")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[1] == "ps" || strings.HasPrefix(f[1], "nslab-")) {
			continue
		}
		t.Errorf("%s: leftover process %q; ps -e:\n%s", node, line, out)
	}
}

// TestLabdShell drives Shell as labctl shell would: the prompt names the
// node, the terminal has the size the client says, ^C reaches the
// foreground job, the exit status ends the stream, and neither the node
// nor labd keeps anything of the session afterwards, also when the
// client just goes away.
func TestLabdShell(t *testing.T) {
	e := newTestEnv(t)
	l := startLabd(t, e)
	sb := l.create(t, "labs/hello-link")
	id := sb.GetId()
	l.mustExec(t, id, "h1", "true")
	prompt := `root@h1:[^\n]*# $`

	t.Run("session", func(t *testing.T) {
		before := settledGoroutines()
		start := time.Now()
		ctx, cancel := context.WithCancel(rpcCtx(t))
		defer cancel()
		sc := openShell(t, ctx, l, &labsv1.ShellStart{
			Sandbox: sb.GetName(), Node: "h1", Size: &labsv1.TerminalSize{Rows: 24, Cols: 80},
		})
		sc.expect(t, prompt)
		t.Logf("prompt after %s", time.Since(start).Round(time.Millisecond))
		sc.typeText(t, "hostname\r")
		sc.expect(t, `(?m)^h1$`)
		sc.expect(t, prompt)
		sc.typeText(t, "stty size\r")
		sc.expect(t, `(?m)^24 80$`)
		sc.expect(t, prompt)
		sc.send(t, &labsv1.ShellRequest{Event: &labsv1.ShellRequest_Resize{Resize: &labsv1.TerminalSize{Rows: 40, Cols: 100}}})
		sc.typeText(t, "stty size\r")
		sc.expect(t, `(?m)^40 100$`)
		sc.expect(t, prompt)

		sc.typeText(t, "sleep 100\r")
		pollExitCode(t, l, id, "h1", 0, 5*time.Second, "pgrep", "-x", "sleep")
		sent := time.Now()
		sc.typeText(t, "\x03")
		sc.expect(t, `\^C\n`+prompt)
		t.Logf("prompt back %s after ^C", time.Since(sent).Round(time.Millisecond))
		pollExitCode(t, l, id, "h1", 1, 0, "pgrep", "-x", "sleep")

		sc.typeText(t, "sleep 1001 &\r") // a job with a process group of its own
		sc.expect(t, prompt)
		sc.typeText(t, "exit 3\r")
		exit, err := sc.end(t)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
		if exit.GetCode() != 3 || exit.GetSignal() != "" {
			t.Errorf("exit status %v, want code 3", exit)
		}
		t.Logf("session of %s", time.Since(start).Round(time.Millisecond))
		if raw, _ := sc.text(); testing.Verbose() {
			t.Logf("terminal:\n%s", raw)
		}
		assertNodeIdle(t, l, id, "h1")
		cancel()
		waitGoroutines(t, before)
	})

	t.Run("client goes away", func(t *testing.T) {
		before := settledGoroutines()
		ctx, cancel := context.WithCancel(rpcCtx(t))
		defer cancel()
		sc := openShell(t, ctx, l, &labsv1.ShellStart{Sandbox: id, Node: "h1"})
		sc.expect(t, prompt)
		sc.typeText(t, "sleep 1000\r")
		pollExitCode(t, l, id, "h1", 0, 5*time.Second, "pgrep", "-x", "sleep")
		start := time.Now()
		cancel() // as when labctl is killed: the connection's streams are reset
		pollExitCode(t, l, id, "h1", 1, 5*time.Second, "pgrep", "-x", "sleep")
		t.Logf("no sleep left %s after the client went away", time.Since(start).Round(time.Millisecond))
		if _, err := sc.end(t); status.Code(err) != codes.Canceled {
			t.Errorf("stream ended with %v, want Canceled", err)
		}
		assertNodeIdle(t, l, id, "h1")
		waitGoroutines(t, before)
	})

	t.Run("bulk output", func(t *testing.T) {
		// All of it arrives, in chunks of at most 32 KiB, although the
		// command exits long before the client has read it.
		start := time.Now()
		sc := openShell(t, rpcCtx(t), l, &labsv1.ShellStart{Sandbox: id, Node: "h1", Command: []string{"seq", "200000"}})
		exit, err := sc.end(t)
		if !errors.Is(err, io.EOF) || exit.GetCode() != 0 {
			t.Fatalf("ended with %v and %v, want a clean end with code 0", err, exit)
		}
		out, _ := sc.text()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 200000 || lines[len(lines)-1] != "200000" {
			t.Errorf("%d lines ending %q, want 200000", len(lines), lines[len(lines)-1])
		}
		t.Logf("%d bytes in %s", len(out)+len(lines), time.Since(start).Round(time.Millisecond))
	})

	t.Run("errors", func(t *testing.T) {
		first := func(req *labsv1.ShellRequest) error {
			t.Helper()
			stream, err := l.sbx.Shell(rpcCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if req != nil {
				if err := stream.Send(req); err != nil {
					t.Fatal(err)
				}
			}
			stream.CloseSend()
			for {
				if _, err := stream.Recv(); err != nil {
					return err
				}
			}
		}
		start := func(s *labsv1.ShellStart) *labsv1.ShellRequest {
			return &labsv1.ShellRequest{Event: &labsv1.ShellRequest_Start{Start: s}}
		}
		for _, tc := range []struct {
			name string
			req  *labsv1.ShellRequest
			code codes.Code
			msg  string
		}{
			{"stdin first", &labsv1.ShellRequest{Event: &labsv1.ShellRequest_Stdin{Stdin: []byte("ls\r")}}, codes.InvalidArgument, "start"},
			{"nothing", nil, codes.InvalidArgument, "start"},
			{"no node", start(&labsv1.ShellStart{Sandbox: id}), codes.InvalidArgument, "start.node"},
			{"bad sandbox id", start(&labsv1.ShellStart{Sandbox: "x/y", Node: "h1"}), codes.InvalidArgument, "start.sandbox"},
			{"unknown sandbox", start(&labsv1.ShellStart{Sandbox: "s-000000", Node: "h1"}), codes.NotFound, "s-000000"},
			{"unknown node", start(&labsv1.ShellStart{Sandbox: id, Node: "h9"}), codes.NotFound, "h9"},
			{"too many rows", start(&labsv1.ShellStart{Sandbox: id, Node: "h1", Size: &labsv1.TerminalSize{Rows: 2000, Cols: 80}}), codes.InvalidArgument, "start.size"},
			{"bad term", start(&labsv1.ShellStart{Sandbox: id, Node: "h1", Term: "x\x1bterm"}), codes.InvalidArgument, "start.term"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := first(tc.req)
				if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
					t.Errorf("got %v, want %v naming %q", err, tc.code, tc.msg)
				}
			})
		}

		t.Run("resize too large", func(t *testing.T) {
			ctx, cancel := context.WithCancel(rpcCtx(t))
			defer cancel()
			sc := openShell(t, ctx, l, &labsv1.ShellStart{Sandbox: id, Node: "h1"})
			sc.expect(t, prompt)
			sc.send(t, &labsv1.ShellRequest{Event: &labsv1.ShellRequest_Resize{Resize: &labsv1.TerminalSize{Rows: 50, Cols: 1001}}})
			if _, err := sc.end(t); status.Code(err) != codes.InvalidArgument {
				t.Errorf("stream ended with %v, want InvalidArgument", err)
			}
		})
		t.Run("command not found", func(t *testing.T) {
			sc := openShell(t, rpcCtx(t), l, &labsv1.ShellStart{Sandbox: id, Node: "h1", Command: []string{"no-such-command"}})
			exit, err := sc.end(t)
			if !errors.Is(err, io.EOF) || exit.GetCode() != 127 {
				t.Errorf("ended with %v and %v, want a clean end with code 127", err, exit)
			}
			sc.expect(t, `nslab: .*no-such-command`)
		})
		t.Run("command and half-close", func(t *testing.T) {
			sc := openShell(t, rpcCtx(t), l, &labsv1.ShellStart{
				Sandbox: id, Node: "h1", Term: "vt100", Env: map[string]string{"X": "y"},
				Command: []string{"sh", "-c", `sleep 0.2; echo "$TERM $X"; exit 4`},
			})
			sc.stream.CloseSend() // no input is no reason to end the session
			exit, err := sc.end(t)
			if !errors.Is(err, io.EOF) || exit.GetCode() != 4 {
				t.Errorf("ended with %v and %v, want a clean end with code 4", err, exit)
			}
			sc.expect(t, `(?m)^vt100 y$`)
		})
		assertNodeIdle(t, l, id, "h1")
	})
}
