// Command labctl is the learners' and instructors' CLI for labd. It talks
// only gRPC (labs.v1) to the daemon, by default over its unix socket.
//
// Output that scripts read goes to stdout (ids, tables, JSON); progress and
// diagnostics go to stderr. Exit codes: 0 success, 1 a failed operation,
// 2 a usage error, 130 interrupted; exec and shell exit with the remote
// command's code.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	tokenEnv       = "NSLAB_TOKEN"
)

func main() {
	// SIGHUP too: a closed terminal must end a shell session (and restore
	// what is left of the terminal) rather than leave it to the kernel.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Stdin, config{})
	stop()
	os.Exit(code)
}

// config is what run takes from its surroundings. The zero value means the
// real ones; tests replace the dialer (bufconn), the environment, the clock
// and the terminal.
type config struct {
	// dial connects to labd at the --addr value; nil means the real
	// connection (cli.dialAddr) with --token and the TLS flags.
	dial func(addr string) (*grpc.ClientConn, error)
	// getenv reads the environment; nil means os.Getenv.
	getenv func(string) string
	// now is the clock ages are computed against; nil means time.Now.
	now func() time.Time
	// terminal says whether stdout or stderr is a terminal a person
	// watches (colour, progress, start's rich output); nil means a real
	// tty check. Raw mode and window sizes always use the real stdin.
	terminal func(io.Writer) bool
	// winch delivers window size changes during a shell session; nil
	// means SIGWINCH.
	winch <-chan os.Signal
}

// run executes one labctl invocation and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, stdin io.Reader, cfg config) int {
	if cfg.getenv == nil {
		cfg.getenv = os.Getenv
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.terminal == nil {
		cfg.terminal = func(w io.Writer) bool { return isTTY(w) }
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	c := &cli{stdout: stdout, stderr: stderr, stdin: stdin, cfg: cfg}
	defer c.close()
	root := c.rootCommand()
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	return c.exitCode(ctx, err)
}

// cli is the state of one invocation.
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	cfg            config

	addr    string
	timeout time.Duration
	conn    *grpc.ClientConn
	// Credentials: a bearer token (--token or $NSLAB_TOKEN), the CA that
	// signed labd's certificate (--ca-cert; else the system's), and a
	// client key pair for mTLS (--cert, --key).
	token, caCert, cert, key string
}

// group is a heading of the root help and the commands under it.
type group struct {
	title    string
	commands []*cobra.Command
}

