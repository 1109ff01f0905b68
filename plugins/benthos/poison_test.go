package benthos

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/usagestore"
)

// TestPoisonMessages puts on each topic a message its stage cannot read,
// one that still names its file and one that does not: none is dropped
// and none stalls its stage. The first becomes a MALFORMED_RECORD
// exception of its file at the stage that refused it, moving the file's
// counts, the second is kept in unreadable_messages; both keep the bytes
// as they arrived.
func TestPoisonMessages(t *testing.T) {
	addr := newCluster(t, kafkax.TopicUsageRaw, kafkax.TopicUsageMediated, kafkax.TopicUsageExceptions)
	st := pgtest.Store(t)
	reg := filestore.New(st)
	recv := &ingest.Receiver{Registry: reg, ArchiveDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	f, err := recv.Receive(ctx, "poison", "p.csv", "http", strings.NewReader("record_id,account_id,usage_type,quantity,usage_time\nr,A,CALL,1,2026-01-01T00:00:00Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	src := func(line string) string { return `"client":"poison","file_id":"` + f.FileID + `","line":` + line }
	type poison struct {
		topic, body string
		stage       string // the stage that refuses it
		line        int64  // its file's line; 0: it names no file
	}
	poisons := []poison{
		{kafkax.TopicUsageRaw, "garbage \x00\xff", "mediate", 0},
		{kafkax.TopicUsageRaw, `{` + src("2") + `,"fields":"oops"}`, "mediate", 2},
		{kafkax.TopicUsageMediated, `{not json`, "rate", 0},
		{kafkax.TopicUsageMediated, `{` + src("3") + `,"record_id":"r3","usage_time":"yesterday"}`, "rate", 3},
		{kafkax.TopicUsageExceptions, `[1,2]`, "exceptions", 0},
		{kafkax.TopicUsageExceptions, `{` + src("4") + `,"message":"no code"}`, "exceptions", 4},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, p := range poisons {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Value: []byte(p.body)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DATABASE_URL": pgtest.DSN(t), "VIVACE_KAFKA_BROKERS": addr}
	for _, name := range []string{"mediate", "rate", "exceptions"} {
		stop, _ := runStream(t, pipelineStream(t, name, env))
		t.Cleanup(stop)
	}
	us := usagestore.New(st)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM exceptions WHERE file_id = $1) +
			(SELECT count(*) FROM unreadable_messages)`, f.FileID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= len(poisons) {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("%d of %d poison messages kept", n, len(poisons))
		case <-time.After(50 * time.Millisecond):
		}
	}
	unread, err := us.Unreadable(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range poisons {
		if p.line == 0 {
			found := false
			for _, u := range unread {
				if u.Stage == p.stage && bytes.Equal(u.Raw, []byte(p.body)) {
					found = true
					if u.Reason == "" {
						t.Errorf("%s: unreadable message kept without a reason", p.stage)
					}
				}
			}
			if !found {
				t.Errorf("%s: %q not kept byte for byte in unreadable_messages (kept: %+v)", p.stage, p.body, unread)
			}
			continue
		}
		var stage, code, msg string
		var raw []byte
		if err := st.Pool().QueryRow(ctx, `SELECT stage, code, message, raw FROM exceptions WHERE file_id = $1 AND line = $2`,
			f.FileID, p.line).Scan(&stage, &code, &msg, &raw); err != nil {
			t.Errorf("line %d (%s): no exception: %v", p.line, p.stage, err)
			continue
		}
		if stage != p.stage || code != "MALFORMED_RECORD" || msg == "" {
			t.Errorf("line %d: exception %s at %s (%s), want MALFORMED_RECORD at %s", p.line, code, stage, msg, p.stage)
		}
		if p.stage != "mediate" && !bytes.Equal(raw, []byte(p.body)) {
			t.Errorf("line %d: raw %q, want the message as it arrived %q", p.line, raw, p.body)
		}
	}
	got, err := reg.GetFile(ctx, f.FileID)
	if err != nil || got.Exceptions != 3 {
		t.Errorf("file counts %d exceptions (%v), want the 3 poison messages that name it", got.Exceptions, err)
	}
}
