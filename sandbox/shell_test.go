package sandbox

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
)

// termReader collects what a terminal shows, for expect-style tests.
type termReader struct {
	mu      sync.Mutex
	raw     []byte
	pos     int // of the normalised text, consumed by expect
	err     error
	changed chan struct{}
}

func newTermReader(r io.Reader) *termReader {
	tr := &termReader{changed: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			tr.mu.Lock()
			tr.raw = append(tr.raw, buf[:n]...)
			if err != nil {
				tr.err = err
			}
			tr.mu.Unlock()
			select {
			case tr.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return tr
}

var ansiEscape = regexp.MustCompile(`\x1b(\[[?0-9;]*[a-zA-Z]|\][^\a]*\a|[()][0-9A-Za-z])`)

// text is the output so far without escape sequences and carriage returns.
func (tr *termReader) text() (string, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := ansiEscape.ReplaceAllString(string(tr.raw), "")
	return strings.ReplaceAll(s, "\r", ""), tr.err
}

// expect waits until the output after what earlier expects consumed
// matches re, and consumes it up to the end of the match.
func (tr *termReader) expect(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		s, err := tr.text()
		if loc := rx.FindStringIndex(s[tr.pos:]); loc != nil {
			m := s[tr.pos+loc[0] : tr.pos+loc[1]]
			tr.pos += loc[1]
			return m
		}
		if err != nil {
			t.Fatalf("terminal ended (%v) before %q; unread output:\n%q", err, re, s[tr.pos:])
		}
		select {
		case <-tr.changed:
		case <-deadline:
			t.Fatalf("no %q within 10s; unread output:\n%q", re, s[tr.pos:])
		}
	}
}

// waitEOF waits for the reader to finish and returns its final error.
func (tr *termReader) waitEOF(t *testing.T) error {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := tr.text(); err != nil {
			return err
		}
		select {
		case <-tr.changed:
		case <-deadline:
			t.Fatal("terminal output did not end within 10s of the exit")
		}
	}
}

// pollExit runs argv in node until it exits with code, for up to d.
func pollExit(t *testing.T, sb *Sandbox, node string, code int, d time.Duration, argv ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := run(t, sb, node, argv...)
		if r.st.Code == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v still exits %d after %s, want %d\n%s", node, argv, r.st.Code, d, code, r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitGoroutines waits until the goroutine count is back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the session:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNodeIdle checks that node runs nothing but its init, its
// services and the ps looking.
func assertNodeIdle(t *testing.T, sb *Sandbox, node string) {
	t.Helper()
	out := mustRun(t, sb, node, "ps", "-e", "-o", "pid=,comm=")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[1] == "ps" || strings.HasPrefix(f[1], "nslab-")) {
			continue
		}
		t.Errorf("%s: leftover process %q; ps -e:\n%s", node, line, out)
	}
}

