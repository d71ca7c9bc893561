// Command labctl is the learners' and instructors' CLI for labd. It talks
// only gRPC (labs.v1) to the daemon, by default over its unix socket.
//
// Output that scripts read goes to stdout (ids, tables, JSON); progress and
// diagnostics go to stderr. Exit codes: 0 success, 1 a failed operation,
// 2 a usage error; exec exits with the remote command's code.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	labsv1 "nslab/proto/labs/v1"
)

const (
	defaultAddr    = "unix:///run/nslab/labd.sock"
	defaultTimeout = 2 * time.Minute // create builds a whole topology
	addrEnv        = "LABCTL_ADDR"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Stdin, config{})
	stop()
	os.Exit(code)
}

// config is what run takes from its surroundings. The zero value means the
// real ones; tests replace the dialer (bufconn), the environment and the clock.
type config struct {
	// dial connects to labd at the --addr value; nil means dialAddr.
	dial func(addr string) (*grpc.ClientConn, error)
	// getenv reads the environment; nil means os.Getenv.
	getenv func(string) string
	// now is the clock ages are computed against; nil means time.Now.
	now func() time.Time
}

// run executes one labctl invocation and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, stdin io.Reader, cfg config) int {
	if cfg.dial == nil {
		cfg.dial = dialAddr
	}
	if cfg.getenv == nil {
		cfg.getenv = os.Getenv
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	c := &cli{stdout: stdout, stderr: stderr, stdin: stdin, cfg: cfg}
	defer c.close()
	return c.exitCode(ctx, c.dispatch(ctx, args))
}

// cli is the state of one invocation.
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	cfg            config

	addr    string
	timeout time.Duration
	conn    *grpc.ClientConn
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("labctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := defaultAddr
	if v := c.cfg.getenv(addrEnv); v != "" {
		addr = v
	}
	fs.StringVar(&c.addr, "addr", addr, "")
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return nil
		}
		return usageErr{msg: err.Error()}
	}
	if c.timeout < 0 {
		return usageErr{msg: "--timeout must not be negative"}
	}
	if _, _, err := parseAddr(c.addr); err != nil {
		return usageErr{msg: "--addr: " + err.Error()}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageErr{msg: "no command given"}
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "labs":
		return c.cmdLabs(ctx, rest)
	case "start":
		return c.cmdStart(ctx, rest)
	case "ls":
		return c.cmdLs(ctx, rest)
	case "show":
		return c.cmdShow(ctx, rest)
	case "exec":
		return c.cmdExec(ctx, rest)
	case "stop":
		return c.cmdStop(ctx, rest)
	case "check":
		return c.cmdCheck(ctx, rest)
	case "grades":
		return c.cmdGrades(ctx, rest)
	case "solve":
		return c.cmdSolve(ctx, rest)
	case "capture":
		return c.cmdCapture(ctx, rest)
	case "xdp":
		return c.cmdXDP(ctx, rest)
	case "help":
		if len(rest) > 0 && rest[0] != "help" {
			// "labctl help exec" is "labctl exec -h".
			return c.dispatch(ctx, []string{rest[0], "-h"})
		}
		c.usage(c.stdout)
		return nil
	default:
		return usageErr{msg: fmt.Sprintf("unknown command %q", cmd)}
	}
}

const usageText = `Usage: labctl [--addr ADDR] [--timeout DURATION] COMMAND [ARGS]

Commands:
  labs [-o json|table] [-q]              list the labs
  labs show [-o json|table] [-q] LAB     show a lab's topology and exercises
  start LAB                              create a sandbox; prints only its id
  ls [-o json|table] [-q]                list the sandboxes
  show [-o json|table] [-q] ID           show a sandbox's nodes and links
  exec [FLAGS] ID NODE [--] CMD [ARG...] run a command as root of a node
  stop [-v] ID [ID...]                   delete sandboxes
  check [FLAGS] ID [EXERCISE]            grade exercises; exits 1 unless all pass
  grades [-o json|table] ID [EXERCISE]   list a sandbox's stored grades
  solve [-o json|table] ID EXERCISE      run an exercise's reference solution
  capture [FLAGS] ID                     write the sandbox's packets as pcapng
  xdp attach|detach ID NODE IFACE [OBJ] load a learner's XDP object on a node (labd loads BPF)
  help [COMMAND]                         show this help or a command's

Global flags (before the command):
  --addr ADDR          labd address: unix:///path, unix:path or host:port
                       (default $LABCTL_ADDR, else unix:///run/nslab/labd.sock)
  --timeout DURATION   deadline of each call except exec and capture
                       (default 2m; 0: none)

IDs may be bare (s-7f3a9c) or resource names (sandboxes/s-7f3a9c, labs/routed).
Run 'labctl COMMAND -h' for a command's flags.
`

