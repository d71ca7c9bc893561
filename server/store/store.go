// Package store owns labd's durable state: one SQLite database (WAL mode,
// foreign keys on) holding sandboxes, their nodes, host uid-range leases and
// an audit trail of events. It is the source of truth that reconciliation
// trusts after a crash, so every multi-row change happens in one transaction.
//
// Writes go through a single connection (BEGIN IMMEDIATE), which serialises
// them inside the process and makes allocation decisions such as "lowest free
// uid range" race-free; reads use a separate small pool of query-only
// connections, which WAL lets run alongside the writer.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

var (
	// ErrNotFound: the named sandbox, node or other object has no row.
	ErrNotFound = errors.New("not found")
	// ErrExhausted: no free uid range (or other leased resource) is left.
	ErrExhausted = errors.New("resource exhausted")
	// ErrAlreadyExists: a sandbox with that id already has a row.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: an argument the store cannot act on (bad page token,
	// duplicate node names, unknown state, uid window outside uint32).
	ErrInvalid = errors.New("invalid argument")
)

// busyTimeout bounds how long a statement waits for another process holding
// the database lock (e.g. an operator's sqlite3 shell) before failing.
const busyTimeout = 5 * time.Second

// readConns is the size of the read pool; reads are short point lookups.
const readConns = 4

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is safe for concurrent use by multiple goroutines.
type Store struct {
	w        *sql.DB // one connection: every write transaction
	r        *sql.DB // query-only pool: reads
	instance string
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns a ready Store. The parent directory is created with
// mode 0700 if missing and a new database file gets mode 0600: it will hold
// tokens.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("open store %q: a file path is required: %w", path, ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open store %q: create directory: %w", path, err)
	}
	// SQLite would create the file 0644 and give -wal/-shm the same mode;
	// creating it first makes all three private.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	f.Close()

	w, err := sql.Open("sqlite3", dsn(abs, url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"},
		"_busy_timeout": {strconv.FormatInt(busyTimeout.Milliseconds(), 10)},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	if s.instance, err = s.loadInstanceID(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}

	r, err := sql.Open("sqlite3", dsn(abs, url.Values{
		"_busy_timeout": {strconv.FormatInt(busyTimeout.Milliseconds(), 10)},
		"_foreign_keys": {"1"},
		"_query_only":   {"1"},
	}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	s.r = r
	return s, nil
}

// dsn builds a file: URI so that any byte in the path ('?', '#', '%') is
// escaped rather than taken for a parameter separator.
func dsn(abs string, params url.Values) string {
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + params.Encode()
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// InstanceID is a random id (8 hex chars) made on first open and kept in the
// database, so it is stable across restarts of labd on the same database.
func (s *Store) InstanceID() string { return s.instance }

func (s *Store) loadInstanceID(ctx context.Context) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	if _, err := s.w.ExecContext(ctx,
		`INSERT INTO meta (key, value) VALUES ('instance_id', ?) ON CONFLICT (key) DO NOTHING`,
		hex.EncodeToString(b[:])); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	var id string
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance_id'`).Scan(&id); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded files named NNNN_what.sql in version order.
func migrations() ([]migration, error) {
	entries, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, p := range entries {
		name := filepath.Base(p)
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration %q: version %d already used by %q", name, v, prev)
		}
		seen[v] = name
		body, err := migrationFS.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction together with its record,
// so a crash leaves the schema at a whole version.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name    TEXT NOT NULL,
		applied INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := s.w.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("database schema version %d is newer than this labd knows (%d)", current, latest)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.version, m.name, nanos(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %q: %w", m.name, err)
		}
	}
	return nil
}

// writeTx runs fn in a write transaction, committing if it returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// readTx runs fn in a read transaction: one consistent snapshot.
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

// fromNanos maps the stored 0 ("not yet") back to the zero time.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
