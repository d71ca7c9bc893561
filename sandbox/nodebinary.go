package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// argv0Fingerprint asks a binary that runs RunChild for its build
// fingerprint (see CheckNodeBinary).
const argv0Fingerprint = "nslab-fingerprint"

// wireVersion numbers the protocols between labd and what it starts (the
// spawner's requests, the init's control channel, the hub's and init's
// start-up pipes). Bump it with any change to them: a node binary of
// another version is refused.
const wireVersion = 1

// BuildFingerprint identifies the code of this binary as far as a node
// binary must match it: the wire version, the Go toolchain and the
// source revision it was built from (when the build recorded one).
func BuildFingerprint() string {
	fp := fmt.Sprintf("wire %d", wireVersion)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fp
	}
	fp += "; " + bi.GoVersion
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		if strings.HasPrefix(s.Key, "vcs.") {
			vcs[s.Key] = s.Value
		}
	}
	if r := vcs["vcs.revision"]; r != "" {
		fp += fmt.Sprintf("; %s %s", vcs["vcs"], r)
		if vcs["vcs.modified"] == "true" {
			fp += " (modified)"
		}
	}
	return fp
}

// CheckNodeBinary vets a binary labd is to start its hubs, spawner, node
// inits and services from instead of itself (Config.NodeBinary): it runs
// as root, so it must be a regular file that only root can change, and
// it must have been built from the same code as labd (same fingerprint).
// nslab-node (server/nslab-node) is such a binary: package sandbox
// without labd's gRPC, SQLite and Prometheus, it starts in about a third
// of labd's CPU time.
func CheckNodeBinary(path string) error {
	f, err := openNodeBinary(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// openNodeBinary opens and vets the node binary (CheckNodeBinary). The
// checks and every later exec go through the returned descriptor
// (/proc/self/fd/N), never the path again: whoever may rename files in
// its directory cannot swap in another binary after the check.
func openNodeBinary(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node binary: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("node binary: %w", err))
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fail(fmt.Errorf("node binary %s: not an executable file (mode %s)", path, fi.Mode()))
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fail(fmt.Errorf("node binary %s: owned by uid %d with mode %o; labd runs it as root, so only root may change it", path, st.Uid, fi.Mode().Perm()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fdPath(f))
	cmd.Args = []string{argv0Fingerprint}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fail(fmt.Errorf("node binary %s: asking its build fingerprint: %v %s", path, err, strings.TrimSpace(errb.String())))
	}
	got, want := strings.TrimSpace(out.String()), BuildFingerprint()
	if got != want {
		return fail(fmt.Errorf("node binary %s was built from other code (%q) than labd (%q): build both from the same tree", path, got, want))
	}
	return f, nil
}

// fdPath names an open file for exec: the kernel resolves it to the file
// the descriptor holds, whatever its path has become since.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }
