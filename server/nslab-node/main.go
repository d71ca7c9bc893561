// Command nslab-node is the part of labd that runs in and for sandboxes:
// node inits (PID 1 of each node), hub holders, the spawner and the
// built-in services. It is package sandbox, labd's own code, built
// without labd's gRPC, SQLite and Prometheus: about 10 MB instead of 30,
// and, built with CGO_ENABLED=0, about 1.9 ms of CPU from exec to work
// against labd's 5.3 ms (perf stat here). A routed sandbox starts eight
// such processes (hub, four inits, three services), so this is most of
// what a create costs beyond the kernel's own work (docs/BENCHMARKS.md).
//
// labd uses it when it lies beside labd's binary or is named by
// --node-binary, and only if it was built from the same code
// (sandbox.CheckNodeBinary); otherwise labd starts these processes from
// itself, as DESIGN.md describes ("labd re-executes itself"). Build both
// together: .ci/dev build, or
//
//	go build -o bin/labd ./server && CGO_ENABLED=0 go build -o bin/nslab-node ./server/nslab-node
//
// It lives under server/ because it is a build of labd's, not a tool of
// its own; run by hand, it only says what it is for.
package main

import (
	"fmt"
	"os"

	"nslab/sandbox"
)

func main() {
	sandbox.RunChild() // runs the role os.Args[0] names, and exits
	fmt.Fprintln(os.Stderr, "nslab-node: labd starts this binary for its sandboxes' processes; it is not run by hand")
	os.Exit(2)
}
