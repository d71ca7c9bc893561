package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

func TestMain(m *testing.M) {
	RunChild()
	os.Exit(m.Run())
}

// requireRoot skips without root, and fails instead when CI demands root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NSLAB_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root and NSLAB_REQUIRE_ROOT=1")
	}
	t.Skip("needs root: builds namespaces, links and cgroups")
}

func randSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testManager returns a Manager whose state dir and cgroup parent are
// unique to this test, removed again at cleanup.
func testManager(t testing.TB) *Manager {
	t.Helper()
	requireRoot(t)
	parent := "nslab-test-" + randSuffix()
	m, err := NewManager(Config{StateDir: testStateDir(t), CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range m.Scan() {
			m.Destroy(context.Background(), id)
		}
		for _, r := range m.cg.roots {
			os.Remove(r + "/" + parent)
		}
	})
	return m
}

var uidNext uint32 = 1<<30 + uint32(os.Getpid()%700)*UIDRange*64 // stays below 2^32

// testUIDs hands out uid ranges for a lab's nodes (the server leases them
// from its database; tests just need distinct ones).
func testUIDs(lab *labs.Lab) map[string]uint32 {
	out := map[string]uint32{}
	for _, n := range lab.Nodes {
		out[n.Name] = uidNext
		uidNext += UIDRange
	}
	return out
}

func catalogLab(t testing.TB, id string) *labs.Lab {
	t.Helper()
	c, err := labs.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// build makes a sandbox and destroys it at cleanup.
func build(t testing.TB, m *Manager, lab *labs.Lab) *Sandbox {
	t.Helper()
	id := NewID()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := m.Build(ctx, lab, id, testUIDs(lab))
	if err != nil {
		t.Fatalf("build %s: %v", lab.ID, err)
	}
	t.Cleanup(func() {
		sb.Close()
		if err := m.Destroy(context.Background(), id); err != nil {
			t.Errorf("destroy %s: %v", id, err)
		}
	})
	return sb
}

type execResult struct {
	stdout, stderr string
	st             ExitStatus
}

func run(t testing.TB, sb *Sandbox, node string, argv ...string) execResult {
	t.Helper()
	var out, errb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sb.Exec(ctx, node, ExecRequest{Argv: argv, Timeout: 20 * time.Second}, func(s int, b []byte) error {
		if s == Stdout {
			out.Write(b)
		} else {
			errb.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", argv, node, err)
	}
	return execResult{out.String(), errb.String(), st}
}

func mustRun(t testing.TB, sb *Sandbox, node string, argv ...string) string {
	t.Helper()
	r := run(t, sb, node, argv...)
	if r.st.Code != 0 {
		t.Fatalf("%s: %v exited %d\nstdout: %s\nstderr: %s", node, argv, r.st.Code, r.stdout, r.stderr)
	}
	return r.stdout
}

// testStateDir is a temporary directory that node processes (unprivileged
// host uids) can search, as /run/nslab is in production.
func testStateDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

var _ = fmt.Sprint
