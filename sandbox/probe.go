package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"nslab/labs"
)

// Behaviour probes. Each one runs from a node's point of view: its socket
// is created on a thread switched into the node's network namespace (a
// socket belongs to the namespace it was born in for its whole life, so
// only creation needs the switch), then used from any goroutine through
// the runtime's poller. No tool is executed in the node, so a learner
// cannot fake a result by replacing ping or curl, and every probe carries
// a random nonce that a canned answer cannot contain.

// DefaultProbeTimeout bounds a probe given a zero timeout.
const DefaultProbeTimeout = time.Second

const (
	// pmtuStepTimeout is how long PMTUProbe waits for each size once the
	// path has answered at all: the neighbours are resolved by then, so a
	// reply across a few veths takes well under a millisecond.
	pmtuStepTimeout = 25 * time.Millisecond
	pmtuMax         = 9000
	httpBodyLimit   = 4 << 10
	echoReadLimit   = 4 << 10
)

// Ping sends one ICMP (or ICMPv6) echo request from node from to to (an
// address or a node name) with a random identifier and a random payload
// nonce, and waits for a reply carrying that nonce. Outcomes: reply,
// no-reply, unreachable (an ICMP error quoting the request came back;
// Detail says what and from whom).
func (s *Sandbox) Ping(ctx context.Context, from, to string, timeout time.Duration) (labs.ProbeResult, error) {
	res := labs.ProbeResult{Kind: "ping", From: from, To: to}
	pr, err := s.startProbe(ctx, from, to, timeout)
	if err != nil {
		return res, err
	}
	defer pr.cancel()
	res.To = pr.dst.String()
	ic, err := openICMP(pr.ns, pr.dst.Is6())
	if err != nil {
		return res, fmt.Errorf("ping from %s: %w", from, err)
	}
	defer ic.close()
	pr.mark("icmp", ic.id)
	pr.watchEcho(ic.id, ic.nonce[:])
	stop := ic.wakeOn(pr.ctx)
	defer stop()
	size := 84 // ping's default: 56 bytes of data
	if pr.dst.Is6() {
		size = 104
	}
	deadline, _ := pr.ctx.Deadline()
	r, err := ic.echo(pr.ctx, pr.dst, size, deadline)
	if err := pr.parentErr("ping", from, to); err != nil {
		return res, err
	}
	if err != nil {
		return res, fmt.Errorf("ping from %s to %s: %w", from, pr.dst, err)
	}
	res.Outcome, res.Detail, res.RTT = r.outcome, r.detail, r.rtt
	if pr.mustCross(r) {
		why, err := pr.confirm(func(frames []watchedFrame) string {
			return pr.crossedEcho(frames, ic.id, r.seq, ic.nonce[:], r.outcome == labs.OutcomeReply)
		})
		if err != nil {
			return res, pr.failed("ping", from, to, err)
		}
		if why != "" {
			notCrossed(&res, why)
		} else {
			res.Detail = pr.noteLocal(res.Detail)
		}
	}
	return res, nil
}

// TCPProbe connects from node from to to:port. Outcomes: connected,
// refused (a RST answered the SYN), timeout, unreachable (no route, or an
// ICMP error; Detail says from whom). With echo it then sends a line with
// a random nonce and requires it back within the timeout; if it is not,
// the outcome is no-reply and Detail says what came back.
func (s *Sandbox) TCPProbe(ctx context.Context, from, to string, port int, echo bool, timeout time.Duration) (labs.ProbeResult, error) {
	res := labs.ProbeResult{Kind: "tcp", From: from, To: to, Port: port}
	if port <= 0 || port > 65535 {
		return res, fmt.Errorf("tcp probe to %s: port %d out of range", to, port)
	}
	pr, err := s.startProbe(ctx, from, to, timeout)
	if err != nil {
		return res, err
	}
	defer pr.cancel()
	res.To = pr.dst.String()
	start := time.Now()
	var lport uint16
	conn, err := probeDialTCP(pr.ctx, pr.ns, netip.AddrPortFrom(pr.dst, uint16(port)), func(proto string, p uint16) {
		lport = p
		pr.mark(proto, p)
		pr.watchTCP(p)
	})
	// confirm requires the answer to have crossed the hub; why says why
	// it does not count when it did not.
	confirm := func(ans tcpAnswer, read []byte) (why string, err error) {
		why, err = pr.confirm(func(frames []watchedFrame) string {
			return pr.crossedTCP(frames, lport, ans, read, len(read))
		})
		if err != nil {
			return "", pr.failed("tcp", from, to, err)
		}
		if why != "" {
			notCrossed(&res, why)
		} else {
			res.Detail = pr.noteLocal(res.Detail)
		}
		return why, nil
	}
	if perr := pr.parentErr("tcp", from, to); perr != nil {
		if conn != nil {
			conn.Close()
		}
		return res, perr
	}
	if err != nil {
		o, d, ok := classifyProbeErr(err, "connection refused: the SYN was answered with a RST")
		if !ok {
			return res, fmt.Errorf("tcp probe from %s to %s:%d: %w", from, pr.dst, port, err)
		}
		res.Outcome, res.Detail = o, d
		if o != labs.OutcomeTimeout {
			res.RTT = time.Since(start)
		}
		if ans, ok := pr.tcpAnswerOf(err, o); ok {
			if _, err := confirm(ans, nil); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	defer conn.Close()
	res.RTT = time.Since(start)
	res.Outcome = labs.OutcomeConnected
	res.Detail = "connected from " + conn.LocalAddr().String()
	if !echo {
		_, err := confirm(tcpConnected, nil)
		return res, err
	}

	nonce := probeNonce()
	stop := probeDeadlineConn(pr.ctx, conn)
	defer stop()
	if _, err := io.WriteString(conn, nonce+"\n"); err != nil {
		res.Outcome = labs.OutcomeNoReply
		res.Detail = "connected, but sending the nonce failed: " + probeErrText(err)
		return res, nil
	}
	var got []byte
	buf := make([]byte, 512)
	for len(got) < echoReadLimit && !bytes.Contains(got, []byte(nonce)) {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if bytes.Contains(got, []byte(nonce)) {
				break
			}
			if err := pr.parentErr("tcp", from, to); err != nil {
				return res, err
			}
			res.Outcome = labs.OutcomeNoReply
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				res.Detail = fmt.Sprintf("connected, but nonce %s was not echoed within the timeout; got %s", nonce, probeQuote(got))
			case errors.Is(err, io.EOF):
				res.Detail = fmt.Sprintf("connected, but the peer closed the connection without echoing nonce %s; got %s", nonce, probeQuote(got))
			default:
				res.Detail = fmt.Sprintf("connected, but reading the echo failed (%s); got %s", probeErrText(err), probeQuote(got))
			}
			return res, nil
		}
	}
	if !bytes.Contains(got, []byte(nonce)) {
		res.Outcome = labs.OutcomeNoReply
		res.Detail = fmt.Sprintf("connected, but nonce %s was not echoed; got %s", nonce, probeQuote(got))
		return res, nil
	}
	res.RTT = time.Since(start)
	res.Detail = "connected and echoed nonce " + nonce
	_, err = confirm(tcpConnected, got)
	return res, err
}

