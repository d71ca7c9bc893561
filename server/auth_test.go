package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
	"nslab/server/store"
)

// testPKI is a throwaway CA, a server certificate for 127.0.0.1 and a
// client certificate, as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		mode := os.FileMode(0o644) // certificates are public; keys are not
		if strings.Contains(typ, "KEY") {
			mode = 0o600
		}
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nslab test CA " + randSuffix()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// syncBuffer collects labd's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// authLabd is a labd serving its unix socket and TLS on 127.0.0.1.
// l's connection is root's on the unix socket: an admin.
type authLabd struct {
	e    *testEnv
	l    *labd
	pki  *testPKI
	addr string // host:port of the TCP listener
	log  *syncBuffer
}

// startAuthLabd starts labd with --listen on a random 127.0.0.1 port;
// mtls adds --tls-client-ca; perOwner is --max-sandboxes-per-owner.
func startAuthLabd(t *testing.T, mtls bool, perOwner int) *authLabd {
	t.Helper()
	e := newTestEnv(t)
	a := &authLabd{e: e, pki: newTestPKI(t, e.dir), log: &syncBuffer{}}
	e.opts.listen = "127.0.0.1:0"
	e.opts.tlsCert, e.opts.tlsKey = a.pki.serverCert, a.pki.serverKey
	if mtls {
		e.opts.tlsClientCA = a.pki.caFile
	}
	e.opts.maxPerOwner = perOwner
	e.opts.logLevel = "info"
	addrs := make(chan string, 1)
	e.opts.listening = func(ad net.Addr) { addrs <- ad.String() }
	e.opts.logOut = a.log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("labd log:\n%s", a.log)
		}
	})
	a.l = startLabd(t, e)
	a.addr = <-addrs
	return a
}

// token makes a token through the admin's TokenService.
func (a *authLabd) token(t *testing.T, role labsv1.Token_Role, subject, workshop string) (secret, id string) {
	t.Helper()
	resp, err := labsv1.NewTokenServiceClient(a.l.conn).CreateToken(rpcCtx(t), &labsv1.CreateTokenRequest{Role: role, Subject: subject, Workshop: workshop})
	if err != nil {
		t.Fatalf("CreateToken(%s): %v", subject, err)
	}
	return resp.GetSecret(), resp.GetToken().GetId()
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// client is one caller's connection over TCP.
type client struct {
	conn *grpc.ClientConn
	sbx  labsv1.SandboxServiceClient
	grd  labsv1.GradingServiceClient
}

// dialTCP connects over TLS, trusting the test CA, sending secret (if
// not "") with every call and the client certificate when withCert.
func (a *authLabd) dialTCP(t *testing.T, secret string, withCert bool) *client {
	t.Helper()
	cfg := &tls.Config{RootCAs: a.pki.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		kp, err := tls.LoadX509KeyPair(a.pki.clientCert, a.pki.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if secret != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(secret)))
	}
	conn, err := grpc.NewClient(a.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{conn: conn, sbx: labsv1.NewSandboxServiceClient(conn), grd: labsv1.NewGradingServiceClient(conn)}
}

func (c *client) create(t *testing.T, lab string) string {
	t.Helper()
	resp, err := c.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		t.Fatalf("CreateSandbox(%s): %v", lab, err)
	}
	return resp.GetSandbox().GetId()
}

func (c *client) ids(t *testing.T) []string {
	t.Helper()
	var out []string
	tok := ""
	for {
		resp, err := c.sbx.ListSandboxes(rpcCtx(t), &labsv1.ListSandboxesRequest{PageSize: 1, PageToken: tok})
		if err != nil {
			t.Fatalf("ListSandboxes: %v", err)
		}
		for _, s := range resp.GetSandboxes() {
			out = append(out, s.GetId())
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			slices.Sort(out)
			return out
		}
	}
}

func (c *client) sh(t *testing.T, id, node, script string) string {
	t.Helper()
	r, err := execStream(rpcCtx(t), c.sbx, shReq(id, node, script, 30*time.Second))
	if err != nil || r.exit.GetCode() != 0 {
		t.Fatalf("sh %q in %s/%s: %v %v %s", script, id, node, err, r.exit, r.stderr)
	}
	return r.stdout
}

func (c *client) grades(t *testing.T, id string) int {
	t.Helper()
	resp, err := c.grd.ListGrades(rpcCtx(t), &labsv1.ListGradesRequest{Sandbox: id})
	if err != nil {
		t.Fatalf("ListGrades(%s): %v", id, err)
	}
	return len(resp.GetGrades())
}

