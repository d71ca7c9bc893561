package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nslab/grader"
	"nslab/labs"
	"nslab/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.RunChild() // node processes are this test binary re-executed
	os.Exit(m.Run())
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NSLAB_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root and NSLAB_REQUIRE_ROOT=1")
	}
	t.Skip("needs root: builds sandboxes")
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testManager is a sandbox manager with a state dir and cgroup parent of
// its own, removed at cleanup.
func testManager(t testing.TB) *sandbox.Manager {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	parent := "nslab-test-" + randHex(4)
	m, err := sandbox.NewManager(sandbox.Config{StateDir: dir, CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range m.Scan() {
			m.Destroy(context.Background(), id)
		}
		for _, c := range []string{"pids", "memory", "cpu"} {
			os.Remove(filepath.Join("/sys/fs/cgroup", c, parent))
		}
	})
	return m
}

// uidBase gives each test sandbox node its own uid range, away from the
// ranges other test packages use.
var uidNext atomic.Uint32

func init() { uidNext.Store(uint32(3<<30) + uint32(os.Getpid()%100)*sandbox.UIDRange*128) }

func freshSandbox(t testing.TB, m *sandbox.Manager, lab *labs.Lab) *sandbox.Sandbox {
	t.Helper()
	uids := map[string]uint32{}
	for _, n := range lab.Nodes {
		uids[n.Name] = uidNext.Add(sandbox.UIDRange)
	}
	id := sandbox.NewID()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := m.Build(ctx, lab, id, uids)
	if err != nil {
		t.Fatalf("build %s: %v", lab.ID, err)
	}
	t.Cleanup(func() {
		sb.Close()
		if err := m.Destroy(context.Background(), id); err != nil {
			t.Errorf("destroy %s: %v", id, err)
		}
	})
	return sb
}

