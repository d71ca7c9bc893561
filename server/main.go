// Command labd is the nslab server: it builds network-namespace sandboxes
// from lab definitions and serves the labs.v1 gRPC API, by default on the
// unix socket /run/nslab/labd.sock (mode 0660), and with --listen on TCP
// with TLS and bearer tokens. `labd token create|list|revoke` manages the
// tokens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
	"nslab/server/api"
	"nslab/server/store"
)

type options struct {
	socket       string
	db           string
	labsDirs     []string
	stateDir     string
	nodeBinary   string
	cgroupParent string
	uidStart     uint
	uidSlots     int
	logLevel     string
	// Sandbox lifetimes; zero means api's Default of each.
	ttl, maxTTL, idleTimeout time.Duration
	// reapEvery is how often expired and idle sandboxes are looked for;
	// zero means api.DefaultReapInterval. Tests shorten it.
	reapEvery time.Duration
	// The TCP listener: address, TLS key pair, and the CA client
	// certificates must be signed by ("" = none asked for).
	listen, tlsCert, tlsKey, tlsClientCA string
	// maxPerOwner is --max-sandboxes-per-owner (0 = unlimited).
	maxPerOwner int
	// listening, if not nil, is told the TCP listener's address once it
	// is bound (tests listen on port 0).
	listening func(net.Addr)
	// logOut is where logs go; nil means stderr (tests read them).
	logOut io.Writer
	// metrics is the address of the Prometheus /metrics listener, "" none.
	metrics string
	// Host-wide limits; 0 means none.
	maxSandboxes, maxNodes int
	// grace is how long a shutdown waits for calls in progress (a
	// create's build, an exec) before it cuts them short.
	grace time.Duration
}

func main() {
	sandbox.RunChild()
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(tokenCommand(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "labd: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, nil); err != nil {
		fmt.Fprintf(os.Stderr, "labd: %v\n", err)
		os.Exit(1)
	}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("labd", flag.ContinueOnError)
	fs.StringVar(&o.socket, "socket", "/run/nslab/labd.sock", "unix socket to serve the API on (mode 0660)")
	fs.StringVar(&o.db, "db", "/var/lib/nslab/labd.db", "SQLite database file")
	fs.Var((*stringList)(&o.labsDirs), "labs", "directory of lab definitions added to the embedded catalog (repeatable)")
	fs.StringVar(&o.stateDir, "state-dir", "/run/nslab", "directory for sandbox state (control sockets, hosts files)")
	fs.StringVar(&o.nodeBinary, "node-binary", "", "binary for hubs, node inits and services, built from the same tree (default: nslab-node beside labd if there, else labd itself)")
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "nslab", "cgroup under which sandbox cgroups are made")
	fs.UintVar(&o.uidStart, "uid-start", 1<<30, "first host uid leased to nodes (each node maps 65536)")
	fs.IntVar(&o.uidSlots, "uid-slots", 4096, "number of 65536-uid ranges available to nodes")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.ttl, "ttl", api.DefaultTTL, "a new sandbox's lifetime, unless its request asks for another")
	fs.DurationVar(&o.maxTTL, "max-ttl", api.DefaultMaxTTL, "the longest lifetime a request may ask for, and the furthest from now an extension may push a sandbox's expiry")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", api.DefaultIdleTimeout, "delete a sandbox when nothing was done in it (exec, shell, grade, solve, capture, xdp) for this long")
	fs.StringVar(&o.listen, "listen", "", "also serve on this TCP address (host:port), with TLS and bearer tokens; needs --tls-cert and --tls-key")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) of the --listen address")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "PEM CA certificates: with it, TCP clients must present a certificate signed by one of them (mTLS)")
	fs.IntVar(&o.maxPerOwner, "max-sandboxes-per-owner", 3, "the most sandboxes one learner or instructor may hold at once; 0 = no limit (admins have none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: labd [flags]\n       labd token create|list|revoke ... (labd token -h)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics over plain HTTP at `ADDR`/metrics (e.g. 127.0.0.1:9464); off when empty")
	fs.IntVar(&o.maxSandboxes, "max-sandboxes", 500, "most sandboxes (not FAILED) the host holds at once; 0: no limit")
	fs.IntVar(&o.maxNodes, "max-nodes", 2000, "most nodes the host's sandboxes hold at once; 0: no limit")
	fs.DurationVar(&o.grace, "shutdown-grace", 10*time.Second, "on SIGTERM, how long calls in progress may finish; then builds are cut short (their sandboxes FAILED) and streams ended")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.uidSlots < 1 {
		return o, fmt.Errorf("--uid-slots %d: must be at least 1", o.uidSlots)
	}
	if o.uidStart == 0 || uint64(o.uidStart)+uint64(o.uidSlots)*sandbox.UIDRange > 1<<32 {
		return o, fmt.Errorf("--uid-start %d with --uid-slots %d: ranges must lie in 1..2^32-1", o.uidStart, o.uidSlots)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"--ttl", o.ttl}, {"--max-ttl", o.maxTTL}, {"--idle-timeout", o.idleTimeout}} {
		if f.d <= 0 {
			return o, fmt.Errorf("%s %s: must be positive", f.name, f.d)
		}
	}
	if o.ttl > o.maxTTL {
		return o, fmt.Errorf("--ttl %s is longer than --max-ttl %s", o.ttl, o.maxTTL)
	}
	if o.maxPerOwner < 0 {
		return o, fmt.Errorf("--max-sandboxes-per-owner %d: must be 0 (no limit) or more", o.maxPerOwner)
	}
	if err := checkTLSFlags(o); err != nil {
		return o, err
	}
	if o.grace < 0 {
		return o, fmt.Errorf("--shutdown-grace %s: must not be negative", o.grace)
	}
	if o.maxSandboxes < 0 || o.maxNodes < 0 {
		return o, fmt.Errorf("--max-sandboxes %d, --max-nodes %d: must not be negative (0 is no limit)", o.maxSandboxes, o.maxNodes)
	}
	return o, nil
}