// shellFirst runs a short command through Shell and returns the stream's
// error, if any: how a refused stream shows.
func shellFirst(ctx context.Context, c labsv1.SandboxServiceClient, id string) error {
	st, err := c.Shell(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&labsv1.ShellRequest{Event: &labsv1.ShellRequest_Start{Start: &labsv1.ShellStart{
		Sandbox: id, Node: "h1", Command: []string{"touch", "/tmp/shell-was-here"},
	}}}); err != nil {
		return err
	}
	for {
		msg, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if msg.GetExit() != nil {
			return nil
		}
	}
}

// captureFirst reads a capture of the ring to its end.
func captureFirst(ctx context.Context, c labsv1.SandboxServiceClient, id string) error {
	st, err := c.Capture(ctx, &labsv1.CaptureRequest{Sandbox: id})
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// sandboxOps are every call that names a sandbox, as a learner would
// make them; each returns the call's error.
func sandboxOps(c *client) []struct {
	name string
	call func(ctx context.Context, id string) error
} {
	return []struct {
		name string
		call func(ctx context.Context, id string) error
	}{
		{"get", func(ctx context.Context, id string) error {
			_, err := c.sbx.GetSandbox(ctx, &labsv1.GetSandboxRequest{Name: "sandboxes/" + id})
			return err
		}},
		{"exec", func(ctx context.Context, id string) error {
			_, err := execStream(ctx, c.sbx, shReq(id, "h1", "touch /tmp/intruder", 10*time.Second))
			return err
		}},
		{"shell", func(ctx context.Context, id string) error { return shellFirst(ctx, c.sbx, id) }},
		{"capture", func(ctx context.Context, id string) error { return captureFirst(ctx, c.sbx, id) }},
		{"xdp", func(ctx context.Context, id string) error {
			_, err := c.sbx.AttachXDP(ctx, &labsv1.AttachXDPRequest{Sandbox: id, Node: "h1", Interface: "eth0", Detach: true})
			return err
		}},
		{"grade", func(ctx context.Context, id string) error {
			_, err := c.grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: id, Exercise: "first-ping"})
			return err
		}},
		{"list grades", func(ctx context.Context, id string) error {
			_, err := c.grd.ListGrades(ctx, &labsv1.ListGradesRequest{Sandbox: id})
			return err
		}},
		{"solve", func(ctx context.Context, id string) error {
			_, err := c.grd.Solve(ctx, &labsv1.SolveRequest{Sandbox: id, Exercise: "first-ping"})
			return err
		}},
		{"extend", func(ctx context.Context, id string) error {
			_, err := c.sbx.ExtendSandbox(ctx, &labsv1.ExtendSandboxRequest{Name: id, Duration: durationpb.New(time.Hour)})
			return err
		}},
		{"delete", func(ctx context.Context, id string) error {
			_, err := c.sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: id})
			return err
		}},
	}
}

