package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// buildNodeBinary builds server/nslab-node as labd's build does, without
// a VCS stamp: go test does not stamp this test binary either, and the
// fingerprints must match.
func buildNodeBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nslab-node")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildvcs=false", "-o", p, "../server/nslab-node")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nslab-node: %v\n%s", err, out)
	}
	return p
}

// TestNodeBinary: with Config.NodeBinary, the hub runs from that binary
// and the inits (and the services they start) from the state dir's
// unreadable copy of it, and the sandbox works as with labd's own.
func TestNodeBinary(t *testing.T) {
	requireRoot(t)
	bin := buildNodeBinary(t)
	vetted, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	parent := "nslab-test-" + randSuffix()
	m, err := NewManager(Config{StateDir: testStateDir(t), CgroupParent: parent, NodeBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range m.Scan() {
			m.Destroy(context.Background(), id)
		}
		m.Close()
		for _, r := range m.cg.roots {
			os.Remove(r + "/" + parent)
		}
	})
	// Whoever may rename files beside it cannot swap another binary in
	// after the check: the Manager execs the file it vetted.
	echo, err := os.ReadFile("/bin/echo")
	if err != nil {
		t.Fatal(err)
	}
	swap := bin + ".swap"
	if err := os.WriteFile(swap, echo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(swap, bin); err != nil {
		t.Fatal(err)
	}
	sb := build(t, m, catalogLab(t, "routed"))
	if got, _ := os.Readlink(procExe(sb.hub.pid)); got != bin+" (deleted)" {
		t.Errorf("hub runs %q, want the vetted %q, since replaced", got, bin)
	}
	want := vetted
	for name, p := range sb.nodes {
		exe, _ := os.Readlink(procExe(p.pid))
		fi, err := os.Stat(exe)
		if exe != filepath.Join(m.stateDir, argv0Init) || err != nil || fi.Size() != want.Size() || fi.Mode().Perm() != 0o711 {
			t.Errorf("init of %s runs %q (%v), want the 0711 copy of %s in the state dir", name, exe, err, bin)
		}
	}
	mustRun(t, sb, "h1", "ping", "-c1", "-W2", "10.0.2.10")
	if out := mustRun(t, sb, "h1", "bash", "-c", "exec 3<>/dev/tcp/10.0.2.10/7; echo ping-7 >&3; head -n1 <&3"); out != "ping-7\n" {
		t.Errorf("tcp echo answered %q", out)
	}
}

func procExe(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/exe" }

// TestNodeBinaryRefused: a node binary root alone cannot change, of the
// same code, or none at all.
func TestNodeBinaryRefused(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	// Any other program: echo answers the fingerprint question with "".
	other := filepath.Join(dir, "other")
	echo, err := os.ReadFile("/bin/echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, echo, 0o755); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(dir, "writable")
	if err := os.WriteFile(writable, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(writable, 0o777)
	for _, tc := range []struct{ path, want string }{
		{other, "built from other code"},
		{writable, "only root may change it"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not an executable file"},
	} {
		_, err := NewManager(Config{StateDir: testStateDir(t), CgroupParent: "nslab-test-" + randSuffix(), NodeBinary: tc.path})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NodeBinary %s: %v, want an error saying %q", filepath.Base(tc.path), err, tc.want)
		} else {
			t.Logf("%s: %v", filepath.Base(tc.path), err)
		}
	}
}
