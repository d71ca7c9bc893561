package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	labsv1 "nslab/proto/labs/v1"
)

// TestLabdGradeSolveCapture drives grading through the API: Grade fails
// on a fresh sandbox, Solve runs the reference solution, Grade then
// passes and ListGrades keeps both; Capture yields a pcapng that
// tcpdump reads, showing a ping between two nodes.
func TestLabdGradeSolveCapture(t *testing.T) {
	requireRoot(t)
	e := newTestEnv(t)
	l := startLabd(t, e)
	grd := labsv1.NewGradingServiceClient(l.conn)
	sb := l.create(t, "hello-link")
	ctx := rpcCtx(t)

	resp, err := grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: sb.GetName(), Exercise: "reject-echo"})
	if err != nil {
		t.Fatal(err)
	}
	rep := resp.GetReports()[0]
	if rep.GetPassed() || rep.GetMaxScore() == 0 || rep.GetLabHash() == "" {
		t.Fatalf("fresh grade: %v", rep)
	}
	if _, err := grd.Solve(ctx, &labsv1.SolveRequest{Sandbox: sb.GetId(), Exercise: "reject-echo"}); err != nil {
		t.Fatal(err)
	}
	resp, err = grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: sb.GetId(), Exercise: "reject-echo"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetReports()[0].GetPassed() {
		t.Fatalf("after solve: %v", resp.GetReports()[0])
	}
	grades, err := grd.ListGrades(ctx, &labsv1.ListGradesRequest{Sandbox: sb.GetId()})
	if err != nil || len(grades.GetGrades()) != 2 || !grades.GetGrades()[0].GetPassed() || grades.GetGrades()[1].GetPassed() {
		t.Fatalf("ListGrades = %v, %v", grades, err)
	}
	_, err = grd.Grade(ctx, &labsv1.GradeRequest{Sandbox: sb.GetId(), Exercise: "no-such"})
	wantCode(t, "Grade of an unknown exercise", err, codes.NotFound)
	_, err = grd.Solve(ctx, &labsv1.SolveRequest{Sandbox: sb.GetId()})
	wantCode(t, "Solve without an exercise", err, codes.InvalidArgument)

	l.mustExec(t, sb.GetId(), "h1", "ping", "-c2", "-W2", "10.0.0.2")
	st, err := l.sbx.Capture(ctx, &labsv1.CaptureRequest{Sandbox: sb.GetId(), Link: "l1"})
	if err != nil {
		t.Fatal(err)
	}
	var pcap bytes.Buffer
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pcap.Write(m.GetData())
	}
	file := filepath.Join(t.TempDir(), "x.pcapng")
	if err := os.WriteFile(file, pcap.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tcpdump", "-n", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	for _, want := range []string{"10.0.0.1 > 10.0.0.2: ICMP echo request", "10.0.0.2 > 10.0.0.1: ICMP echo reply"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tcpdump output lacks %q:\n%s", want, out)
		}
	}
	// The interfaces are named node:iface in the pcapng itself.
	for _, want := range []string{"h1:eth0", "h2:eth0"} {
		if !bytes.Contains(pcap.Bytes(), []byte(want)) {
			t.Errorf("pcapng names no interface %q", want)
		}
	}
	bad, err := l.sbx.Capture(ctx, &labsv1.CaptureRequest{Sandbox: sb.GetId(), Link: "nope"})
	if err == nil {
		_, err = bad.Recv() // a server stream reports its status on the first receive
	}
	wantCode(t, "Capture of an unknown link", err, codes.InvalidArgument)
}
