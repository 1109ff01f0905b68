package tmfhub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/tmf635"
)

const fileID = "01a23448-b101-7794-9610-a79243c63965"

// The deliverer posts each queued change to the subscriber's listener
// path, as the event its kind names with the status it changed to; a
// listener that does not answer 2xx fails the delivery (so the queue
// keeps it), and a change the subscription's query does not want is
// acknowledged without a call.
func TestDeliverer(t *testing.T) {
	var mu sync.Mutex
	type call struct {
		path string
		ev   tmf635.Event
	}
	var calls []call
	status := http.StatusNoContent
	ls := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev tmf635.Event
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{r.URL.Path, ev})
		w.WriteHeader(status)
	}))
	defer ls.Close()
	at := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	queue := []tmf635.Delivery{
		{Seq: 1, Kind: "create", Status: tmf635.Received, Line: 2},
		{Seq: 2, Kind: "state", Status: tmf635.Rated, Line: 2},
		{Seq: 3, Kind: "state", Status: tmf635.Billed, Line: 2, Hub: tmf635.Hub{EventSubscription: tmf635.EventSubscription{Query: "status=rated"}}},
	}
	var results []error
	d := &Deliverer{
		Base: "http://vivace" + tmf635.BasePath,
		Take: func(ctx context.Context, limit int, send func(tmf635.Delivery) error) (int, error) {
			for _, x := range queue {
				x.FileID, x.CreatedAt = fileID, at
				x.Hub.ID, x.Hub.Callback = "h1", ls.URL+"/cb"
				results = append(results, send(x))
			}
			return len(queue), nil
		},
		Usage: func(ctx context.Context, f string, line int64, part int) (tmf635.Record, error) {
			return tmf635.Record{Client: "acme", FileID: f, Line: line, MUR: &murs.MUR{UsageType: "VOICE", Quantity: "1",
				Currency: "USD", NetAmount: "2.5", UsageTime: at, RatedAt: at, SyncStatus: murs.Synced}}, nil
		},
	}
	if _, err := d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || results[0] != nil || results[1] != nil || results[2] != nil {
		t.Fatalf("calls %+v, results %v", calls, results)
	}
	if calls[0].path != "/cb/listener/usageCreateEvent" || calls[0].ev.EventType != tmf635.CreateEvent ||
		calls[0].ev.Event.Usage.Status != tmf635.Received || calls[0].ev.Event.Usage.RatedProductUsage != nil || calls[0].ev.EventID != "h1-1" {
		t.Errorf("first call %+v", calls[0])
	}
	u := calls[1].ev.Event.Usage
	if calls[1].path != "/cb/listener/usageStateChangeEvent" || u.Status != tmf635.Rated || u.RatedProductUsage[0].IsBilled ||
		u.Href != "http://vivace"+tmf635.BasePath+"/usage/"+fileID+".2" {
		t.Errorf("second call %+v", calls[1])
	}
	// A listener that fails: every delivery fails, and is kept.
	status = http.StatusServiceUnavailable
	results, calls = nil, nil
	queue = queue[:1]
	if _, err := d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0] == nil {
		t.Errorf("a refused callback: %v", results)
	}
	// A usage that cannot be read fails the delivery too.
	d.Usage = func(context.Context, string, int64, int) (tmf635.Record, error) {
		return tmf635.Record{}, errors.New("down")
	}
	results = nil
	if _, err := d.Once(context.Background()); err != nil || len(results) != 1 || results[0] == nil {
		t.Errorf("an unreadable usage: %v %v", results, err)
	}
}