// rootCommand builds the command tree of one invocation; nothing of it is
// package state, so that tests may run invocations in parallel.
func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "labctl",
		Short: "the nslab learner's CLI",
		Long: "labctl drives nslab: start a lab's sandbox, work inside its nodes and\n" +
			"check your work.",
		Example: "  ID=$(labctl start routed)   # create a sandbox, keep its id\n" +
			"  labctl topo $ID             # what is linked to what\n" +
			"  labctl shell $ID h1         # a shell on node h1\n" +
			"  labctl check $ID            # grade your work\n" +
			"  labctl stop $ID",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr{msg: "no command given"}
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
			}
			return usageErr{msg: msg}
		},
		RunE:                  func(*cobra.Command, []string) error { return nil },
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return c.checkGlobals()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if cmd == cmd.Root() {
			return usageErr{msg: err.Error()}
		}
		return usagef(cmd, "%s", err)
	})

	addr := defaultAddr
	if v := c.cfg.getenv(addrEnv); v != "" {
		addr = v
	}
	pf := root.PersistentFlags()
	pf.StringVar(&c.addr, "addr", addr, "where labd listens (`ADDR`: unix:///path, unix:path or host:port; $"+addrEnv+")")
	pf.DurationVar(&c.timeout, "timeout", defaultTimeout, "bound each call but streams (exec, shell, capture) to `DURATION`; 0: none")
	// The token's default is not shown: help must not print a secret.
	pf.StringVar(&c.token, "token", "", "bearer `TOKEN` to call labd with (needed over TCP; $"+tokenEnv+")")
	pf.StringVar(&c.caCert, "ca-cert", "", "PEM `FILE` of the CA that signed labd's certificate (TCP; default: the system's)")
	pf.StringVar(&c.cert, "cert", "", "PEM client certificate `FILE`, for a labd that requires client certificates (with --key)")
	pf.StringVar(&c.key, "key", "", "PEM private key `FILE` of --cert")

	groups := []group{
		{"Labs", c.labsCommands()},
		{"Sandboxes", []*cobra.Command{c.startCommand(), c.lsCommand(), c.showCommand(), c.topoCommand(), c.statusCommand(), c.extendCommand(), c.stopCommand(), c.watchCommand()}},
		{"Inside a sandbox", []*cobra.Command{c.shellCommand(), c.execCommand(), c.captureCommand(), c.xdpCommand()}},
		{"Grading", []*cobra.Command{c.checkCommand(), c.gradesCommand(), c.solveCommand()}},
		{"Workshops", []*cobra.Command{c.workshopCommand()}},
		{"Other", []*cobra.Command{c.completionCommand(root)}},
	}
	for _, g := range groups {
		for _, cmd := range g.commands {
			if cmd.Parent() == nil {
				root.AddCommand(cmd)
			}
		}
	}
	var prepare func(*cobra.Command)
	prepare = func(cmd *cobra.Command) {
		cmd.DisableFlagsInUseLine = true // each Use spells out its own
		cmd.SuggestionsMinimumDistance = 2
		for _, sub := range cmd.Commands() {
			prepare(sub)
		}
	}
	prepare(root)
	help := c.helpCommand(root)
	root.SetHelpCommand(help)
	groups[len(groups)-1].commands = append(groups[len(groups)-1].commands, help)

	root.SetHelpTemplate(helpTemplate)
	commandHelp := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if cmd == root {
			c.rootHelp(cmd.OutOrStdout(), root, groups)
			return
		}
		commandHelp(cmd, args)
	})
	return root
}

// listChildrenOnly in a command's Annotations lists its subcommands in
// the root help instead of itself.
const listChildrenOnly = "labctl/list-children-only"

// helpTemplate is every command's --help: usage first, as before cobra.
const helpTemplate = `Usage: {{.UseLine}}
{{with .Long}}
{{. | trimTrailingWhitespaces}}
{{end}}{{if .HasAvailableSubCommands}}
Commands:{{range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}}  {{.Short}}{{end}}{{end}}
{{end}}{{if .HasExample}}
Examples:
{{.Example}}
{{end}}{{if .HasAvailableLocalFlags}}
Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}{{if .HasAvailableInheritedFlags}}
Global flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}`

// rootHelp lists every command, subcommands included, with its synopsis.
func (c *cli) rootHelp(w io.Writer, root *cobra.Command, groups []group) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nUsage: labctl [--addr ADDR [--token TOKEN]] [--timeout DURATION] COMMAND [ARGS]\n", root.Long)
	// One column for every group, so the descriptions line up throughout.
	type row struct{ synopsis, short string }
	rows := make([][]row, len(groups))
	col := 0
	for i, g := range groups {
		for _, cmd := range g.commands {
			list := []*cobra.Command{cmd}
			if cmd.Annotations[listChildrenOnly] != "" {
				list = nil // xdp: attach and detach are what there is to run
			}
			for _, cmd := range append(list, cmd.Commands()...) {
				if cmd.IsAvailableCommand() || cmd.Name() == "help" {
					syn := strings.TrimPrefix(cmd.UseLine(), root.Name()+" ")
					rows[i] = append(rows[i], row{syn, cmd.Short})
					col = max(col, width(syn))
				}
			}
		}
	}
	for i, g := range groups {
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		for _, r := range rows[i] {
			fmt.Fprintf(&b, "  %s   %s\n", pad(r.synopsis, width(r.synopsis), col), r.short)
		}
	}
	fmt.Fprintf(&b, "\nGlobal flags:\n%s\n", strings.TrimRight(root.PersistentFlags().FlagUsages(), "\n"))
	fmt.Fprintf(&b, "\nExamples:\n%s\n", root.Example)
	b.WriteString(`
Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C);
exec and shell exit with the remote command's code.

IDs may be bare (s-7f3a9c) or resource names (sandboxes/s-7f3a9c, labs/routed).
Run 'labctl COMMAND --help' for a command's flags and examples.
`)
	io.WriteString(w, b.String())
}

