package api

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
)

// Limits on Shell sessions.
const (
	maxTermSize    = 1000     // rows or columns
	shellChunk     = 32 << 10 // bytes of output per message
	maxTermNameLen = 64
)

// Shell runs an interactive command on a pseudo-terminal in a node. The
// first message must be start; stdin and resizes then flow to the
// terminal while its output flows back, and the exit status is the last
// message. The session (every process it started in the node) ends when
// the command exits or the client goes away.
//
// A server-side Recv cannot be interrupted from the handler, so reading
// the client is a pump outside the errgroup that only forwards messages:
// it ends when gRPC finishes the stream, right after the handler returns.
// A client's half-close (CloseSend) is no reason to end the session; it
// only means no more input.
func (s *SandboxServer) Shell(stream labsv1.SandboxService_ShellServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return toStatus(invalidField("start", "required as the first message"))
		}
		return err
	}
	start := first.GetStart()
	if start == nil {
		return toStatus(invalidField("start", "required as the first message"))
	}
	req, err := shellRequest(start)
	if err != nil {
		return toStatus(err)
	}
	sb, _, err := s.liveSandbox(ctx, "start.sandbox", start.GetSandbox())
	if err != nil {
		return toStatus(err)
	}
	node := start.GetNode()
	if !sb.HasNode(node) {
		return toStatus(fmt.Errorf("node %q in sandbox %s: %w", node, sb.ID, sandbox.ErrNodeNotFound))
	}
	sess, err := sb.Shell(ctx, node, req)
	var cerr *sandbox.CommandError
	if errors.As(err, &cerr) {
		// As a terminal would show it: the message, then the shell's code.
		if err := stream.Send(&labsv1.ShellResponse{Event: &labsv1.ShellResponse_Output{Output: []byte("nslab: " + cerr.Msg + "\r\n")}}); err != nil {
			return err
		}
		return stream.Send(&labsv1.ShellResponse{Event: &labsv1.ShellResponse_Exit{Exit: &labsv1.ExitStatus{Code: int32(cerr.Code)}}})
	}
	if err != nil {
		return toStatus(fmt.Errorf("shell in %s/%s: %w", sb.ID, node, err))
	}
	defer sess.Close()
	s.log.Debug("shell started", "sandbox", sb.ID, "node", node, "session", sess)

	inputs := make(chan *labsv1.ShellRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case inputs <- msg:
			case <-ctx.Done(): // the handler has returned
				return
			}
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // client -> terminal
		for {
			select {
			case <-sess.Done():
				return nil
			case <-gctx.Done():
				sess.Close()
				return gctx.Err()
			case err := <-recvErr:
				if errors.Is(err, io.EOF) {
					recvErr = nil // half-closed: no more input, the session goes on
					continue
				}
				sess.Close()
				return err
			case msg := <-inputs:
				if err := applyShellInput(sess, msg); errors.Is(err, errInvalid) {
					sess.Close()
					return err
				} else if err != nil {
					// The terminal is going away; its exit status says why.
					s.log.Debug("shell input dropped", "session", sess, "err", err)
				}
			}
		}
	})
	g.Go(func() error { // terminal -> client
		buf := make([]byte, shellChunk)
		for {
			n, err := sess.Read(buf)
			if n > 0 {
				// Send copies the message out before it returns.
				if serr := stream.Send(&labsv1.ShellResponse{Event: &labsv1.ShellResponse_Output{Output: buf[:n]}}); serr != nil {
					return serr
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				return fmt.Errorf("read terminal in %s/%s: %w", sb.ID, node, err)
			}
		}
	})
	if err := g.Wait(); err != nil {
		return toStatus(err)
	}
	st, err := sess.Wait()
	if err != nil {
		return toStatus(fmt.Errorf("shell in %s/%s: %w", sb.ID, node, err))
	}
	return stream.Send(&labsv1.ShellResponse{Event: &labsv1.ShellResponse_Exit{Exit: &labsv1.ExitStatus{
		Code: int32(st.Code), Signal: st.Signal,
	}}})
}

// shellRequest validates a ShellStart (but not its sandbox and node).
func shellRequest(start *labsv1.ShellStart) (sandbox.ShellRequest, error) {
	var req sandbox.ShellRequest
	if start.GetNode() == "" {
		return req, invalidField("start.node", "required")
	}
	if cmd := start.GetCommand(); len(cmd) > 0 && cmd[0] == "" {
		return req, invalidField("start.command", "the program name is empty")
	}
	if sz := start.GetSize(); sz != nil {
		if err := checkTermSize("start.size", sz); err != nil {
			return req, err
		}
		req.Rows, req.Cols = uint16(sz.GetRows()), uint16(sz.GetCols())
	}
	if t := start.GetTerm(); len(t) > maxTermNameLen || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == '=' || r > '~' }) {
		return req, invalidField("start.term", "%q is not a terminal type (like xterm-256color)", t)
	}
	req.Term = start.GetTerm()
	req.Argv = start.GetCommand()
	for k, v := range start.GetEnv() {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			return req, invalidField("start.env", "bad variable name %q", k)
		}
		req.Env = append(req.Env, k+"="+v)
	}
	sort.Strings(req.Env)
	return req, nil
}

func checkTermSize(field string, sz *labsv1.TerminalSize) error {
	if sz.GetRows() > maxTermSize || sz.GetCols() > maxTermSize {
		return invalidField(field, "%dx%d: rows and columns are at most %d", sz.GetRows(), sz.GetCols(), maxTermSize)
	}
	return nil
}

func applyShellInput(sess *sandbox.ShellSession, msg *labsv1.ShellRequest) error {
	switch ev := msg.GetEvent().(type) {
	case *labsv1.ShellRequest_Stdin:
		if _, err := sess.Write(ev.Stdin); err != nil {
			return fmt.Errorf("write to terminal: %w", err)
		}
	case *labsv1.ShellRequest_Resize:
		if err := checkTermSize("resize", ev.Resize); err != nil {
			return err
		}
		if ev.Resize.GetRows() == 0 || ev.Resize.GetCols() == 0 {
			return nil // a size the client could not tell
		}
		return sess.Resize(uint16(ev.Resize.GetRows()), uint16(ev.Resize.GetCols()))
	case *labsv1.ShellRequest_Start:
		return invalidField("start", "only in the first message")
	}
	return nil
}
