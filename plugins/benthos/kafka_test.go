package benthos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func newCluster(t testing.TB, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func produce(t testing.TB, addr, topic string, n int, key func(int) string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key(i)), Value: []byte(strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consume runs a stream with the kafka input and calls fn for each batch;
// fn's error fails the batch (nack).
func consume(t *testing.T, yaml string, fn func(service.MessageBatch) error) (stop func()) {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML(yaml); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error { return fn(batch) }); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Run(context.Background()); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := s.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

func inputYAML(addr, topic, group string, extra string) string {
	return fmt.Sprintf(`kafka:
  seed_brokers: [ %q ]
  topics: [ %s ]
  consumer_group: %s
  max_batch_records: 10
  commit_period: 100ms
%s`, addr, topic, group, extra)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKafkaRoundTrip(t *testing.T) {
	addr := newCluster(t, "in", "out")
	// Output: messages keyed, with a header from metadata.
	b := service.NewStreamBuilder()
	prod, err := b.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutputYAML(fmt.Sprintf(`kafka:
  seed_brokers: [ %q ]
  topic: out
  key: ${! meta("k") }
  metadata:
    include_prefixes: [ "vivace_" ]`, addr)); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	defer func() { _ = s.Stop(context.Background()) }()
	for i := 0; i < 40; i++ {
		m := service.NewMessage([]byte("v" + strconv.Itoa(i)))
		m.MetaSetMut("k", "acct-"+strconv.Itoa(i%5))
		m.MetaSetMut("vivace_line", strconv.Itoa(i))
		m.MetaSetMut("private", "not a header")
		if err := prod(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	partOf := map[string]string{}
	got := 0
	consume(t, inputYAML(addr, "out", "g1", ""), func(batch service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		part, _ := batch[0].MetaGet("kafka_partition")
		for _, m := range batch {
			k, _ := m.MetaGet("kafka_key")
			p, _ := m.MetaGet("kafka_partition")
			if p != part {
				t.Errorf("batch mixes partitions %s and %s", part, p)
			}
			if prev, ok := partOf[k]; ok && prev != p {
				t.Errorf("key %s on partitions %s and %s", k, prev, p)
			}
			partOf[k] = p
			if line, _ := m.MetaGet("vivace_line"); line == "" {
				t.Error("metadata header lost")
			}
			if _, ok := m.MetaGet("private"); ok {
				t.Error("metadata outside the filter written as a header")
			}
			got++
		}
		return nil
	})
	waitFor(t, "40 records", func() bool { mu.Lock(); defer mu.Unlock(); return got == 40 })
}

func TestKafkaCommitsOnlyAcked(t *testing.T) {
	addr := newCluster(t, "t")
	produce(t, addr, "t", 30, func(i int) string { return "same-key" })

	// First consumer acknowledges the first batch (10 records) and then
	// fails everything, so only those 10 can be committed.
	var mu sync.Mutex
	acked := 0
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML(inputYAML(addr, "t", "g", "")); err != nil {
		t.Fatal(err)
	}
	_ = b.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		if acked >= 10 {
			return fmt.Errorf("refused")
		}
		acked += len(batch)
		return nil
	})
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	waitFor(t, "first acks", func() bool { mu.Lock(); defer mu.Unlock(); return acked >= 10 })
	time.Sleep(300 * time.Millisecond) // let a commit period pass
	// The refused batch is still being retried: stopping cannot wait for it.
	_ = s.StopWithin(time.Second)

	// The next consumer of the group starts after the acknowledged batch,
	// and sees every record that was not acknowledged.
	var mu2 sync.Mutex
	var seen []int
	consume(t, inputYAML(addr, "t", "g", ""), func(batch service.MessageBatch) error {
		mu2.Lock()
		defer mu2.Unlock()
		for _, m := range batch {
			b, _ := m.AsBytes()
			n, _ := strconv.Atoi(string(b))
			seen = append(seen, n)
		}
		return nil
	})
	waitFor(t, "the rest", func() bool { mu2.Lock(); defer mu2.Unlock(); return len(seen) > 0 && seen[len(seen)-1] == 29 })
	mu2.Lock()
	defer mu2.Unlock()
	if seen[0] != acked {
		t.Fatalf("second consumer started at %d, want %d (first unacknowledged)", seen[0], acked)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			t.Fatalf("records out of order or missing: %v", seen)
		}
	}
}

func TestKafkaNackIsReplayedInOrder(t *testing.T) {
	addr := newCluster(t, "t")
	produce(t, addr, "t", 50, func(i int) string { return "k" })
	var mu sync.Mutex
	var seen []int
	failures := 0
	consume(t, inputYAML(addr, "t", "g", "  partition_in_flight: 1"), func(batch service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		if failures < 3 {
			failures++
			return fmt.Errorf("transient")
		}
		for _, m := range batch {
			b, _ := m.AsBytes()
			n, _ := strconv.Atoi(string(b))
			seen = append(seen, n)
		}
		return nil
	})
	waitFor(t, "50 records", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 50 })
	mu.Lock()
	defer mu.Unlock()
	for i, n := range seen {
		if n != i {
			t.Fatalf("record %d is %d: nacked batches must come back before later ones: %v", i, n, seen)
		}
	}
}

func TestKafkaConfigErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"{ seed_brokers: [], topics: [a], consumer_group: g }":                                  "seed_brokers",
		"{ seed_brokers: [' , '], topics: [a], consumer_group: g }":                             "seed_brokers",
		"{ seed_brokers: [x], topics: [], consumer_group: g }":                                  "topics",
		"{ seed_brokers: [x], topics: [a], consumer_group: '' }":                                "consumer_group",
		"{ seed_brokers: [x], topics: [a], consumer_group: g, max_batch_records: 0 }":           "max_batch_records",
		"{ seed_brokers: [x], topics: [a], consumer_group: g, commit_period: 10ms }":            "commit_period",
		"{ seed_brokers: [x], topics: [a], consumer_group: g, sasl: [ { mechanism: PLAIN } ] }": "username",
	} {
		conf, err := kafkaInputSpec().ParseYAML(yaml, nil)
		if err == nil {
			_, err = newKafkaInput(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one naming %s", yaml, err, want)
		}
	}
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML("kafka: { seed_brokers: [x], topics: [a], consumer_group: g, sasl: [ { mechanism: GSSAPI, username: u } ] }"); err == nil || !strings.Contains(err.Error(), "GSSAPI") {
		t.Errorf("unknown SASL mechanism: %v", err)
	}
	if err := b.AddOutputYAML("kafka: { seed_brokers: [x], topic: t, partitioner: manual }"); err == nil || !strings.Contains(err.Error(), "partition") {
		t.Errorf("manual partitioner without partition: %v", err)
	}
}

