package benthos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/devenv"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/usage"
)

// The ingestion stages alone: each runs as the real stream built from its
// pipeline YAML, with the embedded broker in this process (as under
// `vivace dev`) and nothing else running. One operation is one whole file
// (ingest) or one filled topic (mediate) of VIVACE_BENCH_RECORDS records
// (default 200,000); records/s is the figure to read, cpu-ns/record
// (CPU time of the whole process, broker included, per record) the one
// that other work on the machine disturbs least.

const benchPartitions = 4 // vivace dev's default

func benchRecords(b *testing.B) int {
	n := 200_000
	if s := os.Getenv("VIVACE_BENCH_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("VIVACE_BENCH_RECORDS=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

func benchBroker(b *testing.B) string {
	// The garbage collector's target as vivace dev sets it.
	b.Cleanup(devenv.TuneGC())
	// Records on disk, as vivace dev keeps them: the heap then shows the
	// stage's own memory, not the topic's.
	br, err := devenv.StartBroker(context.Background(), devenv.BrokerConfig{Addr: "127.0.0.1:0",
		Partitions: benchPartitions, DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	return br.Addr()
}

// pipelineStream builds one of the embedded pipelines with env as its
// variables.
func pipelineStream(b testing.TB, name string, env map[string]string) *service.Stream {
	b.Helper()
	return buildPipeline(b, name, env, slog.LevelWarn)
}

// runStream runs s until stop is called; stop waits for it to end.
// ended reports a stream that stopped on its own (it should not), so that
// a broken stream fails the benchmark instead of leaving it waiting.
func runStream(b testing.TB, s *service.Stream) (stop func(), ended func() bool) {
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- s.Run(context.Background()); close(finished) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Stop(ctx); err != nil {
				b.Errorf("stop: %v", err)
			}
			<-finished
		})
	}
	ended = func() bool {
		select {
		case err := <-done:
			b.Errorf("the stream ended early: %v", err)
			return true
		default:
			return false
		}
	}
	return stop, ended
}

// topicRecords is the number of records on topic (all partitions).
func topicRecords(ctx context.Context, a *benchAdmin, topic string) (int64, error) {
	ends, err := a.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, ends.Error()
}

// cpuTime is the CPU time this process has used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapPeak samples the live heap while a stage runs.
type heapPeak struct {
	sample []metrics.Sample
	peak   uint64
}

func newHeapPeak() *heapPeak {
	return &heapPeak{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (h *heapPeak) observe() {
	metrics.Read(h.sample)
	if v := h.sample[0].Value.Uint64(); v > h.peak {
		h.peak = v
	}
}

// BenchmarkIngestStageAlone: a generated CSV file, registered as an upload
// is, read by the ingest pipeline (vivace_files) and written to usage.raw;
// an operation ends when the file's record count is stored, which happens
// once every record is acknowledged by the broker.
func BenchmarkIngestStageAlone(b *testing.B) {
	n := benchRecords(b)
	ctx := context.Background()
	dsn := pgtest.DSN(b)
	st := filestore.New(pgtest.Store(b))
	addr := benchBroker(b)
	adm := kadmClient(b, addr)
	recv := &ingest.Receiver{Registry: st, ArchiveDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	heap := newHeapPeak()
	var total, cpu time.Duration
	var bytesRead int64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		raw := fmt.Sprintf("bench.raw.%d.%d", time.Now().UnixNano(), i)
		adm.create(b, raw, raw+".exceptions")
		f := registerUsage(b, recv, n)
		bytesRead += f.SizeBytes
		s := pipelineStream(b, "ingest", map[string]string{
			"DATABASE_URL": dsn, "VIVACE_KAFKA_BROKERS": addr,
			"VIVACE_TOPIC_RAW": raw, "VIVACE_TOPIC_EXCEPTIONS": raw + ".exceptions",
		})
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime(b)
		stop, ended := runStream(b, s)
		for {
			if ended() {
				b.FailNow()
			}
			heap.observe()
			got, err := st.GetFile(ctx, f.FileID)
			if err != nil {
				b.Fatal(err)
			}
			if got.Status == files.Failed {
				b.Fatalf("file failed: %s", got.Reason)
			}
			if got.Records != nil {
				if *got.Records != int64(n) {
					b.Fatalf("file read with %d records, want %d", *got.Records, n)
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
		cpu += cpuTime(b) - cpu0
		b.StopTimer()
		stop()
		if on, err := topicRecords(ctx, adm, raw); err != nil || on != int64(n) {
			b.Fatalf("%s holds %d records (%v), want %d", raw, on, err, n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/total.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/record")
	b.ReportMetric(float64(heap.peak)/(1<<20), "peak-heap-MiB")
	b.SetBytes(bytesRead / int64(b.N))
}

// registerUsage generates a usage file of n records on disk and receives
// it as an upload is received.
func registerUsage(b *testing.B, recv *ingest.Receiver, n int) files.File {
	path := filepath.Join(b.TempDir(), "usage.csv")
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := loadgen.Usage(out, loadgen.UsageOptions{Client: "bench", Records: n, Accounts: 10_000,
		Seed: uint64(time.Now().UnixNano())}); err != nil {
		b.Fatal(err)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	f, err := recv.Receive(context.Background(), "bench", "usage.csv", "upload", out)
	if err != nil {
		b.Fatal(err)
	}
	_ = os.Remove(path)
	return f
}

// BenchmarkMediateStageAlone: usage.raw filled with records as the ingest
// stage writes them, for a client without plugin or rules, consumed by the
// mediate pipeline (vivace_mediation_plugin passes through,
// vivace_normalize checks) until every record is on usage.mediated. The
// time includes the consumer joining its group.
func BenchmarkMediateStageAlone(b *testing.B) {
	n := benchRecords(b)
	ctx := context.Background()
	addr := benchBroker(b)
	adm := kadmClient(b, addr)
	var total, startup, cpu time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		raw := fmt.Sprintf("bench.raw.%d.%d", time.Now().UnixNano(), i)
		med := raw + ".mediated"
		adm.create(b, raw, med, raw+".exceptions")
		fillRaw(b, addr, raw, n)
		s := pipelineStream(b, "mediate", map[string]string{
			"VIVACE_KAFKA_BROKERS": addr, "VIVACE_TOPIC_RAW": raw,
			"VIVACE_TOPIC_MEDIATED": med, "VIVACE_TOPIC_EXCEPTIONS": raw + ".exceptions",
		})
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime(b)
		stop, ended := runStream(b, s)
		var first time.Duration
		for {
			if ended() {
				b.FailNow()
			}
			on, err := topicRecords(ctx, adm, med)
			if first == 0 && on > 0 {
				first = time.Since(start)
			}
			if err == nil && on >= int64(n) {
				if on != int64(n) {
					b.Fatalf("%s holds %d records, want %d", med, on, n)
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
		cpu += cpuTime(b) - cpu0
		startup += first
		b.StopTimer()
		stop()
		if ex, _ := topicRecords(ctx, adm, raw+".exceptions"); ex != 0 {
			b.Fatalf("%d exceptions, want none", ex)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/total.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/record")
	b.ReportMetric(startup.Seconds()/float64(b.N), "s-to-first")
}

// benchAdmin is a client for the broker's offsets; the topics of each
// operation are created up front, so that its metadata never waits for
// one to appear.
type benchAdmin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func kadmClient(b *testing.B, addr string) *benchAdmin {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return &benchAdmin{cl: cl, adm: kadm.NewClient(cl)}
}

func (a *benchAdmin) create(b *testing.B, topics ...string) {
	if err := kafkax.EnsureTopics(context.Background(), a.cl, benchPartitions, 1, topics...); err != nil {
		b.Fatal(err)
	}
}

// fillRaw writes n raw records of a generated usage file to topic, keyed
// by account, in the shape the ingest stage writes them.
func fillRaw(b *testing.B, addr, topic string, n int) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := produceAll(context.Background(), cl, rawRecords(b, n)); err != nil {
		b.Fatal(err)
	}
}

// rawRecords are n records of a generated usage file as the ingest stage
// writes them to usage.raw: keyed by account, without a topic.
func rawRecords(b *testing.B, n int) []*kgo.Record {
	b.Helper()
	var file bytes.Buffer
	if err := loadgen.Usage(&file, loadgen.UsageOptions{Client: "bench", Records: n, Accounts: 10_000,
		Seed: uint64(time.Now().UnixNano())}); err != nil {
		b.Fatal(err)
	}
	rd, err := usage.NewReader(&file, "usage.csv", usage.ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	fileID := store.NewID()
	recs := make([]*kgo.Record, 0, n)
	for {
		fields, line, err := rd.Next()
		if err != nil {
			break
		}
		v := usage.AppendRaw(nil, usage.Raw{Source: usage.Source{Client: "bench", FileID: fileID, Line: line}, Fields: fields})
		recs = append(recs, &kgo.Record{Key: []byte(fields[usage.FieldAccountID]), Value: v})
	}
	return recs
}

// produceAll produces recs asynchronously and waits for every
// acknowledgement; it returns the first error.
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var wg sync.WaitGroup
	var perr error
	var mu sync.Mutex
	for _, r := range recs {
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return perr
}

// BenchmarkKafkaHopAlone is the floor of one hop between two stages: n
// records of usage.raw's shape produced by a bare Kafka client with the
// settings of the pipelines' kafka output (lz4 batches, 1 ms linger,
// keyed by account onto four partitions), stored by the embedded broker
// on disk and fetched by a consumer group member, in one process as under
// `vivace dev`, with no Benthos stream and no work on the records. What
// a stage spends beyond this per record is its own.
func BenchmarkKafkaHopAlone(b *testing.B) {
	n := benchRecords(b)
	ctx := context.Background()
	addr := benchBroker(b)
	adm := kadmClient(b, addr)
	var total, cpu time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		topic := fmt.Sprintf("bench.hop.%d.%d", time.Now().UnixNano(), i)
		adm.create(b, topic)
		recs := rawRecords(b, n)
		for _, r := range recs {
			r.Topic = topic
		}
		prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.Lz4Compression()),
			kgo.ProducerLinger(time.Millisecond), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
		if err != nil {
			b.Fatal(err)
		}
		cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime(b)
		got := make(chan int, 1)
		go func() {
			seen := 0
			for seen < n {
				fs := cons.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					b.Errorf("fetch: %v", err)
					break
				}
				seen += fs.NumRecords()
			}
			got <- seen
		}()
		if err := produceAll(ctx, prod, recs); err != nil {
			b.Fatal(err)
		}
		if seen := <-got; seen != n {
			b.Fatalf("fetched %d records, want %d", seen, n)
		}
		total += time.Since(start)
		cpu += cpuTime(b) - cpu0
		b.StopTimer()
		prod.Close()
		cons.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/total.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/record")
}
