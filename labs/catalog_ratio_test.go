package labs

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// behaviourKinds observe an effect rather than a configuration: a probe,
// packets on a link, or an answer read off the capture.
func observesBehaviour(c *Check) bool {
	switch c.Kind() {
	case CheckPing, CheckTCP, CheckUDP, CheckHTTP, CheckPMTU, CheckPackets:
		return true
	case CheckAnswer:
		return c.Answer.FromPacket != nil
	}
	return false
}

// TestCatalogBehaviourRatio holds the catalog to "behaviour beats
// configuration": at least two thirds of all checks observe behaviour or
// packets. With -v it prints, per lab, the check kinds used.
func TestCatalogBehaviourRatio(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	total, behaviour := 0, 0
	var b strings.Builder
	for _, l := range c.List() {
		kinds := map[string]int{}
		lb, lt := 0, 0
		for _, ex := range l.Exercises {
			for i := range ex.Checks {
				ch := &ex.Checks[i]
				kinds[ch.Kind()]++
				lt++
				if observesBehaviour(ch) {
					lb++
				}
			}
		}
		var ks []string
		for k, n := range kinds {
			ks = append(ks, fmt.Sprintf("%s×%d", k, n))
		}
		sort.Strings(ks)
		fmt.Fprintf(&b, "%-22s %d exercises, %2d checks, %2d behaviour/packet (%3.0f%%): %s\n",
			l.ID, len(l.Exercises), lt, lb, 100*float64(lb)/float64(max(lt, 1)), strings.Join(ks, " "))
		total += lt
		behaviour += lb
	}
	fmt.Fprintf(&b, "catalog: %d labs, %d checks, %d behaviour/packet (%.1f%%)\n", len(c.List()), total, behaviour, 100*float64(behaviour)/float64(total))
	t.Log("\n" + b.String())
	if 3*behaviour < 2*total {
		t.Errorf("only %d of %d checks observe behaviour or packets; want at least two thirds", behaviour, total)
	}
}
