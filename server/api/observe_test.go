package api

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"nslab/server/store"
)

// scrape returns m's metrics as /metrics serves them.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// metricValue finds the sample named series (with its labels, as
// exposed) in a scrape; ok is false when it is not there.
func metricValue(text, series string) (v float64, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		name, val, found := strings.Cut(sc.Text(), " ")
		if found && name == series {
			f, err := strconv.ParseFloat(val, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func testCounter(t *testing.T, m *Metrics, series string) float64 {
	t.Helper()
	v, ok := metricValue(scrape(t, m), series)
	if !ok {
		t.Fatalf("no %s in the scrape", series)
	}
	return v
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	m.AuthFailure("bad-token")
	m.AuthFailure("bad-token")
	m.AuthFailure("revoked")
	m.created("routed", 1500*1e6, nil)
	m.created("routed", 100*1e6, &store.LimitError{Limit: "nodes", Max: 4, Current: 4, Need: 2})
	m.deleted(50*1e6, nil)
	m.graded("routed", 300*1e6)
	first, end := m.execStart()
	first()
	first() // only the first byte counts
	open := testCounter(t, m, "nslab_exec_streams_open")
	end()

	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "labd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"s-a", "s-b"} {
		if _, err := st.CreateSandbox(t.Context(), id, "routed", "", []string{"h1", "h2", "r1"}, 1<<30, 64); err != nil {
			t.Fatal(err)
		}
	}
	st.SetState(t.Context(), "s-a", store.StateReady, "")
	NewSandboxServer(Config{Store: st, Metrics: m, Capacity: store.Capacity{Sandboxes: 10, Nodes: 40}})

	text := scrape(t, m)
	for series, want := range map[string]float64{
		`nslab_auth_failures_total{reason="bad-token"}`:                  2,
		`nslab_auth_failures_total{reason="revoked"}`:                    1,
		`nslab_create_seconds_count{lab="routed",result="ok"}`:           1,
		`nslab_create_seconds_count{lab="routed",result="error"}`:        1,
		`nslab_create_seconds_bucket{lab="routed",result="ok",le="1.6"}`: 1,
		`nslab_create_seconds_bucket{lab="routed",result="ok",le="0.8"}`: 0,
		`nslab_capacity_refusals_total{limit="nodes"}`:                   1,
		`nslab_delete_seconds_count{result="ok"}`:                        1,
		`nslab_grade_seconds_count{lab="routed"}`:                        1,
		`nslab_exec_streams_total`:                                       1,
		`nslab_exec_streams_open`:                                        0,
		`nslab_exec_first_byte_seconds_count`:                            1,
		`nslab_exec_seconds_count`:                                       1,
		`nslab_sandboxes{state="READY"}`:                                 1,
		`nslab_sandboxes{state="CREATING"}`:                              1,
		`nslab_sandboxes{state="FAILED"}`:                                0,
		`nslab_nodes`:                                                    6,
		`nslab_nodes_live`:                                               0,
		`nslab_capture_ring_bytes`:                                       0,
		`nslab_capacity_limit{limit="sandboxes"}`:                        10,
		`nslab_capacity_limit{limit="nodes"}`:                            40,
	} {
		got, ok := metricValue(text, series)
		if !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", series, got, ok, want)
		}
	}
	if open != 1 {
		t.Errorf("nslab_exec_streams_open during an exec = %v, want 1", open)
	}
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_open_fds") {
		t.Error("no Go runtime or process metrics")
	}

	// Without --metrics every call is a no-op.
	var none *Metrics
	none.AuthFailure("x")
	none.created("routed", 0, nil)
	f, e := none.execStart()
	f()
	e()
	none.eventsLost(3)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// TestRequestIDs: a call's request id is the client's x-request-id when
// well formed, else a new one; it comes back in the response header, is
// in the handler's context and logger, and the call is counted.
func TestRequestIDs(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := NewMetrics()
	var (
		mu   sync.Mutex
		seen []string // request ids the handlers saw in their context
	)
	record := func(ctx context.Context) {
		LoggerFrom(ctx, nil).Info("handler ran")
		mu.Lock()
		seen = append(seen, RequestIDFrom(ctx))
		mu.Unlock()
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(UnaryObserve(log, m), func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(StreamObserve(log, m), func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"client's id kept", "req-42.a:b_c", true},
		{"none sent", "", false},
		{"unsafe id replaced", "evil id=forged", false},
		{"too long replaced", strings.Repeat("a", 65), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.sent != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, RequestIDHeader, tc.sent)
			}
			var hdr metadata.MD
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr)); err != nil {
				t.Fatal(err)
			}
			got := hdr.Get(RequestIDHeader)
			if len(got) != 1 || (tc.keep && got[0] != tc.sent) || (!tc.keep && (got[0] == tc.sent || !validRequestID(got[0]))) {
				t.Fatalf("unary: response header %s = %q (sent %q)", RequestIDHeader, got, tc.sent)
			}
			mu.Lock()
			last := seen[len(seen)-1]
			mu.Unlock()
			if last != got[0] {
				t.Errorf("handler saw request id %q, header says %q", last, got[0])
			}
			if !strings.Contains(logs.String(), "request_id="+got[0]) {
				t.Errorf("no log line with request_id=%s:\n%s", got[0], logs.String())
			}

			// A stream: the header arrives with the first message.
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ws, err := client.Watch(sctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ws.Recv(); err != nil {
				t.Fatal(err)
			}
			shdr, err := ws.Header()
			if err != nil {
				t.Fatal(err)
			}
			sgot := shdr.Get(RequestIDHeader)
			if len(sgot) != 1 || (tc.keep && sgot[0] != tc.sent) || (!tc.keep && !validRequestID(sgot[0])) {
				t.Errorf("stream: response header %s = %q (sent %q)", RequestIDHeader, sgot, tc.sent)
			}
			cancel()
			for {
				if _, err := ws.Recv(); err != nil {
					break
				}
			}
		})
	}
	if v := testCounter(t, m, `nslab_grpc_requests_total{code="OK",method="/grpc.health.v1.Health/Check"}`); v != float64(len(tests)) {
		t.Errorf("Check calls counted %v, want %d", v, len(tests))
	}
}
