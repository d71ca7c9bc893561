package main

import (
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	labsv1 "nslab/proto/labs/v1"
)

// labsWithInstructions is sampleLabs with Markdown instructions and what
// the lab teaches.
func labsWithInstructions() []*labsv1.Lab {
	labs := sampleLabs()
	routed := labs[0]
	routed.Exercises[0].Instructions = "r1 must forward between its two subnets.\n\n" +
		"1. Look: `sysctl net.ipv4.ip_forward` on r1.\n" +
		"2. Turn it on:\n\n" +
		"   ```\n   sysctl -w net.ipv4.ip_forward=1\n   ```\n"
	routed.Exercises[1].Instructions = "## Routes\n\nh1 needs a route to **10.0.2.0/24** via r1.\n"
	routed.Learned = "Routers *forward*; hosts need routes."
	return labs
}

func sampleGrades() []*labsv1.GradeReport {
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(-d)) }
	return []*labsv1.GradeReport{
		{Exercise: "forward", Score: 5, MaxScore: 5, Passed: true, GradeTime: at(3 * time.Minute)},
		{Exercise: "route", Score: 1, MaxScore: 6, GradeTime: at(time.Minute)},
		{Exercise: "forward", Score: 2, MaxScore: 5, GradeTime: at(10 * time.Minute)},
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	f := &fakeLabd{labs: labsWithInstructions(), sandboxes: sampleSandboxes(), grades: sampleGrades(), pageSize: 2}
	cfg, _ := serve(t, f)

	r := runCLI(t, cfg, "", "status", "s-aaa111")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("status = %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "status-routed.txt", r.stdout)
	for _, want := range []string{
		"Progress:  1 of 2 exercises passed\n",
		"forward   Turn on forwarding  3m ago  ✓ passed 5/5\n", // the latest grade, not the older failure
		"route     Route h1 to h2      1m ago  ✗ failed 1/6\n",
		"  1. Look: `sysctl net.ipv4.ip_forward` on r1.\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "What you learned") {
		t.Errorf("status shows what the lab taught before every exercise passed:\n%s", r.stdout)
	}

	r = runCLI(t, cfg, "", "status", "-o", "json", "s-aaa111")
	var got statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("status -o json = %d, %v:\n%s", r.code, err, r.stdout)
	}
	if got.Lab != "routed" || got.Passed != 1 || len(got.Exercises) != 2 || !got.Exercises[0].Passed ||
		got.Exercises[1].Score != 1 || got.Exercises[1].GradeTime == "" {
		t.Errorf("status -o json = %+v", got)
	}

	r = runCLI(t, cfg, "", "status", "s-nope")
	if r.code != 1 || r.stderr != "labctl: sandbox s-nope not found; `labctl ls` lists yours\n" {
		t.Errorf("status of a missing sandbox = %d, stderr %q", r.code, r.stderr)
	}
}

func TestStatusNeverGradedAndDone(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{labs: labsWithInstructions(), sandboxes: sampleSandboxes()})
	r := runCLI(t, cfg, "", "status", "--ascii", "s-aaa111")
	if !strings.Contains(r.stdout, "forward   Turn on forwarding  -       never graded\n") {
		t.Errorf("status with no grades:\n%s", r.stdout)
	}
	var j statusJSON
	r = runCLI(t, cfg, "", "status", "s-aaa111", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.Exercises[0].Graded || j.Exercises[0].MaxScore != 5 {
		t.Errorf("status -o json with no grades = %v, %+v", err, j)
	}

	at := timestamppb.New(testNow.Add(-time.Minute))
	cfg, _ = serve(t, &fakeLabd{labs: labsWithInstructions(), sandboxes: sampleSandboxes(), grades: []*labsv1.GradeReport{
		{Exercise: "forward", Score: 5, MaxScore: 5, Passed: true, GradeTime: at},
		{Exercise: "route", Score: 6, MaxScore: 6, Passed: true, GradeTime: at},
	}})
	r = runCLI(t, cfg, "", "status", "--ascii", "s-aaa111")
	for _, want := range []string{"Progress:  2 of 2 exercises passed\n", "PASS passed 6/6", "What you learned\n", "  Routers *forward*; hosts need routes.\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status with everything passed lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestLabsShowInstructions(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{labs: labsWithInstructions()})
	r := runCLI(t, cfg, "", "labs", "show", "routed")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("labs show = %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "labs-show-routed.txt", r.stdout)
}

// ansi matches the escapes styles writes.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[mK]")

// TestColour: styles only when stdout is a terminal, and never with
// NO_COLOR set.
func TestColour(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		terminal  bool
		noColor   string
		wantColor bool
	}{
		{"pipe", false, "", false},
		{"terminal", true, "", true},
		{"terminal with NO_COLOR", true, "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := serve(t, &fakeLabd{labs: labsWithInstructions(), sandboxes: sampleSandboxes(), grades: sampleGrades()})
			cfg.terminal = func(io.Writer) bool { return tc.terminal }
			cfg.getenv = func(k string) string {
				if k == "NO_COLOR" {
					return tc.noColor
				}
				return ""
			}
			for _, args := range [][]string{{"labs", "show", "routed"}, {"status", "s-aaa111"}, {"topo", "s-aaa111"}} {
				r := runCLI(t, cfg, "", args...)
				if got := ansi.MatchString(r.stdout); r.code != 0 || got != tc.wantColor {
					t.Errorf("labctl %q = %d; escapes %v, want %v:\n%q", args, r.code, got, tc.wantColor, r.stdout)
				}
			}
		})
	}
}