// UDPProbe sends a datagram with a random nonce from node from to
// to:port on a connected socket. Outcomes: reply (a datagram containing
// the nonce came back), refused (ICMP port unreachable), unreachable
// (another ICMP error, or no route), no-reply.
func (s *Sandbox) UDPProbe(ctx context.Context, from, to string, port int, timeout time.Duration) (labs.ProbeResult, error) {
	res := labs.ProbeResult{Kind: "udp", From: from, To: to, Port: port}
	if port <= 0 || port > 65535 {
		return res, fmt.Errorf("udp probe to %s: port %d out of range", to, port)
	}
	pr, err := s.startProbe(ctx, from, to, timeout)
	if err != nil {
		return res, err
	}
	defer pr.cancel()
	res.To = pr.dst.String()
	dst := netip.AddrPortFrom(pr.dst, uint16(port))
	nonce := probeNonce()
	var lport uint16
	sk, err := probeOpenConnected(pr.ns, dst, unix.SOCK_DGRAM, unix.IPPROTO_UDP, func(proto string, p uint16) {
		lport = p
		pr.mark(proto, p)
		pr.watchUDP(p, []byte(nonce))
	})
	if err != nil {
		return res, fmt.Errorf("udp probe from %s: %w", from, err)
	}
	// confirm requires the answer (a reply, or an ICMP error when reply
	// is false) to have crossed the hub.
	confirm := func(reply bool) (labs.ProbeResult, error) {
		why, err := pr.confirm(func(frames []watchedFrame) string {
			return pr.crossedUDP(frames, lport, uint16(port), []byte(nonce), reply)
		})
		if err != nil {
			return res, pr.failed("udp", from, to, err)
		}
		if why != "" {
			notCrossed(&res, why)
		} else {
			res.Detail = pr.noteLocal(res.Detail)
		}
		return res, nil
	}
	defer sk.f.Close()
	stop := probeWakeFile(pr.ctx, sk.f)
	defer stop()

	outcome := func(err error) (labs.ProbeResult, error) {
		if perr := pr.parentErr("udp", from, to); perr != nil {
			return res, perr
		}
		werr := sk.withOffender(err)
		o, d, ok := classifyProbeErr(werr, "ICMP port unreachable: nothing listens on that port")
		if !ok {
			return res, fmt.Errorf("udp probe from %s to %s: %w", from, dst, err)
		}
		res.Outcome, res.Detail = o, d
		if o == labs.OutcomeTimeout {
			res.Outcome, res.Detail = labs.OutcomeNoReply, "no datagram came back within the timeout"
		}
		if pr.udpAnswered(werr) {
			return confirm(false)
		}
		return res, nil
	}
	if err := sk.connect(pr.ctx, dst); err != nil {
		return outcome(err)
	}
	start := time.Now()
	if err := sk.send([]byte(nonce + "\n")); err != nil {
		return outcome(err)
	}
	buf := make([]byte, 2048)
	var others int
	for {
		n, err := sk.recv(buf)
		if err != nil {
			r, rerr := outcome(err)
			if rerr == nil && r.Outcome == labs.OutcomeNoReply && others > 0 {
				res.Detail = fmt.Sprintf("%d datagram(s) came back, none containing nonce %s", others, nonce)
			}
			return res, rerr
		}
		if bytes.Contains(buf[:n], []byte(nonce)) {
			res.Outcome, res.RTT = labs.OutcomeReply, time.Since(start)
			res.Detail = fmt.Sprintf("echoed nonce %s from %s", nonce, dst)
			return confirm(true)
		}
		others++
	}
}