func (c *cli) usage(w io.Writer) { fmt.Fprint(w, usageText) }

// Errors that decide the exit code.
type (
	// usageErr is a command line labctl cannot make sense of: exit 2.
	usageErr struct {
		cmd string // the subcommand whose help to point at; "" for labctl's
		msg string
	}
	// rpcErr is a failed call: "labctl: <op>: <status message>", exit 1.
	rpcErr struct {
		op  string
		err error
	}
	// exitCode ends labctl with code, having printed what there was to say.
	exitCode int
)

func (e usageErr) Error() string { return e.msg }
func (e *rpcErr) Error() string {
	return e.op + ": " + status.Convert(e.err).Message()
}
func (e *rpcErr) Unwrap() error  { return e.err }
func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func rpcError(op string, err error) error { return &rpcErr{op: op, err: err} }

// exitCode prints err the way users and scripts expect and maps it to an
// exit code.
func (c *cli) exitCode(ctx context.Context, err error) int {
	if err == nil {
		return 0
	}
	var (
		code  exitCode
		usage usageErr
	)
	switch {
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &usage):
		fmt.Fprintf(c.stderr, "labctl: %s\n", usage.msg)
		if usage.cmd != "" {
			fmt.Fprintf(c.stderr, "Run 'labctl %s -h' for usage.\n", usage.cmd)
		} else {
			fmt.Fprintln(c.stderr, "Run 'labctl help' for usage.")
		}
		return 2
	}
	c.report(ctx, err)
	if ctx.Err() != nil {
		return 130 // as a shell reports an interrupted command
	}
	return 1
}

// report prints a failed operation, with any field violations the server
// attached, and a hint when labd cannot be reached.
func (c *cli) report(ctx context.Context, err error) {
	var re *rpcErr
	if !errors.As(err, &re) {
		fmt.Fprintf(c.stderr, "labctl: %s\n", err)
		return
	}
	st := status.Convert(re.err)
	if st.Code() == codes.Canceled && ctx.Err() != nil {
		fmt.Fprintf(c.stderr, "labctl: %s: interrupted\n", re.op)
		return
	}
	fmt.Fprintf(c.stderr, "labctl: %s: %s\n", re.op, st.Message())
	switch st.Code() {
	case codes.InvalidArgument:
		for _, d := range st.Details() {
			br, ok := d.(*errdetails.BadRequest)
			if !ok {
				continue
			}
			for _, v := range br.GetFieldViolations() {
				fmt.Fprintf(c.stderr, "  %s: %s\n", v.GetField(), v.GetDescription())
			}
		}
	case codes.Unavailable:
		fmt.Fprintf(c.stderr, "labctl: is labd running and listening on %s? (--addr or $%s)\n", c.addr, addrEnv)
	}
}

// dialAddr connects to labd. Unix sockets are local and protected by file
// permissions, so they are plaintext; labd serves TCP only with TLS.
func dialAddr(addr string) (*grpc.ClientConn, error) {
	target, local, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if !local {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(creds), grpc.WithUserAgent("labctl"))
}

// parseAddr turns an --addr value into a gRPC target and says whether it is
// a unix socket. gRPC resolves unix:///abs and unix:rel itself; a bare
// absolute path is taken as a socket too.
func parseAddr(addr string) (target string, local bool, err error) {
	switch {
	case addr == "":
		return "", false, errors.New("empty address")
	case strings.HasPrefix(addr, "unix:"), strings.HasPrefix(addr, "unix-abstract:"):
		if addr == "unix:" || addr == "unix://" || addr == "unix:///" {
			return "", false, fmt.Errorf("address %q has no socket path", addr)
		}
		return addr, true, nil
	case strings.HasPrefix(addr, "/"):
		return "unix://" + addr, true, nil
	case strings.Contains(addr, "://"):
		return "", false, fmt.Errorf("address %q: want unix:///path, unix:path or host:port", addr)
	}
	return addr, false, nil
}

