package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testUIDStart = 100000 // deliberately not a multiple of UIDRangeSize
	testSlots    = 64
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "labd.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustCreate(t *testing.T, s *Store, id string, nodes ...string) []Node {
	t.Helper()
	ns, err := s.CreateSandbox(t.Context(), id, "lab-"+id, "", nodes, testUIDStart, testSlots)
	if err != nil {
		t.Fatalf("CreateSandbox(%q): %v", id, err)
	}
	return ns
}

func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func bases(ns []Node) []uint32 {
	var out []uint32
	for _, n := range ns {
		out = append(out, n.UIDBase)
	}
	return out
}

func slot(k int) uint32 { return testUIDStart + uint32(k)*UIDRangeSize }

func TestOpenMigratesAndReopens(t *testing.T) {
	ctx := t.Context()
	// A nested, not-yet-existing directory, and URI-hostile bytes in the name.
	dir := filepath.Join(t.TempDir(), "var", "lib", "nslab")
	path := filepath.Join(dir, "lab d?#%.db")

	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		if got := count(t, s, "schema_migrations"); got != len(ms) {
			t.Errorf("open #%d: %d migrations recorded, want %d", i, got, len(ms))
		}
		var mode string
		if err := s.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("journal_mode = %q, want wal", mode)
		}
		var fk int
		if err := s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if fk != 1 {
			t.Errorf("foreign_keys = %d, want 1", fk)
		}
		if i == 0 {
			mustCreate(t, s, "keep", "h1")
		}
		ids = append(ids, s.InstanceID())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids[0]) != 8 {
		t.Errorf("InstanceID %q: want 8 hex chars", ids[0])
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("InstanceID changed across opens: %v", ids)
	}

	// Data survives, in the file at exactly that path.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetSandbox(ctx, "keep"); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if name := e.Name(); !strings.HasPrefix(name, filepath.Base(path)) {
			t.Errorf("stray file %q: the path was not used verbatim", name)
		}
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
}

func TestOpenDifferentDatabasesHaveDifferentInstanceIDs(t *testing.T) {
	a, b := openTest(t), openTest(t)
	if a.InstanceID() == b.InstanceID() {
		t.Errorf("two databases share instance id %q", a.InstanceID())
	}
}

func TestCreateGetDelete(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)

	before := time.Now()
	nodes := mustCreate(t, s, "s-1", "r1", "h1", "h2") // not alphabetical on purpose
	want := []Node{
		{Sandbox: "s-1", Name: "r1", UIDBase: slot(0)},
		{Sandbox: "s-1", Name: "h1", UIDBase: slot(1)},
		{Sandbox: "s-1", Name: "h2", UIDBase: slot(2)},
	}
	if !slices.Equal(nodes, want) {
		t.Fatalf("CreateSandbox nodes = %+v, want %+v", nodes, want)
	}

	if err := s.SetNodeProcess(ctx, "s-1", "h1", 4242, 1<<40); err != nil {
		t.Fatal(err)
	}
	want[1].Pid, want[1].StartTime = 4242, 1<<40

	sb, err := s.GetSandbox(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if sb.ID != "s-1" || sb.Lab != "lab-s-1" || sb.State != StateCreating || sb.Failure != "" {
		t.Errorf("GetSandbox = %+v", sb)
	}
	if sb.Created.Before(before.Add(-time.Millisecond)) || sb.Created.After(time.Now()) || sb.Created.Location() != time.UTC {
		t.Errorf("Created = %v, want about now in UTC", sb.Created)
	}
	if !sb.Ready.IsZero() {
		t.Errorf("Ready = %v before READY, want zero", sb.Ready)
	}
	if !slices.Equal(sb.Nodes, want) {
		t.Errorf("Nodes = %+v, want %+v", sb.Nodes, want)
	}

	if err := s.SetState(ctx, "s-1", StateReady, ""); err != nil {
		t.Fatal(err)
	}
	sb, _ = s.GetSandbox(ctx, "s-1")
	ready := sb.Ready
	if sb.State != StateReady || ready.IsZero() || ready.Before(sb.Created) {
		t.Errorf("after READY: state %s ready %v created %v", sb.State, ready, sb.Created)
	}
	// Re-entering READY (re-adoption) keeps the first Ready time.
	if err := s.SetState(ctx, "s-1", StateReady, ""); err != nil {
		t.Fatal(err)
	}
	if sb, _ = s.GetSandbox(ctx, "s-1"); !sb.Ready.Equal(ready) {
		t.Errorf("Ready moved from %v to %v", ready, sb.Ready)
	}

	// FAILED keeps the row and its leases.
	if err := s.SetState(ctx, "s-1", StateFailed, "veth r1.eth0: no space"); err != nil {
		t.Fatal(err)
	}
	sb, _ = s.GetSandbox(ctx, "s-1")
	if sb.State != StateFailed || sb.Failure != "veth r1.eth0: no space" || len(sb.Nodes) != 3 {
		t.Errorf("after FAILED: %+v", sb)
	}
	if n := count(t, s, "uid_leases"); n != 3 {
		t.Errorf("FAILED sandbox holds %d leases, want 3", n)
	}

	for i := range 2 { // the second delete is of a missing id
		if err := s.DeleteSandbox(ctx, "s-1"); err != nil {
			t.Fatalf("DeleteSandbox #%d: %v", i, err)
		}
	}
	if _, err := s.GetSandbox(ctx, "s-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSandbox after delete: %v, want ErrNotFound", err)
	}
	for _, table := range []string{"sandboxes", "nodes", "uid_leases"} {
		if n := count(t, s, table); n != 0 {
			t.Errorf("%s has %d rows after delete", table, n)
		}
	}
}