// TestAuthLearnersAreIsolated is issue 8's acceptance 1 (first half):
// over TCP+TLS with two learner tokens, A can do nothing to B's sandbox
// — every call is NotFound, word for word as for an id that does not
// exist — and B's sandbox is untouched; instructors see their workshop's
// learners and no one else; grades stay with their owner.
func TestAuthLearnersAreIsolated(t *testing.T) {
	a := startAuthLabd(t, false, 3)
	secretA, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "alice", "")
	secretB, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "bob", "")
	A, B := a.dialTCP(t, secretA, false), a.dialTCP(t, secretB, false)

	sbB := B.create(t, "hello-link")
	B.sh(t, sbB, "h1", "echo b-was-here > /tmp/marker; ping -c1 -W2 10.0.0.2 >/dev/null")
	if _, err := B.grd.Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: sbB, Exercise: "first-ping"}); err != nil {
		t.Fatalf("B grades its own sandbox: %v", err)
	}
	bActed := time.Now()
	sbA := A.create(t, "hello-link")
	t.Logf("A's sandbox %s, B's %s", sbA, sbB)

	if got := A.ids(t); !slices.Equal(got, []string{sbA}) {
		t.Errorf("A lists %q, want only its own %q", got, sbA)
	}
	if got := B.ids(t); !slices.Equal(got, []string{sbB}) {
		t.Errorf("B lists %q, want only its own %q", got, sbB)
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for id := range a.l.listAll(t) {
			yield(id)
		}
	}); !slices.Equal(got, slices.Sorted(slices.Values([]string{sbA, sbB}))) {
		t.Errorf("root on the unix socket (an admin) lists %q, want both", got)
	}

	// B's activity clock must not move because of A's refused calls:
	// wait out the throttle that would otherwise hide a write.
	if d := 5*time.Second + 100*time.Millisecond - time.Since(bActed); d > 0 {
		time.Sleep(d)
	}
	before, err := B.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: sbB})
	if err != nil {
		t.Fatal(err)
	}

	unknown := sandbox.NewID()
	for _, op := range sandboxOps(A) {
		t.Run("A "+op.name+" B's", func(t *testing.T) {
			errB := op.call(rpcCtx(t), sbB)
			errU := op.call(rpcCtx(t), unknown)
			if status.Code(errB) != codes.NotFound {
				t.Fatalf("A %s on B's sandbox: %v, want NotFound", op.name, errB)
			}
			if status.Code(errU) != codes.NotFound {
				t.Fatalf("A %s on an unknown id: %v, want NotFound", op.name, errU)
			}
			mb, mu := status.Convert(errB).Message(), status.Convert(errU).Message()
			if strings.ReplaceAll(mu, unknown, sbB) != mb {
				t.Errorf("A can tell B's sandbox from a missing one: %q vs %q", mb, mu)
			}
			t.Logf("%s: %s", op.name, mb)
		})
	}

	after, err := B.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: sbB})
	if err != nil {
		t.Fatalf("B's sandbox after A's attempts: %v", err)
	}
	if s := after.GetSandbox(); s.GetState() != labsv1.Sandbox_STATE_READY ||
		!s.GetExpireTime().AsTime().Equal(before.GetSandbox().GetExpireTime().AsTime()) ||
		!s.GetIdleExpireTime().AsTime().Equal(before.GetSandbox().GetIdleExpireTime().AsTime()) {
		t.Errorf("B's sandbox changed: before %v, after %v", before.GetSandbox(), s)
	}
	if out := B.sh(t, sbB, "h1", "cat /tmp/marker; ls /tmp"); out != "b-was-here\nmarker\n" {
		t.Errorf("B's h1 /tmp after A's attempts: %q", out)
	}
	if n := B.grades(t, sbB); n != 1 {
		t.Errorf("B has %d grades, want 1", n)
	}

	// A's own: usable, but no reference solutions for learners.
	if n := A.grades(t, sbA); n != 0 {
		t.Errorf("A's fresh sandbox has %d grades", n)
	}
	_, err = A.grd.Solve(rpcCtx(t), &labsv1.SolveRequest{Sandbox: sbA, Exercise: "first-ping"})
	wantCode(t, "a learner's Solve in its own sandbox", err, codes.PermissionDenied)
	t.Logf("solve as a learner: %s", status.Convert(err).Message())
	if err := shellFirst(rpcCtx(t), A.sbx, sbA); err != nil {
		t.Errorf("A's shell in its own sandbox: %v", err)
	}
	if err := captureFirst(rpcCtx(t), A.sbx, sbA); err != nil {
		t.Errorf("A's capture of its own sandbox: %v", err)
	}

	// An instructor of w1 sees w1's learners, not alice.
	secretI, _ := a.token(t, labsv1.Token_ROLE_INSTRUCTOR, "ingrid", "w1")
	secretC, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "w1/carol", "w1")
	I, C := a.dialTCP(t, secretI, false), a.dialTCP(t, secretC, false)
	sbC := C.create(t, "hello-link")
	if got := I.ids(t); !slices.Equal(got, []string{sbC}) {
		t.Errorf("the instructor of w1 lists %q, want carol's %q only", got, sbC)
	}
	_, err = I.sbx.GetSandbox(rpcCtx(t), &labsv1.GetSandboxRequest{Name: sbA})
	wantCode(t, "the instructor's Get of alice's sandbox", err, codes.NotFound)
	if _, err := I.grd.Solve(rpcCtx(t), &labsv1.SolveRequest{Sandbox: sbC, Exercise: "first-ping"}); err != nil {
		t.Fatalf("the instructor solves in carol's sandbox: %v", err)
	}
	gr, err := I.grd.Grade(rpcCtx(t), &labsv1.GradeRequest{Sandbox: sbC, Exercise: "first-ping"})
	if err != nil || !gr.GetReports()[0].GetPassed() {
		t.Fatalf("the instructor grades carol's sandbox after the solution: %v %v", gr, err)
	}
	// The grade is carol's, though the instructor asked for it.
	if n := C.grades(t, sbC); n != 1 {
		t.Errorf("carol sees %d grades of her sandbox, want 1", n)
	}
	if ids := C.ids(t); !slices.Equal(ids, []string{sbC}) {
		t.Errorf("carol lists %q", ids)
	}

	// Grades outlive the sandbox and stay their owner's.
	if _, err := B.sbx.DeleteSandbox(rpcCtx(t), &labsv1.DeleteSandboxRequest{Name: sbB}); err != nil {
		t.Fatalf("B deletes its own sandbox: %v", err)
	}
	if n := B.grades(t, sbB); n != 1 {
		t.Errorf("after delete B has %d grades of %s, want 1", n, sbB)
	}
	_, err = A.grd.ListGrades(rpcCtx(t), &labsv1.ListGradesRequest{Sandbox: sbB})
	wantCode(t, "A's ListGrades of B's deleted sandbox", err, codes.NotFound)
	_, err = B.sbx.DeleteSandbox(rpcCtx(t), &labsv1.DeleteSandboxRequest{Name: sbB})
	wantCode(t, "a learner deleting a deleted sandbox again", err, codes.NotFound)
	a.e.assertHostClean(t, sbB)
}

