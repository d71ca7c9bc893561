package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCapacityLimit(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	lim := WithCapacity(Capacity{Sandboxes: 3, Nodes: 5})
	create := func(id string, nodes ...string) error {
		_, err := s.CreateSandbox(ctx, id, "lab", "", nodes, testUIDStart, testSlots, lim)
		return err
	}
	if err := create("s-a", "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	if err := create("s-b", "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	// 4 nodes held, 2 more would make 6 > 5.
	err := create("s-c", "n1", "n2")
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrExhausted) || le.Limit != "nodes" || le.Max != 5 || le.Current != 4 || le.Need != 2 {
		t.Fatalf("third create of 2 nodes = %v; want a nodes LimitError 5, 4 in use, 2 wanted", err)
	}
	if !strings.Contains(err.Error(), "host limit of 5 nodes reached: 4 in use") {
		t.Errorf("message %q does not name the limit and the count", err)
	}
	if err := create("s-c", "n1"); err != nil {
		t.Fatalf("a 1-node sandbox fits (5 of 5 nodes): %v", err)
	}
	err = create("s-d", "n1")
	if !errors.As(err, &le) || le.Limit != "sandboxes" || le.Max != 3 || le.Current != 3 {
		t.Fatalf("fourth create = %v; want a sandboxes LimitError 3, 3 in use", err)
	}
	// Refused creates wrote nothing.
	if n := count(t, s, "sandboxes"); n != 3 {
		t.Errorf("%d sandbox rows, want 3", n)
	}
	if n := count(t, s, "uid_leases"); n != 5 {
		t.Errorf("%d leases, want 5", n)
	}

	// A FAILED sandbox holds no place.
	if err := s.FailSandbox(ctx, "s-a", "test", base); err != nil {
		t.Fatal(err)
	}
	if err := create("s-d", "n1", "n2"); err != nil {
		t.Fatalf("create after one sandbox FAILED: %v", err)
	}
	c, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[State]int{StateCreating: 3, StateFailed: 1, StateReady: 0, StateDeleting: 0}
	if fmt.Sprint(c.Sandboxes) != fmt.Sprint(want) || c.Nodes != 5 {
		t.Errorf("Count = %v, %d nodes; want %v, 5 nodes", c.Sandboxes, c.Nodes, want)
	}

	// Zero is no limit.
	for i := range 10 {
		if _, err := s.CreateSandbox(ctx, fmt.Sprintf("s-u%d", i), "lab", "", []string{"n1"}, testUIDStart, testSlots, WithCapacity(Capacity{})); err != nil {
			t.Fatalf("unlimited create %d: %v", i, err)
		}
	}
}

// TestCapacityRace: creates racing for the last places get exactly as
// many as the limits allow.
func TestCapacityRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		cap  Capacity
		want int
	}{
		{"sandboxes", Capacity{Sandboxes: 7}, 7},
		{"nodes", Capacity{Nodes: 9}, 4}, // 2 nodes each
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := openTest(t)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				ok, exh int
			)
			errs := make(chan error, 20)
			for i := range 20 {
				wg.Go(func() {
					_, err := s.CreateSandbox(ctx, fmt.Sprintf("s-%02d", i), "lab", "", []string{"a", "b"}, testUIDStart, testSlots, WithCapacity(tc.cap))
					mu.Lock()
					defer mu.Unlock()
					var le *LimitError
					switch {
					case err == nil:
						ok++
					case errors.As(err, &le) && le.Limit == tc.name:
						exh++
					default:
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if ok != tc.want || exh != 20-tc.want {
				t.Errorf("%d created, %d refused; want %d, %d", ok, exh, tc.want, 20-tc.want)
			}
			if n := count(t, s, "sandboxes"); n != tc.want {
				t.Errorf("%d rows, want %d", n, tc.want)
			}
		})
	}
}

func TestFailSandbox(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mustCreate(t, s, "s-half", "n1", "n2")
	readySandbox(t, s, "s-lost", base.Add(time.Hour), base)

	if err := s.FailSandbox(ctx, "s-half", "labd stopped while it was being built", base.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.FailSandbox(ctx, "s-lost", "lost", base.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	half := mustGet(t, s, "s-half")
	if half.State != StateFailed || half.Failure != "labd stopped while it was being built" || len(half.Nodes) != 0 || !half.Expire.Equal(base.Add(4*time.Hour)) {
		t.Errorf("half-built after FailSandbox: %+v; want FAILED with the reason, no nodes, expiring at the given time", half)
	}
	// An expiry it had is kept.
	if lost := mustGet(t, s, "s-lost"); lost.State != StateFailed || !lost.Expire.Equal(base.Add(time.Hour)) {
		t.Errorf("lost after FailSandbox: %+v; want FAILED keeping its expiry", lost)
	}
	if n := count(t, s, "uid_leases"); n != 0 {
		t.Errorf("%d uid leases after both failed, want 0", n)
	}
	// Its ranges are free again.
	ns := mustCreate(t, s, "s-next", "n1", "n2")
	if ns[0].UIDBase != slot(0) {
		t.Errorf("next sandbox got base %d, want the released %d", ns[0].UIDBase, slot(0))
	}
	if err := s.FailSandbox(ctx, "s-none", "x", base); !errors.Is(err, ErrNotFound) {
		t.Errorf("FailSandbox of a missing id = %v, want ErrNotFound", err)
	}

	// FAILED rows expire like READY ones; the idle timeout does not apply.
	due, err := s.DueSandboxes(ctx, base.Add(2*time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != "s-lost" || due[0].Reason != DueTTL {
		t.Errorf("due at +2h = %+v; want only s-lost, by ttl", due)
	}
	if _, ok, err := s.ClaimDue(ctx, "s-half", base.Add(2*time.Hour), time.Minute); err != nil || ok {
		t.Errorf("ClaimDue of a FAILED row not yet expired = %v, %v; want not claimed", ok, err)
	}
	d, ok, err := s.ClaimDue(ctx, "s-half", base.Add(5*time.Hour), time.Minute)
	if err != nil || !ok || d.Reason != DueTTL {
		t.Fatalf("ClaimDue of an expired FAILED row = %+v, %v, %v", d, ok, err)
	}
	if got := mustGet(t, s, "s-half"); got.State != StateDeleting {
		t.Errorf("claimed FAILED row is %s, want DELETING", got.State)
	}
}

func TestReadySandboxes(t *testing.T) {
	s := openTest(t)
	mustCreate(t, s, "s-creating", "n1")
	readySandbox(t, s, "s-ready", base.Add(time.Hour), base)
	got, err := s.ReadySandboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "s-ready" || !got[0].Expire.Equal(base.Add(time.Hour)) || !got[0].LastActivity.Equal(base) {
		t.Errorf("ReadySandboxes = %+v; want s-ready with its lifetime", got)
	}
}
