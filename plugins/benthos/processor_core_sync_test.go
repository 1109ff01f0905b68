package benthos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/syncstore"
	"vivace.dev/vivace/internal/synctest"
	"vivace.dev/vivace/pipelines"
)

const (
	syncClientNo = 31337
	syncAuthKey  = "sync-stream-key"
)

// syncRig is the sync stream as pipelines/sync.yaml has it, over an
// embedded broker, the test database and a fake core on a real port,
// with an operations service publishing to the broker.
type syncRig struct {
	dbName string
	db     *store.Store
	core   *fakecore.Server
	ops    *mursync.Ops
	set    *settings.Service
	addr   string
	stop   func()
}

func newSyncRig(tb testing.TB, opsLog slog.Level) *syncRig {
	tb.Helper()
	ctx := context.Background()
	addr := newCluster(tb, kafkax.TopicMURSyncBatches, kafkax.TopicMURSyncResults)
	dsn := pgtest.DSN(tb)
	db := pgtest.Store(tb)
	if _, err := db.Pool().Exec(ctx, `DELETE FROM system_settings`); err != nil {
		tb.Fatal(err)
	}
	core := synctest.StartCore(tb, fakecore.Credential{ClientNo: syncClientNo, AuthKey: syncAuthKey})
	env := map[string]string{
		"VIVACE_KAFKA_BROKERS": addr, "DATABASE_URL": dsn, "VIVACE_CORE_URL": core.URL(),
		"VIVACE_CORE_CLIENT_NO": fmt.Sprint(syncClientNo), "VIVACE_CORE_AUTH_KEY": syncAuthKey,
	}
	s := buildPipeline(tb, "sync", env, slog.LevelWarn)
	done := make(chan struct{})
	go func() { _ = s.Run(context.Background()); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Stop(sctx); err != nil {
				tb.Errorf("stop the sync stream: %v", err)
			}
			<-done
		})
	}
	tb.Cleanup(stop)
	cl, err := kgo.NewClient(append(kafkax.SyncProducerOpts(), kgo.SeedBrokers(addr))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	set := &settings.Service{Store: settingstore.New(db)}
	ops := &mursync.Ops{Store: syncstore.New(db), Broker: &kafkax.SyncBatches{Client: cl}, Settings: set, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opsLog})),
		NewID: store.NewID, Owner: "test", PollEvery: 20 * time.Millisecond}
	u, _ := url.Parse(dsn)
	return &syncRig{dbName: strings.TrimPrefix(u.Path, "/"), db: db, core: core, ops: ops, set: set, addr: addr, stop: stop}
}