// helpCommand is "labctl help [COMMAND...]"; unlike cobra's it fails on
// an unknown topic.
func (c *cli) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:                   "help [COMMAND]",
		DisableFlagsInUseLine: true,
		Short:                 "this help, or a command's",
		Example:               "  labctl help\n  labctl help exec\n  labctl help labs show",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || (len(args) > 0 && target == root) || len(rest) > 0 {
				return usageErr{cmd: "help", msg: fmt.Sprintf("help: unknown command %q", strings.Join(args, " "))}
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			for _, sub := range root.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// checkGlobals validates --addr and --timeout: a bad value is a usage
// error, found before anything is sent.
func (c *cli) checkGlobals() error {
	if c.timeout < 0 {
		return usageErr{msg: "--timeout must not be negative"}
	}
	_, local, err := parseAddr(c.addr)
	if err != nil {
		return usageErr{msg: "--addr: " + err.Error()}
	}
	if (c.cert == "") != (c.key == "") {
		return usageErr{msg: "--cert and --key go together"}
	}
	if local && (c.caCert != "" || c.cert != "") {
		return usageErr{msg: "--ca-cert, --cert and --key are for TLS, with a host:port --addr; the unix socket has none"}
	}
	if c.token == "" {
		c.token = c.cfg.getenv(tokenEnv)
	}
	if strings.ContainsAny(c.token, " \t\r\n") {
		return usageErr{msg: "--token: a token has no spaces or line breaks"}
	}
	return nil
}

// Errors that decide the exit code.
type (
	// usageErr is a command line labctl cannot make sense of: exit 2.
	usageErr struct {
		cmd string // the subcommand whose help to point at; "" for labctl's
		msg string
	}
	// rpcErr is a failed call: "labctl: <op>: <status message>", exit 1.
	rpcErr struct {
		op    string
		err   error
		about subject
	}
	// exitCode ends labctl with code, having printed what there was to say.
	exitCode int
)

// subject is what a call named, so that NotFound can say which of them is
// missing and where to look for the right name.
type subject struct {
	sandbox, node, lab, exercise string
}

func (e usageErr) Error() string { return e.msg }
func (e *rpcErr) Error() string {
	return e.op + ": " + status.Convert(e.err).Message()
}
func (e *rpcErr) Unwrap() error  { return e.err }
func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func rpcError(op string, err error) *rpcErr { return &rpcErr{op: op, err: err} }

// on records what the failed call named.
func (e *rpcErr) on(s subject) *rpcErr {
	e.about = s
	return e
}

// usagef is a usage error of cmd: "labctl <cmd>: <msg>" and a pointer to
// its help.
func usagef(cmd *cobra.Command, format string, args ...any) error {
	name := commandName(cmd)
	return usageErr{cmd: name, msg: name + ": " + fmt.Sprintf(format, args...)}
}

// commandName is cmd's path without "labctl ": "labs show".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// Positional argument checks that fail as usage errors.
func exactArgs(n int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(cmd, "want %s", want)
		}
		return nil
	}
}

func rangeArgs(lo, hi int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			return usagef(cmd, "want %s", want)
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		msg := fmt.Sprintf("unexpected argument %q", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		return usagef(cmd, "%s", msg)
	}
	return nil
}

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
			fmt.Fprintf(c.stderr, "Run 'labctl %s --help' for usage.\n", usage.cmd)
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
// attached, and a hint when labd cannot be reached or a name is wrong.
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
	if st.Code() == codes.NotFound {
		if hint := notFound(re.about, st.Message()); hint != "" {
			if re.about.exercise != "" && strings.HasPrefix(hint, st.Message()) {
				hint = re.op + ": " + hint
			}
			fmt.Fprintf(c.stderr, "labctl: %s\n", hint)
			return
		}
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
	case codes.Unauthenticated:
		if c.token == "" {
			fmt.Fprintf(c.stderr, "labctl: labd at %s wants a token: --token or $%s\n", c.addr, tokenEnv)
		}
	}
}

