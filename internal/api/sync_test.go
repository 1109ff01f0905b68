package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store/authstore"
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

// guarded is a Server with tokens of several kinds on the test database
// and the sync's and settings' routes mounted, as vivace dev mounts them.
type guarded struct {
	t      *testing.T
	srv    *Server
	h      http.Handler
	tokens map[string]string
	audit  *recorder
	acme   string
}

func newGuarded(t *testing.T, sync *Sync, set *Settings) *guarded {
	t.Helper()
	st := pgtest.Store(t)
	as := authstore.New(st)
	g := &guarded{t: t, tokens: map[string]string{}, audit: &recorder{Auditor: as}, acme: "acme-" + ids.New()[24:]}
	tokens := auth.NewService(as, g.audit)
	for name, spec := range map[string]struct {
		role    auth.Role
		clients []string
	}{
		"admin":         {auth.Admin, []string{"*"}},
		"operator-all":  {auth.Operator, []string{"*"}},
		"acme-viewer":   {auth.Viewer, []string{g.acme}},
		"acme-operator": {auth.Operator, []string{g.acme}},
		"acme-admin":    {auth.Admin, []string{g.acme}},
	} {
		_, secret, err := tokens.Create(context.Background(), "test", auth.NewToken{Name: name + "-" + g.acme, Role: spec.role, Clients: spec.clients})
		if err != nil {
			t.Fatal(err)
		}
		g.tokens[name] = secret
	}
	g.srv = &Server{Auth: tokens, Audit: g.audit, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if sync != nil {
		sync.Server = g.srv
		for _, r := range sync.Routes() {
			g.srv.Mount(r)
		}
	}
	if set != nil {
		set.Server = g.srv
		for _, r := range set.Routes() {
			g.srv.Mount(r)
		}
	}
	g.h = g.srv.Handler()
	return g
}

// call sends a request with the named token and decodes the JSON answer.
func (g *guarded) call(token, method, path, body string) (int, map[string]any) {
	g.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.tokens[token])
	rec := httptest.NewRecorder()
	g.h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		g.t.Fatalf("%s %s: not JSON: %s", method, path, rec.Body)
	}
	return rec.Code, out
}

func TestSyncRoutes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := &listing{}
	g := newGuarded(t, &Sync{Reader: l}, nil)
	acme := g.acme
	l.jobs = []mursync.Job{{ID: "j1", Client: acme, Trigger: mursync.ByHand, Status: mursync.JobDone, StartedAt: now, Synced: 3}}
	l.batches = []mursync.BatchView{
		{BatchID: "01a2339c-c7f5-737f-9199-b107d6579213", Client: acme, Status: mursync.Failed, Failure: mursync.FailRefused, Code: 1004, CreatedAt: now},
		{BatchID: "01a2339c-c7f5-737f-9199-b107d6579214", Client: "beta", Status: mursync.Done, CreatedAt: now}}
	l.records = []mursync.RecordView{{ID: "r1", Client: acme, AccountID: "A1", Day: now.Truncate(24 * time.Hour), Status: mursync.Refused, Code: 1009}}

	code, out := g.call("acme-viewer", "GET", "/api/v1/sync/jobs?limit=5", "")
	if code != 200 || len(out["jobs"].([]any)) != 1 || !reflect.DeepEqual(l.filters[0], mursync.JobFilter{Clients: []string{acme}, Limit: 5}) {
		t.Fatalf("jobs: %d %v %v", code, out, l.filters)
	}
	if code, _ = g.call("admin", "GET", "/api/v1/sync/jobs", ""); code != 200 || !reflect.DeepEqual(l.filters[1], mursync.JobFilter{Limit: 100}) {
		t.Fatalf("jobs for every client: %d %v", code, l.filters[1])
	}
	if code, _ = g.call("acme-viewer", "GET", "/api/v1/sync/jobs?client=beta", ""); code != 403 {
		t.Fatalf("another client's jobs: %d", code)
	}
	code, out = g.call("acme-viewer", "GET", "/api/v1/sync/batches?status=failed", "")
	b := out["batches"].([]any)[0].(map[string]any)
	if code != 200 || b["failure"] != "refused" || b["error_code"] != float64(1004) {
		t.Fatalf("batches: %d %v", code, out)
	}
	if code, out = g.call("admin", "GET", "/api/v1/sync/batches?status=lost", ""); code != 400 {
		t.Fatalf("bad status: %d %v", code, out)
	}
	if code, _ = g.call("admin", "GET", "/api/v1/sync/batches?job_id=x'", ""); code != 400 {
		t.Fatalf("bad job id: %d", code)
	}
	if code, out = g.call("acme-viewer", "GET", "/api/v1/sync/batches/01a2339c-c7f5-737f-9199-b107d6579213", ""); code != 200 || len(out["items"].([]any)) != 1 {
		t.Fatalf("batch: %d %v", code, out)
	}
	if code, _ = g.call("acme-viewer", "GET", "/api/v1/sync/batches/01a2339c-c7f5-737f-9199-b107d6579214", ""); code != 403 {
		t.Fatalf("another client's batch: %d", code)
	}
	for _, id := range []string{"01a2339c-c7f5-737f-9199-b107d6579999", "nope"} {
		if code, _ = g.call("admin", "GET", "/api/v1/sync/batches/"+id, ""); code != 404 {
			t.Fatalf("unknown batch %s: %d", id, code)
		}
	}
	code, out = g.call("acme-viewer", "GET", "/api/v1/sync/failed", "")
	r := out["records"].([]any)[0].(map[string]any)
	if code != 200 || r["record_error_code"] != float64(1009) || r["usage_day"] != "2026-03-01" ||
		!reflect.DeepEqual(l.filters[len(l.filters)-1], mursync.RecordFilter{Clients: []string{acme}, Status: mursync.Refused, Limit: 1000}) {
		t.Fatalf("failed: %d %v", code, out)
	}
	if code, _ = g.call("admin", "GET", "/api/v1/sync/totals", ""); code != 400 {
		t.Fatalf("totals without client: %d", code)
	}
	if code, out = g.call("acme-viewer", "GET", "/api/v1/sync/totals?client="+acme, ""); code != 200 || len(out["totals"].([]any)) != 1 {
		t.Fatalf("totals: %d %v", code, out)
	}
	// A viewer may not ask for a cycle; without the operations service no
	// one can.
	if code, _ = g.call("acme-viewer", "POST", "/api/v1/sync/run", `{}`); code != 403 {
		t.Fatalf("run by a viewer: %d", code)
	}
	if code, _ = g.call("acme-operator", "POST", "/api/v1/sync/run", `{}`); code != 503 {
		t.Fatalf("run without Ops: %d", code)
	}
}