// TestAuthTCPRefusesWithoutToken is acceptance 1's second half: no
// token, a wrong token and a revoked token are each refused with
// Unauthenticated saying which, and logged with the peer but never the
// secret. Tokens made and revoked with `labd token` on the database of
// the running labd take effect at once.
func TestAuthTCPRefusesWithoutToken(t *testing.T) {
	a := startAuthLabd(t, false, 3)
	ctx := rpcCtx(t)

	tokenCLI := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := tokenCommand(ctx, append(args, "--db", a.e.opts.db), &out, &errb); code != 0 {
			t.Fatalf("labd token %q = %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	secret := strings.TrimSpace(tokenCLI("create", "-q", "--role", "learner", "--subject", "dora"))
	list := tokenCLI("list")
	fields := strings.Fields(strings.Split(list, "\n")[1])
	if len(fields) < 3 || fields[2] != "dora" {
		t.Fatalf("labd token list:\n%s", list)
	}
	doraID := fields[0]
	if strings.Contains(list, secret) || strings.Contains(list, store.TokenPrefix) {
		t.Errorf("labd token list shows a secret:\n%s", list)
	}
	goodSecret, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "eve", "")
	adminSecret, _ := a.token(t, labsv1.Token_ROLE_ADMIN, "ops", "")

	dora := a.dialTCP(t, secret, false)
	if _, err := dora.sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{}); err != nil {
		t.Fatalf("a token from `labd token create`: %v", err)
	}
	tokenCLI("revoke", doraID)

	wrong := store.TokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	none := a.dialTCP(t, "", false)
	malformed := metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+goodSecret)
	tests := []struct {
		name string
		c    *client
		ctx  context.Context
		want string
	}{
		{"no token", none, ctx, "no token"},
		{"wrong token", a.dialTCP(t, wrong, false), ctx, "unknown token"},
		{"revoked token", dora, ctx, "revoked token"},
		{"not a bearer token", none, malformed, "malformed authorization"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.sbx.ListSandboxes(tc.ctx, &labsv1.ListSandboxesRequest{})
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("ListSandboxes with %s: %v; want Unauthenticated saying %q", tc.name, err, tc.want)
			}
			t.Logf("%s: %s", tc.name, status.Convert(err).Message())
			// Streams are refused the same way, before the handler runs.
			_, err = execStream(tc.ctx, tc.c.sbx, shReq(sandbox.NewID(), "h1", "true", time.Second))
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("Exec with %s: %v", tc.name, err)
			}
			_, err = labsv1.NewLabServiceClient(tc.c.conn).ListLabs(tc.ctx, &labsv1.ListLabsRequest{})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("ListLabs with %s: %v", tc.name, err)
			}
		})
	}

	// Health is open over TCP; reflection is not.
	hc, err := healthpb.NewHealthClient(none.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health over TCP without a token: %v %v", hc, err)
	}
	reflect := func(c *client) error {
		st, err := reflectionpb.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"}}); err != nil {
			return err
		}
		_, err = st.Recv()
		st.CloseSend()
		return err
	}
	wantCode(t, "reflection over TCP without a token", reflect(none), codes.Unauthenticated)
	if err := reflect(a.dialTCP(t, goodSecret, false)); err != nil {
		t.Errorf("reflection over TCP with a token: %v", err)
	}

	// Tokens are an admin's business.
	eve := a.dialTCP(t, goodSecret, false)
	_, err = labsv1.NewTokenServiceClient(eve.conn).ListTokens(ctx, &labsv1.ListTokensRequest{})
	wantCode(t, "a learner's ListTokens", err, codes.PermissionDenied)
	_, err = labsv1.NewTokenServiceClient(eve.conn).CreateToken(ctx, &labsv1.CreateTokenRequest{Role: labsv1.Token_ROLE_ADMIN, Subject: "eve2"})
	wantCode(t, "a learner's CreateToken", err, codes.PermissionDenied)
	ops := labsv1.NewTokenServiceClient(a.dialTCP(t, adminSecret, false).conn)
	lt, err := ops.ListTokens(ctx, &labsv1.ListTokensRequest{PageSize: 2})
	if err != nil || len(lt.GetTokens()) != 2 || lt.GetNextPageToken() == "" {
		t.Fatalf("an admin token's ListTokens: %v %v", lt, err)
	}
	lt2, err := ops.ListTokens(ctx, &labsv1.ListTokensRequest{PageToken: lt.GetNextPageToken()})
	if err != nil || len(lt2.GetTokens()) != 1 || lt2.GetTokens()[0].GetSubject() != "ops" {
		t.Errorf("second page: %v %v", lt2, err)
	}
	if strings.Contains(fmt.Sprint(lt, lt2), store.TokenPrefix) {
		t.Errorf("ListTokens shows a secret")
	}
	rev, err := ops.RevokeToken(ctx, &labsv1.RevokeTokenRequest{Name: "tokens/" + lt.GetTokens()[1].GetId()})
	if err != nil || rev.GetToken().GetRevokeTime() == nil {
		t.Fatalf("RevokeToken: %v %v", rev, err)
	}
	_, err = eve.sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked token") {
		t.Errorf("eve after RevokeToken: %v", err)
	}
	_, err = ops.RevokeToken(ctx, &labsv1.RevokeTokenRequest{Name: "t-00000000"})
	wantCode(t, "RevokeToken of an unknown id", err, codes.NotFound)

	log := a.log.String()
	for _, reason := range []string{`reason="no token"`, `reason="unknown token"`, `reason="revoked token"`, `reason="malformed authorization"`} {
		if !strings.Contains(log, reason) {
			t.Errorf("labd's log has no %s", reason)
		}
	}
	if !strings.Contains(log, "peer=127.0.0.1:") {
		t.Errorf("labd's log does not name the peer of refused calls")
	}
	for _, s := range []string{secret, wrong, goodSecret, adminSecret, wrong[len(store.TokenPrefix):]} {
		if strings.Contains(log, s) {
			t.Errorf("labd's log holds a secret (%.12s…)", s)
		}
	}
}

