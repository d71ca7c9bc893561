// Package sandbox owns everything that touches the kernel: network
// namespaces, links, addresses, routes, policy rules, sysctls, cgroups,
// node processes and their exec channel.
//
// A sandbox is one hidden hub network namespace, held by a tiny "hub"
// process, with one Linux bridge per link or segment, plus one process tree
// per node. Each node's PID 1 is this same binary re-executed as
// "nslab-init" inside new user, network, mount, pid, uts and ipc
// namespaces, with root mapped to an unprivileged host uid range. Every
// node interface is a veth created in place: the hub side on its bridge,
// the node side directly in the node's namespace.
//
// Every host-visible object carries the sandbox id: the cgroups
// <parent>/<id>/<node>, the state directory <state>/sandboxes/<id>, and the
// argv of the hub and node processes (which also names the state
// directory, so two labd instances never reconcile each other's sandboxes).
// That is what lets Destroy and Scan work from the id alone after a crash.
package sandbox
