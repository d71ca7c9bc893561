// Command labd is the nslab server: it builds network-namespace sandboxes
// from lab definitions and serves the labs.v1 gRPC API, by default on the
// unix socket /run/nslab/labd.sock (mode 0660).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
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
	cgroupParent string
	uidStart     uint
	uidSlots     int
	logLevel     string
	// Sandbox lifetimes; zero means api's Default of each.
	ttl, maxTTL, idleTimeout time.Duration
	// reapEvery is how often expired and idle sandboxes are looked for;
	// zero means api.DefaultReapInterval. Tests shorten it.
	reapEvery time.Duration
}

func main() {
	sandbox.RunChild()
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
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "nslab", "cgroup under which sandbox cgroups are made")
	fs.UintVar(&o.uidStart, "uid-start", 1<<30, "first host uid leased to nodes (each node maps 65536)")
	fs.IntVar(&o.uidSlots, "uid-slots", 4096, "number of 65536-uid ranges available to nodes")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.ttl, "ttl", api.DefaultTTL, "a new sandbox's lifetime, unless its request asks for another")
	fs.DurationVar(&o.maxTTL, "max-ttl", api.DefaultMaxTTL, "the longest lifetime a request may ask for, and the furthest from now an extension may push a sandbox's expiry")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", api.DefaultIdleTimeout, "delete a sandbox when nothing was done in it (exec, shell, grade, solve, capture, xdp) for this long")
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
	return o, nil
}

// run serves until ctx is done. ready, if not nil, is called once the
// socket accepts connections.
func run(ctx context.Context, o options, ready func()) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		return errors.New("labd must run as root: it creates namespaces, links and cgroups")
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
	mgr, err := sandbox.NewManager(sandbox.Config{StateDir: o.stateDir, CgroupParent: o.cgroupParent, Logger: log})
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
	sandboxes := api.NewSandboxServer(api.Config{
		Store: st, Catalog: catalog, Manager: mgr, Logger: log,
		UIDStart: uint32(o.uidStart), UIDSlots: o.uidSlots,
		TTL: o.ttl, MaxTTL: o.maxTTL, IdleTimeout: o.idleTimeout,
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
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(sandboxes.UnaryActivity),
		grpc.ChainStreamInterceptor(sandboxes.StreamActivity),
	)
	labsv1.RegisterLabServiceServer(srv, api.NewLabServer(catalog))
	labsv1.RegisterSandboxServiceServer(srv, sandboxes)
	labsv1.RegisterGradingServiceServer(srv, api.NewGradingServer(sandboxes))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, svc := range []string{labsv1.LabService_ServiceDesc.ServiceName, labsv1.SandboxService_ServiceDesc.ServiceName, labsv1.GradingService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(srv)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("labd serving", "socket", o.socket, "db", o.db, "labs", len(catalog.List()), "instance", st.InstanceID())
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			srv.Stop()
		}
		return nil
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
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