func TestNotFound(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mustCreate(t, s, "there", "h1")

	tests := []struct {
		name string
		call func() error
	}{
		{"GetSandbox", func() error { _, err := s.GetSandbox(ctx, "missing"); return err }},
		{"SetState", func() error { return s.SetState(ctx, "missing", StateReady, "") }},
		{"SetNodeProcess missing sandbox", func() error { return s.SetNodeProcess(ctx, "missing", "h1", 1, 1) }},
		{"SetNodeProcess missing node", func() error { return s.SetNodeProcess(ctx, "there", "h9", 1, 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			if err == ErrNotFound {
				t.Errorf("error %q carries no context", err)
			}
		})
	}
}

func TestCreateRejects(t *testing.T) {
	s := openTest(t)
	mustCreate(t, s, "taken", "h1")

	tests := []struct {
		name     string
		id, lab  string
		nodes    []string
		uidStart uint32
		slots    int
		want     error
	}{
		{"duplicate id", "taken", "l", []string{"h1"}, testUIDStart, testSlots, ErrAlreadyExists},
		{"empty id", "", "l", []string{"h1"}, testUIDStart, testSlots, ErrInvalid},
		{"empty lab", "x", "", []string{"h1"}, testUIDStart, testSlots, ErrInvalid},
		{"duplicate node", "x", "l", []string{"h1", "h1"}, testUIDStart, testSlots, ErrInvalid},
		{"empty node", "x", "l", []string{""}, testUIDStart, testSlots, ErrInvalid},
		{"uid 0 maps host root", "x", "l", []string{"h1"}, 0, testSlots, ErrInvalid},
		{"window past 2^32", "x", "l", []string{"h1"}, 1 << 31, 1<<15 + 1, ErrInvalid},
		{"negative slots", "x", "l", []string{"h1"}, testUIDStart, -1, ErrInvalid},
		{"no slots", "x", "l", []string{"h1"}, testUIDStart, 0, ErrExhausted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateSandbox(t.Context(), tc.id, tc.lab, "", tc.nodes, tc.uidStart, tc.slots)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := count(t, s, "sandboxes"); n != 1 {
				t.Errorf("%d sandbox rows after a refused create, want 1", n)
			}
			if n := count(t, s, "uid_leases"); n != 1 {
				t.Errorf("%d leases after a refused create, want 1", n)
			}
		})
	}

	// The last slot of the full 32-bit space is usable.
	ns, err := s.CreateSandbox(t.Context(), "top", "l", "", []string{"h1"}, 1<<31, 1<<15)
	if err != nil || ns[0].UIDBase != 1<<31 {
		t.Errorf("full-width window: %v %+v", err, ns)
	}
}

