package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	labsv1 "nslab/proto/labs/v1"
)

// buildLabctl builds the real CLI once per test.
func buildLabctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "labctl")
	out, err := exec.Command("go", "build", "-o", bin, "../labctl").CombinedOutput()
	if err != nil {
		t.Fatalf("build labctl: %v\n%s", err, out)
	}
	return bin
}

// ptyScreen collects what a process writes to its terminal.
type ptyScreen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *ptyScreen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// expect waits until the screen, from offset on, contains want; it
// returns the offset just past it.
func (s *ptyScreen) expect(t *testing.T, from int, want string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		all := s.buf.String()
		s.mu.Unlock()
		if i := strings.Index(all[min(from, len(all)):], want); i >= 0 {
			return from + i + len(want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; it shows:\n%s", want, all[min(from, len(all)):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func settleGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, want ≤ %d\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLabctlShellThroughPTY is issue 7's acceptance: the real labctl on a
// real terminal against a real labd.
func TestLabctlShellThroughPTY(t *testing.T) {
	requireRoot(t)
	bin := buildLabctl(t)
	e := newTestEnv(t)
	l := startLabd(t, e)
	sb := l.create(t, "hello-link")
	id := sb.GetId()
	l.mustExec(t, id, "h1", "true")
	time.Sleep(100 * time.Millisecond) // let gRPC's idle goroutines settle before counting
	base := runtime.NumGoroutine()

	cmd := exec.Command(bin, "--addr", "unix://"+e.opts.socket, "shell", id, "h1")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	screen := &ptyScreen{}
	go func() { _, _ = copyAll(screen, tty) }()

	at := screen.expect(t, 0, "root@h1:")
	tty.Write([]byte("hostname\r"))
	at = screen.expect(t, at, "h1\r\n") // the output line, not the prompt
	at = screen.expect(t, at, "root@h1:")

	tty.Write([]byte("stty size\r"))
	at = screen.expect(t, at, "24 80")
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // SIGWINCH reaches labctl, which sends the resize
	tty.Write([]byte("stty size\r"))
	at = screen.expect(t, at, "40 100")

	tty.Write([]byte("sleep 100\r"))
	waitNode(t, l, id, "pgrep -x sleep", 0)
	tty.Write([]byte{0x03})
	at = screen.expect(t, at, "root@h1:")
	waitNode(t, l, id, "pgrep -x sleep", 1)

	tty.Write([]byte("exit 3\r"))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("labctl shell ended with %v, want exit status 3", err)
	}
	ps := l.mustExec(t, id, "h1", "ps", "-e", "-o", "comm=")
	if got := strings.Fields(ps); len(got) != 2 || got[0] != "nslab-init" || got[1] != "ps" {
		t.Errorf("h1 runs, after the shell ended:\n%s", ps)
	}
	settleGoroutines(t, base)
}

// TestLabctlShellKilled: killing labctl mid-shell leaves nothing in the
// node within 5 seconds.
func TestLabctlShellKilled(t *testing.T) {
	requireRoot(t)
	bin := buildLabctl(t)
	e := newTestEnv(t)
	l := startLabd(t, e)
	id := l.create(t, "hello-link").GetId()

	cmd := exec.Command(bin, "--addr", "unix://"+e.opts.socket, "shell", id, "h1")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	screen := &ptyScreen{}
	go func() { _, _ = copyAll(screen, tty) }()
	screen.expect(t, 0, "root@h1:")
	tty.Write([]byte("sleep 1000\r"))
	waitNode(t, l, id, "pgrep -x sleep", 0)

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	start := time.Now()
	waitNode(t, l, id, "pgrep -x sleep || pgrep -x bash", 1)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the session's processes outlived labctl by %s", d)
	}
	t.Logf("node clean %s after labctl was killed", time.Since(start).Round(time.Millisecond))
}

// waitNode polls a shell command in the node until it exits with code.
func waitNode(t *testing.T, l *labd, id, script string, code int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := l.exec(t, &labsv1.ExecRequest{Sandbox: id, Node: "h1", Command: []string{"sh", "-c", script}})
		if err == nil && r.exit.GetCode() == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("`%s` in h1 never exited %d (last: %v %v)", script, code, r.exit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func copyAll(dst *ptyScreen, src interface{ Read([]byte) (int, error) }) (int64, error) {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			dst.Write(buf[:k])
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}
