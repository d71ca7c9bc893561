package store

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// base is a fixed "now" for lifetime tests; stored times are nanoseconds,
// so it round-trips exactly.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// readySandbox creates a READY sandbox with the given lifetime columns
// (the zero time leaves one unset).
func readySandbox(t *testing.T, s *Store, id string, expire, activity time.Time) {
	t.Helper()
	mustCreate(t, s, id, "n1")
	if err := s.SetExpiry(t.Context(), id, expire); err != nil {
		t.Fatal(err)
	}
	if !activity.IsZero() {
		if err := s.TouchSandbox(t.Context(), id, activity); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetState(t.Context(), id, StateReady, ""); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, s *Store, id string) *Sandbox {
	t.Helper()
	sb, err := s.GetSandbox(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// TestMigrateLifetimes opens a database made by the schema before
// lifetimes, with a sandbox in it: the row survives with no lifetime, and
// StartLifetimes then gives it one.
func TestMigrateLifetimes(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "labd.db")
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version > 2 {
			break
		}
		if _, err := raw.ExecContext(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO sandboxes (id, lab, state, created, ready) VALUES ('s-old', 'routed', 'READY', ?, ?)`,
		nanos(base), nanos(base)); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 2 database: %v", err)
	}
	defer s.Close()
	if got := count(t, s, "schema_migrations"); got != len(ms) {
		t.Errorf("%d migrations recorded, want %d", got, len(ms))
	}
	sb := mustGet(t, s, "s-old")
	if sb.State != StateReady || !sb.Ready.Equal(base) || !sb.Expire.IsZero() || !sb.LastActivity.IsZero() {
		t.Errorf("migrated row = %+v; want READY since %s with no lifetime", sb, base)
	}
	if due, err := s.DueSandboxes(ctx, base.Add(1000*time.Hour), time.Hour); err != nil || len(due) != 0 {
		t.Errorf("a row without a lifetime is due: %v, %v", due, err)
	}

	now := base.Add(time.Hour)
	if n, err := s.StartLifetimes(ctx, now, now.Add(4*time.Hour)); err != nil || n != 1 {
		t.Fatalf("StartLifetimes = %d, %v; want 1 row", n, err)
	}
	sb = mustGet(t, s, "s-old")
	if !sb.Expire.Equal(now.Add(4*time.Hour)) || !sb.LastActivity.Equal(now) {
		t.Errorf("after StartLifetimes: expire %s, last activity %s; want %s, %s", sb.Expire, sb.LastActivity, now.Add(4*time.Hour), now)
	}
}

func TestStartLifetimesKeepsExpiry(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	readySandbox(t, s, "a", base.Add(time.Hour), base.Add(-2*time.Hour))
	readySandbox(t, s, "b", base.Add(time.Hour), base.Add(time.Minute)) // later than now: kept
	mustCreate(t, s, "c", "n1")                                         // CREATING: left alone
	if n, err := s.StartLifetimes(ctx, base, base.Add(8*time.Hour)); err != nil || n != 2 {
		t.Fatalf("StartLifetimes = %d, %v; want the 2 READY rows", n, err)
	}
	for _, tc := range []struct {
		id               string
		expire, activity time.Time
	}{
		{"a", base.Add(time.Hour), base},
		{"b", base.Add(time.Hour), base.Add(time.Minute)},
		{"c", time.Time{}, time.Time{}},
	} {
		sb := mustGet(t, s, tc.id)
		if !sb.Expire.Equal(tc.expire) || !sb.LastActivity.Equal(tc.activity) {
			t.Errorf("%s: expire %s, activity %s; want %s, %s", tc.id, sb.Expire, sb.LastActivity, tc.expire, tc.activity)
		}
	}
}

func TestTouchSandbox(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	readySandbox(t, s, "a", base.Add(time.Hour), base)
	if err := s.TouchSandbox(ctx, "a", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSandbox(ctx, "a", base.Add(time.Second)); err != nil { // older: ignored
		t.Fatal(err)
	}
	if got := mustGet(t, s, "a").LastActivity; !got.Equal(base.Add(time.Minute)) {
		t.Errorf("last activity %s; want %s (the clock never goes back)", got, base.Add(time.Minute))
	}
	if err := s.TouchSandbox(ctx, "missing", base); !errors.Is(err, ErrNotFound) {
		t.Errorf("TouchSandbox(missing) = %v; want ErrNotFound", err)
	}
	if err := s.SetExpiry(ctx, "missing", base); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetExpiry(missing) = %v; want ErrNotFound", err)
	}

	mustCreate(t, s, "creating", "n1")
	if err := s.TouchSandboxes(ctx, []string{"a", "creating", "missing"}, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "a").LastActivity; !got.Equal(base.Add(time.Hour)) {
		t.Errorf("TouchSandboxes: a's last activity %s; want %s", got, base.Add(time.Hour))
	}
	if got := mustGet(t, s, "creating").LastActivity; !got.IsZero() {
		t.Errorf("TouchSandboxes touched a CREATING sandbox: %s", got)
	}
}

func TestDueSandboxes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const idle = time.Hour
	rows := []struct {
		id               string
		expire, activity time.Time
		state            State // READY unless set
		want             DueReason
	}{
		{id: "fresh", expire: base.Add(time.Hour), activity: base},
		{id: "expired", expire: base.Add(-time.Second), activity: base, want: DueTTL},
		{id: "expires-now", expire: base, activity: base, want: DueTTL},
		{id: "idle", expire: base.Add(time.Hour), activity: base.Add(-idle), want: DueIdle},
		{id: "almost-idle", expire: base.Add(time.Hour), activity: base.Add(-idle + time.Second)},
		{id: "both", expire: base.Add(-time.Hour), activity: base.Add(-2 * idle), want: DueTTL},
		{id: "no-expiry", activity: base.Add(-time.Minute)},
		// A FAILED row expires too, but is never idle.
		{id: "failed", expire: base.Add(-time.Hour), activity: base.Add(-2 * idle), state: StateFailed, want: DueTTL},
		{id: "failed-idle", expire: base.Add(time.Hour), activity: base.Add(-2 * idle), state: StateFailed},
		{id: "deleting", expire: base.Add(-time.Hour), activity: base, state: StateDeleting},
	}
	var want []Due
	for _, r := range rows {
		readySandbox(t, s, r.id, r.expire, r.activity)
		if r.state != "" {
			if err := s.SetState(ctx, r.id, r.state, ""); err != nil {
				t.Fatal(err)
			}
		}
		if r.want != "" {
			want = append(want, Due{ID: r.id, Reason: r.want, Expire: r.expire, LastActivity: r.activity})
		}
	}
	byID := func(a, b Due) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(want, byID)
	got, err := s.DueSandboxes(ctx, base, idle)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, byID)
	if !slices.EqualFunc(got, want, dueEqual) {
		t.Errorf("DueSandboxes =\n%+v\nwant\n%+v", got, want)
	}

	// Without an idle timeout, only expiry counts.
	got, err = s.DueSandboxes(ctx, base, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	if want := []string{"both", "expired", "expires-now", "failed"}; !slices.Equal(ids, want) {
		t.Errorf("DueSandboxes without idle timeout = %q; want %q", ids, want)
	}
}

func dueEqual(a, b Due) bool {
	return a.ID == b.ID && a.Reason == b.Reason && a.Expire.Equal(b.Expire) && a.LastActivity.Equal(b.LastActivity)
}

func TestClaimDue(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const idle = time.Hour
	readySandbox(t, s, "expired", base.Add(-time.Second), base)
	readySandbox(t, s, "idle", base.Add(time.Hour), base.Add(-2*idle))
	readySandbox(t, s, "saved", base.Add(-time.Second), base)

	d, ok, err := s.ClaimDue(ctx, "expired", base, idle)
	if err != nil || !ok || d.Reason != DueTTL || !d.Expire.Equal(base.Add(-time.Second)) {
		t.Fatalf("ClaimDue(expired) = %+v, %v, %v; want claimed for its ttl", d, ok, err)
	}
	if st := mustGet(t, s, "expired").State; st != StateDeleting {
		t.Errorf("claimed sandbox is %s; want DELETING", st)
	}
	if _, ok, err := s.ClaimDue(ctx, "expired", base, idle); ok || err != nil {
		t.Errorf("second ClaimDue = %v, %v; want not claimed", ok, err)
	}
	if d, ok, err := s.ClaimDue(ctx, "idle", base, idle); !ok || err != nil || d.Reason != DueIdle {
		t.Errorf("ClaimDue(idle) = %+v, %v, %v; want claimed as idle", d, ok, err)
	}

	// An extension between the listing and the claim wins.
	if _, _, err := s.ExtendSandbox(ctx, "saved", time.Hour, base, base.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ClaimDue(ctx, "saved", base, idle); ok || err != nil {
		t.Errorf("ClaimDue after an extension = %v, %v; want not claimed", ok, err)
	}
	if st := mustGet(t, s, "saved").State; st != StateReady {
		t.Errorf("extended sandbox is %s; want READY", st)
	}
	if _, ok, err := s.ClaimDue(ctx, "missing", base, idle); ok || err != nil {
		t.Errorf("ClaimDue(missing) = %v, %v; want not claimed, no error", ok, err)
	}
}

func TestExtendSandbox(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	limit := base.Add(24 * time.Hour)
	tests := []struct {
		name       string
		expire     time.Time
		by         time.Duration
		wantExpire time.Time
		wantCapped bool
	}{
		{"pushes back", base.Add(time.Hour), 2 * time.Hour, base.Add(3 * time.Hour), false},
		{"from a past expiry", base.Add(-time.Minute), time.Hour, base.Add(59 * time.Minute), false},
		{"up to the limit", base.Add(23 * time.Hour), time.Hour, limit, false},
		{"capped", base.Add(23 * time.Hour), 2 * time.Hour, limit, true},
		{"never shortened", base.Add(30 * time.Hour), time.Hour, base.Add(30 * time.Hour), true},
		{"no expiry yet: from now", time.Time{}, time.Hour, base.Add(time.Hour), false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "s-" + string(rune('a'+i))
			readySandbox(t, s, id, tc.expire, base)
			sb, capped, err := s.ExtendSandbox(ctx, id, tc.by, base, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !sb.Expire.Equal(tc.wantExpire) || capped != tc.wantCapped {
				t.Errorf("ExtendSandbox(%s by %s) = %s, capped %v; want %s, capped %v", tc.expire, tc.by, sb.Expire, capped, tc.wantExpire, tc.wantCapped)
			}
			if got := mustGet(t, s, id).Expire; !got.Equal(tc.wantExpire) {
				t.Errorf("stored expiry %s; want %s", got, tc.wantExpire)
			}
			if len(sb.Nodes) != 1 || sb.State != StateReady {
				t.Errorf("returned sandbox %+v; want the READY row with its node", sb)
			}
		})
	}

	mustCreate(t, s, "creating", "n1")
	for _, tc := range []struct {
		name string
		id   string
		by   time.Duration
		want error
	}{
		{"missing", "missing", time.Hour, ErrNotFound},
		{"not ready", "creating", time.Hour, ErrNotReady},
		{"zero", "s-a", 0, ErrInvalid},
		{"negative", "s-a", -time.Hour, ErrInvalid},
	} {
		if _, _, err := s.ExtendSandbox(ctx, tc.id, tc.by, base, limit); !errors.Is(err, tc.want) {
			t.Errorf("%s: ExtendSandbox = %v; want %v", tc.name, err, tc.want)
		}
	}
}
