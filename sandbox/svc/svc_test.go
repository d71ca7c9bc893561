package svc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve runs fn in the background and returns a stop function that cancels
// it and reports what fn returned, failing the test if it takes too long.
func serve(t *testing.T, fn func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("service did not return within 5s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// roundTrip writes msg on c and reads the same number of bytes back.
func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	return string(got)
}

// expectClosed waits for the peer to close c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection still open: read err = %v", err)
	}
}

func TestTCPEcho(t *testing.T) {
	t.Parallel()
	ln := listenTCP(t)
	stop := serve(t, func(ctx context.Context) error { return TCPEcho(ctx, ln) })

	// Both clients connect before either sends, so the second is served
	// while the first is still open.
	a := dialTCP(t, ln.Addr().String())
	b := dialTCP(t, ln.Addr().String())
	var wg sync.WaitGroup
	for i, c := range []net.Conn{a, b} {
		msg := strings.Repeat(string(rune('a'+i)), 100000) // larger than one read buffer
		wg.Go(func() {
			if got := roundTrip(t, c, msg); got != msg {
				t.Errorf("client %d: echo mismatch (%d bytes back)", i, len(got))
			}
		})
	}
	wg.Wait()
	if got := roundTrip(t, a, "again\n"); got != "again\n" {
		t.Errorf("second round trip = %q", got)
	}
	if err := stop(); err != nil {
		t.Errorf("TCPEcho returned %v after cancel, want nil", err)
	}
	expectClosed(t, a)
	expectClosed(t, b)
}

func TestTCPEchoLimit(t *testing.T) {
	t.Parallel()
	ln := listenTCP(t)
	serve(t, func(ctx context.Context) error { return tcpEcho(ctx, ln, 1, time.Minute) })

	first := dialTCP(t, ln.Addr().String())
	if got := roundTrip(t, first, "hi"); got != "hi" {
		t.Fatalf("first client echo = %q", got)
	}
	second := dialTCP(t, ln.Addr().String())
	expectClosed(t, second)
	if got := roundTrip(t, first, "still"); got != "still" {
		t.Errorf("first client after overflow = %q", got)
	}
}

func TestTCPEchoIdleTimeout(t *testing.T) {
	t.Parallel()
	ln := listenTCP(t)
	serve(t, func(ctx context.Context) error { return tcpEcho(ctx, ln, 4, 100*time.Millisecond) })

	c := dialTCP(t, ln.Addr().String())
	if got := roundTrip(t, c, "x"); got != "x" {
		t.Fatalf("echo = %q", got)
	}
	expectClosed(t, c)
}

func TestUDPEcho(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	stop := serve(t, func(ctx context.Context) error { return UDPEcho(ctx, pc) })

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatalf("dial udp: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, msg := range []string{"ping", strings.Repeat("z", 1400)} {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if got := string(buf[:n]); got != msg {
			t.Errorf("echo = %q (%d bytes), want %d bytes", got[:min(len(got), 10)], n, len(msg))
		}
	}
	if err := stop(); err != nil {
		t.Errorf("UDPEcho returned %v after cancel, want nil", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's writes and the test's
// reads.
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

func TestHTTP(t *testing.T) {
	t.Parallel()
	ln := listenTCP(t)
	var logs syncBuffer
	stop := serve(t, func(ctx context.Context) error { return serveHTTP(ctx, ln, "hello lab\n", &logs) })
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}

	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   []string // substrings
	}{
		{"root", "GET", "/", 200, []string{"hello lab\n"}},
		{"healthz", "GET", "/healthz", 200, []string{"ok\n"}},
		{"echo", "GET", "/echo?x=1", 200, []string{
			"GET /echo?x=1 HTTP/1.1\n",
			"Host: " + ln.Addr().String() + "\n",
			"X-Lab: nat-1\n",
			"\nremote: 127.0.0.1:",
		}},
		{"unknown path", "GET", "/nope", 404, nil},
		{"wrong method", "POST", "/", 405, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Lab", "nat-1")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			for _, want := range tc.wantBody {
				if !strings.Contains(string(body), want) {
					t.Errorf("body %q does not contain %q", body, want)
				}
			}
		})
	}

	if err := stop(); err != nil {
		t.Errorf("HTTP returned %v after cancel, want nil", err)
	}
	for _, want := range []string{" GET / 200\n", " GET /healthz 200\n", " GET /nope 404\n", " POST / 405\n"} {
		if !strings.Contains(logs.String(), "127.0.0.1:") || !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not contain %q", logs.String(), want)
		}
	}
}

