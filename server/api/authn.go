package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"nslab/server/store"
)

// Authentication: who is calling is established once per RPC, by the
// interceptors of an Authenticator, from what the listener's credentials
// (ServerCredentials) recorded about the connection:
//
//   - unix socket: the peer's uid, read with SO_PEERCRED when it
//     connected. uid 0 is an admin ("uid:0"); any other uid a learner
//     ("uid:N"). File permissions on the socket decide who may connect.
//   - TCP: TLS (client certificates required with --tls-client-ca), and
//     on every call the metadata "authorization: Bearer <secret>" of a
//     token that is known and not revoked. Only health checks go without.
//
// A bearer token sent on the unix socket overrides the uid: the call is
// made as the token's holder.

// PeerCred is the AuthInfo of a unix-socket connection: the credentials
// of the process that connected, as the kernel recorded them at connect.
type PeerCred struct {
	credentials.CommonAuthInfo
	UID, GID uint32
	PID      int32
}

// AuthType implements credentials.AuthInfo.
func (PeerCred) AuthType() string { return "peercred" }

// ValidateAuthority accepts any :authority override, as a local
// transport has no server name to check.
func (PeerCred) ValidateAuthority(string) error { return nil }

// ServerCredentials returns the transport credentials of labd's listeners:
// a unix-socket connection is identified by SO_PEERCRED (a PeerCred), any
// other gets a TLS handshake with tlsConfig, which must then be set (a
// TCP connection without it is refused).
func ServerCredentials(tlsConfig *tls.Config) credentials.TransportCredentials {
	c := &listenerCreds{}
	if tlsConfig != nil {
		c.tls = credentials.NewTLS(tlsConfig)
	}
	return c
}

type listenerCreds struct {
	tls credentials.TransportCredentials // nil: no TCP
}

func (c *listenerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("labd's listener credentials are for the server side only")
}

func (c *listenerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if conn.LocalAddr().Network() == "unix" {
		pc, err := peerCred(conn)
		if err != nil {
			return nil, nil, err
		}
		return conn, pc, nil
	}
	if c.tls == nil {
		return nil, nil, fmt.Errorf("connection from %s: no TLS is configured for %s connections", conn.RemoteAddr(), conn.LocalAddr().Network())
	}
	return c.tls.ServerHandshake(conn)
}

