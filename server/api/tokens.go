package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

// TokenServer serves TokenService, for admins only.
type TokenServer struct {
	labsv1.UnimplementedTokenServiceServer
	store *store.Store
	log   *slog.Logger
}

// NewTokenServer returns a TokenService over st's tokens.
func NewTokenServer(st *store.Store, log *slog.Logger) *TokenServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TokenServer{store: st, log: log}
}

var roleToProto = map[string]labsv1.Token_Role{
	store.RoleAdmin:      labsv1.Token_ROLE_ADMIN,
	store.RoleInstructor: labsv1.Token_ROLE_INSTRUCTOR,
	store.RoleLearner:    labsv1.Token_ROLE_LEARNER,
}

func tokenToProto(t *store.Token) *labsv1.Token {
	out := &labsv1.Token{
		Name: "tokens/" + t.ID, Id: t.ID, Role: roleToProto[t.Role], Subject: t.Subject, Workshop: t.Workshop,
		CreateTime: timestamppb.New(t.Created),
	}
	if !t.Revoked.IsZero() {
		out.RevokeTime = timestamppb.New(t.Revoked)
	}
	return out
}

// adminOnly refuses every caller but an admin.
func adminOnly(ctx context.Context, what string) error {
	if unrestricted(ctx) {
		return nil
	}
	return fmt.Errorf("%s: tokens are managed by admins, and this call is made as %s %s: %w",
		what, CallerFrom(ctx).Role, CallerFrom(ctx).Subject, errPermission)
}

// CreateToken makes a token and returns its secret, once.
func (s *TokenServer) CreateToken(ctx context.Context, req *labsv1.CreateTokenRequest) (*labsv1.CreateTokenResponse, error) {
	if err := adminOnly(ctx, "create token"); err != nil {
		return nil, toStatus(err)
	}
	var role string
	for r, p := range roleToProto {
		if p == req.GetRole() {
			role = r
		}
	}
	if role == "" {
		return nil, toStatus(invalidField("role", "required: ROLE_ADMIN, ROLE_INSTRUCTOR or ROLE_LEARNER"))
	}
	if sub := req.GetSubject(); sub == "" || len(sub) > 128 || strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, toStatus(invalidField("subject", "want 1-128 printable bytes, got %q", sub))
	}
	if w := req.GetWorkshop(); len(w) > 128 || strings.ContainsFunc(w, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, toStatus(invalidField("workshop", "want at most 128 printable bytes, got %q", w))
	}
	secret, tok, err := s.store.CreateToken(ctx, role, req.GetSubject(), req.GetWorkshop())
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("token created", "token", tok.ID, "role", tok.Role, "subject", tok.Subject, "workshop", tok.Workshop, "by", callerName(ctx))
	return &labsv1.CreateTokenResponse{Token: tokenToProto(tok), Secret: secret}, nil
}

// ListTokens lists tokens oldest first; the page token is the offset.
func (s *TokenServer) ListTokens(ctx context.Context, req *labsv1.ListTokensRequest) (*labsv1.ListTokensResponse, error) {
	if err := adminOnly(ctx, "list tokens"); err != nil {
		return nil, toStatus(err)
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	all, err := s.store.ListTokens(ctx, req.GetWorkshop())
	if err != nil {
		return nil, toStatus(err)
	}
	off := 0
	if t := req.GetPageToken(); t != "" {
		if off, err = strconv.Atoi(t); err != nil || off <= 0 || off > len(all) {
			return nil, toStatus(invalidField("page_token", "not a token this server issued"))
		}
	}
	end := min(off+size, len(all))
	resp := &labsv1.ListTokensResponse{}
	for _, t := range all[off:end] {
		resp.Tokens = append(resp.Tokens, tokenToProto(t))
	}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// RevokeToken revokes a token by id.
func (s *TokenServer) RevokeToken(ctx context.Context, req *labsv1.RevokeTokenRequest) (*labsv1.RevokeTokenResponse, error) {
	if err := adminOnly(ctx, "revoke token"); err != nil {
		return nil, toStatus(err)
	}
	id := strings.TrimPrefix(req.GetName(), "tokens/")
	if id == "" {
		return nil, toStatus(invalidField("name", "required: a token id or tokens/{token}"))
	}
	tok, err := s.store.RevokeToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, toStatus(fmt.Errorf("token %q: %w", id, store.ErrNotFound))
	}
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("token revoked", "token", tok.ID, "subject", tok.Subject, "by", callerName(ctx))
	return &labsv1.RevokeTokenResponse{Token: tokenToProto(tok)}, nil
}

// callerName is how logs name ctx's caller.
func callerName(ctx context.Context) string {
	c := CallerFrom(ctx)
	if c == nil {
		return "in-process"
	}
	if c.TokenID != "" {
		return c.Subject + " (" + c.TokenID + ")"
	}
	return c.Subject
}