func TestShell(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	before := runtime.NumGoroutine()
	start := time.Now()

	sess, err := sb.Shell(context.Background(), "h1", ShellRequest{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	tr := newTermReader(sess)
	prompt := `root@h1:[^\n]*# $`
	tr.expect(t, prompt)
	t.Logf("prompt after %s", time.Since(start).Round(time.Millisecond))

	type1 := func(s string) {
		t.Helper()
		if _, err := sess.Write([]byte(s)); err != nil {
			t.Fatalf("type %q: %v", s, err)
		}
	}
	type1("hostname\r")
	tr.expect(t, `(?m)^h1$`)
	tr.expect(t, prompt)
	type1("stty size\r")
	tr.expect(t, `(?m)^24 80$`)
	tr.expect(t, prompt)
	if err := sess.Resize(40, 100); err != nil {
		t.Fatal(err)
	}
	type1("stty size\r")
	tr.expect(t, `(?m)^40 100$`)
	tr.expect(t, prompt)

	// ^C reaches the foreground job through the line discipline.
	type1("sleep 100\r")
	pollExit(t, sb, "h1", 0, 5*time.Second, "pgrep", "-x", "sleep")
	type1("\x03")
	tr.expect(t, `\^C\n`+prompt)
	if r := run(t, sb, "h1", "pgrep", "-x", "sleep"); r.st.Code != 1 {
		t.Errorf("after ^C: pgrep -x sleep exited %d, want 1 (no sleep left): %s", r.st.Code, r.stdout)
	}
	type1("echo ok-$((20+22))\r")
	tr.expect(t, `(?m)^ok-42$`)

	// A background job has a process group of its own; ending the
	// session must end it too.
	type1("sleep 1001 &\r")
	tr.expect(t, prompt)
	pollExit(t, sb, "h1", 0, 5*time.Second, "pgrep", "-x", "sleep")
	type1("exit 3\r")
	st, err := sess.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 3 || st.Signal != "" {
		t.Errorf("exit status %+v, want code 3", st)
	}
	if err := tr.waitEOF(t); err != io.EOF {
		t.Errorf("read after exit: %v, want EOF", err)
	}
	sess.Close()
	if raw, _ := tr.text(); testing.Verbose() {
		t.Logf("terminal:\n%s", raw)
	}
	t.Logf("session of %s", time.Since(start).Round(time.Millisecond))
	assertNodeIdle(t, sb, "h1")
	waitGoroutines(t, before)
}

func TestShellContextCancelEndsSession(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, err := sb.Shell(ctx, "h2", ShellRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	tr := newTermReader(sess)
	tr.expect(t, `root@h2:[^\n]*# $`)
	sess.Write([]byte("sleep 1000 & sleep 1000\r"))
	pollExit(t, sb, "h2", 0, 5*time.Second, "pgrep", "-x", "sleep")
	start := time.Now()
	cancel()
	pollExit(t, sb, "h2", 1, 5*time.Second, "pgrep", "-x", "sleep")
	t.Logf("no sleep left %s after cancel", time.Since(start).Round(time.Millisecond))
	if _, err := sess.Wait(); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Wait after cancel: %v, want ErrSessionClosed", err)
	}
	sess.Close()
	tr.waitEOF(t)
	assertNodeIdle(t, sb, "h2")
	waitGoroutines(t, before)
}

func TestShellCommands(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))

	t.Run("exit code and output", func(t *testing.T) {
		sess, err := sb.Shell(context.Background(), "h1", ShellRequest{
			Argv: []string{"sh", "-c", `printf '%s %s\n' "$TERM" "$X"; tty; exit 5`},
			Env:  []string{"X=y"}, Term: "vt100",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, err := io.ReadAll(sess)
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(out), "\r", "")), "\n"); len(lines) != 2 ||
			lines[0] != "vt100 y" || !strings.HasPrefix(lines[1], "/dev/pts/") {
			t.Errorf("output %q, want TERM, X and a /dev/pts tty", out)
		}
		if st, err := sess.Wait(); err != nil || st.Code != 5 {
			t.Errorf("Wait = %+v, %v; want code 5", st, err)
		}
	})
	t.Run("killed by a signal", func(t *testing.T) {
		sess, err := sb.Shell(context.Background(), "h1", ShellRequest{Argv: []string{"sh", "-c", "kill -TERM $$"}})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		io.Copy(io.Discard, sess)
		if st, err := sess.Wait(); err != nil || st.Signal != "SIGTERM" || st.Code != 128+15 {
			t.Errorf("Wait = %+v, %v; want SIGTERM", st, err)
		}
	})
	t.Run("ctrl-z then close", func(t *testing.T) {
		sess, err := sb.Shell(context.Background(), "h1", ShellRequest{})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		tr := newTermReader(sess)
		tr.expect(t, `root@h1:[^\n]*# $`)
		sess.Write([]byte("sleep 200\r"))
		pollExit(t, sb, "h1", 0, 5*time.Second, "pgrep", "-x", "sleep")
		sess.Write([]byte("\x1a"))
		tr.expect(t, `Stopped\s+sleep 200\n`)
		if st := mustRun(t, sb, "h1", "ps", "-o", "stat=", "-C", "sleep"); !strings.HasPrefix(st, "T") {
			t.Errorf("sleep after ^Z has state %q, want T (stopped)", st)
		}
		// A stopped job must die with the session too.
		sess.Close()
		pollExit(t, sb, "h1", 1, 5*time.Second, "pgrep", "-x", "sleep")
	})
	t.Run("ctrl-d", func(t *testing.T) {
		sess, err := sb.Shell(context.Background(), "h1", ShellRequest{})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		tr := newTermReader(sess)
		tr.expect(t, `root@h1:[^\n]*# $`)
		sess.Write([]byte("\x04"))
		if st, err := sess.Wait(); err != nil || st.Code != 0 {
			t.Errorf("Wait after ^D = %+v, %v; want code 0", st, err)
		}
	})
	t.Run("prompt without rc files", func(t *testing.T) {
		for _, tc := range []struct {
			argv   []string
			prompt string
		}{
			{[]string{"bash", "--norc", "--noprofile"}, `(?m)^root@h1:/# $`},
			{[]string{"sh"}, `(?m)^root@h1# $`},
		} {
			sess, err := sb.Shell(context.Background(), "h1", ShellRequest{Argv: tc.argv})
			if err != nil {
				t.Fatal(err)
			}
			tr := newTermReader(sess)
			tr.expect(t, tc.prompt)
			sess.Write([]byte("exit 7\r"))
			if st, err := sess.Wait(); err != nil || st.Code != 7 {
				t.Errorf("%v: Wait = %+v, %v; want code 7", tc.argv, st, err)
			}
			sess.Close()
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, err := sb.Shell(context.Background(), "h1", ShellRequest{Argv: []string{"no-such-command-" + randSuffix()}})
		var ce *CommandError
		if !errors.As(err, &ce) || ce.Code != 127 {
			t.Errorf("err = %v, want a CommandError with code 127", err)
		}
	})
	t.Run("no such node", func(t *testing.T) {
		if _, err := sb.Shell(context.Background(), "nope", ShellRequest{}); !errors.Is(err, ErrNodeNotFound) {
			t.Errorf("err = %v, want ErrNodeNotFound", err)
		}
	})
	assertNodeIdle(t, sb, "h1")
}
