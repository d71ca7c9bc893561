package labs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantErrContains fails unless err is an ErrInvalid naming every want.
func wantErrContains(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got nil", wants)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
}

func TestInvalidFixtures(t *testing.T) {
	tests := []struct {
		file  string
		wants []string
	}{
		{"unknown-node.yaml", []string{"links[1].endpoints[1]: ", `unknown node "h9" in endpoint "h9:eth0"`}},
		{"duplicate-address.yaml", []string{"nodes[1].interfaces[0].addresses[0]: ", "duplicate address 10.0.0.1", "nodes[0].interfaces[0].addresses[0] (h1 eth0)"}},
		{"bad-cidr.yaml", []string{`nodes[1].interfaces[0].addresses[0]: "10.0.0.300/24" is not a valid CIDR`}},
		{"long-ifname.yaml", []string{"nodes[1].interfaces[0].name: ", `"uplink-to-the-core" is longer than 15 bytes`}},
		{"unknown-feature.yaml", []string{"requires[1]: ", `unknown feature "teleport"`}},
		{"non-net-sysctl.yaml", []string{`nodes[0].sysctls["kernel.hostname"]: `, "only per-namespace net.* sysctls may be set"}},
	}
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		path := filepath.Join("testdata", "invalid", tc.file)
		files = slices.DeleteFunc(files, func(f string) bool { return f == path })
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			l, err := LoadFile(path)
			if l != nil {
				t.Errorf("LoadFile returned a lab along with the error")
			}
			wantErrContains(t, err, append([]string{path + ": "}, tc.wants...)...)
		})
	}
	if len(files) > 0 {
		t.Errorf("fixtures without a test case: %q", files)
	}
}

func TestParseDecodeErrors(t *testing.T) {
	const head = "id: x\ntitle: X\n"
	tests := []struct {
		name  string
		yaml  string
		wants []string
	}{
		{
			name:  "unknown top-level key",
			yaml:  head + "nodez: []\n",
			wants: []string{`t.yaml: nodez: unknown field "nodez" (line 3); did you mean "nodes"?`},
		},
		{
			name: "unknown nested key",
			yaml: head + "nodes:\n  - name: h1\n    interfaces:\n      - name: eth0\n        adresses: [10.0.0.1/24]\n",
			wants: []string{
				`t.yaml: nodes[0].interfaces[0].adresses: unknown field "adresses" (line 7)`,
				`did you mean "addresses"?`,
			},
		},
		{
			name:  "every unknown key is reported",
			yaml:  head + "colour: red\nnodes:\n  - name: h1\n    flavour: x\n",
			wants: []string{`colour: unknown field "colour" (line 3)`, `nodes[0].flavour: unknown field "flavour" (line 6)`},
		},
		{
			name:  "wrong type",
			yaml:  head + "nodes:\n  - name: h1\n    interfaces:\n      - name: eth0\n        mtu: big\n",
			wants: []string{"nodes[0].interfaces[0].mtu: cannot unmarshal !!str `big` into int (line 7)"},
		},
		{
			name:  "wrong type of sysctl value",
			yaml:  head + "nodes:\n  - name: h1\n    sysctls:\n      net.ipv4.ip_forward: [1]\n",
			wants: []string{`nodes[0].sysctls["net.ipv4.ip_forward"]: cannot unmarshal !!seq into string (line 6)`},
		},
		{
			name:  "wrong type in a one-line collection",
			yaml:  "nodes:\n  - name: [h1]\n",
			wants: []string{"nodes[0].name: cannot unmarshal !!seq into string (line 2)"},
		},
		{
			name:  "duplicate key",
			yaml:  head + "title: Y\n",
			wants: []string{`title: mapping key "title" already defined at line 2 (line 3)`},
		},
		{
			name:  "syntax error",
			yaml:  "id: [x\n",
			wants: []string{"t.yaml: line 1: did not find expected ',' or ']'"},
		},
		{
			name:  "empty file",
			yaml:  "# nothing here\n",
			wants: []string{"t.yaml: the file holds no lab definition"},
		},
		{
			name:  "two documents",
			yaml:  head + "---\nid: y\n",
			wants: []string{"t.yaml: line 3: a second YAML document"},
		},
		{
			name:  "not a mapping",
			yaml:  "- h1\n",
			wants: []string{"t.yaml: cannot unmarshal !!seq into labs.Lab (line 1)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := Parse([]byte(tc.yaml), "t.yaml")
			if l != nil {
				t.Errorf("Parse returned a lab along with the error")
			}
			wantErrContains(t, err, tc.wants...)
		})
	}
}

func TestParse(t *testing.T) {
	const y = `
id: small
title: Small
nodes:
  - name: h1
    interfaces: [{name: eth0, addresses: [10.0.0.1/24]}]
    sysctls:
      net.ipv4.ip_forward: 1   # an unquoted number is fine
  - name: h2
    interfaces: [{name: eth0, addresses: [10.0.0.2/24]}]
links:
  - endpoints: [h1:eth0, h2:eth0]
---
`
	l, err := Parse([]byte(y), "small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "small.yaml" {
		t.Errorf("Source = %q, want small.yaml", l.Source)
	}
	if got := l.Node("h1").Sysctls["net.ipv4.ip_forward"]; got != "1" {
		t.Errorf("sysctl value = %q, want \"1\"", got)
	}
	if l.Node("h3") != nil {
		t.Error(`Node("h3") != nil`)
	}
	if ifc := l.Node("h2").Interface("eth0"); ifc == nil || ifc.Addresses[0] != "10.0.0.2/24" {
		t.Errorf(`Interface("eth0") = %+v`, ifc)
	}
}

