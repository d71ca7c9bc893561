package main

import (
	"strings"
	"testing"
)

// instructions is Markdown as lab authors write it, with one of each
// construct the renderer knows.
const instructions = `# Routing

h1 (10.0.1.10) and h2 (10.0.2.10) are on different subnets. r1 and
r2 forward between them: each has ` + "`net.ipv4.ip_forward = 1`" + ` and a
static route. Packets meet the **forward** hook, not *input*.

## Steps

1. Read the routing tables: ` + "`ip route`" + ` on h1, r1, r2 and h2.
2. Ping h2 from h1. Every router that forwards
   the packet lowers its TTL by one.

   Then look again.
3. Watch it arrive:

   ` + "```" + `
   tcpdump -vni eth0 icmp
   ` + "```" + `

- a bullet with a_snake_name
  * a nested one, see [the docs](https://example.org/ttl)

` + "```sh" + `
ip route add 10.0.99.1/32 via 10.0.12.2
` + "```" + `

> Linux starts ICMP echo requests at TTL 64.

---
Done.
`

func TestRenderMarkdownPlain(t *testing.T) {
	t.Parallel()
	got := renderMarkdown(instructions, "  ", styles{})
	want := `  Routing
  =======

  h1 (10.0.1.10) and h2 (10.0.2.10) are on different subnets. r1 and
  r2 forward between them: each has ` + "`net.ipv4.ip_forward = 1`" + ` and a
  static route. Packets meet the **forward** hook, not *input*.

  Steps
  -----

    1. Read the routing tables: ` + "`ip route`" + ` on h1, r1, r2 and h2.
    2. Ping h2 from h1. Every router that forwards
       the packet lowers its TTL by one.

       Then look again.
    3. Watch it arrive:

           tcpdump -vni eth0 icmp

    • a bullet with a_snake_name
      • a nested one, see the docs (https://example.org/ttl)

      ip route add 10.0.99.1/32 via 10.0.12.2

  │ Linux starts ICMP echo requests at TTL 64.

  ────────────────────────────────────────

  Done.
`
	if got != want {
		t.Errorf("renderMarkdown plain:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderMarkdownStyled(t *testing.T) {
	t.Parallel()
	st := styles{on: true}
	got := renderMarkdown(instructions, "", st)
	for _, want := range []string{
		st.bold(st.underline("Routing")) + "\n",
		"each has " + st.code("net.ipv4.ip_forward = 1") + " and a\n",
		"meet the " + st.bold("forward") + " hook, not " + st.italic("input") + ".\n",
		"    " + st.dim("tcpdump -vni eth0 icmp") + "\n",
		"  • a bullet with a_snake_name\n",
		"see the docs (" + st.underline("https://example.org/ttl") + ")\n",
		"    " + st.dim("ip route add 10.0.99.1/32 via 10.0.12.2") + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("styled rendering lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "`") || strings.Contains(got, "**") {
		t.Errorf("styled rendering keeps Markdown markers:\n%s", got)
	}
}

func TestInline(t *testing.T) {
	t.Parallel()
	st := styles{on: true}
	for _, tc := range []struct{ in, plain, styled string }{
		{"a `b` c", "a `b` c", "a " + st.code("b") + " c"},
		{"``a ` b``", "``a ` b``", st.code("a ` b")},
		{"unclosed `tick", "unclosed `tick", "unclosed `tick"},
		{"2 * 3 * 4", "2 * 3 * 4", "2 * 3 * 4"},
		{"snake_case_name", "snake_case_name", "snake_case_name"},
		{`a \*literal\*`, "a *literal*", "a *literal*"},
		{"[x](http://x)", "x (http://x)", "x (" + st.underline("http://x") + ")"},
		{"__strong__ _em_", "__strong__ _em_", st.bold("strong") + " " + st.italic("em")},
	} {
		if got := inline(tc.in, styles{}); got != tc.plain {
			t.Errorf("inline(%q) plain = %q; want %q", tc.in, got, tc.plain)
		}
		if got := inline(tc.in, st); got != tc.styled {
			t.Errorf("inline(%q) styled = %q; want %q", tc.in, got, tc.styled)
		}
	}
}