// HTTPProbe sends GET url from node from, with a random nonce added as
// the query parameter nslab so no cache or canned file can answer. The
// host may be a node name. Outcomes: connected (a response came; Status
// and the first 4 KiB of Body are set), refused, timeout, unreachable,
// and no-reply when the connection was made but no HTTP response came.
// Redirects are reported, not followed.
func (s *Sandbox) HTTPProbe(ctx context.Context, from, rawURL string, timeout time.Duration) (labs.ProbeResult, error) {
	res := labs.ProbeResult{Kind: "http", From: from, To: rawURL}
	u, err := url.Parse(rawURL)
	if err != nil {
		return res, fmt.Errorf("http probe: url %q: %w", rawURL, err)
	}
	port := 80
	switch u.Scheme {
	case "http":
	case "https":
		port = 443
	default:
		return res, fmt.Errorf("http probe: url %q: scheme must be http or https", rawURL)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return res, fmt.Errorf("http probe: url %q: bad port", rawURL)
		}
	}
	res.Port = port
	pr, err := s.startProbe(ctx, from, u.Hostname(), timeout)
	if err != nil {
		return res, err
	}
	defer pr.cancel()
	res.To = pr.dst.String()
	q := u.Query()
	q.Set("nslab", probeNonce())
	u.RawQuery = q.Encode()

	dst := netip.AddrPortFrom(pr.dst, uint16(port))
	var (
		mu        sync.Mutex
		connected bool
		dialErr   error
		lport     uint16
		rec       *readRecorder
	)
	tr := &http.Transport{
		Proxy: nil,
		// The probe's context, not the transport's: the transport may dial
		// with a context that outlives the request.
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			c, err := probeDialTCP(pr.ctx, pr.ns, dst, func(proto string, p uint16) {
				mu.Lock()
				lport = p
				mu.Unlock()
				pr.mark(proto, p)
				pr.watchTCP(p)
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				dialErr = err
				return nil, err
			}
			connected = true
			rec = &readRecorder{Conn: c}
			return rec, nil
		},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
		// What is graded is that the service answers, not the learner's
		// PKI: lab servers use self-signed certificates.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(pr.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return res, fmt.Errorf("http probe: url %q: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", "nslab-probe")
	// confirm requires the answer to the connection the transport made
	// (and, when read is not nil, the bytes it read) to have crossed the hub.
	confirm := func(ans tcpAnswer, read []byte, n int) error {
		mu.Lock()
		lp := lport
		mu.Unlock()
		why, err := pr.confirm(func(frames []watchedFrame) string {
			return pr.crossedTCP(frames, lp, ans, read, n)
		})
		if err != nil {
			return pr.failed("http", from, rawURL, err)
		}
		if why != "" {
			notCrossed(&res, why)
			res.Status, res.Body = 0, ""
		} else {
			res.Detail = pr.noteLocal(res.Detail)
		}
		return nil
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if perr := pr.parentErr("http", from, rawURL); perr != nil {
			return res, perr
		}
		mu.Lock()
		c, derr := connected, dialErr
		mu.Unlock()
		switch {
		case c && probeTimedOut(err):
			res.Outcome, res.Detail = labs.OutcomeTimeout, "connected, but no HTTP response within the timeout"
		case c:
			res.Outcome, res.Detail = labs.OutcomeNoReply, "connected, but no HTTP response: "+probeErrText(err)
		default:
			if derr == nil {
				derr = err
			}
			o, d, ok := classifyProbeErr(derr, "connection refused: the SYN was answered with a RST")
			if !ok {
				return res, fmt.Errorf("http probe from %s to %s: %w", from, rawURL, err)
			}
			res.Outcome, res.Detail = o, d
			if ans, ok := pr.tcpAnswerOf(derr, o); ok {
				if err := confirm(ans, nil, 0); err != nil {
					return res, err
				}
			}
		}
		return res, nil
	}
	defer resp.Body.Close()
	res.RTT = time.Since(start)
	res.Outcome = labs.OutcomeConnected
	res.Status = resp.StatusCode
	res.Detail = resp.Proto + " " + resp.Status
	body, err := io.ReadAll(io.LimitReader(resp.Body, httpBodyLimit))
	res.Body = string(body)
	if err != nil {
		res.Detail += "; body cut short: " + probeErrText(err)
	}
	mu.Lock()
	read, n := rec.snapshot()
	mu.Unlock()
	return res, confirm(tcpConnected, read, n)
}

