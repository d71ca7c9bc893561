package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is a sandbox's lifecycle state as stored.
type State string

const (
	StateCreating State = "CREATING"
	StateReady    State = "READY"
	StateDeleting State = "DELETING"
	StateFailed   State = "FAILED"
)

func (st State) valid() bool {
	switch st {
	case StateCreating, StateReady, StateDeleting, StateFailed:
		return true
	}
	return false
}

// UIDRangeSize is the number of host ids mapped into each node.
const UIDRangeSize = 65536

// Sandbox is one sandbox row with its nodes.
type Sandbox struct {
	ID  string
	Lab string // lab id
	// Owner is the subject of the caller the sandbox was made for
	// ("uid:1000" on the unix socket, a token's subject over TCP); ""
	// for rows from before owners.
	Owner   string
	State   State
	Failure string
	Created time.Time
	Ready   time.Time // zero until READY
	// Expire is when the sandbox is to be deleted however it is used;
	// zero when not set (a row from before lifetimes).
	Expire time.Time
	// LastActivity is when something was last done in the sandbox; the
	// idle timeout counts from it. Zero when not set.
	LastActivity time.Time
	Nodes        []Node // in insertion order
}

// Node is one node of a sandbox.
type Node struct {
	Sandbox   string
	Name      string
	UIDBase   uint32 // host uid mapped to root inside the node (UIDRangeSize ids)
	Pid       int    // init pid, 0 until started
	StartTime uint64 // /proc/<pid>/stat field 22 of the init, for re-adoption
}

// CreateSandbox inserts a CREATING sandbox owned by owner and its nodes, leasing one uid
// range per node in the same transaction. Ranges are
// base = uidStart + k*UIDRangeSize for k in [0, uidSlots); the lowest free k
// is taken, and a range overlapping any existing lease (say, one made under a
// different uidStart) is not free. It fails with ErrExhausted when not enough
// ranges are free, with ErrAlreadyExists when id is taken, and with
// ErrInvalid for bad arguments, and as opts say (see WithCapacity); on
// any failure nothing is written.
func (s *Store) CreateSandbox(ctx context.Context, id, lab, owner string, nodeNames []string, uidStart uint32, uidSlots int, opts ...CreateOption) ([]Node, error) {
	return s.CreateSandboxLimited(ctx, id, lab, owner, nodeNames, uidStart, uidSlots, Limits{}, opts...)
}

// Limits bound what CreateSandboxLimited may add; a zero field is no limit.
type Limits struct {
	// PerOwner is the most sandboxes one owner may hold, counting every
	// state but FAILED (a CREATING or DELETING one still holds kernel
	// objects). It does not apply to the owner "".
	PerOwner int
}

// QuotaError is the error of a create that would take an owner past
// Limits.PerOwner. It wraps ErrExhausted.
type QuotaError struct {
	Owner       string
	Have, Limit int
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%s has %d sandboxes, the limit is %d", e.Owner, e.Have, e.Limit)
}

func (e *QuotaError) Unwrap() error { return ErrExhausted }

// CreateSandboxLimited is CreateSandbox within lim: the limits are counted
// in the write transaction that inserts the row, so concurrent creates
// cannot together pass a limit. Over a limit it fails with a *QuotaError
// (ErrExhausted) and writes nothing.
func (s *Store) CreateSandboxLimited(ctx context.Context, id, lab, owner string, nodeNames []string, uidStart uint32, uidSlots int, lim Limits, opts ...CreateOption) ([]Node, error) {
	if err := validateCreate(id, lab, nodeNames, uidStart, uidSlots); err != nil {
		return nil, fmt.Errorf("create sandbox %q: %w", id, err)
	}
	if lim.PerOwner < 0 {
		return nil, fmt.Errorf("create sandbox %q: per-owner limit %d: %w", id, lim.PerOwner, ErrInvalid)
	}
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	nodes := make([]Node, len(nodeNames))
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM sandboxes WHERE id = ?`, id).Scan(&one); {
		case err == nil:
			return ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if lim.PerOwner > 0 && owner != "" {
			var have int
			if err := tx.QueryRowContext(ctx,
				`SELECT COUNT(*) FROM sandboxes WHERE owner = ? AND state <> 'FAILED'`, owner).Scan(&have); err != nil {
				return fmt.Errorf("count sandboxes of %q: %w", owner, err)
			}
			if have >= lim.PerOwner {
				return &QuotaError{Owner: owner, Have: have, Limit: lim.PerOwner}
			}
		}
		if err := o.capacity.check(ctx, tx, len(nodeNames)); err != nil {
			return err
		}
		bases, err := freeBases(ctx, tx, len(nodeNames), uidStart, uidSlots)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO sandboxes (id, lab, owner, state, created) VALUES (?, ?, ?, ?, ?)`,
			id, lab, owner, StateCreating, nanos(time.Now())); err != nil {
			return err
		}
		for i, name := range nodeNames {
			nodes[i] = Node{Sandbox: id, Name: name, UIDBase: bases[i]}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO nodes (sandbox, name, seq, uid_base) VALUES (?, ?, ?, ?)`,
				id, name, i, int64(bases[i])); err != nil {
				return fmt.Errorf("node %q: %w", name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO uid_leases (base, sandbox, node) VALUES (?, ?, ?)`,
				int64(bases[i]), id, name); err != nil {
				return fmt.Errorf("lease uid range %d for node %q: %w", bases[i], name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create sandbox %q: %w", id, err)
	}
	return nodes, nil
}

