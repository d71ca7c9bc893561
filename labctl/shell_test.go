package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	labsv1 "nslab/proto/labs/v1"
)

// Shell is a pretend login shell on a terminal, enough to drive labctl's
// side of a session: it echoes what is typed, answers "hostname" with the
// node's name, reports each resize, and ends on "exit N" with code N. A
// command given at the start runs instead: "true" and "false" end at once,
// anything else behaves like the shell.
func (f *fakeLabd) Shell(stream grpc.BidiStreamingServer[labsv1.ShellRequest, labsv1.ShellResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f.record(first)
	if f.err != nil {
		return f.err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "start: required as the first message")
	}
	if len(f.sandboxes) > 0 && !slices.ContainsFunc(f.sandboxes, func(sb *labsv1.Sandbox) bool { return sb.GetId() == lastSegment(start.GetSandbox()) }) {
		return status.Errorf(codes.NotFound, "sandbox %q: not found", start.GetSandbox())
	}
	node := start.GetNode()
	out := func(s string) error {
		return stream.Send(&labsv1.ShellResponse{Event: &labsv1.ShellResponse_Output{Output: []byte(s)}})
	}
	exit := func(st *labsv1.ExitStatus) error {
		return stream.Send(&labsv1.ShellResponse{Event: &labsv1.ShellResponse_Exit{Exit: st}})
	}
	switch strings.Join(start.GetCommand(), " ") {
	case "true":
		return exit(&labsv1.ExitStatus{})
	case "false":
		return exit(&labsv1.ExitStatus{Code: 1})
	}
	prompt := node + "# "
	if err := out(prompt); err != nil {
		return err
	}
	var line []byte
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			// No more input; a real session runs on until it exits.
			<-stream.Context().Done()
			return stream.Context().Err()
		}
		if err != nil {
			return err
		}
		f.record(req)
		if sz := req.GetResize(); sz != nil {
			if err := out(fmt.Sprintf("[resized to %dx%d]\r\n", sz.GetRows(), sz.GetCols())); err != nil {
				return err
			}
			continue
		}
		for _, b := range req.GetStdin() {
			var reply string
			switch b {
			case '\r', '\n':
				cmd := string(line)
				line = nil
				switch {
				case cmd == "hostname":
					reply = "\r\n" + node + "\r\n" + prompt
				case cmd == "kill":
					return exit(&labsv1.ExitStatus{Code: 137, Signal: "SIGKILL"})
				case strings.HasPrefix(cmd, "exit"):
					code, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(cmd, "exit")))
					out("\r\n")
					return exit(&labsv1.ExitStatus{Code: int32(code)})
				default:
					reply = "\r\n" + prompt
				}
			case eot:
				if len(line) == 0 {
					out("exit\r\n")
					return exit(&labsv1.ExitStatus{})
				}
			case 0x03: // Ctrl-C
				line = nil
				reply = "^C\r\n" + prompt
			default:
				line = append(line, b)
				reply = string(b) // echo
			}
			if err := out(reply); err != nil {
				return err
			}
		}
	}
}

// shellRequests are the ShellRequests labd got, in order.
func (f *fakeLabd) shellRequests() []*labsv1.ShellRequest {
	var reqs []*labsv1.ShellRequest
	for _, m := range f.recorded() {
		if r, ok := m.(*labsv1.ShellRequest); ok {
			reqs = append(reqs, r)
		}
	}
	return reqs
}

// syncBuffer is a Buffer that labctl writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openPTY returns a pseudo-terminal of rows x cols: the master a test
// types into, and the terminal labctl gets as its stdin.
func openPTY(t *testing.T, rows, cols uint16) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() {
		ptmx.Close()
		tty.Close()
	})
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	return ptmx, tty
}

func termios(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	var (
		tio *unix.Termios
		err error
	)
	if cerr := withFd(f, func(fd int) { tio, err = unix.IoctlGetTermios(fd, unix.TCGETS) }); cerr != nil || err != nil {
		t.Fatalf("read termios: %v, %v", cerr, err)
	}
	return *tio
}