func TestApplyDefaults(t *testing.T) {
	const y = `
id: names
title: Default names
nodes:
  - name: a
    interfaces: [{name: e0}, {name: e1}, {name: e2}, {name: e3}]
    services:
      - {kind: tcp-echo, port: 7}
      - {kind: udp-echo, port: 7}
      - {name: web, kind: http, port: 80}
  - name: b
    interfaces: [{name: e0}, {name: e1}, {name: e2}, {name: e3}]
links:
  - endpoints: [a:e0, b:e0]
  - name: l1
    endpoints: [a:e1, b:e1]
  - endpoints: [a:e2, b:e2]
segments:
  - endpoints: [a:e3, b:e3]
`
	l, err := Parse([]byte(y), "names.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range l.AllSegments() {
		got = append(got, s.Name)
	}
	if want := []string{"l2", "l1", "l3", "s1"}; !slices.Equal(got, want) {
		t.Errorf("segment names = %q, want %q", got, want)
	}
	got = nil
	for _, s := range l.Node("a").Services {
		got = append(got, s.Name)
	}
	if want := []string{"tcp-echo", "udp-echo", "web"}; !slices.Equal(got, want) {
		t.Errorf("service names = %q, want %q", got, want)
	}

	before := l.AllSegments()
	l.ApplyDefaults()
	if after := l.AllSegments(); !slices.EqualFunc(before, after, func(a, b Segment) bool { return a.Name == b.Name }) {
		t.Errorf("ApplyDefaults is not idempotent: %v then %v", before, after)
	}
}

func TestLoadDir(t *testing.T) {
	labs, err := LoadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"star2": 2, "star20": 20, "star3": 3}
	var ids []string
	for _, l := range labs {
		ids = append(ids, l.ID)
		if len(l.Segments) != 1 || l.Segments[0].Name != "lan" || len(l.Segments[0].Endpoints) != want[l.ID] {
			t.Errorf("%s: segments = %+v, want one segment lan with %d endpoints", l.ID, l.Segments, want[l.ID])
		}
		if len(l.Nodes) != want[l.ID] {
			t.Errorf("%s: %d nodes, want %d", l.ID, len(l.Nodes), want[l.ID])
		}
	}
	if !slices.Equal(ids, []string{"star2", "star20", "star3"}) {
		t.Errorf("ids = %q, want sorted star2, star20, star3", ids)
	}
}

func TestLoadDirErrors(t *testing.T) {
	valid := func(id string) string {
		return "id: " + id + "\ntitle: T\nnodes: [{name: h1}]\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		wants []string
	}{
		{
			name:  "id differs from directory",
			files: map[string]string{"wrong/lab.yaml": valid("right")},
			wants: []string{filepath.Join("wrong", "lab.yaml") + `: id: id "right" must equal the lab's directory name "wrong"`},
		},
		{
			name:  "same id twice",
			files: map[string]string{"a.yaml": valid("twin"), "b.yaml": valid("twin")},
			wants: []string{"b.yaml: id: ", `lab "twin" is already defined in `, "a.yaml"},
		},
		{
			name:  "all bad files are reported",
			files: map[string]string{"a.yaml": "id: a\n", "b/lab.yaml": "id: b\nbogus: 1\n"},
			wants: []string{"a.yaml: title: title is required", `b.yaml: bogus: unknown field "bogus"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, data := range tc.files {
				writeFile(t, filepath.Join(dir, name), data)
			}
			labs, err := LoadDir(dir)
			if labs != nil {
				t.Errorf("LoadDir returned labs along with the error")
			}
			wantErrContains(t, err, tc.wants...)
		})
	}
}

func TestLoadDirSkips(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good", "lab.yaml"), "id: good\ntitle: T\nnodes: [{name: h1}]\n")
	writeFile(t, filepath.Join(dir, "assets", "README.md"), "no lab here")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "not: a lab")
	writeFile(t, filepath.Join(dir, "_draft", "lab.yaml"), "not: a lab")
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a lab")
	if err := os.Symlink(filepath.Join(dir, "good"), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	labs, err := LoadDir(dir)
	// "linked" is followed and holds a lab whose id is not "linked".
	wantErrContains(t, err, `id "good" must equal the lab's directory name "linked"`)
	if labs != nil {
		t.Errorf("LoadDir returned labs along with the error")
	}
	if err := os.Remove(filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	labs, err = LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(labs) != 1 || labs[0].ID != "good" {
		t.Errorf("labs = %v, want just good", labs)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadDir(missing) = %v, want a not-exist error", err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSysctlKeys(t *testing.T) {
	n := Node{Sysctls: map[string]string{
		"net.ipv4.conf.eth0.forwarding":    "0",
		"net.core.somaxconn":               "64",
		"net.ipv6.conf.default.forwarding": "1",
		"net.ipv4.ip_forward":              "1",
		"net.ipv6.conf.all.forwarding":     "1",
		"net.ipv4.conf.all.rp_filter":      "0",
	}}
	want := []string{
		"net.ipv4.ip_forward",
		"net.ipv4.conf.all.rp_filter",
		"net.ipv6.conf.all.forwarding",
		"net.ipv6.conf.default.forwarding",
		"net.core.somaxconn",
		"net.ipv4.conf.eth0.forwarding",
	}
	if got := n.SysctlKeys(); !slices.Equal(got, want) {
		t.Errorf("SysctlKeys() = %q, want %q", got, want)
	}
}
