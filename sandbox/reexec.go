package sandbox

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"nslab/sandbox/svc"
)

// The argv[0] values under which this binary runs as a sandbox child.
const (
	argv0Init    = "nslab-init"
	argv0Hub     = "nslab-hub"
	argv0Service = "nslab-service"
)

// childName is the process name ps shows for a sandbox child ("" for
// anything else): comm would be "exe" after /proc/self/exe.
func childName(args []string) string {
	if len(args) == 0 {
		return ""
	}
	switch args[0] {
	case argv0Init, argv0Hub, argv0Spawn:
		return args[0]
	case argv0Service:
		if len(args) > 1 {
			return "nslab-" + args[1]
		}
		return args[0]
	}
	return ""
}

// Package initialisation runs on the main thread, whose name is the
// process's. prctl, not /proc/self/comm: a node init may not write its
// own /proc files (it is not dumpable, see spawn.go).
func init() {
	if name := childName(os.Args); name != "" {
		b := append([]byte(name), 0)
		unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0, 0)
	}
	// The spawner starts each node, and labd each hub, from a locked
	// thread that is thrown away afterwards with the namespaces and
	// cgroups it entered (serveSpawnRequest, startChild). The runtime
	// never ends the main thread: a thrown-away goroutine that ran there
	// would wedge it, holding that node's namespaces and cgroups until
	// the process exits. Keeping the main goroutine on the main thread
	// keeps them off it.
	runtime.LockOSThread()
}

// RunChild must be called first thing in main (and in TestMain of any
// package whose tests build sandboxes). When the process was started as a
// node init, a hub holder, the spawner or a built-in service, it runs that
// role and exits; otherwise it returns immediately.
func RunChild() {
	if len(os.Args) == 0 {
		return
	}
	switch os.Args[0] {
	case argv0Init, argv0Hub, argv0Service:
		// One P: these processes mostly wait, and each extra P costs
		// thread wake-ups (futex, an IPI in a VM) at every hand-off to a
		// locked thread, in hundreds of processes on a host.
		runtime.GOMAXPROCS(1)
	}
	switch os.Args[0] {
	case argv0Init:
		os.Exit(initMain(os.Args[1:]))
	case argv0Hub:
		os.Exit(hubMain(os.Args[1:]))
	case argv0Spawn:
		os.Exit(spawnMain(os.Args[1:]))
	case argv0Service:
		os.Exit(svc.Main(os.Args[1:]))
	case argv0Fingerprint:
		fmt.Println(BuildFingerprint())
		os.Exit(0)
	}
}

func fatalf(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", os.Args[0], fmt.Sprintf(format, args...))
	return 1
}