func (c *listenerCreds) Info() credentials.ProtocolInfo {
	if c.tls != nil {
		return c.tls.Info()
	}
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (c *listenerCreds) Clone() credentials.TransportCredentials {
	out := &listenerCreds{}
	if c.tls != nil {
		out.tls = c.tls.Clone()
	}
	return out
}

func (c *listenerCreds) OverrideServerName(string) error { return nil }

// peerCred reads SO_PEERCRED of a unix-socket connection.
func peerCred(conn net.Conn) (PeerCred, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return PeerCred{}, fmt.Errorf("unix connection %T: no file descriptor to read peer credentials from", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return PeerCred{}, fmt.Errorf("read peer credentials: %w", err)
	}
	var (
		uc   *syscall.Ucred
		uerr error
	)
	if err := raw.Control(func(fd uintptr) {
		uc, uerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return PeerCred{}, fmt.Errorf("read peer credentials: %w", err)
	}
	if uerr != nil {
		return PeerCred{}, fmt.Errorf("read peer credentials: %w", uerr)
	}
	return PeerCred{
		// As grpc's local credentials: a unix socket never leaves the host.
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		UID:            uc.Uid, GID: uc.Gid, PID: uc.Pid,
	}, nil
}

// Authentication failure reasons, as logged and passed to OnFailure.
const (
	FailNoToken      = "no token"
	FailMalformed    = "malformed authorization"
	FailUnknownToken = "unknown token"
	FailRevokedToken = "revoked token"
	FailTransport    = "unknown transport"
)

// openMethods may be called over TCP without a token: load balancers and
// orchestrators probe health without credentials.
var openMethods = []string{"/grpc.health.v1.Health/"}

// Authenticator establishes the Caller of every RPC; see Unary and
// Stream. It is safe for concurrent use.
type Authenticator struct {
	store    *store.Store
	log      *slog.Logger
	failures atomic.Int64
	// OnFailure, if set before serving, is called with the reason of
	// every refused call (a Fail* constant), e.g. to count it by reason.
	OnFailure func(reason string)
}

// NewAuthenticator returns an Authenticator looking tokens up in st.
func NewAuthenticator(st *store.Store, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{store: st, log: log}
}

// Failures is how many calls have been refused as unauthenticated.
func (a *Authenticator) Failures() int64 { return a.failures.Load() }

// Unary is the unary server interceptor.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

// authenticate returns ctx carrying the caller, or an Unauthenticated
// status saying why there is none.
func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	p, _ := peer.FromContext(ctx)
	var (
		authInfo credentials.AuthInfo
		addr     = "unknown"
	)
	if p != nil {
		authInfo = p.AuthInfo
		if p.Addr != nil {
			addr = p.Addr.String()
		}
	}
	pc, unix := authInfo.(PeerCred)
	_, tcp := authInfo.(credentials.TLSInfo)
	if unix { // the address of a unix peer says nothing
		addr = fmt.Sprintf("unix uid %d pid %d", pc.UID, pc.PID)
	}
	fail := func(reason, detail string, attrs ...any) (context.Context, error) {
		a.failures.Add(1)
		if a.OnFailure != nil {
			a.OnFailure(reason)
		}
		a.log.Warn("call refused: not authenticated", append([]any{"peer", addr, "method", method, "reason", reason}, attrs...)...)
		return nil, toStatus(fmt.Errorf("%s: %w", detail, errUnauthenticated))
	}

	secret, present, err := bearer(ctx)
	switch {
	case err != nil:
		return fail(FailMalformed, err.Error())
	case present:
		tok, err := a.store.LookupToken(ctx, secret)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fail(FailUnknownToken, "unknown token: labd has no such token")
		case errors.Is(err, store.ErrRevoked):
			return fail(FailRevokedToken, fmt.Sprintf("revoked token: token %s was revoked at %s", tok.ID, tok.Revoked.Format("2006-01-02 15:04:05Z07:00")), "token", tok.ID)
		case err != nil:
			return nil, toStatus(fmt.Errorf("authenticate: %w", err))
		}
		if !unix && !tcp {
			return fail(FailTransport, "unknown transport")
		}
		return WithCaller(ctx, &Caller{Subject: tok.Subject, Role: tok.Role, Workshop: tok.Workshop, TokenID: tok.ID}), nil
	case unix:
		c := &Caller{Subject: "uid:" + strconv.FormatUint(uint64(pc.UID), 10), Role: store.RoleLearner}
		if pc.UID == 0 {
			c.Role = store.RoleAdmin
		}
		return WithCaller(ctx, c), nil
	case tcp:
		for _, m := range openMethods {
			if strings.HasPrefix(method, m) {
				return WithCaller(ctx, &Caller{Role: roleAnonymous}), nil
			}
		}
		return fail(FailNoToken, "no token: calls over TCP need the metadata \"authorization: Bearer <token>\"")
	}
	return fail(FailTransport, "unknown transport: labd serves only its unix socket and TLS")
}

// roleAnonymous is the role of a tokenless health check over TCP: it
// sees nothing (its scope is the empty owner).
const roleAnonymous = "anonymous"

// bearer returns the secret of the call's "authorization: Bearer <secret>"
// metadata, and whether there was any authorization metadata at all.
func bearer(ctx context.Context) (string, bool, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, fmt.Errorf("malformed authorization: %d authorization values, want one", len(vals))
	}
	scheme, secret, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "bearer") || secret == "" || strings.ContainsAny(secret, " \t") {
		return "", true, errors.New(`malformed authorization: want "Bearer <token>"`)
	}
	return secret, true, nil
}
