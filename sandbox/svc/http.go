package svc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// httpShutdownGrace is how long in-flight requests get to finish after ctx is
// cancelled before their connections are closed anyway.
const httpShutdownGrace = 3 * time.Second

// HTTP serves on ln until ctx is cancelled:
//
//	GET /        200 with body, or "nslab http on <hostname>\n" when body is empty
//	GET /healthz 200 "ok\n"
//	GET /echo    the request line, headers and the remote address as seen by
//	             the server, which shows the source address after NAT
//
// Other paths get 404. One line per request is logged to stdout with the
// remote address, method, path and status. When ctx is cancelled HTTP closes
// ln and all connections and returns nil.
func HTTP(ctx context.Context, ln net.Listener, body string) error {
	return serveHTTP(ctx, ln, body, os.Stdout)
}

func serveHTTP(ctx context.Context, ln net.Listener, body string, logw io.Writer) error {
	if body == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown"
		}
		body = "nslab http on " + host + "\n"
	}
	srv := &http.Server{
		Handler:           logRequests(log.New(logw, "", log.LstdFlags), newMux(body)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	}
	return nil
}

func newMux(body string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, body)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, "ok\n")
	})
	mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeText(w, echoText(r))
	})
	return mux
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, s)
}

// echoText renders the request as the server received it. Headers are sorted
// so the output is stable between runs.
func echoText(r *http.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\n", r.Method, r.RequestURI, r.Proto)
	fmt.Fprintf(&b, "Host: %s\n", r.Host) // net/http moves Host out of Header
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(&b, "\nremote: %s\n", r.RemoteAddr)
	return b.String()
}

// logRequests logs one line per request once it has been handled.
func logRequests(l *log.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		// EscapedPath keeps a %0a in the path from forging a log line.
		l.Printf("%s %s %s %d", r.RemoteAddr, r.Method, r.URL.EscapedPath(), sw.status)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 { // 1xx are interim, not the final status
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
