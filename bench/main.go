// Command bench measures nslab on this machine: the time from
// CreateSandbox (over gRPC on the unix socket) to READY and from
// DeleteSandbox to gone, for the star and routed topologies, and the exec
// round trip. It starts its own labd (the binary given by --labd, built by
// `.ci/dev build`) on a temporary socket, database and state directory,
// so it never touches a running service.
//
//	go build -o bin/labd ./server && go run ./bench -runs 20
//
// It is a top-level package because it drives labd from outside, as a
// client would, and belongs to no other package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	labsv1 "nslab/proto/labs/v1"
)

func main() {
	labd := flag.String("labd", "bin/labd", "labd binary to benchmark")
	labsDir := flag.String("labs", "labs/testdata", "directory with the star2/star3/star20 labs")
	runs := flag.Int("runs", 20, "create/delete cycles per topology")
	execs := flag.Int("execs", 200, "exec round trips")
	topos := flag.String("topologies", "star2,star3,star20,routed", "comma-separated lab ids")
	flag.Parse()
	if err := run(*labd, *labsDir, *runs, *execs, strings.Split(*topos, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(labd, labsDir string, runs, execs int, topos []string) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (labd builds namespaces)")
	}
	if _, err := os.Stat(labd); err != nil {
		return fmt.Errorf("labd binary %s: %w (build it with: go build -o bin/labd ./server)", labd, err)
	}
	tmp, err := os.MkdirTemp("", "nslab-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o711)
	sock := filepath.Join(tmp, "labd.sock")
	cgParent := "nslab-bench-" + filepath.Base(tmp)[len("nslab-bench-"):]
	// labd leaves its (empty) cgroup parent behind; so must not we.
	defer func() {
		for _, d := range []string{"pids", "memory", "cpu", ""} {
			os.Remove(filepath.Join("/sys/fs/cgroup", d, cgParent))
		}
	}()
	cmd := exec.Command(labd, "--socket", sock, "--db", filepath.Join(tmp, "labd.db"),
		"--state-dir", filepath.Join(tmp, "state"), "--labs", labsDir,
		"--cgroup-parent", cgParent, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start labd: %w", err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	sbx := labsv1.NewSandboxServiceClient(conn)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := sbx.ListSandboxes(ctx, &labsv1.ListSandboxesRequest{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("labd did not come up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("nslab bench — %s, kernel %s, %d CPUs, %s, %d runs each\n\n",
		host, strings.TrimSpace(string(kernel)), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339), runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "topology\tnodes\tcreate p50\tcreate p95\tdelete p50\tdelete p95\t")
	for _, topo := range topos {
		var creates, deletes []time.Duration
		nodes := 0
		// One warm-up cycle: the first create pays for page-ins of the binary.
		for i := range runs + 1 {
			t0 := time.Now()
			resp, err := sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: topo})
			if err != nil {
				return fmt.Errorf("create %s: %w", topo, err)
			}
			c := time.Since(t0)
			nodes = len(resp.GetSandbox().GetNodes())
			t1 := time.Now()
			if _, err := sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: resp.GetSandbox().GetName()}); err != nil {
				return fmt.Errorf("delete %s: %w", topo, err)
			}
			if i > 0 {
				creates = append(creates, c)
				deletes = append(deletes, time.Since(t1))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", topo, nodes,
			ms(pct(creates, 50)), ms(pct(creates, 95)), ms(pct(deletes, 50)), ms(pct(deletes, 95)))
	}
	tw.Flush()

	resp, err := sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: "routed"})
	if err != nil {
		return fmt.Errorf("create routed: %w", err)
	}
	defer sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: resp.GetSandbox().GetName()})
	var rtts []time.Duration
	for range execs {
		t0 := time.Now()
		st, err := sbx.Exec(ctx, &labsv1.ExecRequest{Sandbox: resp.GetSandbox().GetId(), Node: "h1", Command: []string{"true"}})
		if err != nil {
			return err
		}
		for {
			m, err := st.Recv()
			if err != nil {
				return fmt.Errorf("exec true: %w", err)
			}
			if m.GetExit() != nil {
				break
			}
		}
		rtts = append(rtts, time.Since(t0))
	}
	fmt.Printf("\nexec round trip (`true` in h1 of routed, %d runs): p50 %s, p95 %s\n", execs, ms(pct(rtts, 50)), ms(pct(rtts, 95)))
	return benchGrade(ctx, conn, runs)
}

// benchGrade times Grade of the catalog's largest exercise (most checks)
// on a sandbox where its reference solution has run.
func benchGrade(ctx context.Context, conn *grpc.ClientConn, runs int) error {
	labc := labsv1.NewLabServiceClient(conn)
	sbx := labsv1.NewSandboxServiceClient(conn)
	grd := labsv1.NewGradingServiceClient(conn)
	list, err := labc.ListLabs(ctx, &labsv1.ListLabsRequest{PageSize: 1000})
	if err != nil {
		return err
	}
	var lab, ex string
	most := 0
	for _, l := range list.GetLabs() {
		for _, e := range l.GetExercises() {
			if len(e.GetChecks()) > most {
				lab, ex, most = l.GetId(), e.GetId(), len(e.GetChecks())
			}
		}
	}
	if ex == "" {
		return nil
	}
	resp, err := sbx.CreateSandbox(ctx, &labsv1.CreateSandboxRequest{Lab: lab})
	if err != nil {
		return fmt.Errorf("create %s: %w", lab, err)
	}
	defer sbx.DeleteSandbox(ctx, &labsv1.DeleteSandboxRequest{Name: resp.GetSandbox().GetName()})
	id := resp.GetSandbox().GetId()
	if _, err := grd.Solve(ctx, &labsv1.SolveRequest{Sandbox: id, Exercise: ex}); err != nil {
		return fmt.Errorf("solve %s/%s: %w", lab, ex, err)
	}
	var ds []time.Duration
	for range runs {
		t0 := time.Now()
		r, err := grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: id, Exercise: ex})
		if err != nil {
			return fmt.Errorf("grade %s/%s: %w", lab, ex, err)
		}
		ds = append(ds, time.Since(t0))
		if !r.GetReports()[0].GetPassed() {
			return fmt.Errorf("grade %s/%s after its solution did not pass", lab, ex)
		}
	}
	fmt.Printf("grade of the largest exercise (%s/%s, %d checks, solved, %d runs): p50 %s, p95 %s\n",
		lab, ex, most, runs, ms(pct(ds, 50)), ms(pct(ds, 95)))
	return nil
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
