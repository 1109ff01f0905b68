package benthos

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
)

// smallCluster is a broker that takes messages of at most limit bytes.
func smallCluster(t *testing.T, limit string, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topics...),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": limit}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// TestMessageLimitCheck: max_record_bytes is checked against what the
// brokers take: a topic's own max.message.bytes, and the brokers'
// message.max.bytes for a topic not created yet.
func TestMessageLimitCheck(t *testing.T) {
	addr := smallCluster(t, "65536", kafkax.TopicUsageRaw)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := "50000"
	if _, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, kafkax.TopicUsageRaw); err != nil {
		t.Fatal(err)
	}
	topics := []string{kafkax.TopicUsageRaw, "not.created.yet"}
	if err := checkMessageLimits(ctx, []kgo.Opt{kgo.SeedBrokers(addr)}, topics, 40000); err != nil {
		t.Errorf("40000 bytes on topics taking 50000 and 65536: %v", err)
	}
	err = checkMessageLimits(ctx, []kgo.Opt{kgo.SeedBrokers(addr)}, topics, 60000)
	if err == nil || strings.Contains(err.Error(), "not.created.yet") || !strings.Contains(err.Error(), "topic usage.raw accepts (max.message.bytes 50000)") {
		t.Errorf("60000 bytes on topics taking 50000 and 65536: %v, want usage.raw alone named", err)
	}
	err = checkMessageLimits(ctx, []kgo.Opt{kgo.SeedBrokers(addr)}, topics, DefaultMaxRecordBytes)
	if err == nil {
		t.Fatal("1000000 bytes on a 65536-byte broker: no error")
	}
	for _, want := range []string{"max_record_bytes 1000000", "topic usage.raw", "max.message.bytes 65536", "topic not.created.yet", "VIVACE_MAX_RECORD_BYTES"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestOversizedRecord: a 2 MiB JSON line among good lines, on a broker
// that takes 64 KiB messages, becomes a MALFORMED_RECORD exception with
// its bytes kept in PostgreSQL; its file finishes with its counts adding
// up, and another client's file behind it is not stalled.
func TestOversizedRecord(t *testing.T) {
	addr := smallCluster(t, "65536", kafkax.TopicUsageRaw, kafkax.TopicUsageMediated, kafkax.TopicUsageExceptions)
	st := pgtest.Store(t)
	reg := filestore.New(st)
	recv := &ingest.Receiver{Registry: reg, ArchiveDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	now := time.Now().UTC().Format(time.RFC3339)
	big := strings.Repeat("x", 2<<20)
	jsonl := `{"record_id":"b1","account_id":"A1","usage_type":"CALL","quantity":"1","usage_time":"` + now + `"}` + "\n" +
		`{"record_id":"b2","account_id":"A1","usage_type":"CALL","quantity":"1","usage_time":"` + now + `","note":"` + big + `"}` + "\n" +
		`{"record_id":"b3","account_id":"A2","usage_type":"CALL","quantity":"1","usage_time":"` + now + `"}` + "\n"
	ctx := context.Background()
	bigFile, err := recv.Receive(ctx, "oversized", "big.jsonl", "http", strings.NewReader(jsonl))
	if err != nil {
		t.Fatal(err)
	}
	csv := "record_id,account_id,usage_type,quantity,usage_time\n" +
		"o1,B1,CALL,1," + now + "\n" + "o2,B2,CALL,2," + now + "\n"
	other, err := recv.Receive(ctx, "other", "other.csv", "http", strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": pgtest.DSN(t), "VIVACE_KAFKA_BROKERS": addr, "VIVACE_MAX_RECORD_BYTES": "60000"}
	for _, name := range []string{"ingest", "mediate", "rate", "exceptions"} {
		stop, _ := runStream(t, pipelineStream(t, name, env))
		t.Cleanup(stop)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, id := range []string{bigFile.FileID, other.FileID} {
		f := waitDone(wctx, t, reg, id)
		if f.Records == nil || *f.Records != f.MURs+f.Exceptions+f.Filtered {
			t.Errorf("file %s: records %v, murs %d + exceptions %d + filtered %d", f.Name, f.Records, f.MURs, f.Exceptions, f.Filtered)
		}
	}
	var code, stage, msg, recordID string
	var rawLen int
	var record string
	if err := st.Pool().QueryRow(ctx, `SELECT code, stage, message, coalesce(record_id, ''), length(raw), record::text
		FROM exceptions WHERE file_id = $1 AND line = 2`, bigFile.FileID).Scan(&code, &stage, &msg, &recordID, &rawLen, &record); err != nil {
		t.Fatalf("the oversized line's exception: %v", err)
	}
	if code != "MALFORMED_RECORD" || stage != "ingest" || recordID != "b2" || !strings.Contains(msg, "max_record_bytes") {
		t.Errorf("exception %s at %s for %q: %s", code, stage, recordID, msg)
	}
	if rawLen <= 2<<20 {
		t.Errorf("raw bytes kept: %d, want the whole message (more than 2 MiB)", rawLen)
	}
	if len(record) > 10000 {
		t.Errorf("the record column holds %d bytes; it should show the fields clipped", len(record))
	}
}

// waitDone waits for a file to be done; a file that fails, or ctx's end,
// fails the test.
func waitDone(ctx context.Context, t *testing.T, reg *filestore.Store, id string) files.File {
	t.Helper()
	for {
		f, err := reg.GetFile(ctx, id)
		if err == nil && f.Status == files.Done {
			return f
		}
		if err == nil && f.Status == files.Failed {
			t.Fatalf("file %s failed: %s", f.Name, f.Reason)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("file %s not done: %+v (%v)", id, f, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
