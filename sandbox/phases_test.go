package sandbox

import (
	"context"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"nslab/labs"
)

// BenchmarkBuildPhases builds and destroys labs and reports, beside the
// time per cycle, the mean of each phase of the build and teardown
// (summed over nodes for per-node phases), so a change shows where it
// moved the time. -v prints one sandbox's phases too.
func BenchmarkBuildPhases(b *testing.B) {
	star := func(id string) func(testing.TB) *labs.Lab {
		return func(t testing.TB) *labs.Lab {
			l, err := labs.LoadFile(filepath.Join("..", "labs", "testdata", id+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
	}
	for _, tc := range []struct {
		name string
		lab  func(testing.TB) *labs.Lab
	}{
		{"star3", star("star3")},
		{"routed", func(t testing.TB) *labs.Lab { return catalogLab(t, "routed") }},
		{"star20", star("star20")},
		{"nftables-firewall", func(t testing.TB) *labs.Lab { return catalogLab(t, "nftables-firewall") }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := testManager(b)
			lab := tc.lab(b)
			sums := map[string]time.Duration{}
			var build, destroy time.Duration
			var builds, destroys []time.Duration
			for b.Loop() {
				sid := NewID()
				ctx, ph := WithPhases(context.Background())
				t0 := time.Now()
				sb, err := m.Build(ctx, lab, sid, testUIDs(lab))
				if err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				build += d
				builds = append(builds, d)
				sb.Close()
				dctx, dph := WithPhases(context.Background())
				t0 = time.Now()
				if err := m.Destroy(dctx, sid); err != nil {
					b.Fatal(err)
				}
				d = time.Since(t0)
				destroy += d
				destroys = append(destroys, d)
				for _, p := range []*Phases{ph, dph} {
					for _, s := range p.Spans() {
						sums[s.Name] += s.Dur
					}
				}
				if testing.Verbose() && b.N == 1 {
					b.Logf("%s build: %s", lab.ID, ph)
					b.Logf("%s destroy: %s", lab.ID, dph)
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(build.Microseconds())/1000/n, "build-ms")
			b.ReportMetric(float64(destroy.Microseconds())/1000/n, "destroy-ms")
			b.ReportMetric(float64(median(builds).Microseconds())/1000, "build-p50-ms")
			b.ReportMetric(float64(median(destroys).Microseconds())/1000, "destroy-p50-ms")
			names := make([]string, 0, len(sums))
			for k := range sums {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				b.ReportMetric(float64(sums[k].Microseconds())/1000/n, strings.ReplaceAll(k, " ", "_")+"-ms")
			}
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