// run serves until ctx is done. ready, if not nil, is called once the
// socket accepts connections.
func run(ctx context.Context, o options, ready func()) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logOut := o.logOut
	if logOut == nil {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		return errors.New("labd must run as root: it creates namespaces, links and cgroups")
	}
	// Certificates are read before anything is touched: a bad file
	// must not leave a half-started server.
	tlsConfig, err := loadTLS(o)
	if err != nil {
		return err
	}
	catalog, err := labs.NewCatalog(o.labsDirs...)
	if err != nil {
		return fmt.Errorf("load labs: %w", err)
	}
	st, err := store.Open(ctx, o.db)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	nodeBin := nodeBinary(o.nodeBinary, log)
	mgr, err := sandbox.NewManager(sandbox.Config{StateDir: o.stateDir, CgroupParent: o.cgroupParent, NodeBinary: nodeBin, Logger: log})
	if err != nil {
		return err
	}
	defer mgr.Close() // its node spawner; sandboxes keep running
	// One labd per database and state dir: a second one would reconcile
	// away the first one's sandboxes while they are being built.
	for _, p := range []string{o.db, o.stateDir} {
		lock, err := lockExclusive(p)
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	var metrics *api.Metrics
	if o.metrics != "" {
		metrics = api.NewMetrics()
		stopMetrics, err := serveMetrics(o.metrics, metrics, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	sandboxes := api.NewSandboxServer(api.Config{
		Store: st, Catalog: catalog, Manager: mgr, Logger: log,
		UIDStart: uint32(o.uidStart), UIDSlots: o.uidSlots,
		TTL: o.ttl, MaxTTL: o.maxTTL, IdleTimeout: o.idleTimeout,
		MaxSandboxesPerOwner: o.maxPerOwner,
		Capacity:             store.Capacity{Sandboxes: o.maxSandboxes, Nodes: o.maxNodes}, Metrics: metrics,
	})
	defer sandboxes.Close()
	start := time.Now()
	if err := sandboxes.Reconcile(ctx); err != nil {
		return err
	}
	log.Info("reconciled", "took", time.Since(start))

	// The reaper stops before the sandbox handles and the store close
	// (defers run in reverse), finishing a deletion it has begun.
	reapCtx, stopReaper := context.WithCancel(ctx)
	reaperDone := make(chan struct{})
	go func() {
		defer close(reaperDone)
		sandboxes.RunReaper(reapCtx, o.reapEvery)
	}()
	defer func() {
		stopReaper()
		<-reaperDone
	}()

	ln, err := listenUnix(o.socket)
	if err != nil {
		return err
	}
	listeners := []net.Listener{ln}
	tcpAddr := ""
	if o.listen != "" {
		tcp, err := net.Listen("tcp", o.listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--listen %s: %w", o.listen, err)
		}
		listeners = append(listeners, tcp)
		tcpAddr = tcp.Addr().String()
		if o.listening != nil {
			o.listening(tcp.Addr())
		}
	}
	// Every call is authenticated first, by its listener's credentials
	// (SO_PEERCRED on the socket, TLS and a bearer token over TCP); the
	// handlers authorize what the caller asks for.
	auth := api.NewAuthenticator(st, log)
	auth.OnFailure = metrics.AuthFailure
	srv := grpc.NewServer(
		grpc.Creds(api.ServerCredentials(tlsConfig)),
		grpc.ChainUnaryInterceptor(api.UnaryObserve(log, metrics), auth.Unary, sandboxes.UnaryActivity),
		grpc.ChainStreamInterceptor(api.StreamObserve(log, metrics), auth.Stream, sandboxes.StreamActivity),
	)
	labsv1.RegisterLabServiceServer(srv, api.NewLabServer(catalog))
	labsv1.RegisterSandboxServiceServer(srv, sandboxes)
	grading := api.NewGradingServer(sandboxes)
	labsv1.RegisterGradingServiceServer(srv, grading)
	labsv1.RegisterTokenServiceServer(srv, api.NewTokenServer(st, log))
	workshops := api.NewWorkshopServer(sandboxes, grading, api.WorkshopConfig{})
	labsv1.RegisterWorkshopServiceServer(srv, workshops)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, svc := range []string{labsv1.LabService_ServiceDesc.ServiceName, labsv1.SandboxService_ServiceDesc.ServiceName, labsv1.GradingService_ServiceDesc.ServiceName, labsv1.TokenService_ServiceDesc.ServiceName, labsv1.WorkshopService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(srv)

	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
	}
	log.Info("labd serving", "socket", o.socket, "listen", tcpAddr, "mtls", o.tlsClientCA != "",
		"max_sandboxes_per_owner", o.maxPerOwner, "db", o.db, "labs", len(catalog.List()), "instance", st.InstanceID())
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		hs.Shutdown()
		sandboxes.Drain() // watch streams end now; creates get the grace below
		workshops.Close() // ends WatchProgress streams, which would hold up GracefulStop
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(o.grace):
			srv.Stop()
		}
		return nil
	case err := <-errc:
		srv.Stop()
		return fmt.Errorf("serve: %w", err)
	}
}

