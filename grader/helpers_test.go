package grader

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

// now is the grading time of every fixture.
var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func loadJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
}

// fixture loads node states (testdata/<node>.json) and, if packets is
// set, testdata/packets_<packets>.json, plus the probe and command
// fixtures.
func fixture(t testing.TB, packets string, nodes ...string) *Observations {
	t.Helper()
	obs := &Observations{Now: now, States: map[string]*labs.NodeState{}}
	for _, n := range nodes {
		var st labs.NodeState
		loadJSON(t, n+".json", &st)
		obs.States[st.Node] = &st
	}
	if packets != "" {
		loadJSON(t, "packets_"+packets+".json", &obs.Packets)
	}
	loadJSON(t, "probes.json", &obs.Probes)
	loadJSON(t, "commands.json", &obs.Commands)
	return obs
}

type checkCase struct {
	name  string
	check labs.Check
	pass  bool
	msg   []string // substrings the message must contain
	ev    []string // substrings some evidence line must contain
	notEv []string // substrings no evidence line may contain
}

func runCases(t *testing.T, obs *Observations, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			if c.ID == "" {
				c.ID = tc.name
			}
			r := Evaluate(&c, obs)
			if r.Passed != tc.pass {
				t.Fatalf("passed = %v, want %v\nmessage: %s\nevidence: %q", r.Passed, tc.pass, r.Message, r.Evidence)
			}
			for _, m := range tc.msg {
				if !strings.Contains(r.Message, m) {
					t.Errorf("message %q does not contain %q", r.Message, m)
				}
			}
			all := strings.Join(r.Evidence, "\n")
			for _, e := range tc.ev {
				if !strings.Contains(all, e) {
					t.Errorf("evidence does not contain %q:\n%s", e, all)
				}
			}
			for _, e := range tc.notEv {
				if strings.Contains(all, e) {
					t.Errorf("evidence contains %q:\n%s", e, all)
				}
			}
			wantPoints := 0
			if r.Passed {
				wantPoints = r.Max
			}
			if r.Points != wantPoints || r.Max < 1 {
				t.Errorf("points %d/%d, want %d", r.Points, r.Max, wantPoints)
			}
			if r.Message == "" {
				t.Error("empty message")
			}
			if testing.Verbose() {
				t.Logf("%v %s\n  %s", r.Passed, r.Message, strings.Join(r.Evidence, "\n  "))
			}
		})
	}
}
