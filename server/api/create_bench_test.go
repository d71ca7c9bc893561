package api

import (
	"context"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"nslab/labs"
	"nslab/sandbox"
	"nslab/server/store"
)

// BenchmarkCreateDelete creates and deletes sandboxes through the
// service (store, manager, response) without gRPC, reporting the mean of
// each phase of both so a change shows where it moved the time:
// go test -run '^$' -bench CreateDelete ./server/api
func BenchmarkCreateDelete(b *testing.B) {
	m := testManager(b)
	cat, err := labs.NewCatalog()
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range []string{"star3", "star20"} {
		l, err := labs.LoadFile(filepath.Join("..", "..", "labs", "testdata", id+".yaml"))
		if err != nil {
			b.Fatal(err)
		}
		cat.Add(l)
	}
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "labd.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s := NewSandboxServer(Config{Store: st, Catalog: cat, Manager: m,
		UIDStart: uidNext.Add(sandbox.UIDRange * 64), UIDSlots: 64})
	for _, id := range []string{"star3", "routed", "star20"} {
		b.Run(id, func(b *testing.B) {
			lab, err := cat.Get(id)
			if err != nil {
				b.Fatal(err)
			}
			sums := map[string]time.Duration{}
			var create, del time.Duration
			var creates, dels []time.Duration
			for b.Loop() {
				ctx, ph := sandbox.WithPhases(context.Background())
				t0 := time.Now()
				sb, err := s.create(ctx, lab, time.Hour, "")
				if err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				create += d
				creates = append(creates, d)
				dctx, dph := sandbox.WithPhases(context.Background())
				t0 = time.Now()
				if err := s.delete(dctx, sb.GetId(), "bench"); err != nil {
					b.Fatal(err)
				}
				d = time.Since(t0)
				del += d
				dels = append(dels, d)
				for _, p := range []*sandbox.Phases{ph, dph} {
					for _, sp := range p.Spans() {
						sums[sp.Name] += sp.Dur
					}
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(create.Microseconds())/1000/n, "create-ms")
			b.ReportMetric(float64(del.Microseconds())/1000/n, "delete-ms")
			b.ReportMetric(float64(median(creates).Microseconds())/1000, "create-p50-ms")
			b.ReportMetric(float64(median(dels).Microseconds())/1000, "delete-p50-ms")
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
