package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ownedWorld makes sandboxes of several owners, newest last, and the
// tokens that tie learners to workshops:
//
//	alice, bob: learners without a workshop
//	w1/carol, w1/dave: learners of workshop w1; w2/erin of w2
//	instr: an instructor of w1 (owns one sandbox itself)
//	"": a row from before owners
func ownedWorld(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	ctx := t.Context()
	for _, tk := range []struct{ role, subject, workshop string }{
		{RoleLearner, "alice", ""},
		{RoleLearner, "bob", ""},
		{RoleLearner, "w1/carol", "w1"},
		{RoleLearner, "w1/dave", "w1"},
		{RoleLearner, "w2/erin", "w2"},
		{RoleInstructor, "instr", "w1"},
		// An instructor token is not a learner of its workshop.
		{RoleInstructor, "w1-helper", "w1"},
	} {
		if _, _, err := s.CreateToken(ctx, tk.role, tk.subject, tk.workshop); err != nil {
			t.Fatal(err)
		}
	}
	byOwner := map[string][]string{}
	owners := []string{"alice", "bob", "w1/carol", "alice", "w1/dave", "w2/erin", "instr", "", "w1-helper", "alice"}
	for i, o := range owners {
		id := fmt.Sprintf("s-%06d", i)
		if _, err := s.CreateSandbox(ctx, id, "lab", o, []string{"h1"}, testUIDStart, testSlots); err != nil {
			t.Fatal(err)
		}
		byOwner[o] = append(byOwner[o], id)
		time.Sleep(time.Microsecond) // distinct created times, as in real use
	}
	return byOwner
}

// listIn pages through ListSandboxesIn with the given page size and
// returns the ids in the order listed.
func listIn(t *testing.T, s *Store, sc Scope, size int) []string {
	t.Helper()
	var ids []string
	tok := ""
	for page := 0; ; page++ {
		if page > 50 {
			t.Fatalf("scope %+v: paging does not end: %q", sc, ids)
		}
		sbs, next, err := s.ListSandboxesIn(t.Context(), sc, size, tok)
		if err != nil {
			t.Fatalf("ListSandboxesIn(%+v): %v", sc, err)
		}
		if len(sbs) > size {
			t.Fatalf("page of %d rows, asked for %d", len(sbs), size)
		}
		for _, sb := range sbs {
			if len(sb.Nodes) != 1 {
				t.Errorf("%s listed with %d nodes", sb.ID, len(sb.Nodes))
			}
			ids = append(ids, sb.ID)
		}
		if tok = next; tok == "" {
			return ids
		}
	}
}

func TestOwnerScopeListing(t *testing.T) {
	s := openTest(t)
	byOwner := ownedWorld(t, s)
	newestFirst := func(owners ...string) []string {
		var ids []string
		for _, o := range owners {
			ids = append(ids, byOwner[o]...)
		}
		slices.Sort(ids)
		slices.Reverse(ids)
		return ids
	}
	tests := []struct {
		name  string
		scope Scope
		want  []string
	}{
		{"admin sees all", Scope{All: true}, newestFirst("alice", "bob", "w1/carol", "w1/dave", "w2/erin", "instr", "", "w1-helper")},
		{"a learner sees its own", Scope{Owner: "alice"}, newestFirst("alice")},
		{"another learner", Scope{Owner: "w1/carol", Workshop: ""}, newestFirst("w1/carol")},
		{"an instructor sees its workshop's learners and itself", Scope{Owner: "instr", Workshop: "w1"}, newestFirst("instr", "w1/carol", "w1/dave")},
		{"an instructor without a workshop sees its own", Scope{Owner: "instr"}, newestFirst("instr")},
		{"an unknown workshop adds nothing", Scope{Owner: "instr", Workshop: "w9"}, newestFirst("instr")},
		{"the zero scope sees nothing, not even owner-less rows", Scope{}, nil},
		{"a stranger sees nothing", Scope{Owner: "mallory"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 100} {
				if got := listIn(t, s, tc.scope, size); !slices.Equal(got, tc.want) {
					t.Errorf("page size %d: listed %q, want %q", size, got, tc.want)
				}
			}
		})
	}
	// ListSandboxes is the admin's listing.
	all, _, err := s.ListSandboxes(t.Context(), 100, "")
	if err != nil || len(all) != 10 {
		t.Errorf("ListSandboxes: %d rows, %v; want 10", len(all), err)
	}
	// A page token from one scope's listing only moves the keyset: rows
	// outside the scope stay out.
	_, next, err := s.ListSandboxesIn(t.Context(), Scope{All: true}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	rest, _, err := s.ListSandboxesIn(t.Context(), Scope{Owner: "bob"}, 100, next)
	if err != nil || len(rest) != 1 || rest[0].Owner != "bob" {
		t.Errorf("bob's listing after an admin's token: %v, %v", rest, err)
	}
	if _, _, err := s.ListSandboxesIn(t.Context(), Scope{Owner: "bob"}, 10, "!!"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad page token: %v, want ErrInvalid", err)
	}
}