// serveMetrics serves m at http://addr/metrics until the returned func
// is called.
func serveMetrics(addr string, m *api.Metrics, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	log.Info("metrics serving", "addr", ln.Addr().String())
	return func() { hs.Close() }, nil
}

// listenUnix listens on path with mode 0660, replacing a stale socket but
// refusing to take over one that a running labd still answers on.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s: another labd is serving on it", path)
	}
	os.Remove(path)
	// Until the chmod below the socket has the umask's mode; connecting
	// needs write permission, so under the usual 022 only root can.
	// (Changing the umask instead would race with every other goroutine.)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// lockExclusive takes a non-blocking flock on path, held until the file
// is closed (or the process dies).
func lockExclusive(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another labd", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// nodeBinary chooses what sandboxes' processes run from: the
// --node-binary given (checked by NewManager, which refuses a bad one),
// else nslab-node beside labd when it passes sandbox.CheckNodeBinary,
// else "" (labd's own binary).
func nodeBinary(flagValue string, log *slog.Logger) string {
	if flagValue != "" {
		return flagValue
	}
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(self), "nslab-node")
	if _, err := os.Stat(p); err != nil {
		log.Info("sandbox processes run from labd's own binary (no nslab-node beside it)", "looked", p)
		return ""
	}
	if err := sandbox.CheckNodeBinary(p); err != nil {
		log.Warn("not using nslab-node beside labd; sandbox processes run from labd's own binary", "err", err)
		return ""
	}
	log.Info("sandbox processes run from nslab-node", "path", p)
	return p
}
