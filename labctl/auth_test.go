package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and
// a client certificate, written as PEM files in dir.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	ca                                                   *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
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
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "labctl test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), ca: x509.NewCertPool()}
	p.ca.AddCert(caCert)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
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

// serveTLS runs f over TLS on 127.0.0.1 (requiring client certificates
// when mtls) and returns its address and the authorization metadata of
// every call.
func serveTLS(t *testing.T, pki *testPKI, mtls bool, f *fakeLabd) (string, func() []string) {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}}
	if mtls {
		cfg.ClientCAs, cfg.ClientAuth = pki.ca, tls.RequireAndVerifyClientCert
	}
	var (
		mu   sync.Mutex
		auth []string
	)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			auth = append(auth, strings.Join(md.Get("authorization"), ","))
			mu.Unlock()
			if len(md.Get("authorization")) == 0 {
				return nil, status.Error(codes.Unauthenticated, "no token")
			}
			return h(ctx, req)
		}))
	f.register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), auth...)
	}
}

// TestTLSAndToken goes through the real dialer over TCP: the CA given
// with --ca-cert is trusted, a client certificate is presented with
// --cert/--key, and the token (--token or $NSLAB_TOKEN) is sent as
// "authorization: Bearer" on every call.
func TestTLSAndToken(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	cfgWith := func(token string) config {
		c := config{now: func() time.Time { return testNow }}
		c.getenv = func(k string) string {
			if k == tokenEnv {
				return token
			}
			return ""
		}
		return c
	}

	addr, seen := serveTLS(t, pki, false, &fakeLabd{sandboxes: sampleSandboxes()})
	r := runCLI(t, cfgWith(""), "", "--addr", addr, "--ca-cert", pki.caFile, "--token", "nslab_flag", "ls", "-q")
	if r.code != 0 || r.stdout != "s-aaa111\ns-bbb222\ns-ccc333\n" {
		t.Fatalf("ls over TLS with --token = %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, cfgWith("nslab_env"), "", "--addr", addr, "--ca-cert", pki.caFile, "ls", "-q")
	if r.code != 0 {
		t.Fatalf("ls over TLS with $%s = %d, %q", tokenEnv, r.code, r.stderr)
	}
	r = runCLI(t, cfgWith("nslab_env"), "", "--addr", addr, "--ca-cert", pki.caFile, "--token", "nslab_flag", "ls", "-q")
	if r.code != 0 {
		t.Fatalf("ls with both = %d, %q", r.code, r.stderr)
	}
	if got, want := seen(), []string{"Bearer nslab_flag", "Bearer nslab_env", "Bearer nslab_flag"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server saw authorization %q, want %q (the flag beats the environment)", got, want)
	}

	// No token: the server's refusal, and a hint.
	r = runCLI(t, cfgWith(""), "", "--addr", addr, "--ca-cert", pki.caFile, "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "no token") || !strings.Contains(r.stderr, "--token or $"+tokenEnv) {
		t.Errorf("ls without a token = %d, %q", r.code, r.stderr)
	}
	// Without --ca-cert the system roots do not know the test CA.
	r = runCLI(t, cfgWith("x"), "", "--addr", addr, "--timeout", "10s", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("ls trusting only the system's CAs = %d, %q; want a certificate error", r.code, r.stderr)
	}
	r = runCLI(t, cfgWith("x"), "", "--addr", addr, "--ca-cert", filepath.Join(t.TempDir(), "none.pem"), "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "--ca-cert") {
		t.Errorf("missing --ca-cert file = %d, %q", r.code, r.stderr)
	}

	// mTLS: without a client certificate the handshake fails; with one
	// it works.
	maddr, _ := serveTLS(t, pki, true, &fakeLabd{sandboxes: sampleSandboxes()})
	r = runCLI(t, cfgWith("x"), "", "--addr", maddr, "--ca-cert", pki.caFile, "--timeout", "10s", "ls", "-q")
	if r.code != 1 {
		t.Errorf("ls to an mTLS server without --cert = %d, %q; want refused", r.code, r.stdout)
	}
	r = runCLI(t, cfgWith("x"), "", "--addr", maddr, "--ca-cert", pki.caFile, "--cert", pki.clientCert, "--key", pki.clientKey, "ls", "-q")
	if r.code != 0 || r.stdout != "s-aaa111\ns-bbb222\ns-ccc333\n" {
		t.Errorf("ls with a client certificate = %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}
