package benthos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestAckCursorAdvancesOverContiguousAcks(t *testing.T) {
	c := &ackCursor{done: map[int64]string{}}
	id := func(i int64) string { return fmt.Sprintf("e%d", i) }
	c.ack(2, id(2))
	if p := c.position(); p != "" {
		t.Fatalf("position %q before the first event is acknowledged", p)
	}
	c.ack(1, id(1))
	c.ack(4, id(4))
	if p := c.position(); p != "e2" {
		t.Fatalf("position %q, want e2 (e3 is still in flight)", p)
	}
	c.ack(3, id(3))
	if p := c.position(); p != "e4" {
		t.Fatalf("position %q, want e4", p)
	}
}

// TestAriaFeedInputResumesAfterLastAck reads three events, acknowledges
// the first and the third, closes, and checks that the next reader asks
// the feed to resume after the first: the second was never acknowledged,
// so it must come again.
func TestAriaFeedInputResumesAfterLastAck(t *testing.T) {
	var mu sync.Mutex
	var resumed []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"t","expires_in":60}`)
	})
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "id: e%d\nevent: create\ndata: {\"ref\":{\"type\":\"Usage_Type\",\"ids\":{\"usage_type_cd\":\"U%d\"}},\"tstamp\":\"2026-01-01T00:00:00Z\",\"tick\":%d}\ndata: {\"usage_type_cd\":\"U%d\",\"usage_unit_type\":\"minute\"}\n\n", i, i, i, i)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	client := "ariain-" + store.NewID()[24:]
	newInput := func() *ariaFeedInput {
		return &ariaFeedInput{log: service.MockResources().Logger(), skipped: service.MockResources().Metrics().NewCounter("x"),
			storeConn: storeConn{dsn: pgtest.DSN(t)}, url: ts.URL + "/feed", tokenURL: ts.URL + "/token",
			clientID: "id", secret: "s", client: client, backoff: 50 * time.Millisecond}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := newInput()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var acks []service.AckFunc
	for i := 0; i < 3; i++ {
		msg, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := msg.MetaGet("vivace_key"); k != fmt.Sprintf("U%d", i+1) {
			t.Fatalf("message %d keyed %q", i, k)
		}
		acks = append(acks, ack)
	}
	_ = acks[0](ctx, nil)
	_ = acks[2](ctx, nil)
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again := newInput()
	if err := again.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	msg, _, err := again.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = again.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) != 2 || resumed[0] != "" || resumed[1] != "e1" {
		t.Fatalf("connections resumed from %q, want [\"\" \"e1\"]", resumed)
	}
	if id, _ := msg.MetaGet("aria_event_id"); id == "" {
		t.Fatal("no aria_event_id")
	}
}
