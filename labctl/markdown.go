package main

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// renderMarkdown renders the Markdown a lab's instructions are written in
// for a terminal, each line after indent: headings bold and underlined,
// fenced code indented and dimmed, list items with bullets and their
// continuation lines aligned, inline `code` coloured, **bold** and
// *emphasis*. Without styles (not a terminal, or NO_COLOR) the text stays
// readable as it is written: headings underlined with = or -, inline
// markup kept. Lines are not re-wrapped; lab authors wrap their own.
func renderMarkdown(src, indent string, st styles) string {
	r := &mdRenderer{indent: indent, st: st, blank: true}
	r.render(strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n"))
	return r.b.String()
}

var (
	mdHeading = regexp.MustCompile(`^(#{1,6})\s+(.*?)(\s+#+)?$`)
	mdRule    = regexp.MustCompile(`^([-*_])(\s*[-*_]){2,}$`)
	mdItem    = regexp.MustCompile(`^([-*+]|\d{1,9}[.)])\s+(.*)$`)
)

type mdRenderer struct {
	b      strings.Builder
	indent string
	st     styles

	blank     bool // the last line written was blank, or nothing was
	lastBlank bool // the last source line was blank
	// itemCol is where the text of the current list item starts (its
	// continuation lines align there); -1 outside a list.
	itemCol int
	// In a fenced code block: its marker (``` or ~~~), the fence's own
	// indentation (stripped from the code) and the code's output column.
	fence       string
	fenceIndent int
	codeCol     int
}

func (r *mdRenderer) render(lines []string) {
	r.itemCol = -1
	for _, raw := range lines {
		line := strings.TrimRight(strings.ReplaceAll(raw, "\t", "    "), " ")
		text := strings.TrimLeft(line, " ")
		lead := len(line) - len(text)

		if r.fence != "" {
			if strings.HasPrefix(text, r.fence) && strings.Trim(text, r.fence[:1]) == "" {
				r.fence = ""
				continue
			}
			code := line[min(lead, r.fenceIndent):]
			if code == "" {
				r.emit("")
			} else {
				r.emit(strings.Repeat(" ", r.codeCol) + r.st.dim(code))
			}
			continue
		}

		if text == "" {
			r.lastBlank = true
			r.emit("")
			continue
		}
		wasBlank := r.lastBlank
		r.lastBlank = false

		if strings.HasPrefix(text, "```") || strings.HasPrefix(text, "~~~") {
			r.fence = text[:3]
			r.fenceIndent = lead
			r.codeCol = 4
			if r.itemCol >= 0 && lead > 0 {
				r.codeCol += r.itemCol // code inside a list item
			} else {
				r.itemCol = -1
			}
			continue
		}
		if m := mdHeading.FindStringSubmatch(text); m != nil && lead < 4 {
			r.itemCol = -1
			r.heading(len(m[1]), m[2])
			continue
		}
		if mdRule.MatchString(text) && lead < 4 {
			r.itemCol = -1
			r.separate()
			r.emit(strings.Repeat("─", 40))
			r.separate()
			continue
		}
		if m := mdItem.FindStringSubmatch(text); m != nil {
			bullet := m[1]
			if strings.ContainsAny(bullet, "-*+") {
				bullet = "•"
			}
			prefix := strings.Repeat(" ", lead) + "  " + bullet + " "
			r.itemCol = utf8.RuneCountInString(prefix)
			r.emit(prefix + inline(m[2], r.st))
			continue
		}
		if rest, ok := strings.CutPrefix(text, ">"); ok && lead < 4 {
			r.itemCol = -1
			r.emit(r.st.dim("│") + " " + inline(strings.TrimPrefix(rest, " "), r.st))
			continue
		}
		if r.itemCol >= 0 && (!wasBlank || lead > 0) {
			r.emit(strings.Repeat(" ", r.itemCol) + inline(text, r.st))
			continue
		}
		r.itemCol = -1
		r.emit(inline(text, r.st))
	}
	out := strings.TrimRight(r.b.String(), "\n")
	r.b.Reset()
	if out != "" {
		r.b.WriteString(out + "\n")
	}
}

func (r *mdRenderer) heading(level int, text string) {
	text = inline(text, r.st)
	r.separate()
	switch {
	case r.st.on && level <= 2:
		r.emit(r.st.bold(r.st.underline(text)))
	case r.st.on:
		r.emit(r.st.bold(text))
	case level == 1:
		r.emit(text)
		r.emit(strings.Repeat("=", utf8.RuneCountInString(text)))
	case level == 2:
		r.emit(text)
		r.emit(strings.Repeat("-", utf8.RuneCountInString(text)))
	default:
		r.emit(text)
	}
	r.separate()
}

// separate puts a blank line here unless there is one already.
func (r *mdRenderer) separate() { r.emit("") }

// emit writes one line; blank lines never repeat nor come first.
func (r *mdRenderer) emit(line string) {
	if line == "" {
		if !r.blank {
			r.b.WriteByte('\n')
		}
		r.blank = true
		return
	}
	r.b.WriteString(r.indent + line + "\n")
	r.blank = false
}

// inline renders one line's inline Markdown: code spans, strong and
// emphasis, links and backslash escapes.
func inline(s string, st styles) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s) && strings.IndexByte("\\`*_{}[]()#+-.!<>|~", s[i+1]) >= 0:
			b.WriteByte(s[i+1])
			i += 2
		case ch == '`':
			n := 1
			for i+n < len(s) && s[i+n] == '`' {
				n++
			}
			delim := s[i : i+n]
			end := strings.Index(s[i+n:], delim)
			if end < 0 {
				b.WriteString(delim)
				i += n
				continue
			}
			code := s[i+n : i+n+end]
			if st.on {
				if len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' {
					code = code[1 : len(code)-1]
				}
				b.WriteString(st.code(code))
			} else {
				b.WriteString(delim + code + delim) // copied as written, so it can be pasted
			}
			i += n + end + n
		case (ch == '*' || ch == '_') && i+1 < len(s) && s[i+1] == ch:
			delim := s[i : i+2]
			inner, n, ok := delimited(s, i, delim)
			if !ok {
				b.WriteString(delim)
				i += 2
				continue
			}
			if st.on {
				b.WriteString(st.bold(inline(inner, st)))
			} else {
				b.WriteString(delim + inline(inner, st) + delim)
			}
			i += n
		case ch == '*' || ch == '_':
			inner, n, ok := delimited(s, i, s[i:i+1])
			if !ok {
				b.WriteByte(ch)
				i++
				continue
			}
			if st.on {
				b.WriteString(st.italic(inline(inner, st)))
			} else {
				b.WriteString(s[i:i+1] + inline(inner, st) + s[i:i+1])
			}
			i += n
		case ch == '[':
			text, url, n, ok := link(s[i:])
			if !ok {
				b.WriteByte(ch)
				i++
				continue
			}
			text = inline(text, st)
			if text == url {
				b.WriteString(st.underline(url))
			} else {
				b.WriteString(text + " (" + st.underline(url) + ")")
			}
			i += n
		default:
			b.WriteByte(ch)
			i++
		}
	}
	return b.String()
}

// delimited finds the span of s opened by delim at i: its inner text and
// the length of the whole span. Like CommonMark, the inner text must not
// start or end with a space, and _ must not sit inside a word (snake_case).
func delimited(s string, i int, delim string) (inner string, n int, ok bool) {
	isWord := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	start := i + len(delim)
	if delim[0] == '_' && i > 0 && isWord(s[i-1]) {
		return "", 0, false
	}
	end := strings.Index(s[start:], delim)
	if end <= 0 {
		return "", 0, false
	}
	inner = s[start : start+end]
	after := start + end + len(delim)
	if inner[0] == ' ' || inner[len(inner)-1] == ' ' {
		return "", 0, false
	}
	if delim[0] == '_' && after < len(s) && isWord(s[after]) {
		return "", 0, false
	}
	return inner, after - i, true
}

// link parses [text](url) at the start of s.
func link(s string) (text, url string, n int, ok bool) {
	mid := strings.Index(s, "](")
	if mid < 0 {
		return "", "", 0, false
	}
	end := strings.IndexByte(s[mid+2:], ')')
	if end < 0 {
		return "", "", 0, false
	}
	return s[1:mid], s[mid+2 : mid+2+end], mid + 2 + end + 1, true
}
