package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ShellRequest is an interactive command to run as root of a node on a
// pseudo-terminal.
type ShellRequest struct {
	Argv []string // empty: the node's login shell (bash -l, else sh -l)
	Env  []string // KEY=VALUE, added to the node's default environment
	Term string   // TERM; "" keeps Env's or the node's default (xterm-256color)
	Rows uint16   // initial size; 0 (either) means 24x80
	Cols uint16
}

// CommandError is a command the node could not start: Code is 127 when
// it was not found and 126 otherwise, as a shell reports it.
type CommandError struct {
	Code int
	Msg  string
}

func (e *CommandError) Error() string { return e.Msg }

// ErrSessionClosed: Close (or the session's context) ended a shell
// session before its command exited on its own.
var ErrSessionClosed = errors.New("shell session closed")

const (
	defaultRows = 24
	defaultCols = 80
	// shellDrainLimit bounds how long output is read after the command
	// exited: only a process that escaped the session (setsid) can keep
	// the terminal open that long.
	shellDrainLimit = 2 * time.Second
)

// ShellSession is a command running on a pseudo-terminal in a node. Read
// and Write carry the terminal's bytes; Read and Write may be called
// concurrently with each other and with Resize and Close.
type ShellSession struct {
	node   string
	pid    int // in the node's pid namespace
	c      *net.UnixConn
	master *os.File
	stop   func() bool // unregisters the context's Close

	done        chan struct{} // closed once the exit (or the loss) is known
	st          ExitStatus
	err         error
	exitAt      atomic.Int64 // unix nanoseconds of the exit; 0 before
	closedEarly atomic.Bool
	closeOnce   sync.Once
}

// Shell starts req on a new pseudo-terminal in node. The session ends
// when its command exits, when Close is called, or when ctx is done; the
// node then kills every process of the session. Callers must Close it.
func (s *Sandbox) Shell(ctx context.Context, node string, req ShellRequest) (*ShellSession, error) {
	p := s.nodes[node]
	if p == nil {
		return nil, fmt.Errorf("node %q in sandbox %s: %w", node, s.ID, ErrNodeNotFound)
	}
	return p.shell(ctx, req)
}

func (p *proc) shell(ctx context.Context, req ShellRequest) (_ *ShellSession, err error) {
	if len(req.Argv) > 0 && req.Argv[0] == "" {
		return nil, fmt.Errorf("shell: empty program name: %w", ErrBadRequest)
	}
	rows, cols := req.Rows, req.Cols
	if rows == 0 || cols == 0 {
		rows, cols = defaultRows, defaultCols
	}
	env := slices.Clone(req.Env)
	if req.Term != "" {
		env = append(env, "TERM="+req.Term) // last wins in the node
	}
	c, err := p.dial()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close() // the node kills whatever was started
		}
	}()
	c.SetDeadline(deadlineOf(ctx, 30*time.Second))
	if err := writeMsg(c, wireRequest{Op: "pty", Argv: req.Argv, Env: env, Rows: int(rows), Cols: int(cols)}); err != nil {
		return nil, p.gone(fmt.Errorf("node %s: send pty: %w", p.name, err))
	}
	var rep wireReply
	fds, err := readMsg(c, &rep)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, p.gone(fmt.Errorf("node %s: pty reply: %w", p.name, err))
	}
	if rep.Error != "" {
		closeFds(fds)
		return nil, &CommandError{Code: rep.Code, Msg: fmt.Sprintf("node %s: %s", p.name, rep.Error)}
	}
	if len(fds) != 1 {
		closeFds(fds)
		return nil, fmt.Errorf("node %s: pty reply carried %d descriptors, want 1", p.name, len(fds))
	}
	c.SetDeadline(time.Time{})
	// Non-blocking, so the runtime poller serves it: Close and read
	// deadlines then interrupt a blocked Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("node %s: pty master: %w", p.name, err)
	}
	s := &ShellSession{
		node:   p.name,
		pid:    rep.Pid,
		c:      c,
		master: os.NewFile(uintptr(fds[0]), "pty master of "+p.name),
		done:   make(chan struct{}),
	}
	go s.waitExit(p)
	s.stop = context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// waitExit reads the one message the node sends at the end: the exit.
