package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	labsv1 "nslab/proto/labs/v1"
)

// xdpCommand is "labctl xdp attach|detach". A node's root cannot load BPF,
// so labd loads the object (built in the node, e.g. with clang -target bpf
// into /tmp) on the learner's behalf.
func (c *cli) xdpCommand() *cobra.Command {
	xdp := &cobra.Command{
		Use:   "xdp attach|detach ...",
		Short: "load or remove a learner's XDP program on a node's interface",
		Long: "A node's root cannot load BPF, so labd loads the object (built in the\n" +
			"node, e.g. with clang -target bpf into /tmp) on the learner's behalf.",
		Example:     "  labctl xdp attach s-7f3a9c r1 eth0 /tmp/drop.o\n  labctl xdp detach s-7f3a9c r1 eth0",
		Annotations: map[string]string{listChildrenOnly: "yes"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(cmd, "want attach or detach")
			}
			return usagef(cmd, "want attach or detach, not %q", args[0])
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	var section string
	attach := &cobra.Command{
		Use:   "attach [flags] ID NODE IFACE OBJECT",
		Short: "load an XDP program (labd loads BPF)",
		Long: "Loads OBJECT, the compiled program's path inside the node (under /tmp,\n" +
			"/var/tmp, /run or /dev/shm), and attaches it to IFACE in generic mode.",
		Example:           "  labctl xdp attach s-7f3a9c r1 eth0 /tmp/drop.o\n  labctl xdp attach --section xdp_drop s-7f3a9c r1 eth0 /tmp/prog.o",
		Args:              exactArgs(4, "ID NODE IFACE OBJECT"),
		ValidArgsFunction: c.completeSandboxNodes,
		RunE: func(cmd *cobra.Command, pos []string) error {
			return c.xdp(cmd.Context(), &labsv1.AttachXDPRequest{
				Sandbox: pos[0], Node: pos[1], Interface: pos[2], Object: pos[3], Section: section,
			})
		},
	}
	attach.Flags().StringVar(&section, "section", "xdp", "ELF section of the program")
	detach := &cobra.Command{
		Use:               "detach ID NODE IFACE",
		Short:             "remove an XDP program",
		Example:           "  labctl xdp detach s-7f3a9c r1 eth0",
		Args:              exactArgs(3, "ID NODE IFACE"),
		ValidArgsFunction: c.completeSandboxNodes,
		RunE: func(cmd *cobra.Command, pos []string) error {
			return c.xdp(cmd.Context(), &labsv1.AttachXDPRequest{
				Sandbox: pos[0], Node: pos[1], Interface: pos[2], Detach: true,
			})
		},
	}
	xdp.AddCommand(attach, detach)
	return xdp
}

func (c *cli) xdp(ctx context.Context, req *labsv1.AttachXDPRequest) error {
	client, err := c.sandboxClient()
	if err != nil {
		return err
	}
	verb := "attach"
	if req.GetDetach() {
		verb = "detach"
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.AttachXDP(cctx, req)
	if err != nil {
		return rpcError(fmt.Sprintf("%s XDP on %s %s", verb, req.GetNode(), req.GetInterface()), err).
			on(subject{sandbox: req.GetSandbox(), node: req.GetNode()})
	}
	fmt.Fprintln(c.stdout, resp.GetStatus())
	return nil
}
