// Package svc owns the built-in services that labd runs inside a lab node, so
// that a lab needs nothing installed in the node: a TCP echo, a UDP echo and a
// small HTTP server. labd re-executes itself inside the node's namespaces as
// `labd service <kind> [flags]` and hands the arguments after "service" to
// Main.
package svc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Kinds lists the built-in service kinds Main accepts.
var Kinds = []string{"tcp-echo", "udp-echo", "http"}

// Exit codes returned by Main.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// defaultPort is the well-known port each kind listens on when --listen is not
// given. An empty host part makes Go listen on both IPv4 and IPv6.
var defaultPort = map[string]string{
	"tcp-echo": "7",
	"udp-echo": "7",
	"http":     "80",
}

// Main runs one service until SIGTERM or SIGINT. args is [kind, flags...].
// It returns a process exit code: 0 after a clean shutdown, 1 when the service
// fails, 2 for a usage error. Errors go to stderr prefixed
// "nslab service <kind>: ".
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// run is Main with the context and output streams supplied by the caller, so
// tests can drive it without signals.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	kinds := strings.Join(Kinds, ", ")
	if len(args) == 0 {
		fmt.Fprintf(stderr, "nslab service: missing kind; kinds: %s\n", kinds)
		return exitUsage
	}
	kind := args[0]
	prefix := "nslab service " + kind + ": "
	port, ok := defaultPort[kind]
	if !ok {
		fmt.Fprintf(stderr, "%sunknown kind; kinds: %s\n", prefix, kinds)
		return exitUsage
	}

	fs := flag.NewFlagSet("labd service "+kind, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, with the prefix
	listen := fs.String("listen", ":"+port, "address to listen on; an empty host listens on IPv4 and IPv6")
	var body *string
	if kind == "http" {
		body = fs.String("body", "", `body served on GET / (default "nslab http on <hostname>\n")`)
	}
	usage := func() {
		fmt.Fprintf(stderr, "usage: labd service %s [flags]\n", kind)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return exitOK
		}
		fmt.Fprintf(stderr, "%s%v\n", prefix, err)
		usage()
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%sunexpected arguments: %q\n", prefix, fs.Args())
		usage()
		return exitUsage
	}

	var err error
	switch kind {
	case "tcp-echo", "http":
		var ln net.Listener
		ln, err = net.Listen("tcp", *listen)
		if err != nil {
			err = fmt.Errorf("listen tcp %q: %w", *listen, err)
			break
		}
		fmt.Fprintf(stdout, "%slistening on tcp %s\n", prefix, ln.Addr())
		if kind == "http" {
			err = serveHTTP(ctx, ln, *body, stdout)
		} else {
			err = TCPEcho(ctx, ln)
		}
	case "udp-echo":
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", *listen)
		if err != nil {
			err = fmt.Errorf("listen udp %q: %w", *listen, err)
			break
		}
		fmt.Fprintf(stdout, "%slistening on udp %s\n", prefix, pc.LocalAddr())
		err = UDPEcho(ctx, pc)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", prefix, err)
		return exitError
	}
	return exitOK
}