// buildPipeline builds one of the embedded pipelines with env as its
// variables.
func buildPipeline(tb testing.TB, name string, env map[string]string, level slog.Level) *service.Stream {
	tb.Helper()
	defs, err := pipelines.Default()
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range defs {
		if d.Name != name {
			continue
		}
		sb := service.NewStreamBuilder()
		sb.SetEnvVarLookupFunc(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err := sb.SetYAML(d.YAML); err != nil {
			tb.Fatal(err)
		}
		if err := sb.SetMetricsYAML(fmt.Sprintf("vivace_prometheus:\n  stream: %q\n", name)); err != nil {
			tb.Fatal(err)
		}
		sb.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		s, err := sb.Build()
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	tb.Fatalf("no pipeline %s", name)
	return nil
}

func TestSyncStream(t *testing.T) {
	ctx := context.Background()
	r := newSyncRig(t, slog.LevelWarn)
	client := "s" + store.NewID()[24:]
	if _, err := r.set.Set(ctx, settings.MURSyncBatchSize, "20", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := synctest.Seed(ctx, r.db.Pool(), synctest.Spec{Client: client, MURs: 4000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.core.SetFaults(fakecore.Faults{RejectAccounts: map[string]fakecore.Rejection{"A0002": {}},
		HTTPError: fakecore.HTTPErrorFault{Trigger: fakecore.Trigger{Next: 2}}}); err != nil {
		t.Fatal(err)
	}
	sum, err := r.ops.Run(ctx, mursync.Request{Client: client, Trigger: mursync.ByHand, AnswerWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Complete(); err != nil {
		t.Fatal(err)
	}
	if sum.MURs != 4000 || sum.Failed == 0 || sum.Synced+sum.Failed != sum.Aggregates {
		t.Fatalf("summary %+v", sum)
	}
	c, err := synctest.StatusCounts(ctx, r.db.Pool(), client)
	if err != nil {
		t.Fatal(err)
	}
	if got := synctest.CheckTotals(t, ctx, r.db.Pool(), r.core.Core, client, syncClientNo); got != c["synced"] || c["synced"]+c["failed"] != 4000 {
		t.Fatalf("%d synced at the core; counts %v", got, c)
	}

	// One result per batch on mur.sync.results, keyed by batch id, with
	// every record's outcome.
	results := readResults(t, r.addr, sum.Batches)
	refused := 0
	for key, res := range results {
		if key != res.BatchID || res.Client != client || res.Status != mursync.Done || len(res.Records) != res.Synced+res.Failed {
			t.Fatalf("result %s: %+v", key, res)
		}
		for _, rec := range res.Records {
			if rec.Status == mursync.Refused {
				refused++
				if rec.Code != 1009 {
					t.Fatalf("refused record %+v", rec)
				}
			}
		}
	}
	if refused != sum.Failed {
		t.Fatalf("%d refused records in the results, %d in the summary", refused, sum.Failed)
	}
	if n := testutilCount(t, "vivace_sync_call_retries_total"); n < 2 {
		t.Fatalf("%v retries counted", n)
	}
}

// readResults consumes mur.sync.results until it has want distinct
// batches, by key.
func readResults(t *testing.T, addr string, want int) map[string]mursync.Result {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(kafkax.TopicMURSyncResults),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]mursync.Result{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d results of %d: %v", len(out), want, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			var res mursync.Result
			if err := json.Unmarshal(rec.Value, &res); err != nil {
				t.Errorf("result %s: %v", rec.Value, err)
				return
			}
			out[string(rec.Key)] = res
		})
	}
	return out
}

// testutilCount sums a counter's series in the process registry.
func testutilCount(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// BenchmarkSyncMURs measures MUR sync from unsynced MURs in PostgreSQL to
// records held by the fake core: a cycle reads, aggregates (or not),
// commits and publishes the batches, the sync stream sends each to the
// fake core over HTTP and marks its MURs, at batch size 1,000. MURs come
// from 10,000 accounts over 3 usage types and one UTC day (about 6.5 MURs
// per aggregated record); VIVACE_BENCH_SYNC_MURS sets how many (default
// 200,000). Reported: MURs/s from the cycle's start to the last answer,
// and the CPU each MUR cost this process (the cycle, the sync stream and
// the fake core) and the PostgreSQL backends serving the test's database:
// figures that a shared machine slows down less than the rate.
func BenchmarkSyncMURs(b *testing.B) {
	n := 200_000
	if v := os.Getenv("VIVACE_BENCH_SYNC_MURS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatal(err)
		}
	}
	for _, agg := range []bool{true, false} {
		name := "aggregated"
		if !agg {
			name = "one-record-per-MUR"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			r := newSyncRig(b, slog.LevelDebug)
			for k, v := range map[string]string{settings.MURSyncBatchSize: "1000", settings.MURSyncAggregate: fmt.Sprint(agg),
				settings.MURSyncRateLimit: "0"} {
				if _, err := r.set.Set(ctx, k, v, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			var total int
			var took, cpu, pgCPU time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				client := "bench" + store.NewID()[24:]
				if _, err := synctest.Seed(ctx, r.db.Pool(), synctest.Spec{Client: client, MURs: n, Accounts: 10000, Days: 1, Seed: uint64(i)}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start, cpu0, pg0 := time.Now(), cpuTime(b), backendCPU(r.dbName)
				sum, err := r.ops.Run(ctx, mursync.Request{Client: client, Trigger: mursync.BySchedule, AnswerWait: time.Hour})
				took += time.Since(start)
				cpu += cpuTime(b) - cpu0
				pgCPU += backendCPU(r.dbName) - pg0
				if err != nil {
					b.Fatal(err)
				}
				if err := sum.Complete(); err != nil || sum.MURs != int64(n) || sum.Synced != sum.Aggregates {
					b.Fatalf("cycle %+v, %v", sum, err)
				}
				total += n
			}
			b.ReportMetric(float64(total)/took.Seconds(), "MURs/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/MUR")
			if pgCPU > 0 {
				b.ReportMetric(float64(pgCPU.Microseconds())/float64(total), "pg-cpu-µs/MUR")
			}
		})
	}
}

// backendCPU sums the CPU time of the PostgreSQL backends connected to
// database db, read from /proc (0 where it cannot be read: another
// system, or a server on another machine).
func backendCPU(db string) time.Duration {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: ") || !strings.Contains(string(cmd), " "+db+" ") {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name (which is in parentheses):
		// utime and stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		for _, v := range f[11:13] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