func TestOwnerInScope(t *testing.T) {
	s := openTest(t)
	ownedWorld(t, s)
	tests := []struct {
		scope Scope
		owner string
		want  bool
	}{
		{Scope{All: true}, "anyone", true},
		{Scope{All: true}, "", true},
		{Scope{Owner: "alice"}, "alice", true},
		{Scope{Owner: "alice"}, "bob", false},
		{Scope{Owner: "alice"}, "", false},
		{Scope{}, "", false},
		{Scope{Owner: "instr", Workshop: "w1"}, "w1/carol", true},
		{Scope{Owner: "instr", Workshop: "w1"}, "instr", true},
		{Scope{Owner: "instr", Workshop: "w1"}, "w2/erin", false},
		{Scope{Owner: "instr", Workshop: "w1"}, "w1-helper", false}, // an instructor token, not a learner
		{Scope{Owner: "instr", Workshop: "w1"}, "alice", false},
		{Scope{Owner: "instr"}, "w1/carol", false},
	}
	for _, tc := range tests {
		got, err := s.InScope(t.Context(), tc.scope, tc.owner)
		if err != nil || got != tc.want {
			t.Errorf("InScope(%+v, %q) = %v, %v; want %v", tc.scope, tc.owner, got, err, tc.want)
		}
	}
}

