package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Files handed to a hub holder, in ExtraFiles order.
const (
	hubFdGo    = 3 // read end: a byte once placed in the cgroup; EOF = abort
	hubFdReady = 4 // write end: "ok\n" or the error
)

// hubMain holds a sandbox's hub network namespace alive. It is started
// with CLONE_NEWNET only: the hub belongs to the host's user namespace, so
// no learner — root only inside a node — can change the hub side of a
// link. args: stateDir sandbox.
func hubMain(args []string) int {
	if len(args) != 2 {
		return fatalf("usage: %s STATEDIR SANDBOX", argv0Hub)
	}
	ready := os.NewFile(hubFdReady, "ready")
	// The hub only switches frames; without IPv6 on its ports it adds no
	// router solicitations or DAD probes to what a learner captures.
	for _, k := range []string{"all", "default"} {
		p := "/proc/sys/net/ipv6/conf/" + k + "/disable_ipv6"
		if err := os.WriteFile(p, []byte("1"), 0); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(ready, "write %s: %v\n", p, err)
			return 1
		}
	}
	goPipe := os.NewFile(hubFdGo, "go")
	b := make([]byte, 1)
	if n, _ := goPipe.Read(b); n != 1 {
		return 1
	}
	goPipe.Close()
	fmt.Fprintf(ready, "ok\n")
	ready.Close()
	for {
		unix.Pause()
	}
}
