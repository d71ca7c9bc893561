package sandbox

import (
	"context"
	"fmt"
	"runtime/trace"
	"sort"
	"strings"
	"sync"
	"time"
)

// Phases records how long each step of a build or teardown took: one
// line in labd's debug log per sandbox, and regions in a runtime/trace
// (go tool trace) when one is being taken. A build runs its nodes in
// parallel, so a phase may be recorded many times; the summary gives each
// phase's count, summed time and the longest single one.
type Phases struct {
	mu    sync.Mutex
	start time.Time
	spans []Span
}

// Span is one timed step.
type Span struct {
	Name  string
	Start time.Duration // since the Phases began
	Dur   time.Duration
}

type phasesKey struct{}

// WithPhases returns a context whose builds and teardowns record their
// steps in p (a new Phases if the context holds none yet).
func WithPhases(ctx context.Context) (context.Context, *Phases) {
	if p, ok := ctx.Value(phasesKey{}).(*Phases); ok {
		return ctx, p
	}
	p := &Phases{start: time.Now()}
	return context.WithValue(ctx, phasesKey{}, p), p
}

// Phase starts timing step name; the returned func ends it. Without
// Phases in ctx it costs a context lookup (and a trace region only while
// a runtime trace is running).
func Phase(ctx context.Context, name string) func() {
	p, _ := ctx.Value(phasesKey{}).(*Phases)
	var r *trace.Region
	if trace.IsEnabled() {
		r = trace.StartRegion(ctx, name)
	}
	if p == nil {
		if r == nil {
			return func() {}
		}
		return r.End
	}
	t0 := time.Now()
	return func() {
		d := time.Since(t0)
		if r != nil {
			r.End()
		}
		p.mu.Lock()
		p.spans = append(p.spans, Span{Name: name, Start: t0.Sub(p.start), Dur: d})
		p.mu.Unlock()
	}
}

// Spans returns the recorded steps in the order they started.
func (p *Phases) Spans() []Span {
	p.mu.Lock()
	out := append([]Span(nil), p.spans...)
	p.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// Elapsed is the time since the Phases began.
func (p *Phases) Elapsed() time.Duration { return time.Since(p.start) }

// String summarises by phase name, in order of first start:
// "name=total" or, for a phase seen n times, "name=total/n(max)".
func (p *Phases) String() string {
	type agg struct {
		n        int
		sum, max time.Duration
	}
	var order []string
	by := map[string]*agg{}
	for _, s := range p.Spans() {
		a := by[s.Name]
		if a == nil {
			a = &agg{}
			by[s.Name] = a
			order = append(order, s.Name)
		}
		a.n++
		a.sum += s.Dur
		a.max = max(a.max, s.Dur)
	}
	var b strings.Builder
	for i, name := range order {
		if i > 0 {
			b.WriteByte(' ')
		}
		a := by[name]
		if a.n == 1 {
			fmt.Fprintf(&b, "%s=%s", name, ms(a.sum))
		} else {
			fmt.Fprintf(&b, "%s=%s/%d(max %s)", name, ms(a.sum), a.n, ms(a.max))
		}
	}
	return b.String()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}
