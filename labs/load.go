package labs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse decodes one lab definition, fills in default names
// (ApplyDefaults) and validates it. Decoding is strict: an unknown key
// is an error naming the key, its path and its line. source names the
// file in errors and is stored in Lab.Source. Every error about the
// definition itself is a *ValidationError (errors.Is ErrInvalid).
func Parse(data []byte, source string) (*Lab, error) {
	return parse(data, source, "")
}

// parse is Parse, plus a check that the lab's id equals dirName when
// the file is <dirName>/lab.yaml.
func parse(data []byte, source, dirName string) (*Lab, error) {
	var l Lab
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Source: source, Problems: []Problem{{Message: "the file holds no lab definition"}}}
		}
		return nil, &ValidationError{Source: source, Problems: decodeProblems(data, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &ValidationError{Source: source, Problems: decodeProblems(data, err)}
	case next.Kind == yaml.DocumentNode && (len(next.Content) == 0 || next.Content[0].ShortTag() == "!!null"):
		// A trailing "---" with nothing after it.
	default:
		return nil, &ValidationError{Source: source, Problems: []Problem{{
			Message: fmt.Sprintf("line %d: a second YAML document; a lab file holds exactly one lab", next.Line),
		}}}
	}

	l.Source = source
	l.ApplyDefaults()
	ps := validate(&l)
	if dirName != "" && l.ID != "" && l.ID != dirName {
		ps = append([]Problem{{Field: "id", Message: fmt.Sprintf("id %q must equal the lab's directory name %q", l.ID, dirName)}}, ps...)
	}
	if len(ps) > 0 {
		return nil, &ValidationError{Source: source, Problems: ps}
	}
	return &l, nil
}

// LoadFile reads and parses one lab file.
func LoadFile(path string) (*Lab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lab: %w", err)
	}
	return Parse(data, path)
}

// LoadDir loads every lab in dir: <dir>/<id>/lab.yaml, whose id must
// equal its directory name, and plain <dir>/*.yaml (or .yml) files.
// Directories without a lab.yaml and names starting with '.' or '_' are
// skipped. Symlinks are followed (as in a mounted ConfigMap). Labs come
// back sorted by id. If any lab fails to load, LoadDir reports all
// failures (errors.Join) and returns no labs.
func LoadDir(dir string) ([]*Lab, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load labs: %w", err)
	}
	var (
		labs []*Lab
		errs []error
		seen = make(map[string]string) // id → source
	)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p) // follows symlinks, unlike e.IsDir
		if err != nil {
			errs = append(errs, fmt.Errorf("load labs: %w", err))
			continue
		}
		var (
			data    []byte
			source  = p
			dirName string
		)
		switch {
		case fi.IsDir():
			source = filepath.Join(p, "lab.yaml")
			dirName = name
			data, err = os.ReadFile(source)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
		case fi.Mode().IsRegular() && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")):
			data, err = os.ReadFile(source)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read lab: %w", err))
			continue
		}
		l, err := parse(data, source, dirName)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := seen[l.ID]; dup {
			errs = append(errs, &ValidationError{Source: source, Problems: []Problem{{
				Field: "id", Message: fmt.Sprintf("lab %q is already defined in %s", l.ID, other),
			}}})
			continue
		}
		seen[l.ID] = source
		labs = append(labs, l)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortByID(labs)
	return labs, nil
}

func sortByID(labs []*Lab) {
	slices.SortFunc(labs, func(a, b *Lab) int { return strings.Compare(a.ID, b.ID) })
}

