package labs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// FuzzParse feeds the lab parser and validator arbitrary YAML, seeded
// with every catalog lab and every fixture. Lab files come from the
// operator (--labs), but a shared catalog is content from elsewhere, and
// names from it become hostnames, cgroup and file names on the host. It
// must never panic, every refusal must be a *ValidationError naming at
// least one problem, and whatever it accepts must be safe to build:
// within the schema's limits, with no path tricks in any name, and the
// same lab again after a round trip through YAML.
//
//	go test -run XXX -fuzz FuzzParse -fuzztime 30s -fuzzminimizetime 10x ./labs/
//
// (-fuzzminimizetime: the seeds are whole labs of 10-20 KB, and the
// default minute spent minimizing every new interesting input stalls the
// run; 10 attempts keep it at some 30 000 inputs a second on 2 CPUs.)
func FuzzParse(f *testing.F) {
	files, err := fs.Glob(embedded, "*/lab.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := embedded.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, pat := range []string{"testdata/*.yaml", "testdata/invalid/*.yaml"} {
		paths, err := filepath.Glob(pat)
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			f.Add(mustReadFile(f, p))
		}
	}
	for _, s := range []string{
		"id: ../../etc\ntitle: t\nnodes: [{name: a}]\n",
		"id: a\ntitle: t\nnodes: [{name: ../a}]\n",
		"id: a\ntitle: t\nnodes: [{name: a, services: [{kind: tcp-echo, port: 7, name: ../x}]}]\n",
		"id: a\ntitle: t\nnodes: [{name: a, limits: {pids: -1, memory_bytes: 9223372036854775807}}]\n",
		"a: &a [*a, *a, *a]\n",
		"id: a\n---\nid: b\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A parse that takes seconds is a finding too (labd parses every
		// lab at start): crash the worker so the input is kept.
		watchdog := time.AfterFunc(10*time.Second, func() {
			panic(fmt.Sprintf("Parse of a %d byte input still running after 10s", len(data)))
		})
		defer watchdog.Stop()
		l, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %T is not a *ValidationError: %v", err, err)
			}
			if len(ve.Problems) == 0 || err.Error() == "" {
				t.Fatalf("refusal without a problem: %#v", ve)
			}
			return
		}
		if err := Validate(l); err != nil {
			t.Fatalf("Parse accepted a lab that Validate refuses: %v", err)
		}
		checkSafeNames(t, l)

		out, err := yaml.Marshal(l)
		if err != nil {
			t.Fatalf("marshal an accepted lab: %v", err)
		}
		l2, err := Parse(out, "fuzz.yaml")
		if err != nil {
			t.Fatalf("an accepted lab does not parse again after marshalling:\n%s\n%v", out, err)
		}
		// Compared as YAML: a nil and an empty list both marshal as [].
		out2, err := yaml.Marshal(l2)
		if err != nil {
			t.Fatalf("marshal the re-parsed lab: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the lab:\n%s\n---\n%s", out, out2)
		}
	})
}

// checkSafeNames: every name that becomes a host-visible name or a path
// component (lab id, node, link, segment and service names) is within
// the schema's limits and cannot climb out of a directory.
func checkSafeNames(t *testing.T, l *Lab) {
	t.Helper()
	if len(l.Nodes) == 0 || len(l.Nodes) > MaxNodes {
		t.Fatalf("accepted %d nodes (limit %d)", len(l.Nodes), MaxNodes)
	}
	names := []string{l.ID}
	for _, n := range l.Nodes {
		if len(n.Name) > MaxNameLen {
			t.Fatalf("accepted node name %q longer than %d", n.Name, MaxNameLen)
		}
		if n.Limits.Pids < 0 || (n.Limits.MemoryBytes != 0 && n.Limits.MemoryBytes < minMemoryBytes) {
			t.Fatalf("accepted limits %+v", n.Limits)
		}
		names = append(names, n.Name)
		for _, s := range n.Services {
			names = append(names, s.Name)
		}
		for _, ifc := range n.Interfaces {
			if len(ifc.Name) > maxIfnameLen || strings.ContainsAny(ifc.Name, "/ \x00") {
				t.Fatalf("accepted interface name %q", ifc.Name)
			}
		}
	}
	for _, s := range l.AllSegments() {
		if len(s.Name) > MaxNameLen {
			t.Fatalf("accepted segment name %q longer than %d", s.Name, MaxNameLen)
		}
		names = append(names, s.Name)
	}
	for _, n := range names {
		if n == "" || n == "." || strings.Contains(n, "..") || strings.ContainsAny(n, "/\\\x00") {
			t.Fatalf("accepted unsafe name %q", n)
		}
	}
}

func mustReadFile(f *testing.F, path string) []byte {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