func describe(rep *grader.Report) string {
	var b strings.Builder
	for _, r := range rep.Results {
		mark := "✓"
		if !r.Passed {
			mark = "✗"
		}
		fmt.Fprintf(&b, "  %s %s: %s", mark, r.CheckID, r.Message)
		for _, e := range r.Evidence {
			fmt.Fprintf(&b, "\n      seen: %s", e)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestCatalogExercises proves every exercise of every catalog lab: on a
// fresh sandbox its grade fails with messages; after its anti-solution
// (a plausible wrong answer) it still fails; after the reference
// solution it passes. Labs run in parallel. NSLAB_TEST_LABS=DIR adds (or
// overrides) labs from DIR, for authors working on new ones:
//
//	NSLAB_TEST_LABS=/path/to/wip go test ./server/api -run 'TestCatalogExercises/mylab/' -v
func TestCatalogExercises(t *testing.T) {
	m := testManager(t)
	var extra []string
	if d := os.Getenv("NSLAB_TEST_LABS"); d != "" {
		extra = append(extra, d)
	}
	cat, err := labs.NewCatalog(extra...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, lab := range cat.List() {
		t.Run(lab.ID, func(t *testing.T) {
			t.Parallel()
			if len(lab.Exercises) == 0 {
				t.Fatalf("lab %s has no exercises", lab.ID)
			}
			for i := range lab.Exercises {
				ex := &lab.Exercises[i]
				t.Run(ex.ID, func(t *testing.T) { proveExercise(ctx, t, m, lab, ex) })
			}
		})
	}
}

func proveExercise(ctx context.Context, t *testing.T, m *sandbox.Manager, lab *labs.Lab, ex *labs.Exercise) {
	sb := freshSandbox(t, m, lab)
	rep, err := GradeExercise(ctx, sb, ex)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed {
		t.Fatalf("a fresh sandbox passes:\n%s", describe(rep))
	}
	for _, r := range rep.Results {
		if !r.Passed && strings.TrimSpace(r.Message) == "" {
			t.Errorf("check %s fails without a message", r.CheckID)
		}
	}
	t.Logf("fresh: %d/%d\n%s", rep.Score, rep.Max, describe(rep))

	if len(ex.AntiSolution) > 0 {
		anti := freshSandbox(t, m, lab)
		if _, err := RunSteps(ctx, anti, ex.AntiSolution); err != nil {
			t.Fatalf("anti-solution: %v", err)
		}
		rep, err := GradeExercise(ctx, anti, ex)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Passed {
			t.Errorf("the anti-solution passes:\n%s", describe(rep))
		}
		t.Logf("anti-solution: %d/%d\n%s", rep.Score, rep.Max, describe(rep))
	} else {
		t.Errorf("exercise %s has no anti_solution", ex.ID)
	}

	if _, err := RunSteps(ctx, sb, ex.Solution); err != nil {
		t.Fatalf("solution: %v", err)
	}
	rep, err = GradeExercise(ctx, sb, ex)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Fatalf("after the solution, grading fails:\n%s", describe(rep))
	}
}

const sshLab = `
id: ssh-subnet
title: ssh from one subnet
nodes:
  - name: fw
    interfaces: [{name: eth0, addresses: [192.168.1.1/24]}]
    services: [{kind: tcp-echo, name: ssh, port: 22}]
  - name: admin
    interfaces: [{name: eth0, addresses: [192.168.1.10/24]}]
links:
  - endpoints: [fw:eth0, admin:eth0]
exercises:
  - id: ssh
    title: SSH only from the admin subnet
    checks:
      - id: rule
        description: fw accepts tcp port 22 only from 192.168.1.0/24
        nftables: {node: fw, hook: input, rule: {proto: tcp, dport: [22], saddr: 192.168.1.0/24, verdict: accept}}
      - id: route
        description: fw routes 10.9.0.0/16 via admin in the main table
        route: {node: fw, dst: 10.9.0.0/16, via: 192.168.1.10}
    solution:
      - node: fw
        run: ip route add 10.9.0.0/16 via 192.168.1.10 && nft add table inet f && nft add chain inet f in '{ type filter hook input priority 0; policy drop; }' && nft add rule inet f in ip saddr 192.168.1.0/24 tcp dport 22 accept
`

// TestWrongAnswersNamed: the two classic wrong answers get a failing
// check whose message says what is wrong.
func TestWrongAnswersNamed(t *testing.T) {
	m := testManager(t)
	lab, err := labs.Parse([]byte(sshLab), "ssh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sb := freshSandbox(t, m, lab)
	ex := &lab.Exercises[0]
	ctx := context.Background()
	if _, err := RunSteps(ctx, sb, []labs.Step{{Node: "fw", Run: "ip route add 10.9.0.0/16 via 192.168.1.10 table 100 && " +
		"nft add table inet f && nft add chain inet f in '{ type filter hook input priority 0; policy drop; }' && nft add rule inet f in tcp dport 22 accept"}}); err != nil {
		t.Fatal(err)
	}
	rep, err := GradeExercise(ctx, sb, ex)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"rule":  {"every source", "192.168.1.0/24"},
		"route": {"table 100", "not main"},
	}
	for _, r := range rep.Results {
		if r.Passed {
			t.Errorf("%s passed a wrong answer", r.CheckID)
			continue
		}
		for _, w := range want[r.CheckID] {
			if !strings.Contains(r.Message, w) {
				t.Errorf("%s: message %q does not say %q", r.CheckID, r.Message, w)
			}
		}
	}
	t.Logf("%s", describe(rep))
	if _, err := RunSteps(ctx, sb, ex.Solution); err != nil {
		t.Fatal(err)
	}
	if rep, _ := GradeExercise(ctx, sb, ex); !rep.Passed {
		t.Errorf("the right answer fails:\n%s", describe(rep))
	}
}

// BenchmarkGradeExercise grades the catalog's largest exercise (most
// checks) on a solved sandbox: go test -bench GradeExercise ./server/api
func BenchmarkGradeExercise(b *testing.B) {
	m := testManager(b)
	cat, err := labs.NewCatalog()
	if err != nil {
		b.Fatal(err)
	}
	var lab *labs.Lab
	var ex *labs.Exercise
	for _, l := range cat.List() {
		for i := range l.Exercises {
			if ex == nil || len(l.Exercises[i].Checks) > len(ex.Checks) {
				lab, ex = l, &l.Exercises[i]
			}
		}
	}
	sb := freshSandbox(b, m, lab)
	ctx := context.Background()
	if _, err := RunSteps(ctx, sb, ex.Solution); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s/%s: %d checks", lab.ID, ex.ID, len(ex.Checks))
	for b.Loop() {
		rep, err := GradeExercise(ctx, sb, ex)
		if err != nil || !rep.Passed {
			b.Fatalf("grade: %v %+v", err, rep)
		}
	}
}

// TestProbesDoNotGradeThemselves: the handshake exercise's TCP probe
// makes a real handshake on the link; grading again must not count it as
// the learner's.
func TestProbesDoNotGradeThemselves(t *testing.T) {
	m := testManager(t)
	cat, err := labs.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	lab, err := cat.Get("hello-link")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := findExercise(lab, "handshake")
	if err != nil {
		t.Fatal(err)
	}
	sb := freshSandbox(t, m, lab)
	ctx := context.Background()
	for i := range 3 {
		rep, err := GradeExercise(ctx, sb, ex)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Results {
			if r.CheckID == "three-way" && r.Passed {
				t.Fatalf("grade %d: the grader's own probe passed the handshake check:\n%s", i+1, describe(rep))
			}
		}
	}
	probes := 0
	for _, p := range sb.Packets(time.Time{}) {
		if p.Probe {
			probes++
		}
	}
	if probes == 0 {
		t.Errorf("no captured packet was marked as a probe's")
	}
}
