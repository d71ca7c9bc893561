package sandbox

import (
	"context"
	"errors"
	"testing"
)

// TestAttachXDPRefusesHostFiles: labd reads the object as host root, so
// it must only ever read the node's own tmpfs files, never follow a
// learner's symlink out of them.
func TestAttachXDPRefusesHostFiles(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	mustRun(t, sb, "h2", "sh", "-c", "ln -s /etc/shadow /tmp/shadow.o && mkdir -p /tmp/d && ln -s /etc /tmp/d/etc && echo notelf > /tmp/bad.o")
	ctx := context.Background()
	for _, tc := range []struct{ name, iface, obj string }{
		{"host path", "eth0", "/etc/passwd"},
		{"dot-dot", "eth0", "/tmp/../etc/passwd"},
		{"symlink to a host file", "eth0", "/tmp/shadow.o"},
		{"symlinked dir", "eth0", "/tmp/d/etc/passwd"},
		{"relative", "eth0", "tmp/bad.o"},
		{"not an ELF", "eth0", "/tmp/bad.o"},
		{"no such interface", "eth9", "/tmp/bad.o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sb.AttachXDP(ctx, "h2", tc.iface, tc.obj, "xdp", false)
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("AttachXDP(%s) = %v, want ErrBadRequest", tc.obj, err)
			}
		})
	}
	if _, err := sb.AttachXDP(ctx, "nobody", "eth0", "/tmp/bad.o", "", false); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	if st, err := sb.AttachXDP(ctx, "h2", "eth0", "", "", true); err != nil {
		t.Errorf("detach with nothing attached: %v", err)
	} else {
		t.Log(st)
	}
}