// TestAuthMutualTLS: with --tls-client-ca, a client without a
// certificate signed by it cannot even connect, and a certificate alone
// is no token.
func TestAuthMutualTLS(t *testing.T) {
	a := startAuthLabd(t, true, 3)
	secret, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "fay", "")
	ctx := rpcCtx(t)

	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := a.dialTCP(t, secret, false).sbx.ListSandboxes(short, &labsv1.ListSandboxesRequest{})
	if c := status.Code(err); c != codes.Unavailable {
		t.Errorf("a token without a client certificate: %v, want Unavailable (no TLS session)", err)
	}
	_, err = a.dialTCP(t, "", true).sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{})
	wantCode(t, "a client certificate without a token", err, codes.Unauthenticated)
	if _, err := a.dialTCP(t, secret, true).sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{}); err != nil {
		t.Errorf("certificate and token: %v", err)
	}
}

// TestAuthTLSFlagsRefused: labd does not start with unusable TLS files.
func TestAuthTLSFlagsRefused(t *testing.T) {
	e := newTestEnv(t)
	pki := newTestPKI(t, e.dir)
	for _, tc := range []struct {
		name                string
		cert, key, clientCA string
		want                string
	}{
		{"missing certificate", filepath.Join(e.dir, "none.pem"), pki.serverKey, "", "--tls-cert"},
		{"key of another certificate", pki.serverCert, pki.clientKey, "", "--tls-key"},
		{"client CA file without a certificate", pki.serverCert, pki.serverKey, pki.serverKey, "--tls-client-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.opts
			o.listen, o.tlsCert, o.tlsKey, o.tlsClientCA = "127.0.0.1:0", tc.cert, tc.key, tc.clientCA
			o.logOut = io.Discard
			err := run(t.Context(), o, func() { t.Error("labd served") })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run = %v, want an error naming %s", err, tc.want)
			}
			if _, err := os.Stat(o.socket); err == nil {
				t.Errorf("socket %s made", o.socket)
			}
		})
	}
}