// PMTUProbe finds the largest IP packet (total length) with DF set that
// node from gets an echo reply for from to: a binary search over
// 68..9000 bytes (1280..9000 for IPv6). The socket uses
// IP_PMTUDISC_PROBE, so the path MTU the node may have cached does not
// stop a size from being tried; only its own interface MTU does, as on
// a real host. The first size gets the whole timeout, each later one
// 25 ms. MTU is 0 when not even the smallest packet got a reply.
func (s *Sandbox) PMTUProbe(ctx context.Context, from, to string, timeout time.Duration) (labs.ProbeResult, error) {
	res := labs.ProbeResult{Kind: "pmtu", From: from, To: to}
	pr, err := s.startProbe(ctx, from, to, timeout)
	if err != nil {
		return res, err
	}
	defer pr.cancel()
	res.To = pr.dst.String()
	v6 := pr.dst.Is6()
	ic, err := openICMP(pr.ns, v6)
	if err != nil {
		return res, fmt.Errorf("pmtu probe from %s: %w", from, err)
	}
	defer ic.close()
	pr.mark("icmp", ic.id)
	pr.watchEcho(ic.id, ic.nonce[:])
	// The probe's oversized packets teach the node's kernel the path MTU
	// (a "fragmentation needed" answer creates a route exception); a
	// grader must not change what the learner's TCP then does, so the
	// node's route cache is flushed afterwards, as `ip route flush cache`.
	defer func() {
		key := "net.ipv4.route.flush"
		if v6 {
			key = "net.ipv6.route.flush"
		}
		writeSysctl(pr.ns, key, "1")
	}()
	if err := ic.probeMTU(); err != nil {
		return res, fmt.Errorf("pmtu probe from %s: %w", from, err)
	}
	stop := ic.wakeOn(pr.ctx)
	defer stop()

	lo := 68
	if v6 {
		lo = 1280
	}
	deadline, _ := pr.ctx.Deadline()
	first, err := ic.echo(pr.ctx, pr.dst, lo, deadline)
	if perr := pr.parentErr("pmtu", from, to); perr != nil {
		return res, perr
	}
	if err != nil {
		return res, fmt.Errorf("pmtu probe from %s to %s: %w", from, pr.dst, err)
	}
	// crossed is "" when the echo's answer crossed the hub, else why not.
	crossed := func(r echoResult) (string, error) {
		why, err := pr.confirm(func(frames []watchedFrame) string {
			return pr.crossedEcho(frames, ic.id, r.seq, ic.nonce[:], r.outcome == labs.OutcomeReply)
		})
		if err != nil {
			return "", pr.failed("pmtu", from, to, err)
		}
		return why, nil
	}
	if pr.mustCross(first) {
		why, err := crossed(first)
		if err != nil {
			return res, err
		}
		if why != "" {
			notCrossed(&res, why)
			return res, nil
		}
	}
	if first.outcome != labs.OutcomeReply {
		res.Outcome = first.outcome
		res.Detail = fmt.Sprintf("not even a %d-byte packet got a reply: %s", lo, first.detail)
		return res, nil
	}
	res.RTT = first.rtt
	good, bad := lo, pmtuMax+1
	var fail echoResult
	next := 0 // a size an ICMP error suggested
	for bad-good > 1 {
		if pr.ctx.Err() != nil {
			break
		}
		size := good + (bad-good)/2
		if next > good && next < bad {
			size = next
		}
		next = 0
		r, err := ic.echo(pr.ctx, pr.dst, size, probeMinTime(time.Now().Add(pmtuStepTimeout), deadline))
		if err != nil {
			return res, fmt.Errorf("pmtu probe from %s to %s: %w", from, pr.dst, err)
		}
		if r.outcome == labs.OutcomeReply {
			why, err := crossed(r)
			if err != nil {
				return res, err
			}
			if why != "" {
				notCrossed(&res, fmt.Sprintf("the %d-byte packet's reply does not count: %s", size, why))
				return res, nil
			}
			good = size
			continue
		}
		bad, fail = size, r
		next = r.mtu
	}
	if perr := pr.parentErr("pmtu", from, to); perr != nil {
		return res, perr
	}
	res.Outcome, res.MTU = labs.OutcomeReply, good
	switch {
	case bad == pmtuMax+1:
		res.Detail = fmt.Sprintf("%d-byte packets with DF get a reply; search stopped there", good)
	case bad-good > 1:
		res.Detail = fmt.Sprintf("%d-byte packets with DF get a reply; %d bytes: %s; the search ran out of time", good, bad, fail.detail)
	default:
		res.Detail = fmt.Sprintf("%d-byte packets with DF get a reply; %d bytes: %s", good, bad, fail.detail)
	}
	res.Detail = pr.noteLocal(res.Detail)
	return res, nil
}

// probeRun is the common state of one probe.
type probeRun struct {
	sb     *Sandbox
	until  time.Time // the probe's own traffic ends before this
	parent context.Context
	ctx    context.Context // bounded by the probe's timeout
	cancel context.CancelFunc
	ns     int
	dst    netip.Addr
	scope  *probeScope // where an answer must come from

	mu      sync.Mutex
	w       *probeWatch // the frames of the probe's exchange; nil if it needs none
	stopped bool
}

func (s *Sandbox) startProbe(ctx context.Context, from, to string, timeout time.Duration) (*probeRun, error) {
	p := s.nodes[from]
	if p == nil {
		return nil, fmt.Errorf("node %q in sandbox %s: %w", from, s.ID, ErrNodeNotFound)
	}
	dst, err := s.resolve(to)
	if err != nil {
		return nil, err
	}
	scope, err := s.probeScope(from, dst)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	release, err := s.hold()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	pr := &probeRun{sb: s, until: time.Now().Add(timeout), parent: ctx, ctx: pctx, ns: p.nsFd(), dst: dst, scope: scope}
	// The probe's sockets are made from the node's netns fd: hold it until
	// the probe is done (every probe defers pr.cancel).
	pr.cancel = sync.OnceFunc(func() {
		cancel()
		pr.mu.Lock()
		w := pr.w
		pr.stopped = true
		pr.mu.Unlock()
		if w != nil {
			w.stop()
		}
		release()
	})
	return pr, nil
}

// setWatch starts the probe's watch, replacing an earlier one (an HTTP
// transport may dial again). An exchange that may stay inside the
// prober needs none.
func (pr *probeRun) setWatch(match func(p *wirePkt, port int) bool) {
	if pr.scope.local != "" {
		return
	}
	w := pr.sb.capture.watch(match)
	pr.mu.Lock()
	old, stopped := pr.w, pr.stopped
	pr.w = w
	pr.mu.Unlock()
	if old != nil {
		old.stop()
	}
	if stopped {
		w.stop()
	}
}