func TestHTTPDefaultBody(t *testing.T) {
	t.Parallel()
	ln := listenTCP(t)
	serve(t, func(ctx context.Context) error { return serveHTTP(ctx, ln, "", io.Discard) })
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), "nslab http on ") || !strings.HasSuffix(string(body), "\n") {
		t.Errorf("default body = %q", body)
	}
}

// TestShutdown checks each service returns nil promptly on cancel even with a
// client connection open.
func TestShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start func(t *testing.T) (run func(context.Context) error, addr string)
		// open leaves a connection open against the service, or is nil.
		open func(t *testing.T, addr string)
	}{
		{
			name: "tcp-echo",
			start: func(t *testing.T) (func(context.Context) error, string) {
				ln := listenTCP(t)
				return func(ctx context.Context) error { return TCPEcho(ctx, ln) }, ln.Addr().String()
			},
			open: func(t *testing.T, addr string) { roundTrip(t, dialTCP(t, addr), "x") },
		},
		{
			name: "udp-echo",
			start: func(t *testing.T) (func(context.Context) error, string) {
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				return func(ctx context.Context) error { return UDPEcho(ctx, pc) }, pc.LocalAddr().String()
			},
		},
		{
			name: "http",
			start: func(t *testing.T) (func(context.Context) error, string) {
				ln := listenTCP(t)
				return func(ctx context.Context) error { return serveHTTP(ctx, ln, "", io.Discard) }, ln.Addr().String()
			},
			// A raw keep-alive connection that sends nothing more: an idle
			// connection shutdown has to close.
			open: func(t *testing.T, addr string) {
				c := dialTCP(t, addr)
				io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run, addr := tc.start(t)
			stop := serve(t, run)
			if tc.open != nil {
				tc.open(t, addr)
			}
			start := time.Now()
			if err := stop(); err != nil {
				t.Errorf("returned %v after cancel, want nil", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("shutdown took %v, want under 1s", d)
			}
		})
	}
}

func TestMainUsage(t *testing.T) {
	if code := Main([]string{"no-such-kind"}); code != 2 {
		t.Errorf("Main(unknown kind) = %d, want 2", code)
	}

	tests := []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"no kind", nil, []string{"nslab service: missing kind", "tcp-echo, udp-echo, http"}},
		{"unknown kind", []string{"ftp"}, []string{"nslab service ftp: unknown kind", "tcp-echo, udp-echo, http"}},
		{"unknown flag", []string{"tcp-echo", "--body", "x"}, []string{"nslab service tcp-echo: ", "-body"}},
		{"extra args", []string{"udp-echo", "more"}, []string{"nslab service udp-echo: unexpected arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tc.args, io.Discard, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), want)
				}
			}
		})
	}
}

// TestRun drives the whole Main path for each kind: parse flags, listen,
// announce the address, serve, and exit 0 on cancel.
func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind  string
		extra []string
		check func(t *testing.T, addr string)
	}{
		{"tcp-echo", nil, func(t *testing.T, addr string) {
			if got := roundTrip(t, dialTCP(t, addr), "hi"); got != "hi" {
				t.Errorf("echo = %q", got)
			}
		}},
		{"udp-echo", nil, func(t *testing.T, addr string) {
			c, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "hi")
			buf := make([]byte, 16)
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hi" {
				t.Errorf("echo = %q, %v", buf[:n], err)
			}
		}},
		{"http", []string{"--body", "custom\n"}, func(t *testing.T, addr string) {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if body, _ := io.ReadAll(resp.Body); string(body) != "custom\n" {
				t.Errorf("body = %q", body)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			pr, pw := io.Pipe()
			defer pr.Close()
			args := append([]string{tc.kind, "--listen", "127.0.0.1:0"}, tc.extra...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			codec := make(chan int, 1)
			var stderr syncBuffer
			go func() {
				codec <- run(ctx, args, pw, &stderr)
				pw.Close()
			}()

			// Keep draining stdout so request logs never block the server.
			lines := make(chan string, 16)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					default:
					}
				}
			}()
			var first string
			select {
			case first = <-lines:
			case <-time.After(5 * time.Second):
				t.Fatalf("no listening line; stderr %q", stderr.String())
			}
			fields := strings.Fields(first)
			if len(fields) == 0 || !strings.Contains(first, "listening on") {
				t.Fatalf("first stdout line = %q", first)
			}
			tc.check(t, fields[len(fields)-1])

			cancel()
			select {
			case code := <-codec:
				if code != 0 {
					t.Errorf("exit code = %d, want 0; stderr %q", code, stderr.String())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("run did not return after cancel")
			}
		})
	}
}
