package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func mustWorkshop(t *testing.T, s *Store, id string, learners ...string) (*Workshop, *WorkshopSecrets) {
	t.Helper()
	w, sec, err := s.CreateWorkshop(t.Context(), NewWorkshop{ID: id, Lab: "routed", Creator: "uid:0", TTL: time.Hour, Learners: learners})
	if err != nil {
		t.Fatalf("CreateWorkshop(%s): %v", id, err)
	}
	return w, sec
}

func TestCreateWorkshop(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	w, sec := mustWorkshop(t, s, "w-00000a", "ann", "bob")
	if w.Learners != 2 || w.InstructorToken == "" || len(sec.Learners) != 2 || sec.Instructor == "" {
		t.Fatalf("workshop %+v, secrets %+v", w, sec)
	}
	// Each secret is a working token of the right role, subject and workshop.
	for i, want := range []struct{ secret, role, subject string }{
		{sec.Instructor, RoleInstructor, "w-00000a:instructor"},
		{sec.Learners[0], RoleLearner, "w-00000a/ann"},
		{sec.Learners[1], RoleLearner, "w-00000a/bob"},
	} {
		tok, err := s.LookupToken(ctx, want.secret)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if tok.Role != want.role || tok.Subject != want.subject || tok.Workshop != "w-00000a" {
			t.Errorf("token %d = %+v; want %s %s of w-00000a", i, tok, want.role, want.subject)
		}
	}
	got, err := s.GetWorkshop(ctx, "w-00000a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Lab != "routed" || got.TTL != time.Hour || got.Creator != "uid:0" || got.Learners != 2 ||
		got.InstructorToken != w.InstructorToken || !got.Deleted.IsZero() || !got.Created.Equal(w.Created) {
		t.Errorf("GetWorkshop = %+v; created %+v", got, w)
	}
	ls, err := s.WorkshopLearners(ctx, "w-00000a")
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Name != "ann" || ls[1].Name != "bob" || ls[0].Current != nil || ls[0].Token == "" {
		t.Errorf("learners = %+v", ls)
	}

	if _, _, err := s.CreateWorkshop(ctx, NewWorkshop{ID: "w-00000a", Lab: "routed", Learners: []string{"x"}}); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("same id again: %v; want ErrAlreadyExists", err)
	}
	// A failing roster leaves nothing: no workshop, learner or token.
	tokens := count(t, s, "tokens")
	if _, _, err := s.CreateWorkshop(ctx, NewWorkshop{ID: "w-00000b", Lab: "routed", Learners: []string{"x", "y", "x"}}); err == nil {
		t.Fatal("a roster naming x twice was stored")
	}
	if _, err := s.GetWorkshop(ctx, "w-00000b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after a failed create: %v", err)
	}
	if n := count(t, s, "tokens"); n != tokens {
		t.Errorf("tokens %d -> %d after a failed create", tokens, n)
	}
	for _, nw := range []NewWorkshop{
		{ID: "w-1", Lab: "routed", Learners: []string{"x"}},
		{ID: "w-00000c", Learners: []string{"x"}},
		{ID: "w-00000c", Lab: "routed"},
	} {
		if _, _, err := s.CreateWorkshop(ctx, nw); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateWorkshop(%+v) = %v; want ErrInvalid", nw, err)
		}
	}
}

