package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDestroyFindsProcessInOtherHierarchy: Destroy lists a sandbox's
// processes from one cgroup hierarchy; a process that is only in another
// one (nothing labd starts is, but a half-done join or an operator could
// leave one) must still be killed and every group removed.
func TestDestroyFindsProcessInOtherHierarchy(t *testing.T) {
	m := testManager(t)
	if len(m.cg.roots) < 2 {
		t.Skip("one cgroup hierarchy: nothing to hide a process in")
	}
	lab := catalogLab(t, "hello-link")
	id := NewID()
	sb, err := m.Build(context.Background(), lab, id, testUIDs(lab))
	if err != nil {
		t.Fatal(err)
	}
	sb.Close()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	hidden := filepath.Join(m.cg.dirs(id, "h1")[1], "cgroup.procs")
	if err := os.WriteFile(hidden, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Destroy(ctx, id); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("the process only in another hierarchy was not killed")
	}
	if left := hostTrace(m, id); len(left) > 0 {
		t.Errorf("left on the host: %q", left)
	}
}

// TestKillWaitSparesOthers: a pid listed from the cgroup that, by the time
// it is signalled, belongs to a process outside the sandbox (a reused pid)
// is left alone.
func TestKillWaitSparesOthers(t *testing.T) {
	m := testManager(t)
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if n := m.cg.killWait(NewID(), []int{cmd.Process.Pid}, time.Now().Add(time.Second)); n != 0 {
		t.Errorf("killWait signalled %d processes outside the sandbox", n)
	}
	if err := unix.Kill(cmd.Process.Pid, 0); err != nil {
		t.Errorf("the outside process is gone: %v", err)
	}
}
