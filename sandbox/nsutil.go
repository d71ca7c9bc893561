package sandbox

import (
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on a fresh OS thread switched into the network
// namespace nsFd. Topology work never needs this (netlink handles are
// opened in the namespace); it is for the few things that act through the
// calling thread's namespace, such as writes under /proc/sys/net.
//
// As in containernetworking's ns.Do, the thread is unlocked only if
// switching back succeeded; otherwise it stays locked and the runtime
// ends it with the goroutine, so no goroutine ever runs in the wrong
// namespace.
func inNetNS(nsFd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime discards it.
			errc <- fmt.Errorf("return to original netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newScratchNetNS returns an fd for a new, empty network namespace that
// lives as long as the fd is open.
func newScratchNetNS() (*os.File, error) {
	type res struct {
		f   *os.File
		err error
	}
	rc := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			rc <- res{nil, err}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			rc <- res{nil, fmt.Errorf("unshare netns: %w", err)}
			return
		}
		f, ferr := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			if f != nil {
				f.Close()
			}
			rc <- res{nil, fmt.Errorf("return to original netns: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		rc <- res{f, ferr}
	}()
	r := <-rc
	return r.f, r.err
}

// writeSysctl writes a net.* sysctl in the namespace nsFd.
func writeSysctl(nsFd int, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return inNetNS(nsFd, func() error {
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}

// procStartTime is field 22 of /proc/<pid>/stat: the start time in clock
// ticks since boot. With the pid it identifies a process across pid reuse.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm may contain spaces and parentheses; fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// NewID returns a short random sandbox id such as "s-7f3a9c".
func NewID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "s-" + string(b)
}

// validID reports whether s has the shape NewID makes. Only such names are
// ever treated as sandboxes when scanning the host.
func validID(s string) bool {
	if len(s) != 8 || !strings.HasPrefix(s, "s-") {
		return false
	}
	for _, c := range s[2:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a well-formed sandbox id.
func ValidID(s string) bool { return validID(s) }
