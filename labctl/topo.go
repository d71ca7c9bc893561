package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	labsv1 "nslab/proto/labs/v1"
)

func (c *cli) topoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "topo [-o text|dot|mermaid] ID",
		Short: "draw a sandbox's topology",
		Long: "Draws the sandbox's topology: each link between two interfaces as a line\n" +
			"with the interfaces' names and addresses at its ends, each shared segment\n" +
			"as a bus with its members below, and the nodes that have no link.\n" +
			"-o dot and -o mermaid write a graph description for a picture.",
		Example: "  labctl topo s-7f3a9c\n" +
			"  labctl topo -o dot s-7f3a9c | dot -Tpng > topo.png\n" +
			"  labctl topo -o mermaid s-7f3a9c > topo.mmd",
		Args:              exactArgs(1, "exactly one sandbox ID"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "text", "dot", "mermaid", "json":
			default:
				return usagef(cmd, "unknown output format %q (want text, dot, mermaid or json)", format)
			}
			sb, err := c.getSandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch format {
			case "dot":
				return writeDot(c.stdout, sb)
			case "mermaid":
				return writeMermaid(c.stdout, sb)
			case "json":
				return c.printJSON(sb)
			}
			return writeTopo(c.stdout, sb, c.styleFor(c.stdout))
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "text", "output format: text, dot (Graphviz), mermaid or json")
	return cmd
}

// endpoint is one interface on a link.
type endpoint struct {
	node, iface string
	addrs       []string
}

func (e endpoint) name() string {
	if e.iface == "" {
		return e.node
	}
	return e.node + ":" + e.iface
}

// topoLink is a link (two endpoints) or a segment (any other number).
type topoLink struct {
	name string
	ends []endpoint
}

func (l topoLink) segment() bool { return len(l.ends) != 2 }

// topology is what the pictures draw, in the sandbox's order.
type topology struct {
	nodes    []string
	links    []topoLink
	unlinked []string // nodes on no link
}

// buildTopology joins the sandbox's links with its nodes' interfaces. An
// interface that names a link the links do not list still appears on it,
// so that a partial answer from labd draws what it knows.
func buildTopology(sb *labsv1.Sandbox) topology {
	var t topology
	addrs := map[string][]string{} // "node:iface"
	linked := map[string]bool{}
	seen := map[string]bool{} // endpoints on some link
	for _, n := range sb.GetNodes() {
		t.nodes = append(t.nodes, n.GetName())
		for _, ifc := range n.GetInterfaces() {
			addrs[n.GetName()+":"+ifc.GetName()] = ifc.GetAddresses()
		}
	}
	index := map[string]int{}
	add := func(link, ep string) {
		i, ok := index[link]
		if !ok {
			i = len(t.links)
			index[link] = i
			t.links = append(t.links, topoLink{name: link})
		}
		node, iface, _ := strings.Cut(ep, ":")
		t.links[i].ends = append(t.links[i].ends, endpoint{node: node, iface: iface, addrs: addrs[ep]})
		linked[node] = true
		seen[ep] = true
	}
	for _, l := range sb.GetLinks() {
		if _, ok := index[l.GetName()]; !ok {
			index[l.GetName()] = len(t.links)
			t.links = append(t.links, topoLink{name: l.GetName()})
		}
		for _, ep := range l.GetEndpoints() {
			add(l.GetName(), ep)
		}
	}
	for _, n := range sb.GetNodes() {
		for _, ifc := range n.GetInterfaces() {
			if ep := n.GetName() + ":" + ifc.GetName(); ifc.GetLink() != "" && !seen[ep] {
				add(ifc.GetLink(), ep)
			}
		}
	}
	for _, n := range t.nodes {
		if !linked[n] {
			t.unlinked = append(t.unlinked, n)
		}
	}
	return t
}