func TestLeases(t *testing.T) {
	type step struct {
		create string   // sandbox id to create, or
		nodes  []string // with these nodes
		delete string   // sandbox id to delete
		want   []uint32 // slots (k) expected for create
		err    error
	}
	const slots = 5
	tests := []struct {
		name  string
		steps []step
	}{
		{"lowest free in order", []step{
			{create: "a", nodes: []string{"x", "y"}, want: []uint32{0, 1}},
			{create: "b", nodes: []string{"x"}, want: []uint32{2}},
		}},
		{"released on delete and reused lowest first", []step{
			{create: "a", nodes: []string{"x"}, want: []uint32{0}},
			{create: "b", nodes: []string{"x", "y"}, want: []uint32{1, 2}},
			{create: "c", nodes: []string{"x"}, want: []uint32{3}},
			{delete: "b"},
			{create: "d", nodes: []string{"x"}, want: []uint32{1}},
			{create: "e", nodes: []string{"x", "y", "z"}, want: []uint32{2, 4}, err: ErrExhausted},
			{create: "e", nodes: []string{"x", "y"}, want: []uint32{2, 4}},
		}},
		{"exhaustion leaves no partial rows", []step{
			{create: "a", nodes: []string{"1", "2", "3"}, want: []uint32{0, 1, 2}},
			{create: "b", nodes: []string{"1", "2", "3"}, err: ErrExhausted},
			{create: "c", nodes: []string{"1", "2"}, want: []uint32{3, 4}},
			{create: "d", nodes: []string{"1"}, err: ErrExhausted},
			{delete: "a"},
			{create: "d", nodes: []string{"1", "2", "3"}, want: []uint32{0, 1, 2}},
		}},
		{"zero nodes needs no lease", []step{
			{create: "a", nodes: []string{"1", "2", "3", "4", "5"}, want: []uint32{0, 1, 2, 3, 4}},
			{create: "b", nodes: nil, want: nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := openTest(t)
			for i, st := range tc.steps {
				if st.delete != "" {
					if err := s.DeleteSandbox(ctx, st.delete); err != nil {
						t.Fatalf("step %d: delete: %v", i, err)
					}
					continue
				}
				sbBefore, lBefore := count(t, s, "sandboxes"), count(t, s, "uid_leases")
				ns, err := s.CreateSandbox(ctx, st.create, "lab", "", st.nodes, testUIDStart, slots)
				if st.err != nil {
					if !errors.Is(err, st.err) {
						t.Fatalf("step %d: got %v, want %v", i, err, st.err)
					}
					if sb, l := count(t, s, "sandboxes"), count(t, s, "uid_leases"); sb != sbBefore || l != lBefore || count(t, s, "nodes") != l {
						t.Fatalf("step %d: failed create left rows: sandboxes %d→%d, leases %d→%d", i, sbBefore, sb, lBefore, l)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				var want []uint32
				for _, k := range st.want {
					want = append(want, slot(int(k)))
				}
				if got := bases(ns); !slices.Equal(got, want) {
					t.Fatalf("step %d: bases %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestExhaustedNamesLimit(t *testing.T) {
	s := openTest(t)
	_, err := s.CreateSandbox(t.Context(), "big", "lab", "", []string{"a", "b", "c"}, testUIDStart, 2)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v, want ErrExhausted", err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{`"big"`, "2-slot limit", "need 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// A lease made under another uid window still blocks every range it overlaps.
func TestLeasesRespectMisalignedWindows(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	const half = UIDRangeSize / 2
	if _, err := s.CreateSandbox(ctx, "old", "lab", "", []string{"x"}, testUIDStart+half, 1); err != nil {
		t.Fatal(err)
	}
	// Old lease covers half of slot 0 and half of slot 1 of the new window.
	ns, err := s.CreateSandbox(ctx, "new", "lab", "", []string{"x"}, testUIDStart, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ns[0].UIDBase, slot(2); got != want {
		t.Errorf("base %d, want %d (slots 0 and 1 overlap the old lease)", got, want)
	}
	// A window starting inside the old lease: its slot 0 meets "old", slots
	// 1 and 2 meet "new", slot 3 is the first free one.
	ns, err = s.CreateSandbox(ctx, "newer", "lab", "", []string{"x"}, testUIDStart+half+half/2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ns[0].UIDBase, uint32(testUIDStart+half+half/2+3*UIDRangeSize); got != want {
		t.Errorf("base %d, want %d", got, want)
	}
}

func TestConcurrentCreate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		slots int
	}{
		{"enough ranges", 64},
		{"contended ranges", 25}, // 20 goroutines × 2 nodes: some must be refused
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := openTest(t)
			const workers = 20
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				seen = map[uint32]string{}
				ok   int
			)
			errs := make(chan error, workers)
			for i := range workers {
				wg.Go(func() {
					id := fmt.Sprintf("s-%02d", i)
					ns, err := s.CreateSandbox(ctx, id, "lab", "", []string{"a", "b"}, testUIDStart, tc.slots)
					if errors.Is(err, ErrExhausted) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					defer mu.Unlock()
					ok++
					for _, n := range ns {
						if prev, dup := seen[n.UIDBase]; dup {
							errs <- fmt.Errorf("base %d given to %s and %s/%s", n.UIDBase, prev, id, n.Name)
						}
						seen[n.UIDBase] = id + "/" + n.Name
					}
					// Readers run alongside writers.
					if _, err := s.GetSandbox(ctx, id); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if want := min(workers, tc.slots/2); ok != want {
				t.Errorf("%d creates succeeded, want %d", ok, want)
			}
			if n := count(t, s, "uid_leases"); n != 2*ok {
				t.Errorf("%d leases, want %d", n, 2*ok)
			}
			all, err := s.AllSandboxes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != ok {
				t.Errorf("AllSandboxes: %d, want %d", len(all), ok)
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	const total = 7
	var created []string
	for i := range total {
		id := fmt.Sprintf("s-%d", i)
		mustCreate(t, s, id, "n1", "n2")
		created = append(created, id)
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	for _, size := range []int{1, 3, total, total + 5} {
		t.Run(fmt.Sprintf("page size %d", size), func(t *testing.T) {
			var got []string
			tok, pages := "", 0
			for {
				page, next, err := s.ListSandboxes(ctx, size, tok)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(page) > size {
					t.Fatalf("page of %d, limit %d", len(page), size)
				}
				for _, sb := range page {
					if len(sb.Nodes) != 2 || sb.Nodes[0].Name != "n1" || sb.Nodes[1].Name != "n2" {
						t.Errorf("%s: nodes %+v", sb.ID, sb.Nodes)
					}
					got = append(got, sb.ID)
				}
				if next == "" {
					break
				}
				if pages > total+1 {
					t.Fatal("pagination does not end")
				}
				tok = next
			}
			if !slices.Equal(got, newestFirst) {
				t.Errorf("listed %v, want %v", got, newestFirst)
			}
			if want := (total + size - 1) / size; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
		})
	}

	t.Run("token stays valid across deletes", func(t *testing.T) {
		page, next, err := s.ListSandboxes(ctx, 2, "")
		if err != nil || len(page) != 2 {
			t.Fatal(err, len(page))
		}
		if err := s.DeleteSandbox(ctx, page[1].ID); err != nil { // the token's own row
			t.Fatal(err)
		}
		page, _, err = s.ListSandboxes(ctx, 2, next)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := []string{page[0].ID, page[1].ID}, newestFirst[2:4]; !slices.Equal(got, want) {
			t.Errorf("after delete: %v, want %v", got, want)
		}
	})

	t.Run("equal created times break ties by id", func(t *testing.T) {
		s := openTest(t)
		for _, id := range []string{"b", "c", "a"} {
			mustCreate(t, s, id)
		}
		if _, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET created = 42`); err != nil {
			t.Fatal(err)
		}
		var got []string
		tok := ""
		for {
			page, next, err := s.ListSandboxes(ctx, 1, tok)
			if err != nil {
				t.Fatal(err)
			}
			for _, sb := range page {
				got = append(got, sb.ID)
			}
			if tok = next; tok == "" {
				break
			}
		}
		if want := []string{"c", "b", "a"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("bad tokens", func(t *testing.T) {
		for _, tok := range []string{"!!!", "bm90LWEtdG9rZW4", encodePageToken(1, "")} {
			if _, _, err := s.ListSandboxes(ctx, 10, tok); !errors.Is(err, ErrInvalid) {
				t.Errorf("token %q: got %v, want ErrInvalid", tok, err)
			}
		}
	})

	t.Run("default limit", func(t *testing.T) {
		page, next, err := s.ListSandboxes(ctx, 0, "")
		if err != nil || next != "" || len(page) != total-1 {
			t.Errorf("limit 0: %d rows, next %q, err %v", len(page), next, err)
		}
	})

	t.Run("empty store", func(t *testing.T) {
		page, next, err := openTest(t).ListSandboxes(ctx, 10, "")
		if err != nil || next != "" || len(page) != 0 {
			t.Errorf("got %v %q %v", page, next, err)
		}
	})
}

func TestAllSandboxes(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mustCreate(t, s, "a", "h1")
	mustCreate(t, s, "b", "h1", "h2")
	mustCreate(t, s, "c")
	for id, st := range map[string]State{"a": StateReady, "b": StateFailed, "c": StateDeleting} {
		if err := s.SetState(ctx, id, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.AllSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, sb := range all {
		got[sb.ID+":"+string(sb.State)] = len(sb.Nodes)
	}
	want := map[string]int{"a:READY": 1, "b:FAILED": 2, "c:DELETING": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("AllSandboxes = %v, want %v", got, want)
	}
}

func TestSetStateRejectsUnknown(t *testing.T) {
	s := openTest(t)
	mustCreate(t, s, "a")
	if err := s.SetState(t.Context(), "a", State("RUNNING"), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestEvents(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mustCreate(t, s, "a", "h1")
	recs := []struct{ sandbox, kind, msg string }{
		{"a", "create", "lab lab-a"},
		{"b", "create", "other sandbox"},
		{"a", "ready", ""},
		{"a", "delete", "by user"},
	}
	before := time.Now()
	for _, r := range recs {
		if err := s.RecordEvent(ctx, r.sandbox, r.kind, r.msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSandbox(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
		if e.Sandbox != "a" || e.Time.Before(before.Add(-time.Millisecond)) || e.Time.Location() != time.UTC {
			t.Errorf("event %+v", e)
		}
	}
	if want := []string{"create", "ready", "delete"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v (events outlive the sandbox)", kinds, want)
	}
	if evs[2].Message != "by user" {
		t.Errorf("message %q", evs[2].Message)
	}
	if evs, err := s.Events(ctx, "nobody"); err != nil || len(evs) != 0 {
		t.Errorf("Events(nobody) = %v, %v", evs, err)
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "labd.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (9999, 'future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Fatal("Open succeeded on a database from a newer labd")
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.CreateSandbox(ctx, "a", "lab", "", []string{"h1"}, testUIDStart, testSlots); err == nil {
		t.Error("CreateSandbox with a canceled context succeeded")
	}
	if n := count(t, s, "sandboxes"); n != 0 {
		t.Errorf("%d rows after a canceled create", n)
	}
}

func TestMarkReady(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mustCreate(t, s, "s-1", "r1", "h1")
	now := time.Now().Truncate(time.Microsecond)
	expire := now.Add(time.Hour)
	procs := []NodeProcess{{Name: "r1", Pid: 101, StartTime: 7}, {Name: "h1", Pid: 102, StartTime: 1 << 40}}
	if err := s.MarkReady(ctx, "s-1", procs, now, expire, "built in 5ms"); err != nil {
		t.Fatal(err)
	}
	sb, err := s.GetSandbox(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != StateReady || sb.Failure != "" || !sb.Ready.Equal(now) || !sb.Expire.Equal(expire) || !sb.LastActivity.Equal(now) {
		t.Errorf("after MarkReady: %+v, want READY at %v expiring %v", sb, now, expire)
	}
	for i, n := range sb.Nodes {
		if n.Pid != procs[i].Pid || n.StartTime != procs[i].StartTime {
			t.Errorf("node %s: pid %d start %d, want %+v", n.Name, n.Pid, n.StartTime, procs[i])
		}
	}
	evs, err := s.Events(ctx, "s-1")
	if err != nil || len(evs) != 1 || evs[0].Kind != "ready" || evs[0].Message != "built in 5ms" {
		t.Errorf("events %+v, %v; want one ready event", evs, err)
	}

	// A node without a row fails the whole: nothing of it is written.
	mustCreate(t, s, "s-2", "h1")
	bad := []NodeProcess{{Name: "h1", Pid: 201, StartTime: 1}, {Name: "h9", Pid: 202, StartTime: 1}}
	if err := s.MarkReady(ctx, "s-2", bad, now, expire, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkReady with an unknown node = %v, want ErrNotFound", err)
	}
	sb, _ = s.GetSandbox(ctx, "s-2")
	if sb.State != StateCreating || sb.Nodes[0].Pid != 0 || !sb.Expire.IsZero() {
		t.Errorf("failed MarkReady wrote: %+v", sb)
	}
	if evs, _ := s.Events(ctx, "s-2"); len(evs) != 0 {
		t.Errorf("failed MarkReady recorded %+v", evs)
	}
	if err := s.MarkReady(ctx, "missing", nil, now, expire, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkReady of a missing sandbox = %v, want ErrNotFound", err)
	}
}

func TestDeleteSandboxEvent(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mustCreate(t, s, "s-1", "h1", "h2")
	if err := s.DeleteSandboxEvent(ctx, "s-1", "deleted", "by test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSandbox(ctx, "s-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSandbox after delete: %v, want ErrNotFound", err)
	}
	for _, table := range []string{"sandboxes", "nodes", "uid_leases"} {
		if n := count(t, s, table); n != 0 {
			t.Errorf("%s has %d rows after delete", table, n)
		}
	}
	evs, err := s.Events(ctx, "s-1")
	if err != nil || len(evs) != 1 || evs[0].Kind != "deleted" || evs[0].Message != "by test" {
		t.Errorf("events %+v, %v; want one deleted event", evs, err)
	}
}