func BenchmarkKafkaRoundTrip(b *testing.B) {
	addr := newCluster(b, "bench")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := []byte(strings.Repeat("x", 200))
	var recs []*kgo.Record
	for i := 0; i < b.N; i++ {
		recs = append(recs, &kgo.Record{Topic: "bench", Key: []byte(strconv.Itoa(i % 1000)), Value: value})
	}
	b.ResetTimer()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	sb := service.NewStreamBuilder()
	_ = sb.AddInputYAML(fmt.Sprintf("kafka: { seed_brokers: [ %q ], topics: [ bench ], consumer_group: g }", addr))
	var n int64
	var mu sync.Mutex
	done := make(chan struct{})
	_ = sb.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		n += int64(len(batch))
		if n == int64(b.N) {
			close(done)
		}
		return nil
	})
	if err := sb.SetLoggerYAML("level: none"); err != nil {
		b.Fatal(err)
	}
	s, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	_ = s.Stop(context.Background())
}

func TestMetaKeyName(t *testing.T) {
	for in, want := range map[string]string{
		`${! meta("vivace_key") }`:    "vivace_key",
		`${!meta("k")}`:               "k",
		`${! meta("k") }-x`:           "",
		`${! meta("k").uppercase() }`: "",
		`${! @k }`:                    "",
		`static`:                      "",
		``:                            "",
	} {
		if got := metaKeyName(in); got != want {
			t.Errorf("metaKeyName(%q) = %q, want %q", in, got, want)
		}
	}
}

// lagOf sums the vivace_consumer_lag gauge of a stream and topic over its
// partitions, as the Prometheus registry shows it.
func lagOf(t *testing.T, stream, topic string) (float64, bool) {
	t.Helper()
	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "vivace_consumer_lag" {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["stream"] != stream || labels["topic"] != topic || labels["partition"] == "" {
				continue metrics
			}
			sum += m.GetGauge().GetValue()
			found = true
		}
	}
	return sum, found
}

func TestKafkaConsumerLag(t *testing.T) {
	addr := newCluster(t, "lag")
	produce(t, addr, "lag", 40, func(int) string { return "one-partition" })

	release := make(chan struct{})
	var mu sync.Mutex
	batches := 0
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML(inputYAML(addr, "lag", "g-lag", "")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMetricsYAML("vivace_prometheus:\n  stream: lagtest\n"); err != nil {
		t.Fatal(err)
	}
	// Two batches of ten are acknowledged, the third is held.
	_ = b.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		mu.Lock()
		batches++
		n := batches
		mu.Unlock()
		if n == 3 {
			<-release
		}
		return nil
	})
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Run(context.Background()); close(done) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		<-done
	}()

	waitFor(t, "lag of 20 with the third batch held", func() bool {
		lag, ok := lagOf(t, "lagtest", "lag")
		return ok && lag == 20
	})
	close(release)
	waitFor(t, "lag of 0 once everything is acknowledged", func() bool {
		lag, ok := lagOf(t, "lagtest", "lag")
		return ok && lag == 0
	})
}
