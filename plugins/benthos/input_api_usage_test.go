package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/tmfstore"
	"vivace.dev/vivace/internal/tmf635"
	"vivace.dev/vivace/internal/usage"
)

// The api usage input hands out posted usages as the files input hands
// out lines (the same body and metadata), in the order posted; a batch
// refused downstream is sent again, one acknowledged is marked sent and
// not sent again.
func TestAPIUsageInput(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	ts := tmfstore.New(st)
	sub := func(account string) *tmf635.Submission {
		return &tmf635.Submission{Client: "apiinput", OwnRecordID: true, Body: json.RawMessage(`{}`),
			Fields: map[string]string{"usage_type": "VOICE", "account_id": account, "quantity": "1", "usage_time": "2026-03-01T12:00:00Z"}}
	}
	recs, err := ts.Submit(ctx, []*tmf635.Submission{sub("A1"), sub("A2"), sub("")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got service.MessageBatch
	refused := false
	stop := consume(t, fmt.Sprintf("vivace_api_usage:\n  dsn: %q\n  batch_size: 2\n  poll_interval: 50ms\n", pgtest.DSN(t)), func(b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		if !refused {
			refused = true
			return errors.New("downstream refused the first batch")
		}
		got = append(got, b...)
		return nil
	})
	waitFor(t, "three records", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 3 })
	// One more posted while running: woken by its notification.
	more, err := ts.Submit(ctx, []*tmf635.Submission{sub("A4")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, more...)
	waitFor(t, "the fourth", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 4 })
	waitFor(t, "all marked sent", func() bool { u, err := ts.Unsent(ctx, 10); return err == nil && len(u) == 0 })
	stop()

	mu.Lock()
	defer mu.Unlock()
	seen := map[int64]int{}
	for _, m := range got {
		body, _ := m.AsBytes()
		raw, err := usage.DecodeRaw(body)
		if err != nil {
			t.Fatal(err)
		}
		seen[raw.Line]++
		r := recs[raw.Line-1]
		want, _ := json.Marshal(usage.Raw{Source: usage.Source{Client: "apiinput", FileID: r.FileID, Line: r.Line}, Fields: r.Posted.Fields})
		if string(body) != string(want) {
			t.Errorf("line %d: %s, want %s", raw.Line, body, want)
		}
		for k, v := range map[string]string{metaClient: "apiinput", metaFileID: r.FileID, metaLine: fmt.Sprint(r.Line), metaKey: r.Posted.Fields["account_id"]} {
			if x, _ := m.MetaGet(k); x != v {
				t.Errorf("line %d: %s = %q, want %q", raw.Line, k, x, v)
			}
		}
	}
	for l := int64(1); l <= 4; l++ {
		if seen[l] != 1 {
			t.Errorf("line %d sent %d times after its ack", l, seen[l])
		}
	}
}
