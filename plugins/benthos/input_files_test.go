package benthos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/usage"
)

// The files input writes each record as json.Marshal(usage.Raw) would,
// keyed by account, with a malformed line failed in place.
func TestFilesInputMessages(t *testing.T) {
	st := pgtest.Store(t)
	recv := &ingest.Receiver{Registry: filestore.New(st), ArchiveDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	csv := "record_id,account_id,usage_type,quantity,usage_time,note\n" +
		"r1,A1,CALL,1.5,2026-03-01T12:00:00Z,\"<b>&\"\"x\"\"\"\n" +
		"r2,A2,SMS,2\n" +
		"r3,,SMS,3,2026-03-01T12:00:00Z,\"two\nlines é\"\n"
	f, err := recv.Receive(context.Background(), "filesinput", "u.csv", "upload", strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got service.MessageBatch
	stop := consume(t, fmt.Sprintf("vivace_files:\n  dsn: %q\n  batch_size: 2\n", pgtest.DSN(t)), func(b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b...)
		return nil
	})
	waitFor(t, "three records", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	stop()

	want := []struct {
		raw usage.Raw
		key string
		err bool
	}{
		{usage.Raw{Source: usage.Source{Client: "filesinput", FileID: f.FileID, Line: 2}, Fields: map[string]string{
			"record_id": "r1", "account_id": "A1", "usage_type": "CALL", "quantity": "1.5", "usage_time": "2026-03-01T12:00:00Z", "note": `<b>&"x"`}}, "A1", false},
		{usage.Raw{Source: usage.Source{Client: "filesinput", FileID: f.FileID, Line: 3}, Fields: map[string]string{
			"record_id": "r2", "account_id": "A2", "usage_type": "SMS", "quantity": "2"}}, "A2", true},
		{usage.Raw{Source: usage.Source{Client: "filesinput", FileID: f.FileID, Line: 4}, Fields: map[string]string{
			"record_id": "r3", "account_id": "", "usage_type": "SMS", "quantity": "3", "usage_time": "2026-03-01T12:00:00Z", "note": "two\nlines é"}}, "", false},
	}
	for i, w := range want {
		body, _ := got[i].AsBytes()
		wantBody, _ := json.Marshal(w.raw)
		if string(body) != string(wantBody) {
			t.Errorf("record %d:\n got %s\nwant %s", i, body, wantBody)
		}
		if k, _ := got[i].MetaGet(metaKey); k != w.key {
			t.Errorf("record %d: key %q, want %q", i, k, w.key)
		}
		if (got[i].GetError() != nil) != w.err {
			t.Errorf("record %d: error %v, want failed %v", i, got[i].GetError(), w.err)
		}
	}
}