// hostSnapshot is what the host holds of a test environment's sandboxes.
func (e *testEnv) hostSnapshot() string {
	procs := e.taggedProcs()
	pids := make([]string, 0, len(procs))
	for pid := range procs {
		pids = append(pids, fmt.Sprint(pid))
	}
	slices.Sort(pids)
	return fmt.Sprintf("state dirs %q, cgroups %q, processes %q", e.sandboxStateDirs(), e.sandboxCgroups(), pids)
}

// TestQuotaPerLearner is acceptance 2's first half: a learner at quota
// gets ResourceExhausted naming the limit, and the host holds no trace of
// the refused sandbox; creates racing for the last places never pass it
// together; admins are exempt.
func TestQuotaPerLearner(t *testing.T) {
	a := startAuthLabd(t, false, 2)
	secret, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "gus", "")
	G := a.dialTCP(t, secret, false)

	// Four at once for two places.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		made []string
		errs []error
	)
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			resp, err := G.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: "hello-link"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			made = append(made, resp.GetSandbox().GetId())
		})
	}
	wg.Wait()
	t.Logf("4 concurrent creates at a limit of 2: %d made, %d refused, in %s", len(made), len(errs), time.Since(start).Round(time.Millisecond))
	if len(made) != 2 || len(errs) != 2 {
		t.Fatalf("made %q, refused %v; want 2 and 2", made, errs)
	}
	const want = "learner gus has 2 sandboxes, the limit (--max-sandboxes-per-owner) is 2"
	for _, err := range errs {
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), want) {
			t.Errorf("refused create: %v; want ResourceExhausted saying %q", err, want)
		}
	}
	slices.Sort(made)
	if got := slices.Sorted(func(yield func(string) bool) {
		for id := range a.l.listAll(t) {
			yield(id)
		}
	}); !slices.Equal(got, made) {
		t.Errorf("labd holds rows %q, want only %q", got, made)
	}
	if got := slices.Sorted(slices.Values(a.e.sandboxStateDirs())); !slices.Equal(got, made) {
		t.Errorf("state dirs %q, want %q", got, made)
	}
	if got := slices.Sorted(slices.Values(a.e.sandboxCgroups())); !slices.Equal(got, made) {
		t.Errorf("cgroups %q, want %q", got, made)
	}

	// One more, on its own: nothing of it is written or built.
	before := a.e.hostSnapshot()
	_, err := G.sbx.CreateSandbox(rpcCtx(t), &labsv1.CreateSandboxRequest{Lab: "hello-link"})
	wantCode(t, "a create at quota", err, codes.ResourceExhausted)
	t.Logf("at quota: %s", status.Convert(err).Message())
	if after := a.e.hostSnapshot(); after != before {
		t.Errorf("a refused create changed the host:\nbefore %s\nafter  %s", before, after)
	}
	st, err := store.Open(rpcCtx(t), a.e.opts.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.AllSandboxes(rpcCtx(t))
	if err != nil || len(all) != 2 {
		t.Errorf("database rows: %d, %v; want 2", len(all), err)
	}

	// Admins are exempt; a delete frees a place.
	adminID := a.l.create(t, "hello-link").GetId()
	if _, err := G.sbx.DeleteSandbox(rpcCtx(t), &labsv1.DeleteSandboxRequest{Name: made[0]}); err != nil {
		t.Fatal(err)
	}
	a.e.assertHostClean(t, made[0])
	third := G.create(t, "hello-link")
	if ids := G.ids(t); !slices.Equal(ids, slices.Sorted(slices.Values([]string{made[1], third}))) {
		t.Errorf("gus lists %q", ids)
	}
	a.l.delete(t, adminID)
}

