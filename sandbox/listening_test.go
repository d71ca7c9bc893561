package sandbox

import (
	"testing"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestListeningPorts: the sock_diag dumps waitServices polls see a TCP
// listener and a bound UDP socket in the namespace asked, IPv4 and IPv6,
// and nothing of a TCP socket that is bound but not listening, nor of the
// host's own sockets.
func TestListeningPorts(t *testing.T) {
	requireRoot(t)
	ns, err := newScratchNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(family, typ int, sa unix.Sockaddr, listen bool) {
		t.Helper()
		err := inNetNS(int(ns.Fd()), func() error {
			fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if family == unix.AF_INET6 {
				unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			}
			if err := unix.Bind(fd, sa); err != nil {
				return err
			}
			if listen {
				return unix.Listen(fd, 4)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	open(unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Port: 7007}, true)
	open(unix.AF_INET6, unix.SOCK_STREAM, &unix.SockaddrInet6{Port: 7008}, true)
	open(unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Port: 7009}, false) // bound only
	open(unix.AF_INET6, unix.SOCK_DGRAM, &unix.SockaddrInet6{Port: 7010}, false)
	open(unix.AF_INET, unix.SOCK_DGRAM, &unix.SockaddrInet4{Port: 7011}, false)

	s, err := nl.GetNetlinkSocketAt(netns.NsHandle(ns.Fd()), netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tcp, udp := listeningPorts(s, "tcp"), listeningPorts(s, "udp")
	for port, want := range map[int]bool{7007: true, 7008: true, 7009: false, 7010: false, 7011: false} {
		if tcp[port] != want {
			t.Errorf("tcp port %d listening = %v, want %v", port, tcp[port], want)
		}
	}
	for port, want := range map[int]bool{7010: true, 7011: true, 7007: false} {
		if udp[port] != want {
			t.Errorf("udp port %d = %v, want %v", port, udp[port], want)
		}
	}
	if len(tcp) != 2 || len(udp) != 2 {
		t.Errorf("tcp %v udp %v: the scratch namespace holds two of each", tcp, udp)
	}
}