func (s *ShellSession) waitExit(p *proc) {
	defer close(s.done)
	var rep wireReply
	_, err := readMsg(s.c, &rep)
	switch {
	case s.closedEarly.Load():
		s.err = fmt.Errorf("node %s: %w", s.node, ErrSessionClosed)
	case err != nil:
		s.err = p.gone(fmt.Errorf("node %s: lost the shell: %w", s.node, err))
	case !rep.Exited:
		s.err = fmt.Errorf("node %s: unexpected message from init: %+v", s.node, rep)
	default:
		s.st.Code = rep.Code
		if rep.Signal != 0 {
			s.st.Signal = unix.SignalName(unix.Signal(rep.Signal))
		}
	}
	s.exitAt.Store(time.Now().UnixNano())
	// The node killed the whole session before reporting, so the
	// terminal's last output is buffered and EIO follows it; the deadline
	// only matters for a writer that escaped the session.
	s.master.SetReadDeadline(time.Now().Add(exitGrace))
}

// Read reads what the terminal shows. It returns io.EOF once the
// session's side of the terminal is closed, or when output stalls for a
// moment after the command exited.
func (s *ShellSession) Read(p []byte) (int, error) {
	if at := s.exitAt.Load(); at != 0 {
		dl := time.Now().Add(exitGrace)
		if limit := time.Unix(0, at).Add(shellDrainLimit); dl.After(limit) {
			dl = limit
		}
		s.master.SetReadDeadline(dl)
	}
	n, err := s.master.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, syscall.EIO):
		// Every slave descriptor is closed: the session is over.
		err = io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded) && s.exitAt.Load() != 0:
		err = io.EOF
	}
	return n, err
}

// Write types p into the terminal. It blocks while the terminal's input
// buffer is full.
func (s *ShellSession) Write(p []byte) (int, error) {
	return s.master.Write(p)
}

// Resize sets the terminal's size; the foreground job gets SIGWINCH.
func (s *ShellSession) Resize(rows, cols uint16) error {
	rc, err := s.master.SyscallConn()
	if err != nil {
		return fmt.Errorf("resize terminal in node %s: %w", s.node, err)
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return fmt.Errorf("resize terminal in node %s: %w", s.node, err)
	}
	if ierr != nil {
		return fmt.Errorf("resize terminal in node %s: %w", s.node, ierr)
	}
	return nil
}

// Done is closed once the command has exited or the session was lost or
// closed; Wait then returns at once.
func (s *ShellSession) Done() <-chan struct{} { return s.done }

// Wait waits for the command to exit. The error is ErrSessionClosed
// (wrapped) when Close ended the session first, or ErrGone when the node
// went away.
func (s *ShellSession) Wait() (ExitStatus, error) {
	<-s.done
	return s.st, s.err
}

// Close ends the session: the node kills every process in it, and Close
// returns once it has reported that (within a few seconds even if it
// does not). Close is idempotent.
func (s *ShellSession) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		select {
		case <-s.done:
		default:
			s.closedEarly.Store(true)
			// The init kills the session, then reports the exit.
			if writeMsg(s.c, wireRequest{Op: "kill", Signal: int(unix.SIGKILL)}) == nil {
				t := time.NewTimer(5 * time.Second)
				select {
				case <-s.done:
				case <-t.C:
				}
				t.Stop()
			}
		}
		s.c.Close() // also what makes the init kill, were the kill lost
		<-s.done
		s.master.Close()
	})
	return nil
}

// String names the session for logs.
func (s *ShellSession) String() string {
	return fmt.Sprintf("shell pid %d in node %s", s.pid, s.node)
}

var _ io.ReadWriteCloser = (*ShellSession)(nil)
