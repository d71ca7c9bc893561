package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"nslab/server/store"
)

// TestTokenCommand: `labd token create|list|revoke` on a database.
func TestTokenCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "labd.db")
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := tokenCommand(t.Context(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	usage := [][]string{
		{},
		{"mint"},
		{"create", "--db", db},
		{"create", "--role", "learner", "--db", db},
		{"create", "--subject", "x", "--db", db},
		{"create", "--role", "learner", "--subject", "x", "extra", "--db", db},
		{"revoke", "--db", db},
		{"revoke", "t-1", "t-2", "--db", db},
		{"list", "--nope"},
	}
	for _, args := range usage {
		if code, _, errs := run(args...); code != 2 || !strings.Contains(errs, "Usage:") {
			t.Errorf("labd token %q = %d, %q; want 2 and the usage", args, code, errs)
		}
	}
	if code, _, errs := run("list", "--db", db); code != 1 || !strings.Contains(errs, db) {
		t.Errorf("list without a database = %d, %q; want 1 naming it", code, errs)
	}
	if code, _, errs := run("create", "--role", "root", "--subject", "x", "--db", db); code != 1 || !strings.Contains(errs, `role "root"`) {
		t.Errorf("create with a bad role = %d, %q", code, errs)
	}

	code, out, errs := run("create", "--role", "instructor", "--subject", "ivy", "--workshop", "w1", "--db", db)
	if code != 0 || !strings.Contains(errs, "shown only now") {
		t.Fatalf("create = %d, %q, %q", code, out, errs)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kv[k] = strings.TrimSpace(v)
	}
	if kv["role"] != "instructor" || kv["subject"] != "ivy" || kv["workshop"] != "w1" || !strings.HasPrefix(kv["secret"], store.TokenPrefix) || !strings.HasPrefix(kv["id"], "t-") {
		t.Errorf("create printed %q", out)
	}
	code, quiet, _ := run("create", "-q", "--db", db, "--role", "learner", "--subject", "w1/ann", "--workshop", "w1")
	if code != 0 || !strings.HasPrefix(quiet, store.TokenPrefix) || strings.Count(quiet, "\n") != 1 {
		t.Errorf("create -q printed %q", quiet)
	}

	code, out, _ = run("list", "--db", db)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, kv["id"]) || strings.Contains(out, store.TokenPrefix) {
		t.Errorf("list = %d:\n%s", code, out)
	}
	// Flags after the id, too.
	if code, out, errs := run("revoke", kv["id"], "--db", db); code != 0 || !strings.Contains(out, kv["id"]+" (instructor ivy) revoked") {
		t.Errorf("revoke = %d, %q, %q", code, out, errs)
	}
	code, out, _ = run("list", "--db", db, "--workshop", "w1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.HasSuffix(lines[1], " -") || !strings.HasSuffix(lines[2], " -") {
		t.Errorf("list after revoke:\n%s", out)
	}
	if code, _, errs := run("revoke", "t-00000000", "--db", db); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("revoke of an unknown id = %d, %q", code, errs)
	}
}