func TestOwnerGrades(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	ownedWorld(t, s)
	add := func(sandbox, owner string, score int) {
		t.Helper()
		if _, err := s.AddGrade(ctx, &Grade{Sandbox: sandbox, Owner: owner, Lab: "lab", Exercise: "e1", Time: time.Now(), Score: score, Report: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// s-000000 is alice's; a grade from before owners has "".
	add("s-000000", "", 0)
	for i := 1; i <= 3; i++ {
		add("s-000000", "alice", i)
	}
	add("s-000002", "w1/carol", 7)
	scores := func(sc Scope, sandbox string, size int) []int {
		t.Helper()
		var out []int
		tok := ""
		for {
			gs, next, err := s.ListGradesIn(ctx, sc, sandbox, "", size, tok)
			if err != nil {
				t.Fatalf("ListGradesIn(%+v, %s): %v", sc, sandbox, err)
			}
			for _, g := range gs {
				out = append(out, g.Score)
			}
			if tok = next; tok == "" {
				return out
			}
		}
	}
	if got := scores(Scope{Owner: "alice"}, "s-000000", 1); !slices.Equal(got, []int{3, 2, 1}) {
		t.Errorf("alice's grades, one a page: %v, want [3 2 1]", got)
	}
	if got := scores(Scope{All: true}, "s-000000", 2); !slices.Equal(got, []int{3, 2, 1, 0}) {
		t.Errorf("admin: %v, want [3 2 1 0]", got)
	}
	if got := scores(Scope{Owner: "bob"}, "s-000000", 10); len(got) != 0 {
		t.Errorf("bob sees alice's grades: %v", got)
	}
	if got := scores(Scope{Owner: "instr", Workshop: "w1"}, "s-000002", 10); !slices.Equal(got, []int{7}) {
		t.Errorf("the instructor of w1 sees carol's grades as %v, want [7]", got)
	}
	if got := scores(Scope{Owner: "instr", Workshop: "w1"}, "s-000000", 10); len(got) != 0 {
		t.Errorf("the instructor of w1 sees alice's grades: %v", got)
	}
	// Grades stay visible to their owner once the sandbox is gone.
	if err := s.DeleteSandbox(ctx, "s-000000"); err != nil {
		t.Fatal(err)
	}
	if got := scores(Scope{Owner: "alice"}, "s-000000", 10); !slices.Equal(got, []int{3, 2, 1}) {
		t.Errorf("after delete, alice's grades: %v", got)
	}
}

func TestQuotaPerOwner(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	lim := Limits{PerOwner: 2}
	create := func(id, owner string) error {
		_, err := s.CreateSandboxLimited(ctx, id, "lab", owner, []string{"a", "b"}, testUIDStart, testSlots, lim)
		return err
	}
	for _, id := range []string{"a1", "a2"} {
		if err := create(id, "alice"); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
	rows := func() [3]int {
		return [3]int{count(t, s, "sandboxes"), count(t, s, "nodes"), count(t, s, "uid_leases")}
	}
	before := rows()
	err := create("a3", "alice")
	var qe *QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, ErrExhausted) {
		t.Fatalf("third sandbox of alice: %v, want a QuotaError wrapping ErrExhausted", err)
	}
	if qe.Owner != "alice" || qe.Have != 2 || qe.Limit != 2 {
		t.Errorf("quota error %+v", qe)
	}
	if !strings.Contains(err.Error(), "alice has 2 sandboxes, the limit is 2") {
		t.Errorf("message %q does not say who is at which limit", err)
	}
	if after := rows(); after != before {
		t.Errorf("a refused create wrote rows: sandboxes, nodes, leases %v -> %v", before, after)
	}
	if _, err := s.GetSandbox(ctx, "a3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused sandbox a3 has a row: %v", err)
	}
	// Others, the owner-less and unlimited creates are not affected.
	if err := create("b1", "bob"); err != nil {
		t.Errorf("bob's first: %v", err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := create(id, ""); err != nil {
			t.Errorf("owner-less %s: %v", id, err)
		}
	}
	if _, err := s.CreateSandboxLimited(ctx, "a4", "lab", "alice", []string{"x"}, testUIDStart, testSlots, Limits{}); err != nil {
		t.Errorf("alice without a limit: %v", err)
	}
	if err := s.DeleteSandbox(ctx, "a4"); err != nil {
		t.Fatal(err)
	}
	// A FAILED sandbox holds nothing in the kernel and does not count.
	if err := s.SetState(ctx, "a1", StateFailed, "lost"); err != nil {
		t.Fatal(err)
	}
	if err := create("a5", "alice"); err != nil {
		t.Errorf("with one of two FAILED: %v", err)
	}
	if _, err := s.CreateSandboxLimited(ctx, "a6", "lab", "alice", nil, testUIDStart, testSlots, Limits{PerOwner: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative limit: %v, want ErrInvalid", err)
	}
}

// TestQuotaConcurrent: creates racing for one owner's last places never
// pass the limit together.
func TestQuotaConcurrent(t *testing.T) {
	s := openTest(t)
	const limit, tries = 3, 12
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, over int
	)
	for i := range tries {
		wg.Go(func() {
			_, err := s.CreateSandboxLimited(t.Context(), fmt.Sprintf("c%02d", i), "lab", "carol", []string{"h"}, testUIDStart, testSlots, Limits{PerOwner: limit})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrExhausted):
				over++
			default:
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok != limit || over != tries-limit {
		t.Errorf("%d created, %d refused; want %d and %d", ok, over, limit, tries-limit)
	}
	if n := count(t, s, "sandboxes"); n != limit {
		t.Errorf("%d rows, want %d", n, limit)
	}
}

func TestTokenLifecycle(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	secret, tok, err := s.CreateToken(ctx, RoleLearner, "w1/ann", "w1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < 40 || !strings.HasPrefix(tok.ID, "t-") {
		t.Errorf("secret %q, id %q", secret, tok.ID)
	}
	// Only a hash is kept.
	var stored []byte
	if err := s.r.QueryRowContext(ctx, `SELECT hash FROM tokens WHERE id = ?`, tok.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), secret[len(TokenPrefix):]) || len(stored) != 32 {
		t.Errorf("stored %d bytes %q for the secret", len(stored), stored)
	}
	got, err := s.LookupToken(ctx, secret)
	if err != nil || got.ID != tok.ID || got.Role != RoleLearner || got.Subject != "w1/ann" || got.Workshop != "w1" {
		t.Fatalf("LookupToken = %+v, %v", got, err)
	}
	if _, err := s.LookupToken(ctx, secret+"x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a wrong secret: %v, want ErrNotFound", err)
	}
	if _, err := s.RevokeToken(ctx, "t-00000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v, want ErrNotFound", err)
	}
	rev, err := s.RevokeToken(ctx, tok.ID)
	if err != nil || rev.Revoked.IsZero() {
		t.Fatalf("revoke: %+v, %v", rev, err)
	}
	again, err := s.RevokeToken(ctx, tok.ID)
	if err != nil || !again.Revoked.Equal(rev.Revoked) {
		t.Errorf("second revoke: %+v, %v; want the first time kept", again, err)
	}
	if got, err := s.LookupToken(ctx, secret); !errors.Is(err, ErrRevoked) || got == nil || got.ID != tok.ID {
		t.Errorf("revoked token: %+v, %v; want it with ErrRevoked", got, err)
	}
	if _, _, err := s.CreateToken(ctx, "root", "x", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad role: %v", err)
	}
	if _, _, err := s.CreateToken(ctx, RoleLearner, "a\nb", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("subject with a newline: %v", err)
	}
	if _, _, err := s.CreateToken(ctx, RoleAdmin, "root", ""); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListTokens(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("ListTokens = %d, %v", len(all), err)
	}
	w1, err := s.ListTokens(ctx, "w1")
	if err != nil || len(w1) != 1 || w1[0].ID != tok.ID {
		t.Errorf("ListTokens(w1) = %v, %v", w1, err)
	}
}

// TestOwnerLookupSandbox: LookupSandbox is GetSandbox without nodes, and
// fails for a missing id with the very same message.
func TestOwnerLookupSandbox(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	if _, err := s.CreateSandbox(ctx, "s-aaaaaa", "lab", "alice", []string{"h1", "h2"}, testUIDStart, testSlots); err != nil {
		t.Fatal(err)
	}
	full, err := s.GetSandbox(ctx, "s-aaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	row, err := s.LookupSandbox(ctx, "s-aaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	full.Nodes = nil
	if !reflect.DeepEqual(row, full) {
		t.Errorf("LookupSandbox = %+v, GetSandbox %+v", row, full)
	}
	_, e1 := s.LookupSandbox(ctx, "s-zzzzzz")
	_, e2 := s.GetSandbox(ctx, "s-zzzzzz")
	if !errors.Is(e1, ErrNotFound) || e1.Error() != e2.Error() {
		t.Errorf("missing: %v vs %v", e1, e2)
	}
}