func isRaw(tio unix.Termios) bool { return tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) == 0 }

// shellRun is labctl running in the background with a PTY as its stdin.
type shellRun struct {
	ptmx, tty      *os.File
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

func startShell(t *testing.T, cfg config, ptmx, tty *os.File, args ...string) *shellRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &shellRun{ptmx: ptmx, tty: tty, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { r.done <- run(ctx, args, r.stdout, r.stderr, tty, cfg) }()
	return r
}

func (r *shellRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("labctl did not end; stdout %q, stderr %q", r.stdout.String(), r.stderr.String())
		return -1
	}
}

func (r *shellRun) typeKeys(t *testing.T, s string) {
	t.Helper()
	if _, err := r.ptmx.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// TestShellPTY drives labctl shell through a real pseudo-terminal: raw mode
// during the session, keys through as typed, a resize on SIGWINCH, the
// remote exit code as labctl's, and the terminal restored at the end.
func TestShellPTY(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{sandboxes: sampleSandboxes()}
	cfg, _ := serve(t, f)
	winch := make(chan os.Signal, 1)
	cfg.winch = winch
	cfg.getenv = func(k string) string {
		if k == "TERM" {
			return "xterm-256color"
		}
		return ""
	}
	ptmx, tty := openPTY(t, 40, 132)
	before := termios(t, tty)
	if isRaw(before) {
		t.Fatal("a new pseudo-terminal is already raw")
	}

	r := startShell(t, cfg, ptmx, tty, "shell", "s-aaa111", "h1")
	waitFor(t, "the prompt", func() bool { return strings.Contains(r.stdout.String(), "h1# ") })
	if tio := termios(t, tty); !isRaw(tio) {
		t.Errorf("termios during the session: lflag %#x; want raw (no ICANON, ECHO, ISIG)", tio.Lflag)
	}

	r.typeKeys(t, "hostname\r")
	waitFor(t, "hostname's answer", func() bool { return strings.Contains(r.stdout.String(), "hostname\r\nh1\r\n") })

	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	winch <- syscall.SIGWINCH
	waitFor(t, "the resize", func() bool { return strings.Contains(r.stdout.String(), "[resized to 30x100]") })

	r.typeKeys(t, "sleep 100\x03") // Ctrl-C is a byte for the node, not a signal here
	waitFor(t, "Ctrl-C's prompt", func() bool { return strings.Contains(r.stdout.String(), "sleep 100^C\r\nh1# ") })

	r.typeKeys(t, "exit 3\r")
	if code := r.wait(t); code != 3 {
		t.Errorf("labctl shell = %d, stderr %q; want the remote exit code 3", code, r.stderr.String())
	}
	if after := termios(t, tty); after != before {
		t.Errorf("termios after the session:\n%+v\nwant as before:\n%+v", after, before)
	}
	if s := r.stderr.String(); s != "" {
		t.Errorf("stderr %q; want nothing", s)
	}

	reqs := f.shellRequests()
	wantStart := &labsv1.ShellRequest{Event: &labsv1.ShellRequest_Start{Start: &labsv1.ShellStart{
		Sandbox: "s-aaa111", Node: "h1", Term: "xterm-256color", Size: &labsv1.TerminalSize{Rows: 40, Cols: 132},
	}}}
	if len(reqs) == 0 || !proto.Equal(reqs[0], wantStart) {
		t.Fatalf("first request %v; want %v", reqs, wantStart)
	}
	var typed []byte
	var resizes []*labsv1.TerminalSize
	for _, r := range reqs[1:] {
		typed = append(typed, r.GetStdin()...)
		if sz := r.GetResize(); sz != nil {
			resizes = append(resizes, sz)
		}
	}
	if want := "hostname\rsleep 100\x03exit 3\r"; string(typed) != want {
		t.Errorf("labd got keys %q; want %q", typed, want)
	}
	if len(resizes) != 1 || resizes[0].GetRows() != 30 || resizes[0].GetCols() != 100 {
		t.Errorf("labd got resizes %v; want one to 30x100", resizes)
	}

	// The terminal is labctl's again, and in one piece: a second session
	// on it works the same way.
	r = startShell(t, cfg, ptmx, tty, "shell", "s-aaa111", "r1")
	waitFor(t, "the second prompt", func() bool { return strings.Contains(r.stdout.String(), "r1# ") })
	r.typeKeys(t, "exit\r")
	if code := r.wait(t); code != 0 {
		t.Errorf("second session = %d, stderr %q", code, r.stderr.String())
	}
	if after := termios(t, tty); after != before {
		t.Errorf("termios after the second session differs")
	}
}

// TestShellPTYRestores: however the session ends — the connection
// dropping, Ctrl-C or SIGTERM to labctl, the remote side killed —
// the terminal comes back as it was.
func TestShellPTYRestores(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		end        func(t *testing.T, r *shellRun, srv *grpc.Server)
		wantCode   int
		wantStderr string
	}{
		{
			name:       "connection dropped",
			end:        func(t *testing.T, r *shellRun, srv *grpc.Server) { srv.Stop() },
			wantCode:   1,
			wantStderr: "labctl: shell in s-aaa111 node h1: ",
		},
		{
			name:       "interrupted",
			end:        func(t *testing.T, r *shellRun, srv *grpc.Server) { r.cancel() },
			wantCode:   130,
			wantStderr: "labctl: shell in s-aaa111 node h1: interrupted\n",
		},
		{
			name:       "killed",
			end:        func(t *testing.T, r *shellRun, srv *grpc.Server) { r.typeKeys(t, "kill\r") },
			wantCode:   137,
			wantStderr: "labctl: command killed by SIGKILL\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{sandboxes: sampleSandboxes()}
			cfg, _, srv := serveServer(t, f)
			cfg.winch = make(chan os.Signal)
			ptmx, tty := openPTY(t, 24, 80)
			before := termios(t, tty)
			r := startShell(t, cfg, ptmx, tty, "shell", "s-aaa111", "h1")
			waitFor(t, "the prompt", func() bool { return strings.Contains(r.stdout.String(), "h1# ") })
			waitFor(t, "raw mode", func() bool { return isRaw(termios(t, tty)) })
			tc.end(t, r, srv)
			code := r.wait(t)
			if code != tc.wantCode || !strings.HasPrefix(r.stderr.String(), tc.wantStderr) {
				t.Errorf("labctl shell = %d, stderr %q; want %d, %q...", code, r.stderr.String(), tc.wantCode, tc.wantStderr)
			}
			if after := termios(t, tty); after != before {
				t.Errorf("termios after the session:\n%+v\nwant as before:\n%+v", after, before)
			}
		})
	}
}