func TestSyncRequestsChecked(t *testing.T) {
	g := newGuarded(t, &Sync{Ops: &mursync.Ops{}, Reader: &listing{}}, nil)
	for _, tt := range []struct{ path, body, want string }{
		{"/api/v1/sync/run", `{"timeout":"forever"}`, "timeout"},
		{"/api/v1/sync/run", `{"clinet":"acme"}`, "unknown field"},
		{"/api/v1/sync/run", `{"client":"../etc"}`, "client"},
		{"/api/v1/sync/retry", `{"batch_id":"b1"}`, "client is required"},
		{"/api/v1/sync/retry", `{"client":"acme"}`, "either batch_id or failed"},
		{"/api/v1/sync/retry", `{"client":"acme","batch_id":"b1","failed":true}`, "either batch_id or failed"},
	} {
		code, out := g.call("operator-all", "POST", tt.path, tt.body)
		if code != 400 || !strings.Contains(out["error"].(string), tt.want) {
			t.Errorf("%s %s: %d %v, want 400 saying %q", tt.path, tt.body, code, out, tt.want)
		}
	}
	if code, _ := g.call("operator-all", "POST", "/api/v1/sync/retry", `{"client":"acme","batch_id":"01a2339c-c7f5-737f-9199-b107d6579213"}`); code != 404 {
		t.Errorf("retry of an unknown batch: %d", code)
	}
	// A token for acme may not run or resend another client's.
	for _, body := range []string{`{"client":"beta"}`, `{"client":"beta","failed":true}`} {
		path := "/api/v1/sync/run"
		if strings.Contains(body, "failed") {
			path = "/api/v1/sync/retry"
		}
		if code, _ := g.call("acme-operator", "POST", path, body); code != 403 {
			t.Errorf("%s %s by acme's operator: %d", path, body, code)
		}
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
	g := newGuarded(t, nil, &Settings{Service: &settings.Service{Store: st}})

	code, out := g.call("admin", "PUT", "/api/v1/settings/mur_sync.batch_size", `{"value":250}`)
	if code != 200 || out["value"] != float64(250) || out["updated_by"] != "admin-"+g.acme {
		t.Fatalf("put: %d %v", code, out)
	}
	if code, out = g.call("admin", "PUT", "/api/v1/settings/mur_sync.interval", `{"value":"90s"}`); code != 200 {
		t.Fatalf("put a duration: %d %v", code, out)
	}
	if code, out = g.call("admin", "PUT", "/api/v1/settings/mur_sync.batch_size", `{"value":"250"}`); code != 400 ||
		!strings.Contains(out["error"].(string), "is a string") {
		t.Fatalf("a string for a number: %d %v", code, out)
	}
	if code, _ = g.call("admin", "PUT", "/api/v1/settings/mur_sync.nope", `{"value":1}`); code != 404 {
		t.Fatalf("unknown key: %d", code)
	}
	if code, _ = g.call("admin", "PUT", "/api/v1/settings/mur_sync.batch_size", `{}`); code != 400 {
		t.Fatalf("no value: %d", code)
	}
	if code, out = g.call("admin", "GET", "/api/v1/settings", ""); code != 200 || len(out["settings"].([]any)) != len(settings.Defs()) {
		t.Fatalf("list: %d %v", code, out)
	}
	// System settings are every client's: an admin of one client, or an
	// operator of all, may not read or change them.
	for _, token := range []string{"acme-admin", "operator-all"} {
		if code, _ = g.call(token, "GET", "/api/v1/settings", ""); code != 403 {
			t.Fatalf("%s lists settings: %d", token, code)
		}
		if code, _ = g.call(token, "PUT", "/api/v1/settings/mur_sync.batch_size", `{"value":5}`); code != 403 {
			t.Fatalf("%s changes a setting: %d", token, code)
		}
	}
	if code, out = g.call("admin", "DELETE", "/api/v1/settings/mur_sync.batch_size", ""); code != 200 || out["is_default"] != true {
		t.Fatalf("reset: %d %v", code, out)
	}
	if code, out = g.call("admin", "GET", "/api/v1/settings/mur_sync.batch_size", ""); code != 200 || out["value"] != float64(1000) {
		t.Fatalf("get: %d %v", code, out)
	}
	if e := st.Entries(); len(e) != 3 || e[0].Actor != "admin-"+g.acme || e[2].Action != settings.ActionReset {
		t.Fatalf("audit entries %+v", e)
	}
}