func validateCreate(id, lab string, nodeNames []string, uidStart uint32, uidSlots int) error {
	if id == "" {
		return fmt.Errorf("empty sandbox id: %w", ErrInvalid)
	}
	if lab == "" {
		return fmt.Errorf("empty lab id: %w", ErrInvalid)
	}
	seen := make(map[string]bool, len(nodeNames))
	for _, n := range nodeNames {
		if n == "" {
			return fmt.Errorf("empty node name: %w", ErrInvalid)
		}
		if seen[n] {
			return fmt.Errorf("node %q named twice: %w", n, ErrInvalid)
		}
		seen[n] = true
	}
	if uidStart == 0 {
		// Root inside a node would be root on the host.
		return fmt.Errorf("uid ranges may not start at host uid 0: %w", ErrInvalid)
	}
	if uidSlots < 0 || int64(uidStart)+int64(uidSlots)*UIDRangeSize > 1<<32 {
		return fmt.Errorf("%d uid ranges from %d do not fit in 32 bits: %w", uidSlots, uidStart, ErrInvalid)
	}
	return nil
}

// freeBases returns the n lowest free range bases in the window, or
// ErrExhausted. It must run inside the write transaction that then leases
// them, which is what makes concurrent creates safe.
func freeBases(ctx context.Context, tx *sql.Tx, n int, uidStart uint32, uidSlots int) ([]uint32, error) {
	if n == 0 {
		return nil, nil
	}
	start := int64(uidStart)
	end := start + int64(uidSlots)*UIDRangeSize
	// Any lease whose range [base, base+size) meets the window.
	rows, err := tx.QueryContext(ctx,
		`SELECT base FROM uid_leases WHERE base > ? AND base < ?`, start-UIDRangeSize, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	used := make([]bool, uidSlots)
	for rows.Next() {
		var base int64
		if err := rows.Scan(&base); err != nil {
			return nil, err
		}
		// The lease meets slot floor(d/size) and, unless aligned, the next.
		d := base - start
		k := d / UIDRangeSize
		if d%UIDRangeSize != 0 && d < 0 {
			k-- // round toward minus infinity
		}
		mark := func(j int64) {
			if j >= 0 && j < int64(uidSlots) {
				used[j] = true
			}
		}
		mark(k)
		if d%UIDRangeSize != 0 {
			mark(k + 1)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	bases := make([]uint32, 0, n)
	for k := 0; k < uidSlots && len(bases) < n; k++ {
		if !used[k] {
			bases = append(bases, uint32(start+int64(k)*UIDRangeSize))
		}
	}
	if len(bases) < n {
		return nil, fmt.Errorf("need %d uid ranges, %d free of the %d-slot limit from uid %d: %w",
			n, len(bases), uidSlots, uidStart, ErrExhausted)
	}
	return bases, nil
}

// SetNodeProcess records the init process of a node once it is started.
func (s *Store) SetNodeProcess(ctx context.Context, sandbox, node string, pid int, startTime uint64) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE nodes SET pid = ?, start_time = ? WHERE sandbox = ? AND name = ?`,
		pid, int64(startTime), sandbox, node)
	if err != nil {
		return fmt.Errorf("set process of node %q in sandbox %q: %w", node, sandbox, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set process of node %q in sandbox %q: %w", node, sandbox, err)
	} else if n == 0 {
		return fmt.Errorf("node %q in sandbox %q: %w", node, sandbox, ErrNotFound)
	}
	return nil
}

// NodeProcess is a node's init process as started on the host.
type NodeProcess struct {
	Name      string
	Pid       int
	StartTime uint64
}

// MarkReady completes a built sandbox in one transaction: it records
// every node's init process, sets the expiry, starts the idle clock at
// now, moves the sandbox to READY (stamping its ready time) and appends a
// "ready" event with message. If the sandbox or any node has no row,
// nothing is written and the error wraps ErrNotFound.
func (s *Store) MarkReady(ctx context.Context, id string, procs []NodeProcess, now, expire time.Time, message string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, p := range procs {
			res, err := tx.ExecContext(ctx,
				`UPDATE nodes SET pid = ?, start_time = ? WHERE sandbox = ? AND name = ?`,
				p.Pid, int64(p.StartTime), id, p.Name)
			if err != nil {
				return fmt.Errorf("set process of node %q: %w", p.Name, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("set process of node %q: %w", p.Name, err)
			} else if n == 0 {
				return fmt.Errorf("node %q: %w", p.Name, ErrNotFound)
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE sandboxes SET
			state = 'READY', failure = '', expire = ?1,
			last_activity = MAX(last_activity, ?2),
			ready = CASE WHEN ready = 0 THEN ?2 ELSE ready END
			WHERE id = ?3`,
			nanosOrZero(expire), nanos(now), id)
		if err != nil {
			return err
		}
		if err := oneRow(res, id, "mark ready"); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO events (time, sandbox, kind, message) VALUES (?, ?, 'ready', ?)`,
			nanos(now), id, message)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark sandbox %q ready: %w", id, err)
	}
	return nil
}

// SetState moves a sandbox to st with the given failure message (normally ""
// unless st is FAILED). Entering READY stamps the Ready time the first time
// only, so re-adoption after a restart keeps the original.
func (s *Store) SetState(ctx context.Context, id string, st State, failure string) error {
	if !st.valid() {
		return fmt.Errorf("set state of sandbox %q: unknown state %q: %w", id, st, ErrInvalid)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET
		state = ?1, failure = ?2,
		ready = CASE WHEN ?1 = 'READY' AND ready = 0 THEN ?3 ELSE ready END
		WHERE id = ?4`,
		st, failure, nanos(time.Now()), id)
	if err != nil {
		return fmt.Errorf("set state of sandbox %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set state of sandbox %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	}
	return nil
}

const sandboxCols = `id, lab, owner, state, failure, created, ready, expire, last_activity`

func scanSandbox(rows interface{ Scan(...any) error }) (*Sandbox, error) {
	var (
		sb                                Sandbox
		created, ready, expire, lastActed int64
	)
	if err := rows.Scan(&sb.ID, &sb.Lab, &sb.Owner, &sb.State, &sb.Failure, &created, &ready, &expire, &lastActed); err != nil {
		return nil, err
	}
	sb.Created, sb.Ready = fromNanos(created), fromNanos(ready)
	sb.Expire, sb.LastActivity = fromNanos(expire), fromNanos(lastActed)
	return &sb, nil
}

// GetSandbox returns one sandbox with its nodes, or ErrNotFound.
func (s *Store) GetSandbox(ctx context.Context, id string) (*Sandbox, error) {
	var sb *Sandbox
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		sb, err = scanSandbox(tx.QueryRowContext(ctx, `SELECT `+sandboxCols+` FROM sandboxes WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return attachNodes(ctx, tx, []*Sandbox{sb}, true)
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	return sb, nil
}

// LookupSandbox is GetSandbox without the nodes (Nodes is nil): one
// point read, for the checks every call that names a sandbox makes.
func (s *Store) LookupSandbox(ctx context.Context, id string) (*Sandbox, error) {
	sb, err := scanSandbox(s.r.QueryRowContext(ctx, `SELECT `+sandboxCols+` FROM sandboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	return sb, nil
}

// DefaultPageSize and MaxPageSize bound ListSandboxes' limit: limit <= 0
// means DefaultPageSize, and larger limits are capped at MaxPageSize.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// ListSandboxes returns sandboxes newest first (created desc, id desc),
// starting after pageToken ("" = from the start), at most limit of them, and
// the token for the next page or "" when there is none. A malformed token
// fails with ErrInvalid.
func (s *Store) ListSandboxes(ctx context.Context, limit int, pageToken string) ([]*Sandbox, string, error) {
	return s.ListSandboxesIn(ctx, Scope{All: true}, limit, pageToken)
}

// ListSandboxesIn is ListSandboxes of the sandboxes in scope only.
func (s *Store) ListSandboxesIn(ctx context.Context, scope Scope, limit int, pageToken string) ([]*Sandbox, string, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	cond, args := scope.where("owner")
	q := `SELECT ` + sandboxCols + ` FROM sandboxes WHERE ` + cond
	if pageToken != "" {
		created, id, err := decodePageToken(pageToken)
		if err != nil {
			return nil, "", fmt.Errorf("list sandboxes: %w", err)
		}
		q += ` AND (created, id) < (?, ?)`
		args = append(args, created, id)
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit+1) // one extra says whether a next page exists

	var (
		out  []*Sandbox
		next string
	)
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		sbs, err := querySandboxes(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		if len(sbs) > limit {
			sbs = sbs[:limit]
			last := sbs[len(sbs)-1]
			next = encodePageToken(nanos(last.Created), last.ID)
		}
		out = sbs
		return attachNodes(ctx, tx, sbs, true)
	})
	if err != nil {
		return nil, "", fmt.Errorf("list sandboxes: %w", err)
	}
	return out, next, nil
}

// AllSandboxes returns every sandbox row in any state, with nodes, oldest
// first; it is meant for reconciliation at start-up.
func (s *Store) AllSandboxes(ctx context.Context) ([]*Sandbox, error) {
	var out []*Sandbox
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = querySandboxes(ctx, tx, `SELECT `+sandboxCols+` FROM sandboxes ORDER BY created, id`)
		if err != nil {
			return err
		}
		return attachNodes(ctx, tx, out, false)
	})
	if err != nil {
		return nil, fmt.Errorf("all sandboxes: %w", err)
	}
	return out, nil
}

func querySandboxes(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]*Sandbox, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Sandbox
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sb)
	}
	return out, rows.Err()
}