// notFound says which name of s labd did not find, and which command
// lists the right ones; "" when the message does not tell.
func notFound(s subject, msg string) string {
	id := lastSegment(s.sandbox)
	mentions := func(word string) bool { return strings.Contains(msg, word) }
	switch {
	case s.node != "" && mentions("node"):
		return fmt.Sprintf("node %s not found in sandbox %s; `labctl show %s` lists its nodes", s.node, id, id)
	case s.exercise != "" && mentions("exercise"):
		// labd's message names the exercises there are; keep it.
		return fmt.Sprintf("%s; `labctl status %s` lists the exercises", msg, id)
	case s.lab != "" && mentions("lab"):
		return fmt.Sprintf("lab %s not found; `labctl labs` lists them", lastSegment(s.lab))
	case s.sandbox != "" && mentions("sandbox") && !mentions("node") && !mentions("exercise"):
		return fmt.Sprintf("sandbox %s not found; `labctl ls` lists yours", id)
	}
	return ""
}

// dialAddr connects to labd. Unix sockets are local and protected by file
// permissions, so they are plaintext (labd knows the caller by its uid);
// labd serves TCP only with TLS, and wants a token on every call there.
func (c *cli) dialAddr(addr string) (*grpc.ClientConn, error) {
	target, local, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithUserAgent("labctl")}
	if local {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.caCert != "" {
			pem, err := os.ReadFile(c.caCert)
			if err != nil {
				return nil, fmt.Errorf("--ca-cert: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", c.caCert)
			}
		}
		if c.cert != "" {
			kp, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				return nil, fmt.Errorf("--cert %s / --key %s: %w", c.cert, c.key, err)
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if c.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken{secret: c.token, tls: !local}))
	}
	return grpc.NewClient(target, opts...)
}

// bearerToken sends "authorization: Bearer <secret>" with every call. It
// demands TLS except on the unix socket, which never leaves the host.
type bearerToken struct {
	secret string
	tls    bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.secret}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.tls }

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
		dial := c.cfg.dial
		if dial == nil {
			dial = c.dialAddr
		}
		conn, err := dial(c.addr)
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

// getSandbox is GetSandbox bounded by --timeout.
func (c *cli) getSandbox(ctx context.Context, id string) (*labsv1.Sandbox, error) {
	client, err := c.sandboxClient()
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.GetSandbox(cctx, &labsv1.GetSandboxRequest{Name: id})
	if err != nil {
		return nil, rpcError("get sandbox "+id, err).on(subject{sandbox: id})
	}
	return resp.GetSandbox(), nil
}

// getLab is GetLab bounded by --timeout.
func (c *cli) getLab(ctx context.Context, name string) (*labsv1.Lab, error) {
	client, err := c.labClient()
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.GetLab(cctx, &labsv1.GetLabRequest{Name: name})
	if err != nil {
		return nil, rpcError("get lab "+name, err).on(subject{lab: name})
	}
	return resp.GetLab(), nil
}

// parseInterspersed parses args against fs, allowing flags before, between
// and after positional arguments (labctl exec ID -w /tmp NODE ...). It
// stops after max positionals (max < 0: no limit) and returns what follows
// unparsed, so that a command's own flags are not taken for labctl's; "--"
// ends flag parsing.
func parseInterspersed(fs *pflag.FlagSet, args []string, max int) (pos, rest []string, err error) {
	fs.SetInterspersed(false)
	for max < 0 || len(pos) < max {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		left := fs.Args()
		if fs.ArgsLenAtDash() >= 0 {
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

func (o *output) register(fs *pflag.FlagSet, quietWhat string) {
	o.registerFormat(fs, "output format: table or json")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print only "+quietWhat+", one per line")
}

func (o *output) registerFormat(fs *pflag.FlagSet, usage string) {
	fs.StringVarP(&o.format, "output", "o", "table", usage)
}

func (o *output) check(cmd *cobra.Command) error {
	switch o.format {
	case "table", "json":
	default:
		return usagef(cmd, "unknown output format %q (want json or table)", o.format)
	}
	if o.quiet && o.format == "json" {
		return usagef(cmd, "-q and -o json exclude each other")
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
