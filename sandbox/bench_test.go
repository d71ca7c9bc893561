package sandbox

import (
	"context"
	"testing"
)

// BenchmarkBuild measures Build+Destroy of catalog labs without the server.
func BenchmarkBuild(b *testing.B) {
	for _, id := range []string{"hello-link", "routed"} {
		b.Run(id, func(b *testing.B) {
			m := testManager(b)
			lab := catalogLab(b, id)
			for b.Loop() {
				sid := NewID()
				sb, err := m.Build(context.Background(), lab, sid, testUIDs(lab))
				if err != nil {
					b.Fatal(err)
				}
				sb.Close()
				if err := m.Destroy(context.Background(), sid); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
