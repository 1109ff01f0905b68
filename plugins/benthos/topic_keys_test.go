package benthos

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
)

// TestTopicKeys runs the embedded ingest and mediate streams and reads
// the keys they write: usage.raw and usage.mediated are keyed by account
// (each account's records in file order on one partition),
// usage.exceptions by record id, and an exception without a record id
// has no key.
func TestTopicKeys(t *testing.T) {
	addr := newCluster(t, kafkax.TopicUsageRaw, kafkax.TopicUsageMediated, kafkax.TopicUsageExceptions)
	dsn := pgtest.DSN(t)
	st := pgtest.Store(t)
	recv := &ingest.Receiver{Registry: filestore.New(st), ArchiveDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	now := time.Now().UTC().Format(time.RFC3339)
	csv := "record_id,account_id,usage_type,quantity,usage_time\n" +
		"r1,A1,CALL,1," + now + "\n" + // good: raw and mediated, key A1
		"r2,A2,CALL\n" + // wrong number of fields: an ingest exception
		"r3,A3,CALL,x," + now + "\n" + // BAD_QUANTITY: a mediate exception
		",A4,CALL,1," + now + "\n" // MISSING_FIELD record_id: no key
	if _, err := recv.Receive(context.Background(), "keys", "k.csv", "http", strings.NewReader(csv)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": dsn, "VIVACE_KAFKA_BROKERS": addr}
	for _, name := range []string{"ingest", "mediate"} {
		stop, _ := runStream(t, pipelineStream(t, name, env))
		t.Cleanup(stop)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(kafkax.TopicUsageRaw, kafkax.TopicUsageMediated, kafkax.TopicUsageExceptions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]string{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(got[kafkax.TopicUsageRaw]) < 3 || len(got[kafkax.TopicUsageMediated]) < 1 || len(got[kafkax.TopicUsageExceptions]) < 3 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("records so far: %v", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := string(r.Key)
			if r.Key == nil {
				k = "<none>"
			}
			got[r.Topic] = append(got[r.Topic], k)
		})
	}
	want := map[string]string{
		kafkax.TopicUsageRaw:        "A1 A3 A4",
		kafkax.TopicUsageMediated:   "A1",
		kafkax.TopicUsageExceptions: "<none> r2 r3",
	}
	for topic, keys := range want {
		if g := strings.Join(slices.Sorted(slices.Values(got[topic])), " "); g != keys {
			t.Errorf("%s keys: %s, want %s", topic, g, keys)
		}
	}
}
