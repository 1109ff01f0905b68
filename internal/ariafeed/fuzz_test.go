package ariafeed_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/ariafeed"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
)

// FuzzSSEFrames: any stream is read into events or refused with an error,
// never a panic; an event written back in SSE form reads again the same;
// and every event with data maps to a feed event, or to a failed one
// carrying the reason, or is skipped, whatever its frames hold.
func FuzzSSEFrames(f *testing.F) {
	for _, s := range []string{
		"id: 1\nevent: create\ndata: {\"ref\":{\"type\":\"Plan\",\"ids\":{\"client_plan_id\":\"GOLD\"}},\"tick\":5}\ndata: {\"client_plan_id\":\"GOLD\"}\n\n",
		": keep-alive\n\nretry: 250\n\n",
		"id: 2\r\nevent: delete\r\ndata: {\"ref\":{\"type\":\"Account\",\"ids\":{\"client_account_id\":\"A\"}},\"tick\":\"x\"}\r\ndata: {}\r\n\r\n",
		"event: update\ndata: not json\ndata: [1]\n\n",
		"data: only one line\n\n",
		"data: {\"ref\":{\"type\":\"Contact\"}}\ndata: {}\n\nid: 3\ndata:x",
		"id: \x00\ndata:\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream string) {
		r := ariafeed.NewSSEReader(strings.NewReader(stream))
		m := &ariafeed.Mapper{Client: "c", State: &memState{m: map[string]json.RawMessage{}}}
		for range 1000 {
			ev, err := r.Next()
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "stream line") {
					return
				}
				t.Fatalf("error %v: neither the end of the stream nor one naming its line", err)
			}
			if strings.ContainsRune(ev.ID, 0) {
				t.Fatalf("event id %q holds a NUL", ev.ID)
			}
			if ev.Data == "" {
				continue
			}
			if !strings.ContainsAny(ev.Type, "\r\n") && !strings.Contains(ev.Data, "\r") {
				var w strings.Builder
				w.WriteString("event: " + ev.Type + "\n")
				for _, l := range strings.Split(ev.Data, "\n") {
					w.WriteString("data: " + l + "\n")
				}
				if ev.Retry > 0 {
					w.WriteString("retry: " + strconv.FormatInt(ev.Retry.Milliseconds(), 10) + "\n")
				}
				w.WriteString("\n")
				again, err := ariafeed.NewSSEReader(strings.NewReader(w.String())).Next()
				if err != nil || again.Type != ev.Type || again.Data != ev.Data {
					t.Fatalf("event %+v written back as %q reads as %+v, %v", ev, w.String(), again, err)
				}
			}
			fe, err := m.Map(context.Background(), ariafeed.Message{ID: ev.ID, Kind: ev.Type, Data: ev.Data})
			if errors.Is(err, ariafeed.ErrSkipped) {
				continue
			}
			if err != nil {
				t.Fatalf("Map(%q): %v; a message that cannot be mapped is a failed event, not an error", ev.Data, err)
			}
			if fe.SourceError == "" && fe.Op == feed.OpUpsert {
				if _, _, _, err := catalog.Check(fe.Entity, fe.EntityID, fe.Data); err != nil {
					t.Fatalf("mapped %q into an event the catalog refuses: %v", ev.Data, err)
				}
			}
		}
	})
}
