package host_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"vivace.dev/vivace/internal/benchx"

	"vivace.dev/vivace/plugins/mediation"
)

// BenchmarkPluginMediate sends batches through a real plugin process (the
// cloud example) the way the mediate stage does: one call per batch, the
// answer checked. With inflight=1 ns/op is the time of one call, so at
// batch 1 it is the per-call overhead; inflight=2 keeps two batches in
// flight, as pipelines/mediate.yaml's two threads do, so that the host
// and the plugin work at the same time. records/s is the throughput.
// BenchmarkMediationPluginProcessor (plugins/benthos) adds the processor's
// JSON and message handling: the plugin step as the pipeline runs it.
func BenchmarkPluginMediate(b *testing.B) {
	for _, c := range []struct{ size, inflight int }{{1, 1}, {100, 1}, {1000, 1}, {1000, 2}} {
		size := c.size
		b.Run(fmt.Sprintf("batch=%d/inflight=%d", size, c.inflight), func(b *testing.B) {
			h := newHost(b)
			s := spec(b, "cloud", "nimbus", map[string]any{"services": map[string]string{
				"cdn": "CDN_GB", "object-storage-egress": "STORAGE_EGRESS_GB"}})
			recs := make([]mediation.RawRecord, size)
			for i := range recs {
				recs[i] = mediation.RawRecord{Client: "nimbus", FileID: "0193f7c2-5a43-7cc1-9b55-3f1e6a0d2b11", Line: int64(i + 2),
					Fields: map[string]string{
						"event_id":    "evt-" + strconv.Itoa(i),
						"account":     "ACC-" + strconv.Itoa(i%500),
						"service":     []string{"cdn", "object-storage-egress"}[i%2],
						"bytes":       strconv.Itoa(1_000_000 + i*7919),
						"timestamp":   "2026-10-01T08:00:00Z",
						"region":      "eu-west-1",
						"resource_id": "res-" + strconv.Itoa(i%97),
					}}
			}
			ctx := context.Background()
			// The first call starts the process; it is not measured.
			if _, err := h.Mediate(ctx, s, recs); err != nil {
				b.Fatal(err)
			}
			call := func() error {
				out, err := h.Mediate(ctx, s, recs)
				if err == nil && out[0].Err != nil {
					err = out[0].Err
				}
				return err
			}
			b.ReportAllocs()
			b.ResetTimer()
			benchx.InFlight(b, c.inflight, call)
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "records/s")
			if size == 1 && c.inflight == 1 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
			}
		})
	}
}
