package catalogstore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"testing"

	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
)

// BenchmarkApplyEvents applies a generated catalog (every model, every
// discount kind) through feed.Applier.Apply in batches of the catalog stage's
// default size, as the vivace_catalog output does, parsing and validating
// each event on the way (the applier validates). Each iteration is a new client, so every event
// applies. Reported: events/s.
func BenchmarkApplyEvents(b *testing.B) {
	for _, size := range []int{500, 2000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			st := applier(pgtest.Store(b))
			ctx := context.Background()
			n := 0
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				var buf bytes.Buffer
				if err := loadgen.Catalog(&buf, loadgen.CatalogOptions{Client: fmt.Sprintf("bench%d_%d", size, i), Accounts: 10000, Plans: 10}); err != nil {
					b.Fatal(err)
				}
				var lines [][]byte
				sc := bufio.NewScanner(&buf)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					lines = append(lines, bytes.Clone(sc.Bytes()))
				}
				b.StartTimer()
				for start := 0; start < len(lines); start += size {
					chunk := lines[start:min(start+size, len(lines))]
					evs := make([]feed.Event, len(chunk))
					fails := make([]error, len(chunk))
					for j, l := range chunk {
						evs[j], fails[j] = feed.Parse(l) // the applier validates what parsed
					}
					out, err := st.Apply(ctx, evs, fails)
					if err != nil {
						b.Fatal(err)
					}
					for _, o := range out {
						if o.Outcome != feed.Applied {
							b.Fatalf("event %s: %s %s", o.EventID, o.Outcome, o.Message)
						}
					}
				}
				n += len(lines)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