func TestWorkshopLearnerSandboxes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	mustWorkshop(t, s, "w-00000a", "ann", "bob", "cy")
	// ann: a workshop sandbox, then a newer one she made herself.
	if _, err := s.CreateSandbox(ctx, "s-a00001", "routed", "w-00000a/ann", []string{"h1"}, testUIDStart, testSlots); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLearnerSandbox(ctx, "w-00000a", "ann", "s-a00001", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(ctx, "s-a00001", StateReady, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // created is the ordering key
	if _, err := s.CreateSandbox(ctx, "s-a00002", "routed", "w-00000a/ann", []string{"h1"}, testUIDStart, testSlots); err != nil {
		t.Fatal(err)
	}
	// bob: had one, now gone, then a failed attempt.
	if err := s.SetLearnerSandbox(ctx, "w-00000a", "bob", "s-b00001", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLearnerSandbox(ctx, "w-00000a", "bob", "", "no uid ranges"); err != nil {
		t.Fatal(err)
	}
	// Someone else's sandbox with a similar owner is not bob's.
	if _, err := s.CreateSandbox(ctx, "s-c00001", "routed", "w-00000a/bobby", []string{"h1"}, testUIDStart, testSlots); err != nil {
		t.Fatal(err)
	}
	ls, err := s.WorkshopLearners(ctx, "w-00000a")
	if err != nil {
		t.Fatal(err)
	}
	ann, bob, cy := ls[0], ls[1], ls[2]
	if ann.Current == nil || ann.Current.ID != "s-a00002" || ann.Current.State != StateCreating || ann.Sandbox != "s-a00001" {
		t.Errorf("ann = %+v current %+v", ann, ann.Current)
	}
	if bob.Current != nil || bob.Sandbox != "s-b00001" || bob.Failure != "no uid ranges" {
		t.Errorf("bob = %+v current %+v", bob, bob.Current)
	}
	if cy.Current != nil || cy.Sandbox != "" || cy.Failure != "" {
		t.Errorf("cy = %+v", cy)
	}
	one, err := s.GetLearner(ctx, "w-00000a", "ann")
	if err != nil || one.Current == nil || one.Current.ID != "s-a00002" || one.Subject() != "w-00000a/ann" {
		t.Errorf("GetLearner = %+v, %v", one, err)
	}
	if _, err := s.GetLearner(ctx, "w-00000a", "dee"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetLearner(dee) = %v", err)
	}
	if err := s.SetLearnerSandbox(ctx, "w-00000a", "dee", "s-d00001", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetLearnerSandbox(dee) = %v", err)
	}
	ids, err := s.OwnedSandboxes(ctx, "w-00000a/ann")
	if err != nil || !slices.Equal(ids, []string{"s-a00001", "s-a00002"}) {
		t.Errorf("OwnedSandboxes(ann) = %q, %v", ids, err)
	}
	if o, err := s.SandboxOwner(ctx, "s-c00001"); err != nil || o != "w-00000a/bobby" {
		t.Errorf("SandboxOwner = %q, %v", o, err)
	}
	if _, err := s.SandboxOwner(ctx, "s-zzzzzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SandboxOwner(missing) = %v", err)
	}
}

func TestDeleteWorkshop(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	_, sec := mustWorkshop(t, s, "w-00000a", "ann", "bob")
	mustWorkshop(t, s, "w-00000b", "ann")
	w, n, err := s.DeleteWorkshop(ctx, "w-00000a")
	if err != nil || n != 3 || w.Deleted.IsZero() {
		t.Fatalf("DeleteWorkshop = %+v, %d, %v; want 3 tokens revoked", w, n, err)
	}
	for _, secret := range append(sec.Learners, sec.Instructor) {
		if _, err := s.LookupToken(ctx, secret); !errors.Is(err, ErrRevoked) {
			t.Errorf("token after delete: %v; want ErrRevoked", err)
		}
	}
	// Again: nothing more to revoke, the first deletion time is kept.
	w2, n, err := s.DeleteWorkshop(ctx, "w-00000a")
	if err != nil || n != 0 || !w2.Deleted.Equal(w.Deleted) {
		t.Errorf("second delete = %+v, %d, %v", w2, n, err)
	}
	// The other workshop's tokens are untouched; the roster is kept.
	if toks, _ := s.ListTokens(ctx, "w-00000b"); len(toks) != 2 || !toks[0].Revoked.IsZero() {
		t.Errorf("w-00000b tokens = %+v", toks)
	}
	if ls, err := s.WorkshopLearners(ctx, "w-00000a"); err != nil || len(ls) != 2 {
		t.Errorf("roster after delete: %d, %v", len(ls), err)
	}
	if _, _, err := s.DeleteWorkshop(ctx, "w-0000ff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete missing = %v", err)
	}
}

