package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/audit"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
)

// listing is a mursync.Reader over fixed rows.
type listing struct {
	jobs    []mursync.Job
	batches []mursync.BatchView
	records []mursync.RecordView
	filters []any
}

func (l *listing) Jobs(_ context.Context, f mursync.JobFilter) ([]mursync.Job, error) {
	l.filters = append(l.filters, f)
	return l.jobs, nil
}

func (l *listing) Batches(_ context.Context, f mursync.BatchFilter) ([]mursync.BatchView, error) {
	l.filters = append(l.filters, f)
	return l.batches, nil
}

func (l *listing) Batch(_ context.Context, id string) (mursync.BatchView, error) {
	for _, b := range l.batches {
		if b.BatchID == id {
			return b, nil
		}
	}
	return mursync.BatchView{}, mursync.ErrUnknownBatch
}

func (l *listing) Records(_ context.Context, f mursync.RecordFilter) ([]mursync.RecordView, error) {
	l.filters = append(l.filters, f)
	return l.records, nil
}

func (l *listing) Totals(context.Context, string) ([]mursync.Total, error) {
	return []mursync.Total{{AccountID: "A1", UsageType: "calls", Currency: "USD", MURs: 2, Units: "3", Amount: "0.30",
		SyncedMURs: 1, SyncedUnits: "1", SyncedAmount: "0.10"}}, nil
}

func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("X-Vivace-Operator", "ana")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, rec.Body)
	}
	return rec.Code, out
}

func TestSyncRoutes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := &listing{
		jobs:    []mursync.Job{{ID: "j1", Client: "acme", Trigger: mursync.ByHand, Status: mursync.JobDone, StartedAt: now, Synced: 3}},
		batches: []mursync.BatchView{{BatchID: "b1", Client: "acme", Status: mursync.Failed, Failure: mursync.FailRefused, Code: 1004, CreatedAt: now}},
		records: []mursync.RecordView{{ID: "r1", Client: "acme", AccountID: "A1", Day: now.Truncate(24 * time.Hour), Status: mursync.Refused, Code: 1009}},
	}
	mux := http.NewServeMux()
	(&Sync{Reader: l}).Register(mux)

	code, out := call(t, mux, "GET", "/api/v1/sync/jobs?client=acme&limit=5", "")
	if code != 200 || len(out["jobs"].([]any)) != 1 || l.filters[0] != (mursync.JobFilter{Client: "acme", Limit: 5}) {
		t.Fatalf("jobs: %d %v %v", code, out, l.filters)
	}
	code, out = call(t, mux, "GET", "/api/v1/sync/batches?status=failed", "")
	b := out["batches"].([]any)[0].(map[string]any)
	if code != 200 || b["failure"] != "refused" || b["error_code"] != float64(1004) {
		t.Fatalf("batches: %d %v", code, out)
	}
	if code, out = call(t, mux, "GET", "/api/v1/sync/batches?status=lost", ""); code != 400 {
		t.Fatalf("bad status: %d %v", code, out)
	}
	if code, out = call(t, mux, "GET", "/api/v1/sync/batches/b1", ""); code != 200 || len(out["items"].([]any)) != 1 {
		t.Fatalf("batch: %d %v", code, out)
	}
	if code, _ = call(t, mux, "GET", "/api/v1/sync/batches/nope", ""); code != 404 {
		t.Fatalf("unknown batch: %d", code)
	}
	code, out = call(t, mux, "GET", "/api/v1/sync/failed?client=acme", "")
	r := out["records"].([]any)[0].(map[string]any)
	if code != 200 || r["record_error_code"] != float64(1009) || r["usage_day"] != "2026-03-01" ||
		l.filters[len(l.filters)-1] != (mursync.RecordFilter{Client: "acme", Status: mursync.Refused, Limit: 1000}) {
		t.Fatalf("failed: %d %v", code, out)
	}
	if code, _ = call(t, mux, "GET", "/api/v1/sync/totals", ""); code != 400 {
		t.Fatalf("totals without client: %d", code)
	}
	if code, out = call(t, mux, "GET", "/api/v1/sync/totals?client=acme", ""); code != 200 || len(out["totals"].([]any)) != 1 {
		t.Fatalf("totals: %d %v", code, out)
	}
	// Without the operations service the cycle cannot be asked for.
	if code, _ = call(t, mux, "POST", "/api/v1/sync/run", `{}`); code != 503 {
		t.Fatalf("run without Ops: %d", code)
	}
}

