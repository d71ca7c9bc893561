package sandbox

import (
	"fmt"
	"os"

	"nslab/sandbox/svc"
)

// The argv[0] values under which this binary runs as a sandbox child.
const (
	argv0Init    = "nslab-init"
	argv0Hub     = "nslab-hub"
	argv0Service = "nslab-service"
)

// RunChild must be called first thing in main (and in TestMain of any
// package whose tests build sandboxes). When the process was started as a
// node init, a hub holder or a built-in service, it runs that role and
// exits; otherwise it returns immediately.
func RunChild() {
	if len(os.Args) == 0 {
		return
	}
	switch os.Args[0] {
	case argv0Init, argv0Hub, argv0Service:
		// ps shows comm, which would be "exe" after /proc/self/exe.
		name := os.Args[0]
		if os.Args[0] == argv0Service && len(os.Args) > 1 {
			name = "nslab-" + os.Args[1]
		}
		os.WriteFile("/proc/self/comm", []byte(name), 0)
	}
	switch os.Args[0] {
	case argv0Init:
		os.Exit(initMain(os.Args[1:]))
	case argv0Hub:
		os.Exit(hubMain(os.Args[1:]))
	case argv0Service:
		os.Exit(svc.Main(os.Args[1:]))
	}
}

func fatalf(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", os.Args[0], fmt.Sprintf(format, args...))
	return 1
}
