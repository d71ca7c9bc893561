package sandbox

import (
	"os"
	"strings"
	"testing"
)

func TestRoutedEndToEnd(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "routed"))
	if got := strings.TrimSpace(mustRun(t, sb, "h1", "hostname")); got != "h1" {
		t.Errorf("hostname = %q, want h1", got)
	}
	if r := run(t, sb, "h1", "ping", "-c1", "-W2", "10.0.2.10"); r.st.Code != 0 { b, _ := os.ReadFile(m.sandboxDir(sb.ID) + "/h1/init.log"); t.Fatalf("%+v\n%s", r, b) }
	mustRun(t, sb, "h1", "ping", "-c1", "-W2", "fd00:2::10")
	out := mustRun(t, sb, "h1", "ip", "-o", "link")
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "eth0") {
		t.Errorf("h1 links:\n%s", out)
	}
}