// TestShellPiped: with stdin not a terminal, the session still runs: the
// size comes from --rows/--cols (24x80 by default), input is sent as it
// is, and its end is Ctrl-D.
func TestShellPiped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
		wantStart  *labsv1.ShellStart
		wantInput  string
	}{
		{
			name:       "exit code",
			args:       []string{"shell", "s-aaa111", "h1"},
			stdin:      "hostname\nexit 4\n",
			wantCode:   4,
			wantStdout: "h1# hostname\r\nh1\r\nh1# exit 4\r\n",
			wantStart:  &labsv1.ShellStart{Sandbox: "s-aaa111", Node: "h1", Size: &labsv1.TerminalSize{Rows: 24, Cols: 80}},
			wantInput:  "hostname\nexit 4\n",
		},
		{
			name:       "end of input is Ctrl-D",
			args:       []string{"shell", "--rows", "40", "s-aaa111", "--cols=120", "-e", "A=1", "r1"},
			stdin:      "hostname\n",
			wantStdout: "r1# hostname\r\nr1\r\nr1# exit\r\n",
			wantStart: &labsv1.ShellStart{Sandbox: "s-aaa111", Node: "r1", Size: &labsv1.TerminalSize{Rows: 40, Cols: 120},
				Env: map[string]string{"A": "1"}},
			wantInput: "hostname\n\x04",
		},
		{
			name:       "a command",
			args:       []string{"shell", "s-aaa111", "h1", "--", "bash", "--norc"},
			stdin:      "exit 9\n",
			wantCode:   9,
			wantStdout: "h1# exit 9\r\n",
			wantStart:  &labsv1.ShellStart{Sandbox: "s-aaa111", Node: "h1", Command: []string{"bash", "--norc"}, Size: &labsv1.TerminalSize{Rows: 24, Cols: 80}},
			wantInput:  "exit 9\n",
		},
		{
			name:       "exec -it",
			args:       []string{"exec", "-it", "-e", "X=y", "s-aaa111", "h1", "--", "top", "-d", "1"},
			stdin:      "exit 5\n",
			wantCode:   5,
			wantStdout: "h1# exit 5\r\n",
			wantStart: &labsv1.ShellStart{Sandbox: "s-aaa111", Node: "h1", Command: []string{"top", "-d", "1"},
				Env: map[string]string{"X": "y"}, Size: &labsv1.TerminalSize{Rows: 24, Cols: 80}},
			wantInput: "exit 5\n",
		},
		{
			name:      "exec -t without -i sends no input",
			args:      []string{"exec", "-t", "s-aaa111", "h1", "false"},
			stdin:     "exit 5\n",
			wantCode:  1,
			wantStart: &labsv1.ShellStart{Sandbox: "s-aaa111", Node: "h1", Command: []string{"false"}, Size: &labsv1.TerminalSize{Rows: 24, Cols: 80}},
		},
		{
			name:       "no such sandbox",
			args:       []string{"shell", "s-nope", "h1"},
			wantCode:   1,
			wantStderr: "labctl: sandbox s-nope not found; `labctl ls` lists yours\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{sandboxes: sampleSandboxes()}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, tc.stdin, tc.args...)
			if r.code != tc.wantCode || r.stdout != tc.wantStdout || r.stderr != tc.wantStderr {
				t.Errorf("labctl %s\n= %d, stdout %q, stderr %q\nwant %d, stdout %q, stderr %q",
					strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if tc.wantStart == nil {
				return
			}
			reqs := f.shellRequests()
			if len(reqs) == 0 || !proto.Equal(reqs[0].GetStart(), tc.wantStart) {
				t.Fatalf("labd got %v; want start %v", reqs, tc.wantStart)
			}
			var input []byte
			for _, r := range reqs[1:] {
				input = append(input, r.GetStdin()...)
			}
			if string(input) != tc.wantInput {
				t.Errorf("labd got input %q; want %q", input, tc.wantInput)
			}
		})
	}
}

func TestShellUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"shell"},
		{"shell", "s-1"},
		{"shell", "s-1", "--", "bash"},
		{"shell", "--rows", "x", "s-1", "h1"},
		{"shell", "--nope", "s-1", "h1"},
		{"exec", "-t", "-w", "/tmp", "s-1", "h1", "pwd"},
		{"exec", "-t", "--timeout", "5s", "s-1", "h1", "top"},
		{"--addr", "http://x", "shell", "s-1", "h1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			f := &fakeLabd{}
			cfg, _ := serve(t, f)
			r := runCLI(t, cfg, "", args...)
			if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "labctl: ") || !strings.Contains(r.stderr, "for usage.\n") {
				t.Errorf("labctl %q = %d, stdout %q, stderr %q; want 2 and a usage hint", args, r.code, r.stdout, r.stderr)
			}
			if n := len(f.recorded()); n != 0 {
				t.Errorf("a usage error called labd %d times", n)
			}
		})
	}

	cfg, _ := serve(t, &fakeLabd{})
	r := runCLI(t, cfg, "", "shell", "-h")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: labctl shell ") || !strings.Contains(r.stdout, "--rows") {
		t.Errorf("shell -h = %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