func TestListWorkshops(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("w-00000%d", i)
		_, _, err := s.CreateWorkshop(ctx, NewWorkshop{ID: id, Lab: "routed", Creator: fmt.Sprintf("c%d", i%2), Learners: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{id}, ids...) // newest first
		time.Sleep(time.Millisecond)
	}
	if _, _, err := s.DeleteWorkshop(ctx, "w-000002"); err != nil {
		t.Fatal(err)
	}
	list := func(f WorkshopFilter, size int) []string {
		t.Helper()
		var out []string
		token := ""
		for range 10 {
			ws, next, err := s.ListWorkshops(ctx, f, size, token)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range ws {
				out = append(out, w.ID)
			}
			if token = next; token == "" {
				return out
			}
		}
		t.Fatal("paging does not end")
		return nil
	}
	all := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "w-000002" })
	if got := list(WorkshopFilter{}, 2); !slices.Equal(got, all) {
		t.Errorf("list = %q; want %q", got, all)
	}
	if got := list(WorkshopFilter{ShowDeleted: true}, 1); !slices.Equal(got, ids) {
		t.Errorf("list deleted too = %q; want %q", got, ids)
	}
	// An instructor's view: their token's workshop and those they created.
	if got := list(WorkshopFilter{Scoped: true, ID: "w-000004", Creator: "c1"}, 10); !slices.Equal(got, []string{"w-000004", "w-000003", "w-000001"}) {
		t.Errorf("scoped list = %q", got)
	}
	if got := list(WorkshopFilter{Scoped: true}, 10); len(got) != 0 {
		t.Errorf("scoped to nothing = %q", got)
	}
	if _, _, err := s.ListWorkshops(ctx, WorkshopFilter{}, 10, "!!"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad page token: %v", err)
	}
}

func TestWorkshopLatestGrades(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	mustWorkshop(t, s, "w-00000a", "ann", "bob", "cy")
	mustWorkshop(t, s, "w-00000b", "ann")
	owners := map[string]string{
		"s-a00001": "w-00000a/ann", "s-b00001": "w-00000a/bob", "s-x00001": "w-00000b/ann",
	}
	for id, owner := range owners {
		if _, err := s.CreateSandbox(ctx, id, "routed", owner, []string{"h1"}, testUIDStart, testSlots); err != nil {
			t.Fatal(err)
		}
	}
	add := func(sb, ex string, score int) {
		t.Helper()
		if _, err := s.AddGrade(ctx, &Grade{Sandbox: sb, Owner: owners[sb], Lab: "routed", Exercise: ex, Time: time.Now(), Score: score, Max: 4, Passed: score == 4, Report: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	add("s-a00001", "e1", 1)
	add("s-a00001", "e1", 4)
	add("s-a00001", "e2", 2)
	add("s-b00001", "e2", 3)
	add("s-x00001", "e1", 0) // another workshop's ann
	// Grades outlive their sandbox and stay the learner's.
	if err := s.DeleteSandbox(ctx, "s-a00001"); err != nil {
		t.Fatal(err)
	}
	add("s-b00001", "e2", 1) // bob's later, worse grade is his latest
	got, err := s.LatestGrades(ctx, "w-00000a")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, g := range got {
		rows = append(rows, fmt.Sprintf("%s %s %s %d %v", g.Learner, g.Sandbox, g.Exercise, g.Score, g.Passed))
	}
	want := []string{"ann s-a00001 e1 4 true", "ann s-a00001 e2 2 false", "bob s-b00001 e2 1 false"}
	if !slices.Equal(rows, want) {
		t.Errorf("LatestGrades = %q; want %q", rows, want)
	}
	// The grade keeps the owner it was written with after its sandbox is gone.
	var owner string
	if err := s.r.QueryRowContext(ctx, `SELECT owner FROM grades WHERE sandbox = 's-a00001' AND exercise = 'e2'`).Scan(&owner); err != nil || owner != "w-00000a/ann" {
		t.Errorf("owner = %q, %v", owner, err)
	}
}

func TestWorkshopLearnerSubjects(t *testing.T) {
	for _, tc := range []struct {
		subject, ws, name string
		ok                bool
	}{
		{"w-00000a/ann", "w-00000a", "ann", true},
		{"w-00000a/a.b_c-1", "w-00000a", "a.b_c-1", true},
		{"w-00000a:instructor", "", "", false},
		{"uid:0", "", "", false},
		{"w-00000a/", "", "", false},
		{"w-00000a/ann/x", "", "", false},
		{"w-00000A/ann", "", "", false},
		{"x-00000a/ann", "", "", false},
	} {
		ws, name, ok := ParseLearnerSubject(tc.subject)
		if ws != tc.ws || name != tc.name || ok != tc.ok {
			t.Errorf("ParseLearnerSubject(%q) = %q, %q, %v", tc.subject, ws, name, ok)
		}
	}
	if id := NewWorkshopID(); !ValidWorkshopID(id) {
		t.Errorf("NewWorkshopID() = %q is not valid", id)
	}
	if ws, name, ok := ParseLearnerSubject(LearnerSubject("w-0a0b0c", "ann")); !ok || ws != "w-0a0b0c" || name != "ann" {
		t.Error("LearnerSubject does not round-trip")
	}
}
