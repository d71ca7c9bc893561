package api

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "labd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestAuthPeerCredHandshake: the listener credentials read the real peer
// credentials of a unix connection, and refuse TCP without TLS.
func TestAuthPeerCredHandshake(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("unix", sock); err == nil {
			defer c.Close()
			buf := make([]byte, 1)
			c.Read(buf) // hold the connection until the server closes it
		}
	}()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	creds := ServerCredentials(nil)
	_, info, err := creds.ServerHandshake(conn)
	if err != nil {
		t.Fatal(err)
	}
	pc, ok := info.(PeerCred)
	if !ok || pc.UID != uint32(os.Getuid()) || pc.GID != uint32(os.Getgid()) || pc.PID != int32(os.Getpid()) {
		t.Errorf("peer credentials %+v; want uid %d gid %d pid %d", info, os.Getuid(), os.Getgid(), os.Getpid())
	}

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		if c, err := net.Dial("tcp", tl.Addr().String()); err == nil {
			c.Close()
		}
	}()
	tc, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, _, err := creds.ServerHandshake(tc); err == nil || !strings.Contains(err.Error(), "no TLS") {
		t.Errorf("TCP handshake without TLS: %v", err)
	}
}

func TestAuthenticator(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	learner, lt, err := st.CreateToken(ctx, store.RoleLearner, "w1/ann", "w1")
	if err != nil {
		t.Fatal(err)
	}
	revoked, rt, err := st.CreateToken(ctx, store.RoleInstructor, "ivy", "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeToken(ctx, rt.ID); err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(st, nil)
	var reasons []string
	a.OnFailure = func(r string) { reasons = append(reasons, r) }

	unixPeer := func(uid uint32) *peer.Peer {
		return &peer.Peer{Addr: &net.UnixAddr{Name: "@", Net: "unix"}, AuthInfo: PeerCred{UID: uid, PID: 42}}
	}
	tcpPeer := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, AuthInfo: credentials.TLSInfo{}}
	const method = "/labs.v1.SandboxService/ListSandboxes"
	tests := []struct {
		name   string
		peer   *peer.Peer
		auth   []string // authorization values
		method string
		want   *Caller // nil: refused
		reason string
		msg    string // in the refusal
	}{
		{name: "root on the socket", peer: unixPeer(0), want: &Caller{Subject: "uid:0", Role: store.RoleAdmin}},
		{name: "a user on the socket", peer: unixPeer(1000), want: &Caller{Subject: "uid:1000", Role: store.RoleLearner}},
		{name: "a token on the socket overrides the uid", peer: unixPeer(0), auth: []string{"Bearer " + learner},
			want: &Caller{Subject: "w1/ann", Role: store.RoleLearner, Workshop: "w1", TokenID: lt.ID}},
		{name: "a wrong token on the socket", peer: unixPeer(0), auth: []string{"Bearer nslab_x"}, reason: FailUnknownToken, msg: "unknown token"},
		{name: "a token over TCP", peer: tcpPeer, auth: []string{"bearer  " + learner + " "},
			want: &Caller{Subject: "w1/ann", Role: store.RoleLearner, Workshop: "w1", TokenID: lt.ID}},
		{name: "nothing over TCP", peer: tcpPeer, reason: FailNoToken, msg: "no token"},
		{name: "health over TCP", peer: tcpPeer, method: "/grpc.health.v1.Health/Check", want: &Caller{Role: roleAnonymous}},
		{name: "reflection over TCP", peer: tcpPeer, method: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", reason: FailNoToken, msg: "no token"},
		{name: "revoked", peer: tcpPeer, auth: []string{"Bearer " + revoked}, reason: FailRevokedToken, msg: "revoked token: token " + rt.ID},
		{name: "unknown", peer: tcpPeer, auth: []string{"Bearer " + learner + "x"}, reason: FailUnknownToken, msg: "unknown token"},
		{name: "basic", peer: tcpPeer, auth: []string{"Basic " + learner}, reason: FailMalformed, msg: "malformed"},
		{name: "no secret", peer: tcpPeer, auth: []string{"Bearer"}, reason: FailMalformed, msg: "malformed"},
		{name: "two secrets", peer: tcpPeer, auth: []string{"Bearer a b"}, reason: FailMalformed, msg: "malformed"},
		{name: "two headers", peer: tcpPeer, auth: []string{"Bearer " + learner, "Bearer " + learner}, reason: FailMalformed, msg: "malformed"},
		{name: "no peer", peer: nil, reason: FailTransport, msg: "unknown transport"},
		{name: "a token on an unknown transport", peer: &peer.Peer{Addr: &net.TCPAddr{}}, auth: []string{"Bearer " + learner}, reason: FailTransport, msg: "unknown transport"},
	}
	failures := int64(0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reasons = nil
			c := context.Background()
			if tc.peer != nil {
				c = peer.NewContext(c, tc.peer)
			}
			if len(tc.auth) > 0 {
				md := metadata.MD{}
				for _, v := range tc.auth {
					md.Append("authorization", v)
				}
				c = metadata.NewIncomingContext(c, md)
			}
			m := tc.method
			if m == "" {
				m = method
			}
			var got *Caller
			_, err := a.Unary(c, nil, &grpc.UnaryServerInfo{FullMethod: m}, func(ctx context.Context, _ any) (any, error) {
				got = CallerFrom(ctx)
				return nil, nil
			})
			if tc.want != nil {
				if err != nil || got == nil || *got != *tc.want {
					t.Fatalf("caller %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			failures++
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Errorf("%v; want Unauthenticated saying %q", err, tc.msg)
			}
			if len(reasons) != 1 || reasons[0] != tc.reason {
				t.Errorf("OnFailure got %q, want %q", reasons, tc.reason)
			}
			if got != nil {
				t.Errorf("the handler ran for a refused call")
			}
			if a.Failures() != failures {
				t.Errorf("Failures() = %d, want %d", a.Failures(), failures)
			}
		})
	}

	// Streams: the handler's stream carries the caller.
	ss := &fakeStream{ctx: peer.NewContext(t.Context(), unixPeer(7))}
	err = a.Stream(nil, ss, &grpc.StreamServerInfo{FullMethod: labsv1.SandboxService_Exec_FullMethodName}, func(_ any, s grpc.ServerStream) error {
		if c := CallerFrom(s.Context()); c == nil || c.Subject != "uid:7" || c.Role != store.RoleLearner {
			t.Errorf("stream caller %+v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ss = &fakeStream{ctx: peer.NewContext(t.Context(), tcpPeer)}
	err = a.Stream(nil, ss, &grpc.StreamServerInfo{FullMethod: labsv1.SandboxService_Exec_FullMethodName}, func(any, grpc.ServerStream) error {
		t.Error("the handler ran for a refused stream")
		return nil
	})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without a token: %v", err)
	}
}

// TestAuthorizeScopes: who may do what to which sandbox row, without
// listeners (the server test covers them end to end).
func TestAuthorizeScopes(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	for _, tk := range [][3]string{{store.RoleLearner, "w1/ann", "w1"}, {store.RoleLearner, "bob", ""}} {
		if _, _, err := st.CreateToken(ctx, tk[0], tk[1], tk[2]); err != nil {
			t.Fatal(err)
		}
	}
	owners := map[string]string{"s-aaaaaa": "w1/ann", "s-bbbbbb": "bob", "s-cccccc": "uid:1000", "s-dddddd": ""}
	for id, o := range owners {
		if _, err := st.CreateSandbox(ctx, id, "routed", o, []string{"h1"}, 1<<20, 8); err != nil {
			t.Fatal(err)
		}
	}
	s := NewSandboxServer(Config{Store: st, Catalog: testCatalog(t)})
	callers := map[string]*Caller{
		"none":       nil,
		"admin":      {Subject: "uid:0", Role: store.RoleAdmin},
		"ann":        {Subject: "w1/ann", Role: store.RoleLearner, Workshop: "w1"},
		"bob":        {Subject: "bob", Role: store.RoleLearner},
		"uid 1000":   {Subject: "uid:1000", Role: store.RoleLearner},
		"instructor": {Subject: "ivy", Role: store.RoleInstructor, Workshop: "w1"},
		"lone instr": {Subject: "ivy", Role: store.RoleInstructor},
		"anonymous":  {Role: roleAnonymous},
	}
	// caller -> the ids it may see.
	sees := map[string]string{
		"none": "s-aaaaaa s-bbbbbb s-cccccc s-dddddd", "admin": "s-aaaaaa s-bbbbbb s-cccccc s-dddddd",
		"ann": "s-aaaaaa", "bob": "s-bbbbbb", "uid 1000": "s-cccccc",
		"instructor": "s-aaaaaa", "lone instr": "", "anonymous": "",
	}
	for name, c := range callers {
		cctx := ctx
		if c != nil {
			cctx = WithCaller(ctx, c)
		}
		for id := range owners {
			want := strings.Contains(sees[name], id)
			_, err := s.sandboxRow(cctx, id, actUse)
			switch {
			case want && err != nil:
				t.Errorf("%s on %s: %v, want allowed", name, id, err)
			case !want && status.Code(toStatus(err)) != codes.NotFound:
				t.Errorf("%s on %s: %v, want NotFound", name, id, err)
			case !want && err.Error() != `sandbox "`+id+`": not found`:
				t.Errorf("%s on %s: message %q differs from an unknown id's", name, id, err)
			}
			if want != s.visibleTo(cctx, id) {
				t.Errorf("visibleTo(%s, %s) = %v", name, id, !want)
			}
			_, err = s.sandboxRow(cctx, id, actSolve)
			switch {
			case want && (c == nil || c.Role != store.RoleLearner) && err != nil:
				t.Errorf("%s solve on %s: %v, want allowed", name, id, err)
			case want && c != nil && c.Role == store.RoleLearner && status.Code(toStatus(err)) != codes.PermissionDenied:
				t.Errorf("%s solve on %s: %v, want PermissionDenied", name, id, err)
			}
		}
		resp, err := s.ListSandboxes(cctx, &labsv1.ListSandboxesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sb := range resp.GetSandboxes() {
			got = append(got, sb.GetId())
		}
		for _, id := range got {
			if !strings.Contains(sees[name], id) {
				t.Errorf("%s lists %s", name, id)
			}
		}
		if len(got) != len(strings.Fields(sees[name])) {
			t.Errorf("%s lists %q, want %q", name, got, sees[name])
		}
	}
}