func TestSyncRequestsChecked(t *testing.T) {
	mux := http.NewServeMux()
	(&Sync{Ops: &mursync.Ops{}, Reader: &listing{}}).Register(mux)
	for _, tt := range []struct{ path, body, want string }{
		{"/api/v1/sync/run", `{"timeout":"forever"}`, "timeout"},
		{"/api/v1/sync/run", `{"clinet":"acme"}`, "unknown field"},
		{"/api/v1/sync/run", `{"client":"../etc"}`, "client"},
		{"/api/v1/sync/retry", `{"batch_id":"b1"}`, "client is required"},
		{"/api/v1/sync/retry", `{"client":"acme"}`, "either batch_id or failed"},
		{"/api/v1/sync/retry", `{"client":"acme","batch_id":"b1","failed":true}`, "either batch_id or failed"},
	} {
		code, out := call(t, mux, "POST", tt.path, tt.body)
		if code != 400 || !strings.Contains(out["error"].(string), tt.want) {
			t.Errorf("%s %s: %d %v, want 400 saying %q", tt.path, tt.body, code, out, tt.want)
		}
	}
	if code, _ := call(t, mux, "POST", "/api/v1/sync/retry", `{"client":"acme","batch_id":"b9"}`); code != 404 {
		t.Errorf("retry of an unknown batch: %d", code)
	}
}

func TestRunAnswer(t *testing.T) {
	ok := mursync.Summary{Client: "a", JobID: "j1", Aggregates: 3, Batches: 1, Synced: 2, Failed: 1, MURs: 9}
	refused := mursync.Summary{Client: "b", JobID: "j2", Aggregates: 2, Batches: 1, Failed: 2, MURs: 4,
		Failures: []mursync.BatchFailure{{BatchID: "x", Failure: mursync.FailRefused, Code: 1004, Message: "authentication error", Records: 2}}}
	for _, tt := range []struct {
		name   string
		sums   []mursync.Summary
		err    error
		status int
	}{
		{"ran", []mursync.Summary{ok}, nil, 200},
		{"refused whole", []mursync.Summary{ok, refused}, nil, 502},
		{"busy", nil, mursync.ErrBusy, 409},
		{"nothing to retry", nil, mursync.ErrNothingToRetry, 404},
		{"could not run", []mursync.Summary{{Client: "a", Error: "broker down"}}, errors.New("broker down"), 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ans, status := runAnswer(tt.sums, tt.err)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%+v)", status, tt.status, ans)
			}
			if tt.name == "refused whole" && (ans.Aggregates != 5 || ans.Failed != 3 || ans.MURs != 13 || !strings.Contains(ans.Error, "1004")) {
				t.Fatalf("answer %+v", ans)
			}
		})
	}
}

func TestSettingsRoutes(t *testing.T) {
	st := &settings.MemStore{}
	mux := http.NewServeMux()
	(&Settings{Service: &settings.Service{Store: st}}).Register(mux)

	code, out := call(t, mux, "PUT", "/api/v1/settings/mur_sync.batch_size", `{"value":250}`)
	if code != 200 || out["value"] != float64(250) || out["updated_by"] != "operator:ana" {
		t.Fatalf("put: %d %v", code, out)
	}
	if code, out = call(t, mux, "PUT", "/api/v1/settings/mur_sync.interval", `{"value":"90s"}`); code != 200 {
		t.Fatalf("put a duration: %d %v", code, out)
	}
	if code, out = call(t, mux, "PUT", "/api/v1/settings/mur_sync.batch_size", `{"value":"250"}`); code != 400 ||
		!strings.Contains(out["error"].(string), "is a string") {
		t.Fatalf("a string for a number: %d %v", code, out)
	}
	if code, _ = call(t, mux, "PUT", "/api/v1/settings/mur_sync.nope", `{"value":1}`); code != 404 {
		t.Fatalf("unknown key: %d", code)
	}
	if code, _ = call(t, mux, "PUT", "/api/v1/settings/mur_sync.batch_size", `{}`); code != 400 {
		t.Fatalf("no value: %d", code)
	}
	if code, out = call(t, mux, "GET", "/api/v1/settings", ""); code != 200 || len(out["settings"].([]any)) != len(settings.Defs()) {
		t.Fatalf("list: %d %v", code, out)
	}
	if code, out = call(t, mux, "DELETE", "/api/v1/settings/mur_sync.batch_size", ""); code != 200 || out["is_default"] != true {
		t.Fatalf("reset: %d %v", code, out)
	}
	if code, out = call(t, mux, "GET", "/api/v1/settings/mur_sync.batch_size", ""); code != 200 || out["value"] != float64(1000) {
		t.Fatalf("get: %d %v", code, out)
	}
	if e := st.Entries(); len(e) != 3 || e[0].Actor != "operator:ana" || e[2].Action != audit.SettingReset {
		t.Fatalf("audit entries %+v", e)
	}
}
