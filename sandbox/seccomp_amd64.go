package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A node's root holds every capability of its own user namespace, and a
// few system calls act on more than the node with them: reboot(2) from a
// pid namespace kills that namespace's init (the node would vanish under
// labd), and module and kexec calls reach the host kernel's own checks.
// The kernel already refuses the latter; the filter makes all of them fail
// plainly with EPERM. It also refuses the 32-bit and x32 system call
// tables outright: nothing a lab teaches needs them, and they are where
// syscall filters are classically bypassed.
var deniedSyscalls = []uint32{
	unix.SYS_REBOOT,
	unix.SYS_KEXEC_LOAD,
	unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_INIT_MODULE,
	unix.SYS_FINIT_MODULE,
	unix.SYS_DELETE_MODULE,
}

// prlimit64(1, ...) with new limits is refused too: the init shares the
// node root's uid, which is all setting another process's limits takes,
// and a CPU-time limit (the kernel then sends SIGKILL, which even PID 1
// of a pid namespace cannot ignore) or a small address space would end
// the node. Reading pid 1's limits, and any other process's, still works.

const (
	auditArchX8664  = 0xc000003e
	x32SyscallBit   = 0x40000000
	seccompRetErrno = 0x00050000
	seccompRetAllow = 0x7fff0000
	offNr           = 0  // offsetof(struct seccomp_data, nr)
	offArch         = 4  // offsetof(struct seccomp_data, arch)
	offArgs         = 16 // offsetof(struct seccomp_data, args): u64 each, little-endian
)

// installSeccomp applies the node's filter to every thread of the calling
// process (TSYNC); children inherit it across fork and exec.
func installSeccomp() error {
	eperm := uint32(seccompRetErrno | uint32(unix.EPERM))
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jeq := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: jt, Jf: jf, K: k}
	}
	prog := []unix.SockFilter{
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch),
		jeq(auditArchX8664, 1, 0),
		stmt(unix.BPF_RET|unix.BPF_K, eperm), // i386 and anything else
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr),
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 0, Jf: 1, K: x32SyscallBit},
		stmt(unix.BPF_RET|unix.BPF_K, eperm), // x32
	}
	// After the list: the prlimit64 check, then ALLOW at +9, EPERM at +10.
	n := len(deniedSyscalls)
	for i, nr := range deniedSyscalls {
		prog = append(prog, jeq(nr, uint8(n+9-i), 0))
	}
	prog = append(prog,
		jeq(unix.SYS_PRLIMIT64, 0, 8),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgs), // pid, low word
		jeq(1, 0, 6),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgs+4), // pid, high word
		jeq(0, 0, 4),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgs+16), // new limit pointer, low
		jeq(0, 0, 3),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgs+20), // high
		jeq(0, 0, 1),
		stmt(unix.BPF_RET|unix.BPF_K, seccompRetAllow),
		stmt(unix.BPF_RET|unix.BPF_K, eperm),
	)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	return nil
}
