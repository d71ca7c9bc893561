package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"nslab/sandbox"
	"nslab/server/store"
)

// Metrics are labd's Prometheus metrics, in a registry of their own. A
// nil *Metrics records nothing, so call sites need no check: labd without
// --metrics passes nil.
type Metrics struct {
	reg *prometheus.Registry

	create      *prometheus.HistogramVec // lab, result
	delete      *prometheus.HistogramVec // result
	execFirst   prometheus.Histogram
	execTotal   prometheus.Histogram
	execOpen    prometheus.Gauge
	execStarted prometheus.Counter
	grade       *prometheus.HistogramVec // lab
	authFails   *prometheus.CounterVec   // reason
	refused     *prometheus.CounterVec   // limit
	requests    *prometheus.CounterVec   // method, code
	watchers    prometheus.Gauge
	lost        prometheus.Counter
}

// NewMetrics makes the metrics and their registry (with Go runtime and
// process metrics). Sandbox and node gauges are added by the
// SandboxServer given them in its Config, and read at each scrape.
func NewMetrics() *Metrics {
	secs := func(name, help string, buckets []float64) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Namespace: "nslab", Name: name, Help: help, Buckets: buckets}
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		create: prometheus.NewHistogramVec(secs("create_seconds",
			"CreateSandbox: from the request until READY (or the failure).",
			prometheus.ExponentialBuckets(0.05, 2, 12)), []string{"lab", "result"}),
		delete: prometheus.NewHistogramVec(secs("delete_seconds",
			"Sandbox deletion, on request or by expiry: teardown and the store.",
			prometheus.ExponentialBuckets(0.01, 2, 12)), []string{"result"}),
		execFirst: prometheus.NewHistogram(secs("exec_first_byte_seconds",
			"Exec: from the request until the command's first output byte.",
			prometheus.ExponentialBuckets(0.001, 2, 14))),
		execTotal: prometheus.NewHistogram(secs("exec_seconds",
			"Exec: from the request until the command's exit status.",
			prometheus.ExponentialBuckets(0.005, 3, 12))),
		execOpen: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "nslab", Name: "exec_streams_open",
			Help: "Exec streams running now."}),
		execStarted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "nslab", Name: "exec_streams_total",
			Help: "Exec streams started."}),
		grade: prometheus.NewHistogramVec(secs("grade_seconds",
			"Grading one exercise: observation, probes and the report.",
			prometheus.ExponentialBuckets(0.01, 2, 12)), []string{"lab"}),
		authFails: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "nslab", Name: "auth_failures_total",
			Help: "Calls refused because the caller could not be authenticated or authorized, by reason."}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "nslab", Name: "capacity_refusals_total",
			Help: "Creates refused because a limit was reached, by limit."}, []string{"limit"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "nslab", Name: "grpc_requests_total",
			Help: "gRPC calls handled, by method and status code."}, []string{"method", "code"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "nslab", Name: "watchers",
			Help: "WatchSandboxes streams open now."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "nslab", Name: "watch_events_lost_total",
			Help: "Events dropped because a watcher fell behind (it was resynchronised)."}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.create, m.delete, m.execFirst, m.execTotal, m.execOpen, m.execStarted, m.grade,
		m.authFails, m.refused, m.requests, m.watchers, m.lost,
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// AuthFailure counts a call refused for reason (a short fixed word such
// as "no-token", "bad-token", "revoked", "permission": it is a label).
func (m *Metrics) AuthFailure(reason string) {
	if m != nil {
		m.authFails.WithLabelValues(reason).Inc()
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (m *Metrics) created(lab string, took time.Duration, err error) {
	if m != nil {
		m.create.WithLabelValues(lab, result(err)).Observe(took.Seconds())
		var le *store.LimitError
		if errors.As(err, &le) {
			m.refused.WithLabelValues(le.Limit).Inc()
		}
	}
}

func (m *Metrics) deleted(took time.Duration, err error) {
	if m != nil {
		m.delete.WithLabelValues(result(err)).Observe(took.Seconds())
	}
}

func (m *Metrics) graded(lab string, took time.Duration) {
	if m != nil {
		m.grade.WithLabelValues(lab).Observe(took.Seconds())
	}
}

// execStart counts an exec stream; the returned functions record its
// first output byte (call any number of times) and its end (once).
func (m *Metrics) execStart() (firstByte, end func()) {
	if m == nil {
		return func() {}, func() {}
	}
	start := time.Now()
	m.execStarted.Inc()
	m.execOpen.Inc()
	seen := false
	return func() {
			if !seen {
				seen = true
				m.execFirst.Observe(time.Since(start).Seconds())
			}
		}, func() {
			m.execOpen.Dec()
			m.execTotal.Observe(time.Since(start).Seconds())
		}
}

func (m *Metrics) watcherOpened() {
	if m != nil {
		m.watchers.Inc()
	}
}

func (m *Metrics) watcherClosed() {
	if m != nil {
		m.watchers.Dec()
	}
}

func (m *Metrics) eventsLost(n int) {
	if m != nil && n > 0 {
		m.lost.Add(float64(n))
	}
}

// serverCollector reads a SandboxServer's gauges at each scrape: the
// store's counts and the live sandboxes' nodes and capture rings.
type serverCollector struct {
	s                                   *SandboxServer
	sandboxes, nodes, live, ring, limit *prometheus.Desc
}

func newServerCollector(s *SandboxServer) *serverCollector {
	return &serverCollector{
		s:         s,
		sandboxes: prometheus.NewDesc("nslab_sandboxes", "Sandboxes by state, as the store has them.", []string{"state"}, nil),
		nodes:     prometheus.NewDesc("nslab_nodes", "Nodes of sandboxes not FAILED, each holding a uid range.", nil, nil),
		live:      prometheus.NewDesc("nslab_nodes_live", "Nodes of the READY sandboxes labd holds open.", nil, nil),
		ring: prometheus.NewDesc("nslab_capture_ring_bytes",
			"Memory allocated by the capture rings of the sandboxes labd holds open.", nil, nil),
		limit: prometheus.NewDesc("nslab_capacity_limit", "Host-wide limits (labd --max-sandboxes, --max-nodes); 0 means none.", []string{"limit"}, nil),
	}
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sandboxes, c.nodes, c.live, c.ring, c.limit} {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if counts, err := c.s.cfg.Store.Count(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(c.sandboxes, err)
	} else {
		for st, n := range counts.Sandboxes {
			ch <- prometheus.MustNewConstMetric(c.sandboxes, prometheus.GaugeValue, float64(n), string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(counts.Nodes))
	}
	var nodes, ring int
	c.s.mu.Lock()
	for _, sb := range c.s.live {
		nodes += len(sb.Nodes())
		ring += sb.CaptureStats().RingSize * sandbox.CaptureSlotBytes
	}
	c.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(nodes))
	ch <- prometheus.MustNewConstMetric(c.ring, prometheus.GaugeValue, float64(ring))
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(c.s.cfg.Capacity.Sandboxes), "sandboxes")
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(c.s.cfg.Capacity.Nodes), "nodes")
}

