package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// withFd runs fn with f's descriptor. Unlike f.Fd it leaves the file in
// non-blocking mode, so that read deadlines keep working on it (a shell
// session ends its stdin reader with one).
func withFd(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// isTTY says whether v is an *os.File on a terminal.
func isTTY(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	tty := false
	if err := withFd(f, func(fd int) { tty = term.IsTerminal(fd) }); err != nil {
		return false
	}
	return tty
}

// isTerminal says whether w is a terminal, as far as Stat can tell: a
// character device other than /dev/null. capture refuses to write binary
// pcapng to such a device; a wider net than a tty check is the safe side
// there.
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

// styles renders text attributes: ANSI escapes on a terminal, the plain
// text elsewhere and whenever NO_COLOR is set (https://no-color.org).
type styles struct{ on bool }

// styleFor is the styles for output to w.
func (c *cli) styleFor(w io.Writer) styles {
	return styles{on: c.cfg.terminal(w) && c.cfg.getenv("NO_COLOR") == ""}
}

func (s styles) wrap(text, on, off string) string {
	if !s.on || text == "" {
		return text
	}
	return on + text + off
}

func (s styles) bold(t string) string      { return s.wrap(t, "\x1b[1m", "\x1b[22m") }
func (s styles) dim(t string) string       { return s.wrap(t, "\x1b[2m", "\x1b[22m") }
func (s styles) italic(t string) string    { return s.wrap(t, "\x1b[3m", "\x1b[23m") }
func (s styles) underline(t string) string { return s.wrap(t, "\x1b[4m", "\x1b[24m") }
func (s styles) code(t string) string      { return s.wrap(t, "\x1b[36m", "\x1b[39m") }
func (s styles) green(t string) string     { return s.wrap(t, "\x1b[32m", "\x1b[39m") }
func (s styles) red(t string) string       { return s.wrap(t, "\x1b[31m", "\x1b[39m") }
func (s styles) yellow(t string) string    { return s.wrap(t, "\x1b[33m", "\x1b[39m") }

// spinner shows that something is under way: a turning wheel, what is
// being done and the time it has taken so far, redrawn in place on one
// line of a terminal.
type spinner struct {
	w     io.Writer
	msg   string
	now   func() time.Time
	began time.Time

	stop chan struct{}
	done sync.WaitGroup
}

const spinnerFrames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

func startSpinner(w io.Writer, msg string, now func() time.Time) *spinner {
	s := &spinner{w: w, msg: msg, now: now, began: now(), stop: make(chan struct{})}
	s.done.Add(1)
	go s.spin()
	return s
}

func (s *spinner) spin() {
	defer s.done.Done()
	frames := []rune(spinnerFrames)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		fmt.Fprintf(s.w, "\r\x1b[K%c %s %s", frames[i%len(frames)], s.msg, s.elapsed())
		select {
		case <-s.stop:
			fmt.Fprint(s.w, "\r\x1b[K") // leave the line to what follows
			return
		case <-tick.C:
		}
	}
}

// elapsed is the time since the spinner started, to a tenth of a second.
func (s *spinner) elapsed() string {
	return fmt.Sprintf("%.1fs", s.now().Sub(s.began).Seconds())
}

// end stops the wheel and clears its line; it returns once nothing more
// will be written.
func (s *spinner) end() {
	close(s.stop)
	s.done.Wait()
}

// localTerm is labctl's own terminal during a shell session.
type localTerm struct {
	f     *os.File
	saved *term.State
}

// openTerm returns stdin as a terminal, or nil when it is none.
func openTerm(stdin io.Reader) *localTerm {
	f, ok := stdin.(*os.File)
	if !ok || !isTTY(f) {
		return nil
	}
	return &localTerm{f: f}
}

// size is the terminal's size in cells.
func (t *localTerm) size() (rows, cols uint32, ok bool) {
	var w, h int
	var err error
	if cerr := withFd(t.f, func(fd int) { w, h, err = term.GetSize(fd) }); cerr != nil || err != nil || w <= 0 || h <= 0 {
		return 0, 0, false
	}
	return uint32(h), uint32(w), true
}

// makeRaw passes every keystroke through as typed: no echo, no line
// editing, Ctrl-C as the byte 0x03 rather than SIGINT.
func (t *localTerm) makeRaw() error {
	var err error
	if cerr := withFd(t.f, func(fd int) { t.saved, err = term.MakeRaw(fd) }); cerr != nil {
		return cerr
	}
	return err
}

// restore undoes makeRaw; it is safe to call more than once.
func (t *localTerm) restore() {
	if t == nil || t.saved == nil {
		return
	}
	withFd(t.f, func(fd int) { term.Restore(fd, t.saved) })
	t.saved = nil
}