// attachNodes fills Nodes of each sandbox. With filter, only the nodes of
// sbs are read (sbs must be few: one bound parameter each); without, every
// node is read, which suits a full listing.
func attachNodes(ctx context.Context, tx *sql.Tx, sbs []*Sandbox, filter bool) error {
	if len(sbs) == 0 {
		return nil
	}
	byID := make(map[string]*Sandbox, len(sbs))
	args := make([]any, 0, len(sbs))
	for _, sb := range sbs {
		byID[sb.ID] = sb
		args = append(args, sb.ID)
	}
	q := `SELECT sandbox, name, uid_base, pid, start_time FROM nodes`
	if filter {
		q += ` WHERE sandbox IN (?` + strings.Repeat(`, ?`, len(sbs)-1) + `)`
	} else {
		args = nil
	}
	q += ` ORDER BY sandbox, seq`
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			n        Node
			base, st int64
		)
		if err := rows.Scan(&n.Sandbox, &n.Name, &base, &n.Pid, &st); err != nil {
			return fmt.Errorf("read nodes: %w", err)
		}
		n.UIDBase, n.StartTime = uint32(base), uint64(st)
		if sb := byID[n.Sandbox]; sb != nil {
			sb.Nodes = append(sb.Nodes, n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	return nil
}

// DeleteSandbox removes the sandbox, its nodes and its uid leases in one
// transaction. Deleting a missing id is not an error. Events are kept.
func (s *Store) DeleteSandbox(ctx context.Context, id string) error {
	return s.deleteSandbox(ctx, id, "", "")
}

// DeleteSandboxEvent is DeleteSandbox and RecordEvent(kind, message) in
// one transaction.
func (s *Store) DeleteSandboxEvent(ctx context.Context, id, kind, message string) error {
	return s.deleteSandbox(ctx, id, kind, message)
}

func (s *Store) deleteSandbox(ctx context.Context, id, kind, message string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		// Foreign keys would cascade; explicit deletes keep leases from
		// leaking even if someone opens the file with foreign keys off.
		for _, q := range []string{
			`DELETE FROM uid_leases WHERE sandbox = ?`,
			`DELETE FROM nodes WHERE sandbox = ?`,
			`DELETE FROM sandboxes WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		if kind == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO events (time, sandbox, kind, message) VALUES (?, ?, ?, ?)`,
			nanos(time.Now()), id, kind, message)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete sandbox %q: %w", id, err)
	}
	return nil
}

// Page tokens are base64url("created_nanos:id"): opaque to clients, and a
// keyset position that stays valid while rows are added or removed.
func encodePageToken(created int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(created, 10) + ":" + id))
}

func decodePageToken(tok string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, "", fmt.Errorf("page token: %w", ErrInvalid)
	}
	c, id, ok := strings.Cut(string(raw), ":")
	created, err := strconv.ParseInt(c, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", fmt.Errorf("page token: %w", ErrInvalid)
	}
	return created, id, nil
}