// Request ids and the context logger.

// RequestIDHeader is the metadata key of a call's request id, in the
// request (the client's, kept if well formed) and in the response header.
const RequestIDHeader = "x-request-id"

type (
	loggerKey    struct{}
	requestIDKey struct{}
)

// RequestIDFrom returns the request id of the call ctx belongs to, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// LoggerFrom returns the logger of the call ctx belongs to (it carries
// the request id and method), or fallback outside a call.
func LoggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

func (s *SandboxServer) logger(ctx context.Context) *slog.Logger { return LoggerFrom(ctx, s.log) }

// requestID is the client's x-request-id if it is well formed (1 to 64
// of [A-Za-z0-9._:-], so that it is safe in a log line), else a new one.
func requestID(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(RequestIDHeader); len(v) > 0 && validRequestID(v[0]) {
		return v[0]
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == ':' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// observe starts a call: its request id, returned in the response header
// by setHeader, and a logger carrying it.
func observe(ctx context.Context, log *slog.Logger, method string, setHeader func(metadata.MD) error) (context.Context, *slog.Logger) {
	id := requestID(ctx)
	if err := setHeader(metadata.Pairs(RequestIDHeader, id)); err != nil {
		log.Debug("set request id header", "err", err)
	}
	l := log.With("request_id", id, "method", method)
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	return context.WithValue(ctx, loggerKey{}, l), l
}

// done logs and counts a finished call: failures that are the server's
// (Internal, Unknown) at error level, the rest at debug.
func (m *Metrics) done(l *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	if m != nil {
		m.requests.WithLabelValues(method, code.String()).Inc()
	}
	switch code {
	case codes.Internal, codes.Unknown:
		l.Error("call failed", "code", code, "took", time.Since(start), "err", err)
	default:
		l.Debug("call", "code", code, "took", time.Since(start))
	}
}

// UnaryObserve is a gRPC interceptor that gives each call a request id
// (the client's x-request-id, or a new one) returned in the response
// header, a context logger carrying it (LoggerFrom), and counts the call
// in m (which may be nil). It goes first in the chain.
func UnaryObserve(log *slog.Logger, m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ctx, l := observe(ctx, log, info.FullMethod, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) })
		resp, err := handler(ctx, req)
		m.done(l, info.FullMethod, start, err)
		return resp, err
	}
}

// StreamObserve is UnaryObserve for streaming calls.
func StreamObserve(log *slog.Logger, m *Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		ctx, l := observe(ss.Context(), log, info.FullMethod, ss.SetHeader)
		err := handler(srv, &observedStream{ServerStream: ss, ctx: ctx})
		m.done(l, info.FullMethod, start, err)
		return err
	}
}

type observedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *observedStream) Context() context.Context { return s.ctx }