// TestAuthUnixPeerCred: on the unix socket the caller is its uid, read
// with SO_PEERCRED: root is an admin, uid 65534 a learner "uid:65534"
// who sees only its own; a token sent on the socket acts as its holder.
// The real labctl is the client, also over TCP with --token.
func TestAuthUnixPeerCred(t *testing.T) {
	a := startAuthLabd(t, false, 3)
	bin := filepath.Join(a.e.dir, "labctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../labctl").CombinedOutput(); err != nil {
		t.Fatalf("build labctl: %v\n%s", err, out)
	}
	if err := os.Chmod(a.e.opts.socket, 0o666); err != nil {
		t.Fatal(err)
	}
	labctl := func(uid uint32, env []string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--addr", "unix://" + a.e.opts.socket}, args...)...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
		cmd.Dir = "/"
		if uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("labctl %q: %v", args, err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}

	rootID := a.l.create(t, "hello-link").GetId()
	out, errs, code := labctl(65534, nil, "start", "hello-link")
	if code != 0 {
		t.Fatalf("labctl start as uid 65534 = %d: %s", code, errs)
	}
	mine := strings.TrimSpace(out)
	out, _, code = labctl(65534, nil, "ls", "-q")
	if code != 0 || out != mine+"\n" {
		t.Errorf("labctl ls -q as uid 65534 = %d, %q; want only %s", code, out, mine)
	}
	_, errs, code = labctl(65534, nil, "show", rootID)
	if code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("labctl show <root's sandbox> as uid 65534 = %d, %q; want not found", code, errs)
	}
	_, errs, code = labctl(65534, nil, "solve", mine, "first-ping")
	if code != 1 || !strings.Contains(errs, "not learners") {
		t.Errorf("labctl solve as uid 65534 = %d, %q; want permission denied", code, errs)
	}
	st, err := store.Open(rpcCtx(t), a.e.opts.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, want := range map[string]string{mine: "uid:65534", rootID: "uid:0"} {
		row, err := st.GetSandbox(rpcCtx(t), id)
		if err != nil || row.Owner != want {
			t.Errorf("owner of %s: %v %v; want %s", id, row, err, want)
		}
	}

	// A token on the socket overrides the uid, both ways.
	adminSecret, _ := a.token(t, labsv1.Token_ROLE_ADMIN, "ops", "")
	out, _, code = labctl(65534, []string{"NSLAB_TOKEN=" + adminSecret}, "ls", "-q")
	if want := strings.Join(slices.Sorted(slices.Values([]string{rootID, mine})), "\n") + "\n"; code != 0 || sortLines(out) != want {
		t.Errorf("uid 65534 with an admin token lists %q, want %q", out, want)
	}
	hal, _ := a.token(t, labsv1.Token_ROLE_LEARNER, "hal", "")
	out, _, code = labctl(0, nil, "--token", hal, "ls", "-q")
	if code != 0 || out != "" {
		t.Errorf("root with hal's token lists %q (%d), want nothing", out, code)
	}
	_, errs, code = labctl(0, nil, "--token", "nslab_nope", "ls")
	if code != 1 || !strings.Contains(errs, "unknown token") {
		t.Errorf("root with a wrong token = %d, %q; want unknown token", code, errs)
	}

	// labctl over TCP: TLS with --ca-cert, the token from $NSLAB_TOKEN.
	hid, errs, code := labctl(0, []string{"NSLAB_TOKEN=" + hal}, "--addr", a.addr, "--ca-cert", a.pki.caFile, "start", "hello-link")
	if code != 0 {
		t.Fatalf("labctl start over TCP as hal = %d: %s", code, errs)
	}
	out, errs, code = labctl(65534, nil, "--addr", a.addr, "--ca-cert", a.pki.caFile, "--token", hal, "ls", "-q")
	if code != 0 || out != hid || strings.TrimSpace(hid) == "" {
		t.Errorf("labctl ls over TCP as hal = %d, %q, %q; want %q", code, out, errs, hid)
	}
	_, errs, code = labctl(0, nil, "--addr", a.addr, "--ca-cert", a.pki.caFile, "ls")
	if code != 1 || !strings.Contains(errs, "no token") {
		t.Errorf("labctl over TCP without a token = %d, %q", code, errs)
	}
}

func sortLines(s string) string {
	lines := strings.Fields(s)
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}