// writeTopo draws the topology as text, one block per link:
//
//	[h1-r1]  h1:eth0 ──────── r1:eth0
//	         10.0.1.10/24     10.0.1.1/24
//
//	[lan]    ══╤══════════════ segment, 3 members
//	           ├─ h1:eth0  10.0.0.1/24
//	           └─ h3:eth0  10.0.0.3/24
func writeTopo(w io.Writer, sb *labsv1.Sandbox, st styles) error {
	t := buildTopology(sb)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s, %s\n", st.bold(sandboxID(sb)), orDash(lastSegment(sb.GetLab())),
		plural(len(t.nodes), "node"), plural(len(t.links), "link"))

	// Columns shared by every block, so that the lines and buses align.
	nameW, leftW := 0, 0
	for _, l := range t.links {
		nameW = max(nameW, width(l.name)+2)
		if !l.segment() {
			leftW = max(leftW, width(l.ends[0].name()))
			for _, a := range l.ends[0].addrs {
				leftW = max(leftW, width(a))
			}
		}
	}
	const gap = 8 // the line between two endpoints, with a space each side
	for _, l := range t.links {
		b.WriteByte('\n')
		label := pad(st.dim("["+l.name+"]"), width(l.name)+2, nameW) + "  "
		blank := strings.Repeat(" ", nameW+2)
		if !l.segment() {
			a, z := l.ends[0], l.ends[1]
			fmt.Fprintf(&b, "%s%s %s %s\n", label, pad(endName(a, st), width(a.name()), 0),
				strings.Repeat("─", leftW-width(a.name())+gap-2), endName(z, st))
			for i := range max(len(a.addrs), len(z.addrs)) {
				left, right := at(a.addrs, i), at(z.addrs, i)
				line := blank + pad(left, width(left), leftW+gap) + right
				b.WriteString(strings.TrimRight(line, " ") + "\n")
			}
			continue
		}
		memberW := 0
		for _, e := range l.ends {
			memberW = max(memberW, width(e.name()))
		}
		what := "segment, " + plural(len(l.ends), "member")
		if len(l.ends) == 0 {
			what = "segment, no members"
		}
		fmt.Fprintf(&b, "%s══╤%s %s\n", label, strings.Repeat("═", max(memberW+6, 12)), what)
		for i, e := range l.ends {
			branch := "├─ "
			if i == len(l.ends)-1 {
				branch = "└─ "
			}
			line := blank + "  " + branch + pad(endName(e, st), width(e.name()), memberW+2) + strings.Join(e.addrs, ", ")
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
	}
	if len(t.unlinked) > 0 {
		names := make([]string, len(t.unlinked))
		for i, n := range t.unlinked {
			names[i] = st.bold(n)
		}
		fmt.Fprintf(&b, "\nnot linked: %s\n", strings.Join(names, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// endName is "node:iface" with the node in bold.
func endName(e endpoint, st styles) string {
	if e.iface == "" {
		return st.bold(e.node)
	}
	return st.bold(e.node) + ":" + e.iface
}

func width(s string) int { return utf8.RuneCountInString(s) }

// pad pads s, whose visible width is w (escapes aside), to n cells.
func pad(s string, w, n int) string {
	if w >= n {
		return s
	}
	return s + strings.Repeat(" ", n-w)
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// writeDot writes the topology as an undirected Graphviz graph: nodes as
// boxes listing their interfaces and addresses, links as edges labelled
// with the link's name and the interfaces at each end, segments as small
// ellipses joined to their members.
func writeDot(w io.Writer, sb *labsv1.Sandbox) error {
	t := buildTopology(sb)
	var b strings.Builder
	q := dotQuote
	fmt.Fprintf(&b, "graph %s {\n", q(sandboxID(sb)))
	fmt.Fprintf(&b, "\tgraph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, labelloc=t, label=%s];\n",
		q(sandboxID(sb)+" ("+orDash(lastSegment(sb.GetLab()))+")"))
	b.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9];\n\n")
	for _, n := range sb.GetNodes() {
		// \n centres the name; \l left-aligns each interface line.
		label := dotEscape(n.GetName())
		if len(n.GetInterfaces()) > 0 {
			label += `\n`
		}
		for _, ifc := range n.GetInterfaces() {
			label += dotEscape(ifc.GetName())
			for i, a := range ifc.GetAddresses() {
				if i > 0 {
					label += `\l` + strings.Repeat(" ", width(ifc.GetName()))
				}
				label += " " + dotEscape(a)
			}
			label += `\l`
		}
		fmt.Fprintf(&b, "\t%s [label=\"%s\"];\n", q("node/"+n.GetName()), label)
	}
	if len(t.links) > 0 {
		b.WriteByte('\n')
	}
	for _, l := range t.links {
		if !l.segment() {
			a, z := l.ends[0], l.ends[1]
			fmt.Fprintf(&b, "\t%s -- %s [label=%s, taillabel=%s, headlabel=%s];\n",
				q("node/"+a.node), q("node/"+z.node), q(l.name), q(a.iface), q(z.iface))
			continue
		}
		seg := q("link/" + l.name)
		fmt.Fprintf(&b, "\t%s [shape=ellipse, style=filled, fillcolor=\"#e8e8e8\", fontsize=9, height=0.3, label=%s];\n", seg, q(l.name))
		for _, e := range l.ends {
			fmt.Fprintf(&b, "\t%s -- %s [headlabel=%s];\n", seg, q("node/"+e.node), q(e.iface))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote is s as a Graphviz quoted ID.
func dotQuote(s string) string { return `"` + dotEscape(s) + `"` }

func dotEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// writeMermaid writes the topology as a Mermaid flowchart (graph LR), as
// GitHub and many editors render it.
func writeMermaid(w io.Writer, sb *labsv1.Sandbox) error {
	t := buildTopology(sb)
	var b strings.Builder
	b.WriteString("graph LR\n")
	// Mermaid ids are plain words; names become labels.
	ids := map[string]string{}
	for i, n := range sb.GetNodes() {
		id := fmt.Sprintf("n%d", i)
		ids[n.GetName()] = id
		lines := []string{"<b>" + mermaidEscape(n.GetName()) + "</b>"}
		for _, ifc := range n.GetInterfaces() {
			lines = append(lines, mermaidEscape(strings.TrimSpace(ifc.GetName()+" "+strings.Join(ifc.GetAddresses(), " "))))
		}
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", id, strings.Join(lines, "<br/>"))
	}
	node := func(name string) string {
		if id, ok := ids[name]; ok {
			return id
		}
		id := fmt.Sprintf("n%d", len(ids))
		ids[name] = id
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", id, mermaidEscape(name))
		return id
	}
	for i, l := range t.links {
		if !l.segment() {
			a, z := l.ends[0], l.ends[1]
			label := fmt.Sprintf("%s<br/>%s – %s", l.name, a.iface, z.iface)
			fmt.Fprintf(&b, "  %s ---|\"%s\"| %s\n", node(a.node), mermaidEscape(label), node(z.node))
			continue
		}
		seg := fmt.Sprintf("s%d", i)
		fmt.Fprintf(&b, "  %s((\"%s\"))\n", seg, mermaidEscape(l.name))
		for _, e := range l.ends {
			fmt.Fprintf(&b, "  %s ---|\"%s\"| %s\n", seg, mermaidEscape(e.iface), node(e.node))
		}
	}
	if len(t.links) > 0 && slices.ContainsFunc(t.links, topoLink.segment) {
		b.WriteString("  classDef segment fill:#e8e8e8,stroke:#999\n")
		var segs []string
		for i, l := range t.links {
			if l.segment() {
				segs = append(segs, fmt.Sprintf("s%d", i))
			}
		}
		fmt.Fprintf(&b, "  class %s segment\n", strings.Join(segs, ","))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mermaidEscape(s string) string {
	return strings.ReplaceAll(s, `"`, "#quot;")
}