func (c *cli) connect() (*grpc.ClientConn, error) {
	if c.conn == nil {
		conn, err := c.cfg.dial(c.addr)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", c.addr, err)
		}
		c.conn = conn
	}
	return c.conn, nil
}

func (c *cli) close() {
	if c.conn != nil {
		c.conn.Close()
	}
}

func (c *cli) labClient() (labsv1.LabServiceClient, error) {
	conn, err := c.connect()
	if err != nil {
		return nil, err
	}
	return labsv1.NewLabServiceClient(conn), nil
}

func (c *cli) sandboxClient() (labsv1.SandboxServiceClient, error) {
	conn, err := c.connect()
	if err != nil {
		return nil, err
	}
	return labsv1.NewSandboxServiceClient(conn), nil
}

func (c *cli) gradingClient() (labsv1.GradingServiceClient, error) {
	conn, err := c.connect()
	if err != nil {
		return nil, err
	}
	return labsv1.NewGradingServiceClient(conn), nil
}

// unary bounds one unary call by --timeout.
func (c *cli) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// flags is a subcommand's flag set and what its -h prints.
type flags struct {
	*flag.FlagSet
	synopsis string
	help     io.Writer
}

func (c *cli) newFlags(name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are reported by exitCode, help by parse
	return &flags{FlagSet: fs, synopsis: synopsis, help: c.stdout}
}

// parse parses args, allowing flags before, between and after positional
// arguments (labctl show ID -o json). It stops after max positionals
// (max < 0: no limit) and returns what follows unparsed; "--" ends flag
// parsing. -h prints the command's usage to stdout and ends labctl with 0.
func (f *flags) parse(args []string, max int) (pos, rest []string, err error) {
	for max < 0 || len(pos) < max {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(f.help, "Usage: labctl %s\n", f.synopsis)
				f.SetOutput(f.help)
				f.PrintDefaults()
				return nil, nil, exitCode(0)
			}
			return nil, nil, usageErr{cmd: f.Name(), msg: fmt.Sprintf("%s: %s", f.Name(), err)}
		}
		left := f.Args()
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			if max >= 0 && len(pos)+len(left) > max {
				k := max - len(pos)
				return append(pos, left[:k]...), left[k:], nil
			}
			return append(pos, left...), nil, nil
		}
		if len(left) == 0 {
			break
		}
		pos, args = append(pos, left[0]), left[1:]
	}
	return pos, args, nil
}

// output holds the -o and -q flags of listing and show commands.
type output struct {
	format string
	quiet  bool
}

func (o *output) register(fs *flags, quietWhat string) {
	fs.StringVar(&o.format, "o", "table", "output format: table or json")
	fs.BoolVar(&o.quiet, "q", false, "print only "+quietWhat+", one per line")
}

func (o *output) check(cmd string) error {
	switch o.format {
	case "table", "json":
	default:
		return usageErr{cmd: cmd, msg: fmt.Sprintf("%s: unknown output format %q (want json or table)", cmd, o.format)}
	}
	if o.quiet && o.format == "json" {
		return usageErr{cmd: cmd, msg: fmt.Sprintf("%s: -q and -o json exclude each other", cmd)}
	}
	return nil
}

var jsonOptions = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}

// printJSON writes m as indented protojson. Unpopulated fields are emitted
// so that scripts see [] and false rather than a missing key.
func (c *cli) printJSON(m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = c.stdout.Write(append(b, '\n'))
	return err
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// orDash keeps empty cells visible in tables.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lastSegment returns the id of a resource name (labs/x → x).
func lastSegment(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// nextPage guards pagination against a server that repeats a token.
func nextPage(seen map[string]bool, token string) (string, error) {
	if token != "" && seen[token] {
		return "", fmt.Errorf("server repeated page token %q", token)
	}
	seen[token] = true
	return token, nil
}
