package svc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

const (
	// maxTCPConns bounds the echo service's goroutines and buffers; a lab
	// never needs more, and a runaway client loop must not exhaust the host.
	maxTCPConns = 256
	// tcpIdleTimeout drops connections a learner forgot about.
	tcpIdleTimeout = 5 * time.Minute
	echoBufSize    = 16 << 10
)

// TCPEcho accepts connections on ln and writes every byte it reads back to
// the sender, on many connections at once. At most 256 connections are served
// at a time; further ones are closed as soon as they are accepted. A
// connection idle for 5 minutes is closed. When ctx is cancelled TCPEcho closes
// ln and every connection, waits for them to finish, and returns nil.
func TCPEcho(ctx context.Context, ln net.Listener) error {
	return tcpEcho(ctx, ln, maxTCPConns, tcpIdleTimeout)
}

func tcpEcho(ctx context.Context, ln net.Listener, limit int, idle time.Duration) error {
	var (
		conns connSet
		wg    sync.WaitGroup
		sem   = make(chan struct{}, limit)
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		conns.closeAll()
	})
	defer stop()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			if retryableAccept(err) {
				// Out of descriptors or an aborted handshake: wait and retry,
				// as net/http does, rather than killing the service.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					continue // Accept now fails with ctx done
				}
			}
			conns.closeAll()
			wg.Wait()
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		select {
		case sem <- struct{}{}:
		default:
			c.Close() // over the limit
			continue
		}
		if !conns.add(c) { // shutting down
			c.Close()
			<-sem
			continue
		}
		wg.Go(func() {
			defer func() {
				conns.remove(c)
				c.Close()
				<-sem
			}()
			echoConn(c, idle)
		})
	}
}

// echoConn copies c back to itself until EOF, an error, or idle expiry.
// Deadlines are refreshed per read and per write, so only idleness, not the
// connection's age, ends it.
func echoConn(c net.Conn, idle time.Duration) {
	buf := make([]byte, echoBufSize)
	for {
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return
		}
		n, rerr := c.Read(buf)
		if n > 0 {
			if err := c.SetWriteDeadline(time.Now().Add(idle)); err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

func retryableAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) ||
		errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// connSet tracks live connections so shutdown can close them all.
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// add records c; it reports false once closeAll has run.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = make(map[net.Conn]struct{})
	}
	s.m[c] = struct{}{}
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.m {
		c.Close()
	}
}
