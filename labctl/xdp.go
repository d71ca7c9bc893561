package main

import (
	"context"
	"fmt"

	labsv1 "nslab/proto/labs/v1"
)

// cmdXDP: labctl xdp attach ID NODE IFACE OBJECT [--section S]
//
//	labctl xdp detach ID NODE IFACE
//
// A node's root cannot load BPF, so labd loads the object (built in the
// node, e.g. with clang -target bpf into /tmp) on the learner's behalf.
func (c *cli) cmdXDP(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "attach" && args[0] != "detach") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(c.stdout, "Usage: labctl xdp attach [--section S] ID NODE IFACE OBJECT\n       labctl xdp detach ID NODE IFACE\n\nOBJECT is the compiled program's path inside the node, under /tmp, /var/tmp, /run or /dev/shm.")
			return nil
		}
		return usageErr{cmd: "xdp", msg: "xdp: want attach or detach"}
	}
	detach := args[0] == "detach"
	fs := c.newFlags("xdp", "xdp attach [--section S] ID NODE IFACE OBJECT | xdp detach ID NODE IFACE")
	section := fs.String("section", "xdp", "ELF section of the program")
	want := 4
	if detach {
		want = 3
	}
	pos, rest, err := fs.parse(args[1:], want)
	if err != nil {
		return err
	}
	if len(pos) != want || len(rest) > 0 {
		return usageErr{cmd: "xdp", msg: fmt.Sprintf("xdp %s: want %d arguments", args[0], want)}
	}
	req := &labsv1.AttachXDPRequest{Sandbox: pos[0], Node: pos[1], Interface: pos[2], Detach: detach}
	if !detach {
		req.Object, req.Section = pos[3], *section
	}
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.AttachXDP(cctx, req)
	if err != nil {
		return rpcError(fmt.Sprintf("%s XDP on %s %s", args[0], pos[1], pos[2]), err)
	}
	fmt.Fprintln(c.stdout, resp.GetStatus())
	return nil
}