// yaml.v3 reports type errors as "line N: ..." strings only; these
// turn them back into field paths.
var (
	lineRE         = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// decodeProblems turns a yaml.v3 error into problems with field paths.
func decodeProblems(data []byte, err error) []Problem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []Problem{{Message: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it parsed once already; type errors come after parsing
	idx := indexYAML(&root)

	ps := make([]Problem, 0, len(te.Errors))
	for _, msg := range te.Errors {
		m := lineRE.FindStringSubmatch(msg)
		if m == nil {
			ps = append(ps, Problem{Message: msg})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		rest := m[2]
		if u := unknownFieldRE.FindStringSubmatch(rest); u != nil {
			key, typ := u[1], u[2]
			p := Problem{Field: idx.keyPath(line, key), Message: fmt.Sprintf("unknown field %q (line %d)", key, line)}
			if s := suggest(key, typ); s != "" {
				p.Message += fmt.Sprintf("; did you mean %q?", s)
			}
			ps = append(ps, p)
			continue
		}
		ps = append(ps, Problem{Field: idx.linePath(line, rest), Message: fmt.Sprintf("%s (line %d)", rest, line)})
	}
	return ps
}

type yamlEntry struct {
	line  int
	key   string // mapping keys only
	tag   string // values only: !!str, !!seq, ...
	path  string
	isKey bool
}

type yamlIndex []yamlEntry

// indexYAML lists every node of the document in order with its path,
// spelled as Validate spells it: struct fields with dots, map keys
// (sysctls) quoted in brackets.
func indexYAML(root *yaml.Node) yamlIndex {
	var idx yamlIndex
	var walk func(n *yaml.Node, path string, t reflect.Type)
	walk = func(n *yaml.Node, path string, t reflect.Type) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, t)
			}
			return
		case yaml.AliasNode:
			return
		}
		idx = append(idx, yamlEntry{line: n.Line, tag: n.ShortTag(), path: path})
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i], n.Content[i+1]
				var p string
				var vt reflect.Type
				switch {
				case t != nil && t.Kind() == reflect.Map:
					p, vt = fmt.Sprintf("%s[%q]", path, k.Value), t.Elem()
				case path == "":
					p, vt = k.Value, fieldType(t, k.Value)
				default:
					p, vt = path+"."+k.Value, fieldType(t, k.Value)
				}
				idx = append(idx, yamlEntry{line: k.Line, key: k.Value, path: p, isKey: true})
				walk(val, p, vt)
			}
		case yaml.SequenceNode:
			var et reflect.Type
			if t != nil && t.Kind() == reflect.Slice {
				et = t.Elem()
			}
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i), et)
			}
		}
	}
	walk(root, "", reflect.TypeFor[Lab]())
	return idx
}

// fieldType returns the type of the field of struct t named key in
// YAML, or nil.
func fieldType(t reflect.Type, key string) reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return t.Field(i).Type
		}
	}
	return nil
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func (idx yamlIndex) keyPath(line int, key string) string {
	for _, e := range idx {
		if e.isKey && e.line == line && e.key == key {
			return e.path
		}
	}
	return idx.linePath(line, "")
}

var tagRE = regexp.MustCompile(`unmarshal (!!\w+)`)

// linePath returns the path of the value on line that a type error
// message is about: the innermost value starting on the line whose tag
// the message names, else the innermost value on the line. (A
// collection and its first element can start on the same line.)
func (idx yamlIndex) linePath(line int, msg string) string {
	tag := ""
	if m := tagRE.FindStringSubmatch(msg); m != nil {
		tag = m[1]
	}
	path, tagged, found := "", "", false
	for _, e := range idx {
		if e.line != line || e.isKey {
			continue
		}
		path = e.path
		if e.tag == tag {
			tagged, found = e.path, true
		}
	}
	if found {
		return tagged
	}
	return path
}

// suggest returns the known field of the named type (as yaml.v3 spells
// it, e.g. "labs.Interface") closest to key, if it is close.
func suggest(key, typeName string) string {
	t, ok := schemaTypes()[typeName]
	if !ok {
		return ""
	}
	best, bestD := "", 3 // at most two edits away
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		if d := editDistance(strings.ToLower(key), name); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// schemaTypes maps yaml.v3's type names to the struct types reachable
// from Lab.
func schemaTypes() map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, done := m[t.String()]; done {
			return
		}
		m[t.String()] = t
		for i := range t.NumField() {
			visit(t.Field(i).Type)
		}
	}
	visit(reflect.TypeFor[Lab]())
	return m
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
