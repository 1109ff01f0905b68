package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/ingest/s3source"
	"vivace.dev/vivace/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestBucketEvents: an S3 event notification is answered with the sources
// it has polled; a wrong token, a body that is not a notification and a
// server without bucket sources are refused with a reason.
func TestBucketEvents(t *testing.T) {
	buckets := &s3source.Buckets{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sources: func() map[string]clientcfg.BucketSource {
			// An endpoint nothing listens on: the polls fail, as they may,
			// and the sources are known.
			src := clientcfg.BucketSource{Endpoint: "http://127.0.0.1:1", Region: "us-east-1", Bucket: "drop",
				PathStyle: true, PollInterval: time.Hour}
			acme, beta := src, src
			acme.Prefix, beta.Prefix = "acme/", "beta/"
			return map[string]clientcfg.BucketSource{"acme": acme, "beta": beta}
		},
		Getenv: func(string) string { return "x" },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	buckets.PollOnce(ctx)
	srv := httptest.NewServer((&Server{Buckets: buckets, BucketEventsToken: "s3cret",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	defer srv.Close()

	post := func(token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/buckets/events", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	event := `{"Records":[
	  {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"acme/day-01.csv"}}},
	  {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"zeta/day-01.csv"}}}]}`
	code, out := post("Bearer s3cret", event)
	if code != http.StatusAccepted || out["events"] != 2.0 || out["unmatched"] != 1.0 {
		t.Fatalf("%d %v", code, out)
	}
	if polled, _ := json.Marshal(out["polled"]); string(polled) != `["acme"]` {
		t.Fatalf("polled %s", polled)
	}
	if code, out := post("s3cret", `{"Event":"s3:TestEvent"}`); code != http.StatusAccepted || out["events"] != 0.0 {
		t.Fatalf("test event with a bare token: %d %v", code, out)
	}
	if code, out := post("Bearer wrong", event); code != http.StatusUnauthorized || !strings.Contains(out["error"].(string), "VIVACE_BUCKET_EVENTS_TOKEN") {
		t.Fatalf("wrong token: %d %v", code, out)
	}
	if code, out := post("Bearer s3cret", `{"Records":"x"}`); code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "not an S3 event notification") {
		t.Fatalf("bad body: %d %v", code, out)
	}

	none := httptest.NewServer((&Server{}).Handler())
	defer none.Close()
	resp, err := http.Post(none.URL+"/api/v1/buckets/events", "application/json", strings.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("without bucket sources: %d", resp.StatusCode)
	}
}