func (pr *probeRun) watch() *probeWatch {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.w
}

// confirm returns "" when the answer the probe got crossed the hub as
// the lab requires (judge says so, once the capture has caught up), or
// needs not (pr.scope.local); else why it does not count.
func (pr *probeRun) confirm(judge func([]watchedFrame) string) (string, error) {
	if pr.scope.local != "" {
		return "", nil
	}
	frames, err := pr.confirmSync()
	if err != nil {
		return "", err
	}
	return judge(frames), nil
}

// mustCross reports whether an echo's answer must have crossed the hub:
// an echo reply or an ICMP error, unless the node's own stack made it.
func (pr *probeRun) mustCross(r echoResult) bool {
	if !r.answered {
		return false
	}
	return r.outcome == labs.OutcomeReply || !pr.scope.ownStack(r.from, pr.dst.Is6(), r.typ, r.code)
}

// failed wraps an error met while confirming an answer; the caller's
// context ending takes precedence.
func (pr *probeRun) failed(kind, from, to string, err error) error {
	if perr := pr.parentErr(kind, from, to); perr != nil {
		return perr
	}
	return fmt.Errorf("%s probe from %s to %s: %w", kind, from, to, err)
}

// mark records a flow of this probe (a local TCP/UDP port or an ICMP echo
// id) so the capture can tell the grader's packets from the learner's.
func (pr *probeRun) mark(proto string, port uint16) {
	pr.sb.probes.add(proto, port, time.Now(), pr.until)
}

// parentErr is non-nil when the caller's context, not the probe's own
// timeout, ended the probe: then there is no outcome to report.
func (pr *probeRun) parentErr(kind, from, to string) error {
	err := pr.parent.Err()
	if dl, ok := pr.parent.Deadline(); ok && err == nil && !time.Now().Before(dl) {
		// The socket's deadline may fire a moment before ctx's timer.
		err = context.DeadlineExceeded
	}
	if err != nil {
		return fmt.Errorf("%s probe from %s to %s: %w", kind, from, to, err)
	}
	return nil
}

// resolve turns a probe target into an address: an address as given, or
// a node name as the node's first IPv4 address in the lab definition
// (its first IPv6 address if it has none).
func (s *Sandbox) resolve(to string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(to); err == nil {
		return a.Unmap(), nil
	}
	n := s.Lab.Node(to)
	if n == nil {
		return netip.Addr{}, fmt.Errorf("probe target %q in sandbox %s: not an address or node: %w", to, s.ID, ErrNodeNotFound)
	}
	var v6 netip.Addr
	for _, ifc := range n.Interfaces {
		for _, a := range ifc.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				continue
			}
			if p.Addr().Is4() {
				return p.Addr(), nil
			}
			if !v6.IsValid() {
				v6 = p.Addr()
			}
		}
	}
	if v6.IsValid() {
		return v6, nil
	}
	return netip.Addr{}, fmt.Errorf("probe target node %s has no address in lab %s", to, s.Lab.ID)
}

// --- sockets in a node ---