// TestStartOnTerminal: a person sees progress on stderr and, on stdout,
// the id, the topology and the first exercise.
func TestStartOnTerminal(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{labs: labsWithInstructions()})
	cfg.terminal = func(io.Writer) bool { return true }
	cfg.getenv = func(k string) string {
		if k == "NO_COLOR" {
			return "1"
		}
		return ""
	}
	r := runCLI(t, cfg, "", "start", "routed")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "s-7f3a9c\n\n") {
		t.Fatalf("start on a terminal = %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"s-7f3a9c routed: 2 nodes, 0 links\n",
		"Exercise 1 of 2: Turn on forwarding (forward, 5 points)\n",
		"  r1 must forward between its two subnets.\n",
		"Next:  labctl shell s-7f3a9c h1",
		"labctl check s-7f3a9c",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("start on a terminal lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Route h1 to h2") {
		t.Errorf("start shows more than the first exercise:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "creating a sandbox from routed") ||
		!strings.HasSuffix(r.stderr, "\r\x1b[K✓ sandbox s-7f3a9c is ready (2 nodes, 0s)\n") {
		t.Errorf("start's progress on stderr = %q", r.stderr)
	}

	// Piped stdout, terminal stderr: ID=$(labctl start routed) in a shell.
	var stdout, stderr strings.Builder
	cfg.terminal = func(w io.Writer) bool { return w != io.Writer(&stdout) }
	code := run(t.Context(), []string{"start", "routed"}, &stdout, &stderr, nil, cfg)
	if code != 0 || stdout.String() != "s-7f3a9c\n" || !strings.Contains(stderr.String(), "✓ sandbox s-7f3a9c is ready") {
		t.Errorf("start with stdout piped = %d, stdout %q, stderr %q; want only the id on stdout", code, stdout.String(), stderr.String())
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{labs: sampleLabs(), sandboxes: sampleSandboxes()})
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, cfg, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "labctl") || len(r.stdout) < 1000 {
			t.Errorf("completion %s = %d, %d bytes, stderr %q", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "ksh"}} {
		if r := runCLI(t, cfg, "", args...); r.code != 2 {
			t.Errorf("labctl %q = %d; want 2", args, r.code)
		}
	}

	// What a TAB asks: ids, then node names, lab names.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{cobra.ShellCompRequestCmd, "shell", ""}, []string{"s-aaa111\trouted, ready", "s-bbb222\tnat, creating"}},
		{[]string{cobra.ShellCompRequestCmd, "shell", "s-aaa111", ""}, []string{"h1", "r1"}},
		{[]string{cobra.ShellCompRequestCmd, "exec", "-i", "s-aaa111", ""}, []string{"h1", "r1"}},
		{[]string{cobra.ShellCompRequestCmd, "start", ""}, []string{"routed\tRoute between two subnets"}},
		{[]string{cobra.ShellCompRequestCmd, "topo", ""}, []string{"s-ccc333\tfirewall, failed"}},
	} {
		r := runCLI(t, cfg, "", tc.args...)
		for _, want := range tc.want {
			if !strings.Contains(r.stdout, want+"\n") {
				t.Errorf("labctl %q = %d, %q; want %q offered", tc.args, r.code, r.stdout, want)
			}
		}
	}
}

// TestEveryCommandHasExamples walks the command tree: every command's
// --help has examples.
func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	cfg, _ := serve(t, &fakeLabd{})
	c := &cli{cfg: cfg}
	var walk func(cmd *cobra.Command)
	n := 0
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			path := strings.Fields(commandName(sub))
			r := runCLI(t, cfg, "", append([]string{"help"}, path...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "\nExamples:\n  ") {
				t.Errorf("labctl help %s = %d, stderr %q; want examples:\n%s", strings.Join(path, " "), r.code, r.stderr, r.stdout)
			}
			n++
			walk(sub)
		}
	}
	walk(c.rootCommand())
	if r := runCLI(t, cfg, "", "help", "help"); !strings.Contains(r.stdout, "\nExamples:\n  labctl help\n  labctl help exec\n") {
		t.Errorf("labctl help help:\n%s", r.stdout)
	}
	if n < 18 {
		t.Errorf("walked %d commands; want every one of labctl's", n)
	}
}
