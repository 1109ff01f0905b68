package benthos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"vivace.dev/vivace/internal/benchx"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/clientcfg"
)

// BenchmarkMediationPluginProcessor runs vivace_mediation_plugin as the
// mediate stream does: batches of usage.raw messages (JSON) through the
// cloud example plugin, a real process, and back as JSON messages. It is
// BenchmarkPluginMediate (plugins/mediation/host) plus the processor's
// JSON decoding and encoding and its message handling. inflight=2 runs two
// batches at once, as the stream's two pipeline threads do.
func BenchmarkMediationPluginProcessor(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "cloud")
	if out, err := exec.Command("go", "build", "-o", bin, "../mediation/clients/cloud").CombinedOutput(); err != nil {
		b.Fatalf("building the cloud plugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	settings := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(settings, fmt.Appendf(nil, `
clients:
  nimbus:
    plugin:
      path: %s
      sha256: %s
      config:
        services: { cdn: CDN_GB, object-storage-egress: STORAGE_EGRESS_GB }
`, bin, hex.EncodeToString(sum[:])), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ size, inflight int }{{1, 1}, {100, 1}, {1000, 1}, {1000, 2}} {
		b.Run(fmt.Sprintf("batch=%d/inflight=%d", c.size, c.inflight), func(b *testing.B) {
			cfg, err := clientcfg.Open(settings)
			if err != nil {
				b.Fatal(err)
			}
			proc := newMediationPluginProc(cfg, "mediate", service.MockResources())
			b.Cleanup(func() { _ = proc.Close(context.Background()) })
			bodies := make([][]byte, c.size)
			for i := range bodies {
				bodies[i] = fmt.Appendf(nil, `{"client":"nimbus","file_id":"0193f7c2-5a43-7cc1-9b55-3f1e6a0d2b11","line":%d,"fields":`+
					`{"event_id":"evt-%d","account":"ACC-%d","service":%q,"bytes":"%d","timestamp":"2026-10-01T08:00:00Z","region":"eu-west-1","resource_id":"res-%d"}}`,
					i+2, i, i%500, []string{"cdn", "object-storage-egress"}[i%2], 1_000_000+i*7919, i%97)
			}
			ctx := context.Background()
			call := func() error {
				batch := make(service.MessageBatch, len(bodies))
				for i, body := range bodies {
					m := service.NewMessage(body)
					m.MetaSetMut(metaClient, "nimbus")
					batch[i] = m
				}
				outs, err := proc.ProcessBatch(ctx, batch)
				if err != nil {
					return err
				}
				if len(outs) != 1 || len(outs[0]) != len(bodies) {
					return fmt.Errorf("%d batches out", len(outs))
				}
				if err := outs[0][0].GetError(); err != nil {
					return err
				}
				return nil
			}
			// The first call starts the process; it is not measured.
			if err := call(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			benchx.InFlight(b, c.inflight, call)
			b.ReportMetric(float64(c.size*b.N)/b.Elapsed().Seconds(), "records/s")
			if c.size == 1 && c.inflight == 1 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
			}
		})
	}
}