// probeSocket opens a non-blocking socket in the network namespace nsFd and
// registers it with the runtime's poller, so deadlines work on it.
func probeSocket(nsFd, domain, typ, proto int) (*os.File, syscall.RawConn, error) {
	fd := -1
	err := inNetNS(nsFd, func() error {
		var err error
		fd, err = unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, nil, fmt.Errorf("open socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "probe")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

func sockControl(rc syscall.RawConn, fn func(fd int) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func probeSockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func probeDomain(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func probeAddrOf(sa unix.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

// probeWakeFile makes a blocked read or write on f return when ctx ends;
// ctx's deadline is also set on f.
func probeWakeFile(ctx context.Context, f *os.File) func() bool {
	if dl, ok := ctx.Deadline(); ok {
		f.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { f.SetDeadline(time.Now()) })
}

func probeDeadlineConn(ctx context.Context, c net.Conn) func() bool {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
}

// ipSock is a TCP or UDP socket in a node with IP_RECVERR set, so that an
// ICMP error it receives is queued with the address of the router or host
// that sent it.
type ipSock struct {
	f  *os.File
	rc syscall.RawConn
}

func probeOpenConnected(nsFd int, dst netip.AddrPort, typ, proto int, mark func(string, uint16)) (*ipSock, error) {
	f, rc, err := probeSocket(nsFd, probeDomain(dst.Addr()), typ, proto)
	if err != nil {
		return nil, err
	}
	err = sockControl(rc, func(fd int) error {
		if dst.Addr().Is4() {
			return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("set IP_RECVERR: %w", err)
	}
	// Take the local port now, before any packet leaves, so the flow can
	// be marked as the grader's own (the source address is still chosen
	// by the route at connect time).
	var port uint16
	err = sockControl(rc, func(fd int) error {
		var sa unix.Sockaddr = &unix.SockaddrInet4{}
		if dst.Addr().Is6() {
			sa = &unix.SockaddrInet6{}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		got, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		switch a := got.(type) {
		case *unix.SockaddrInet4:
			port = uint16(a.Port)
		case *unix.SockaddrInet6:
			port = uint16(a.Port)
		}
		return nil
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bind a local port: %w", err)
	}
	if mark != nil {
		name := "udp"
		if typ == unix.SOCK_STREAM {
			name = "tcp"
		}
		mark(name, port)
	}
	return &ipSock{f: f, rc: rc}, nil
}

// connect connects the socket, waiting for a TCP handshake until ctx
// ends (then os.ErrDeadlineExceeded).
func (s *ipSock) connect(ctx context.Context, dst netip.AddrPort) error {
	var cerr error
	if err := sockControl(s.rc, func(fd int) error { cerr = unix.Connect(fd, probeSockaddr(dst)); return nil }); err != nil {
		return err
	}
	if !errors.Is(cerr, unix.EINPROGRESS) {
		return cerr
	}
	stop := probeWakeFile(ctx, s.f)
	defer stop()
	// Write resets the write readiness and then calls fn, so fn must look
	// at the socket every time: the handshake may already have ended.
	var soErr error
	err := s.rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			soErr = err
			return true
		}
		switch e := unix.Errno(v); e {
		case 0:
			_, err := unix.Getpeername(int(fd))
			return err == nil // else a spurious wake-up
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			soErr = e
			return true
		}
	})
	if err != nil {
		return err
	}
	return soErr
}

func (s *ipSock) send(b []byte) error {
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		_, serr = unix.Write(int(fd), b)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

func (s *ipSock) recv(buf []byte) (int, error) {
	var (
		n    int
		rerr error
	)
	err := s.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// withOffender replaces an errno by the ICMP error queued for it, which
// also says who sent it.
func (s *ipSock) withOffender(err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err
	}
	if ie := probeErrQueue(s.rc); ie != nil {
		return ie
	}
	return err
}

// probeDialTCP connects from the node's namespace. An error the kernel tied
// to an ICMP message comes back as *icmpError.
func probeDialTCP(ctx context.Context, nsFd int, dst netip.AddrPort, mark func(string, uint16)) (net.Conn, error) {
	sk, err := probeOpenConnected(nsFd, dst, unix.SOCK_STREAM, unix.IPPROTO_TCP, mark)
	if err != nil {
		return nil, err
	}
	defer sk.f.Close()
	if err := sk.connect(ctx, dst); err != nil {
		return nil, sk.withOffender(err)
	}
	c, err := net.FileConn(sk.f) // a dup; sk.f is closed on return
	if err != nil {
		return nil, fmt.Errorf("tcp socket to %s: %w", dst, err)
	}
	return c, nil
}

// icmpError is a socket error caused by an ICMP message: what it said and
// who sent it.
type icmpError struct {
	errno     unix.Errno
	from      netip.Addr
	v6, local bool
	typ, code uint8
	info      uint32 // the MTU of fragmentation-needed / packet-too-big
}

func (e *icmpError) Error() string {
	if e.local {
		return e.errno.Error()
	}
	s := icmpText(e.v6, e.typ, e.code, e.info)
	if e.from.IsValid() {
		s += " from " + e.from.String()
	}
	return s
}

func (e *icmpError) Unwrap() error { return e.errno }

// probeErrQueue returns the most recent ICMP error queued on the socket.
func probeErrQueue(rc syscall.RawConn) *icmpError {
	var out *icmpError
	sockControl(rc, func(fd int) error {
		buf := make([]byte, 256)
		oob := make([]byte, 512)
		for range 16 {
			_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return nil
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if e := probeParseRecvErr(m); e != nil {
					out = e
				}
			}
		}
		return nil
	})
	return out
}

// probeParseRecvErr decodes an IP_RECVERR / IPV6_RECVERR control message: a
// struct sock_extended_err followed by the offender's address.
func probeParseRecvErr(m unix.SocketControlMessage) *icmpError {
	if !(m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR) &&
		!(m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
		return nil
	}
	d := m.Data
	if len(d) < 16 {
		return nil
	}
	ne := binary.NativeEndian
	e := &icmpError{errno: unix.Errno(ne.Uint32(d[0:])), typ: d[5], code: d[6], info: ne.Uint32(d[8:])}
	switch d[4] {
	case unix.SO_EE_ORIGIN_ICMP:
	case unix.SO_EE_ORIGIN_ICMP6:
		e.v6 = true
	default:
		e.local = true
		return e
	}
	off := d[16:]
	if len(off) >= 2 {
		switch ne.Uint16(off) {
		case unix.AF_INET:
			if len(off) >= 8 {
				e.from = netip.AddrFrom4([4]byte(off[4:8]))
			}
		case unix.AF_INET6:
			if len(off) >= 24 {
				e.from = netip.AddrFrom16([16]byte(off[8:24])).Unmap()
			}
		}
	}
	return e
}

// classifyProbeErr maps a socket error to an outcome and a detail for the
// learner; ok is false for errors that say nothing about the network.
func classifyProbeErr(err error, refused string) (outcome, detail string, ok bool) {
	var ie *icmpError
	if errors.As(err, &ie) && !ie.local {
		if ie.errno == unix.ECONNREFUSED {
			return labs.OutcomeRefused, ie.Error(), true
		}
		return labs.OutcomeUnreachable, ie.Error(), true
	}
	switch {
	case probeTimedOut(err):
		return labs.OutcomeTimeout, "no answer within the timeout", true
	case errors.Is(err, unix.ECONNREFUSED):
		return labs.OutcomeRefused, refused, true
	case errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH),
		errors.Is(err, unix.EHOSTDOWN), errors.Is(err, unix.ENONET), errors.Is(err, unix.EADDRNOTAVAIL):
		return labs.OutcomeUnreachable, probeErrText(err) + " (from the node's own stack)", true
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		// A rule in the node's own output path, or a broadcast address.
		return labs.OutcomeNoReply, "the node refused to send it (" + probeErrText(err) + "): a firewall rule in the node, or a broadcast address", true
	case errors.Is(err, unix.ECONNRESET):
		return labs.OutcomeRefused, "connection reset", true
	}
	return "", "", false
}

func probeTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// probeErrText is an error's errno text when it has one, without the layers
// of "op addr:" that the net package adds.
func probeErrText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// --- ICMP echo ---

// icmpConn is a raw ICMP or ICMPv6 socket in a node sending echo
// requests with one random identifier and nonce. A raw socket (host root
// may open one in any namespace) is used rather than a ping socket,
// which net.ipv4.ping_group_range disables by default in a new netns.
type icmpConn struct {
	f     *os.File
	rc    syscall.RawConn
	v6    bool
	id    uint16
	seq   uint16
	nonce [16]byte
	buf   []byte
}

type echoResult struct {
	outcome  string // reply, no-reply or unreachable
	detail   string
	rtt      time.Duration
	mtu      int    // suggested by fragmentation-needed / packet-too-big
	seq      uint16 // of the echo request
	answered bool   // an ICMP message answered: an echo reply or an error
	// Of an ICMP error: who sent it, and what it was.
	from      netip.Addr
	typ, code uint8
}

func openICMP(nsFd int, v6 bool) (*icmpConn, error) {
	domain, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if v6 {
		domain, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	f, rc, err := probeSocket(nsFd, domain, unix.SOCK_RAW, proto)
	if err != nil {
		return nil, err
	}
	c := &icmpConn{f: f, rc: rc, v6: v6, buf: make([]byte, 65536)}
	var r [4]byte
	rand.Read(r[:])
	rand.Read(c.nonce[:])
	c.id = binary.BigEndian.Uint16(r[0:])
	c.seq = binary.BigEndian.Uint16(r[2:])
	return c, nil
}

func (c *icmpConn) close() { c.f.Close() }

// probeMTU sets DF on every packet while ignoring the path MTU the node
// has cached, as tracepath does.
func (c *icmpConn) probeMTU() error {
	return sockControl(c.rc, func(fd int) error {
		if c.v6 {
			return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
	})
}

// wakeOn ends a pending wait when ctx is cancelled.
func (c *icmpConn) wakeOn(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { c.f.SetDeadline(time.Now()) })
}

// echo sends one echo request whose IP packet is size bytes long and waits
// until deadline for its reply or for an ICMP error quoting it.
func (c *icmpConn) echo(ctx context.Context, dst netip.Addr, size int, deadline time.Time) (echoResult, error) {
	c.seq++
	seq := c.seq
	hdr := 20
	typ := byte(8)
	if c.v6 {
		hdr, typ = 40, 128
	}
	n := max(size-hdr, 8+len(c.nonce))
	msg := make([]byte, n)
	msg[0] = typ
	binary.BigEndian.PutUint16(msg[4:], c.id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], c.nonce[:])
	for i := 8 + len(c.nonce); i < n; i++ {
		msg[i] = byte(i)
	}
	if !c.v6 { // the kernel fills in the ICMPv6 checksum itself
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
	}
	c.f.SetDeadline(deadline)
	if ctx.Err() != nil { // wakeOn may have fired before the line above
		c.f.SetDeadline(time.Now())
	}

	start := time.Now()
	err := c.send(dst, msg)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		// A pending error left by an earlier ICMP message fails the first
		// send and is consumed by it; a real one fails again.
		err = c.send(dst, msg)
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.EMSGSIZE):
		return echoResult{outcome: labs.OutcomeUnreachable, detail: "larger than the MTU of the node's outgoing interface"}, nil
	case probeTimedOut(err):
		return echoResult{outcome: labs.OutcomeNoReply, detail: "could not send within the timeout"}, nil
	default:
		o, d, ok := classifyProbeErr(err, "")
		if !ok {
			return echoResult{}, fmt.Errorf("send echo request: %w", err)
		}
		if o == labs.OutcomeRefused {
			o = labs.OutcomeUnreachable
		}
		return echoResult{outcome: o, detail: d}, nil
	}

	for {
		var (
			m    int
			from unix.Sockaddr
			rerr error
		)
		err := c.rc.Read(func(fd uintptr) bool {
			m, from, rerr = unix.Recvfrom(int(fd), c.buf, unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err != nil {
			if probeTimedOut(err) {
				return echoResult{outcome: labs.OutcomeNoReply, detail: "no echo reply within the timeout"}, nil
			}
			return echoResult{}, fmt.Errorf("receive: %w", err)
		}
		if rerr != nil {
			// A pending socket error set by an ICMP error message; the
			// message itself is read (and matched) next.
			continue
		}
		pkt := c.buf[:m]
		src := probeAddrOf(from)
		ttl := -1
		if !c.v6 { // raw IPv4 sockets receive the IP header
			if len(pkt) < 20 {
				continue
			}
			ihl := int(pkt[0]&0x0f) * 4
			if len(pkt) < ihl {
				continue
			}
			ttl = int(pkt[8])
			pkt = pkt[ihl:]
		}
		if r, ok := c.match(pkt, seq, src, ttl); ok {
			r.rtt = time.Since(start)
			r.seq, r.answered, r.from, r.typ, r.code = seq, true, src, pkt[0], pkt[1]
			return r, nil
		}
	}
}

func (c *icmpConn) send(dst netip.Addr, msg []byte) error {
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		// Clear a socket error an earlier probe's ICMP message left.
		unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		serr = unix.Sendto(int(fd), msg, 0, probeSockaddr(netip.AddrPortFrom(dst, 0)))
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

// match recognises the reply to echo request seq, or an ICMP error
// quoting it.
func (c *icmpConn) match(m []byte, seq uint16, src netip.Addr, ttl int) (echoResult, bool) {
	if len(m) < 8 {
		return echoResult{}, false
	}
	typ, code := m[0], m[1]
	isOurs := func(echo []byte) bool {
		want := byte(8)
		if c.v6 {
			want = 128
		}
		return len(echo) >= 8 && echo[0] == want &&
			binary.BigEndian.Uint16(echo[4:]) == c.id && binary.BigEndian.Uint16(echo[6:]) == seq
	}
	reply := byte(0)
	if c.v6 {
		reply = 129
	}
	if typ == reply {
		if binary.BigEndian.Uint16(m[4:]) != c.id || binary.BigEndian.Uint16(m[6:]) != seq {
			return echoResult{}, false
		}
		if len(m) < 8+len(c.nonce) || !bytes.Equal(m[8:8+len(c.nonce)], c.nonce[:]) {
			return echoResult{}, false // a forged or rewritten reply does not count
		}
		d := fmt.Sprintf("echo reply from %s, nonce %s", src, hex.EncodeToString(c.nonce[:4]))
		if ttl >= 0 {
			d += fmt.Sprintf(", ttl %d", ttl)
		}
		return echoResult{outcome: labs.OutcomeReply, detail: d}, true
	}
	var inner []byte
	switch {
	case !c.v6 && (typ == 3 || typ == 11 || typ == 12):
		q := m[8:]
		if len(q) < 20 || q[9] != unix.IPPROTO_ICMP {
			return echoResult{}, false
		}
		ihl := int(q[0]&0x0f) * 4
		if len(q) < ihl {
			return echoResult{}, false
		}
		inner = q[ihl:]
	case c.v6 && typ >= 1 && typ <= 4:
		q := m[8:]
		if len(q) < 40 || q[6] != unix.IPPROTO_ICMPV6 {
			return echoResult{}, false
		}
		inner = q[40:]
	default:
		return echoResult{}, false
	}
	if !isOurs(inner) {
		return echoResult{}, false
	}
	var mtu int
	switch {
	case !c.v6 && typ == 3 && code == 4:
		mtu = int(binary.BigEndian.Uint16(m[6:]))
	case c.v6 && typ == 2:
		mtu = int(binary.BigEndian.Uint32(m[4:]))
	}
	return echoResult{
		outcome: labs.OutcomeUnreachable,
		detail:  icmpText(c.v6, typ, code, uint32(mtu)) + " from " + src.String(),
		mtu:     mtu,
	}, true
}

// icmpChecksum is the Internet checksum (RFC 1071).
func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// icmpText names an ICMP or ICMPv6 message as ping and tcpdump do.
func icmpText(v6 bool, typ, code uint8, info uint32) string {
	if !v6 {
		switch typ {
		case 0:
			return "ICMP echo reply"
		case 8:
			return "ICMP echo request"
		case 3:
			switch code {
			case 0:
				return "ICMP net unreachable"
			case 1:
				return "ICMP host unreachable"
			case 2:
				return "ICMP protocol unreachable"
			case 3:
				return "ICMP port unreachable"
			case 4:
				return fmt.Sprintf("ICMP fragmentation needed (mtu %d)", info)
			case 6:
				return "ICMP net unknown"
			case 7:
				return "ICMP host unknown"
			case 9:
				return "ICMP net prohibited"
			case 10:
				return "ICMP host prohibited"
			case 13:
				return "ICMP communication administratively prohibited"
			}
			return fmt.Sprintf("ICMP destination unreachable (code %d)", code)
		case 5:
			return "ICMP redirect"
		case 11:
			if code == 1 {
				return "ICMP fragment reassembly time exceeded"
			}
			return "ICMP time exceeded in transit"
		case 12:
			return "ICMP parameter problem"
		}
		return fmt.Sprintf("ICMP type %d code %d", typ, code)
	}
	switch typ {
	case 1:
		switch code {
		case 0:
			return "ICMP6 no route to destination"
		case 1:
			return "ICMP6 communication administratively prohibited"
		case 3:
			return "ICMP6 address unreachable"
		case 4:
			return "ICMP6 port unreachable"
		case 5:
			return "ICMP6 source address failed policy"
		case 6:
			return "ICMP6 reject route to destination"
		}
		return fmt.Sprintf("ICMP6 destination unreachable (code %d)", code)
	case 2:
		return fmt.Sprintf("ICMP6 packet too big (mtu %d)", info)
	case 3:
		return "ICMP6 time exceeded in transit"
	case 4:
		return "ICMP6 parameter problem"
	case 128:
		return "ICMP6 echo request"
	case 129:
		return "ICMP6 echo reply"
	case 130:
		return "ICMP6 multicast listener query"
	case 131:
		return "ICMP6 multicast listener report"
	case 133:
		return "ICMP6 router solicitation"
	case 134:
		return "ICMP6 router advertisement"
	case 135:
		return "ICMP6 neighbor solicitation"
	case 136:
		return "ICMP6 neighbor advertisement"
	case 137:
		return "ICMP6 redirect"
	case 143:
		return "ICMP6 multicast listener report v2"
	}
	return fmt.Sprintf("ICMP6 type %d code %d", typ, code)
}

// --- small helpers ---

// probeNonce is 16 random hex digits with a recognisable prefix.
func probeNonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "nslab-" + hex.EncodeToString(b)
}

func probeQuote(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

func probeMinTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
