package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrBadRequest: a request the sandbox refuses as malformed (callers map
// it to InvalidArgument).
var ErrBadRequest = errors.New("bad request")

// XDP objects must live on one of the node's own tmpfs mounts, so labd
// never reads a host file on a learner's behalf.
var xdpDirs = []string{"/tmp/", "/var/tmp/", "/run/", "/dev/shm/"}

const maxXDPObject = 4 << 20

var sectionRE = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,64}$`)

// AttachXDP loads the XDP object at objPath (a path inside the node) and
// attaches it in generic mode to iface of node; with detach it removes
// the interface's program instead. It returns the kernel's view of the
// interface's XDP program afterwards.
//
// A node's root cannot load BPF (that needs privilege in the host's user
// namespace, and unprivileged BPF is off), so labd does it: the object is
// read through the node's own root with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_SYMLINKS) from the node's tmpfs, copied to a private host
// file, and handed to iproute2 (whose libbpf does the ELF loading) running
// in the node's network namespace only. The verifier still checks the
// program; loading it with host privilege is the residual risk the XDP lab
// states.
func (s *Sandbox) AttachXDP(ctx context.Context, node, iface, objPath, section string, detach bool) (string, error) {
	p := s.nodes[node]
	if p == nil {
		return "", fmt.Errorf("node %q in sandbox %s: %w", node, s.ID, ErrNodeNotFound)
	}
	release, err := s.hold()
	if err != nil {
		return "", err
	}
	defer release()
	if iface == "" || len(iface) > 15 || strings.ContainsAny(iface, "/ \x00") {
		return "", fmt.Errorf("interface %q: %w", iface, ErrBadRequest)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(p.nsFd()), unix.NETLINK_ROUTE)
	if err != nil {
		return "", fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	if _, err := h.LinkByName(iface); err != nil {
		return "", fmt.Errorf("node %s has no interface %q: %w", node, iface, ErrBadRequest)
	}
	args := []string{"link", "set", "dev", iface, "xdpgeneric", "off"}
	if !detach {
		if section == "" {
			section = "xdp"
		}
		if !sectionRE.MatchString(section) {
			return "", fmt.Errorf("section %q: %w", section, ErrBadRequest)
		}
		host, err := copyNodeFile(p, objPath)
		if err != nil {
			return "", err
		}
		defer os.Remove(host)
		args = []string{"link", "set", "dev", iface, "xdpgeneric", "obj", host, "sec", section}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "nsenter", append([]string{"--net=/proc/" + fmt.Sprint(p.pid) + "/ns/net", "--", "ip"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + nodePath}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 4000 {
			msg = msg[len(msg)-4000:] // the verifier log can be long; its end says why
		}
		return "", fmt.Errorf("load XDP object %s on %s %s: %s: %w", objPath, node, iface, msg, ErrBadRequest)
	}
	return xdpStatus(h, iface)
}

func xdpStatus(h *netlink.Handle, iface string) (string, error) {
	l, err := h.LinkByName(iface)
	if err != nil {
		return "", err
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return "no XDP program on " + iface, nil
	}
	return fmt.Sprintf("XDP program id %d attached to %s (generic mode)", x.ProgId, iface), nil
}

// copyNodeFile copies a regular file from the node's tmpfs into a private
// host temp file and returns its path.
func copyNodeFile(p *proc, nodePath string) (string, error) {
	clean := path.Clean(nodePath)
	if !path.IsAbs(nodePath) || clean != nodePath {
		return "", fmt.Errorf("object %q: must be a clean absolute path: %w", nodePath, ErrBadRequest)
	}
	ok := false
	for _, d := range xdpDirs {
		ok = ok || strings.HasPrefix(clean, d)
	}
	if !ok {
		return "", fmt.Errorf("object %q: must be under %s (the node's own files): %w", nodePath, strings.Join(xdpDirs, ", "), ErrBadRequest)
	}
	root, err := os.Open(fmt.Sprintf("/proc/%d/root", p.pid))
	if err != nil {
		return "", fmt.Errorf("open node root: %w", err)
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), strings.TrimPrefix(clean, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return "", fmt.Errorf("object %q in node %s: %v: %w", nodePath, p.name, err, ErrBadRequest)
	}
	src := os.NewFile(uintptr(fd), nodePath)
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxXDPObject {
		return "", fmt.Errorf("object %q: must be a regular file of at most %d bytes: %w", nodePath, maxXDPObject, ErrBadRequest)
	}
	dst, err := os.CreateTemp("", "nslab-xdp-*.o")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, io.LimitReader(src, maxXDPObject)); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		return "", err
	}
	if err := dst.Close(); err != nil {
		os.Remove(dst.Name())
		return "", err
	}
	return dst.Name(), nil
}
