package svc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// UDPEcho sends each datagram received on pc back to its sender. When ctx is
// cancelled it closes pc and returns nil.
//
// Datagrams from port 0 or from pc's own port are dropped: two echo services
// pointed at each other (easy to do by spoofing a source in a lab) would
// otherwise bounce one packet between them forever.
func UDPEcho(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()

	ownPort := -1
	if la, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		ownPort = la.Port
	}
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // an ICMP error for an earlier reply; not ours to act on
			}
			return fmt.Errorf("read on udp %s: %w", pc.LocalAddr(), err)
		}
		if ua, ok := addr.(*net.UDPAddr); ok && (ua.Port == 0 || ua.Port == ownPort) {
			continue
		}
		if _, err := pc.WriteTo(buf[:n], addr); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// An unreachable sender must not stop the service for everyone
			// else; the datagram is simply lost, as UDP allows.
			continue
		}
	}
}
