package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/msgcheck"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/authstore"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/usagestore"
)

// filesWorld is an API over real stores, for the routes of the file
// registry and the exports, called with an operator token for every
// client named ana-….
type filesWorld struct {
	t      *testing.T
	srv    *Server
	url    string
	token  string
	fs     *filestore.Store
	us     *usagestore.Store
	prefix string // keeps this test's clients apart from others'
}

func newFilesWorld(t *testing.T) *filesWorld {
	t.Helper()
	st := pgtest.Store(t)
	suffix := ids.New()[24:]
	w := &filesWorld{t: t, fs: filestore.New(st), us: usagestore.New(st), prefix: "t" + suffix + "-"}
	as := authstore.New(st)
	tokens := auth.NewService(as, as)
	_, secret, err := tokens.Create(context.Background(), "test", auth.NewToken{Name: "ana-" + suffix, Role: auth.Operator, Clients: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	w.token = secret
	cat := catalogstore.New(st)
	known := w.prefix + "settled"
	recv := &ingest.Receiver{Registry: w.fs, ArchiveDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Clients: ingest.KnownClients{Catalog: cat, InSettings: func(c string) bool { return c == known }}}
	w.srv = &Server{DB: st, Files: w.fs, Records: w.us, Receiver: recv, Auth: tokens, Audit: as,
		Logger: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(w.srv.Handler())
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

func (w *filesWorld) call(method, path, body string) (int, []byte) {
	w.t.Helper()
	code, _, b := call(w.t, method, w.url+path, "Bearer "+w.token, body)
	if f := msgcheck.Internals(string(b)); f != "" {
		w.t.Errorf("%s %s answers with Go's or the database's words (%q): %s", method, path, f, b)
	}
	return code, b
}

// expect calls and checks the status and, when want is not empty, that
// the answer holds it.
func (w *filesWorld) expect(method, path, body string, status int, want string) []byte {
	w.t.Helper()
	code, b := w.call(method, path, body)
	if code != status || !strings.Contains(string(b), want) {
		w.t.Fatalf("%s %s: %d %s\nwant %d with %q", method, path, code, b, status, want)
	}
	return b
}

const usageCSV = "record_id,account_id,usage_type,quantity,usage_time\nr1,A1,CALL,1,2026-03-01T10:00:00Z\n"

// TestUploadsForUnknownClients: a file for a client that has neither a
// catalog nor settings is refused before its body is read, naming the
// client and what would make it known; new_client=true takes it on
// purpose; a catalog event or a settings entry makes a client known.
func TestUploadsForUnknownClients(t *testing.T) {
	w := newFilesWorld(t)
	acmee := w.prefix + "acmee"
	b := w.expect("POST", "/api/v1/files?name=u.csv&client="+acmee, usageCSV, http.StatusNotFound, `"code":"UNKNOWN_CLIENT"`)
	for _, want := range []string{`client \"` + acmee + `\" is not known`, "publish its catalog", "under clients: in the client settings", "--new-client"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("refusal %s\nlacks %q", b, want)
		}
	}
	if list, _ := w.fs.ListFiles(context.Background(), files.Filter{Clients: []string{acmee}, Limit: 10}); len(list) != 0 {
		t.Fatalf("a refused upload left files: %+v", list)
	}
	w.expect("POST", "/api/v1/files?name=u.csv&new_client=maybe&client="+acmee, usageCSV, http.StatusBadRequest, `new_client: \"maybe\" is not true or false`)
	w.expect("POST", "/api/v1/files?name=u.csv&new_client=true&client="+acmee, usageCSV, http.StatusCreated, `"status":"received"`)
	w.expect("POST", "/api/v1/files?name=u.csv&client="+w.prefix+"settled", usageCSV, http.StatusCreated, `"status":"received"`)

	// A client the feed has sent an event for is known, whatever its
	// outcome.
	fed := w.prefix + "fed"
	st := pgtest.Store(t)
	if _, err := st.Pool().Exec(context.Background(), `INSERT INTO catalog_events (event_id, client, entity, entity_id, version, op, payload, outcome)
		VALUES ($1, $2, 'account', 'A1', 1, 'upsert', '{}', 'failed')`, ids.New(), fed); err != nil {
		t.Fatal(err)
	}
	w.expect("POST", "/api/v1/files?name=u.csv&client="+fed, usageCSV, http.StatusCreated, `"status":"received"`)
}

// TestNotUsageUploads: a file that is not usage is refused with the
// columns it has, and one with some of the fields is taken.
func TestNotUsageUploads(t *testing.T) {
	w := newFilesWorld(t)
	settled := w.prefix + "settled"
	prose := "It was a bright cold day in April, and the clocks were striking thirteen.\nWinston Smith slipped through the doors.\n"
	b := w.expect("POST", "/api/v1/files?name=prose.txt&client="+settled, prose, http.StatusUnprocessableEntity, `"status":"rejected"`)
	var f File
	_ = json.Unmarshal(b, &f)
	if !strings.Contains(f.Reason, `its columns are "It was a bright cold day in April", "and the clocks were striking thirteen."`) ||
		!strings.Contains(f.Reason, "under columns:") {
		t.Fatalf("reason %q", f.Reason)
	}
	w.expect("POST", "/api/v1/files?name=part.csv&client="+settled, "record_id,quantity\nr1,1\n", http.StatusCreated, `"status":"received"`)
	w.expect("POST", "/api/v1/files?name=a.json&client="+settled, `[{"record_id":"r1"}]`, http.StatusUnprocessableEntity, "one JSON array, not JSON Lines")
}

// TestFileRoutes: show, list by status, and cancel, with every refusal
// named.
func TestFileRoutes(t *testing.T) {
	w := newFilesWorld(t)
	settled := w.prefix + "settled"
	var f File
	_ = json.Unmarshal(w.expect("POST", "/api/v1/files?name=u.csv&client="+settled, usageCSV, http.StatusCreated, ""), &f)

	w.expect("GET", "/api/v1/files/not-a-uuid", "", http.StatusNotFound, "no file not-a-uuid")
	w.expect("GET", "/api/v1/files/"+ids.New(), "", http.StatusNotFound, "no file")
	w.expect("GET", "/api/v1/files/"+f.FileID, "", http.StatusOK, `"status":"received"`)

	for _, c := range []struct {
		body, want string
	}{
		{``, `body: empty; expected a JSON object {\"reason\": \"why the file is cancelled\"}`},
		{`["why"]`, `body: a JSON array where a JSON object {\"reason\": \"why the file is cancelled\"} was expected`},
		{`{"reason": 7}`, `body: reason: a JSON number where a string was expected`},
		{`{"reason": "   "}`, `reason: say why the file is cancelled`},
		{`{"reason": "` + strings.Repeat("x", 1001) + `"}`, "reason: at most 1000 characters"},
	} {
		w.expect("POST", "/api/v1/files/"+f.FileID+"/cancel", c.body, http.StatusBadRequest, c.want)
	}
	w.expect("POST", "/api/v1/files/nope/cancel", `{"reason":"x"}`, http.StatusNotFound, "no file nope")
	b := w.expect("POST", "/api/v1/files/"+f.FileID+"/cancel", `{"reason":"sent for the wrong   client"}`, http.StatusOK, `"status":"failed"`)
	var got File
	_ = json.Unmarshal(b, &got)
	if !strings.HasPrefix(got.Reason, "cancelled by ana-") || !strings.HasSuffix(got.Reason, ": sent for the wrong client; nothing of it had been read") ||
		!strings.HasPrefix(got.CancelledBy, "ana-") ||
		got.CancelledAt == nil || got.Records == nil || *got.Records != 0 {
		t.Fatalf("cancelled: %s", b)
	}
	w.expect("POST", "/api/v1/files/"+f.FileID+"/cancel", `{"reason":"again"}`, http.StatusConflict, "is failed already: there is nothing to cancel")

	var list []File
	_ = json.Unmarshal(w.expect("GET", "/api/v1/files?status=failed&client="+settled, "", http.StatusOK, ""), &list)
	if len(list) != 1 || list[0].FileID != f.FileID {
		t.Fatalf("failed files: %+v", list)
	}
	_ = json.Unmarshal(w.expect("GET", "/api/v1/files?status=received&client="+settled, "", http.StatusOK, ""), &list)
	if len(list) != 0 {
		t.Fatalf("received files: %+v", list)
	}
	w.expect("GET", "/api/v1/files?status=stuck", "", http.StatusBadRequest, `status: \"stuck\" is not a file status (received, processing, done, failed, rejected)`)
}

// TestExportFilters: the exports keep what the time range, account,
// status and file say, and refuse a filter that is wrong by name; the
// CSV of MURs has the attributes.
func TestExportFilters(t *testing.T) {
	w := newFilesWorld(t)
	ctx := context.Background()
	client := w.prefix + "settled"
	var f1, f2 File
	_ = json.Unmarshal(w.expect("POST", "/api/v1/files?name=a.csv&client="+client, usageCSV, http.StatusCreated, ""), &f1)
	_ = json.Unmarshal(w.expect("POST", "/api/v1/files?name=b.csv&client="+client, usageCSV+"r2,A2,CALL,1,2026-03-02T10:00:00Z\n", http.StatusCreated, ""), &f2)
	mur := func(file, rec, acct string, at time.Time, status murs.SyncStatus) murs.MUR {
		return murs.MUR{Client: client, RecordID: rec, FileID: file, Line: 2, AccountID: acct, UsageType: "CALL", Quantity: "1",
			UsageTime: at, Currency: "USD", GrossAmount: "1.00", DiscountAmount: "0.00", NetAmount: "1.00",
			RateDetail: json.RawMessage(`{}`), Attributes: map[string]string{"cell": rec + "-cell"}, SyncStatus: status}
	}
	march := func(day int) time.Time { return time.Date(2026, 3, day, 10, 0, 0, 0, time.UTC) }
	in := []murs.MUR{mur(f1.FileID, "r1", "A1", march(1), ""), mur(f2.FileID, "r2", "A1", march(2), ""), mur(f2.FileID, "r3", "A2", march(3), "")}
	in[1].Line, in[2].Line = 2, 3
	if err := w.us.Rate(ctx, func(tx ratestage.Tx) error { return tx.InsertMURs(ctx, in) }); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC().Add(-time.Minute)
	exs := []exceptions.Exception{
		{Client: client, FileID: f1.FileID, Line: 3, RecordID: "x1", Stage: "mediate", Code: codes.BadQuantity, Message: "m",
			Record: json.RawMessage(`{"account_id":"A1","quantity":"x"}`)},
		{Client: client, FileID: f2.FileID, Line: 4, RecordID: "x2", Stage: "rate", Code: codes.UnknownAccount, Message: "m",
			Record: json.RawMessage(`{"record_id":"x2","account_id":"A9"}`)},
	}
	if _, err := w.us.InsertExceptions(ctx, exs); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC().Add(time.Minute)

	recordIDs := func(path, key string) string {
		t.Helper()
		b := w.expect("GET", path, "", http.StatusOK, "")
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: %q", path, l)
			}
			out = append(out, m[key].(string))
		}
		return strings.Join(out, " ")
	}
	q := "/api/v1/murs?client=" + client
	for _, c := range []struct{ query, want string }{
		{"", "r1 r2 r3"},
		{"&account_id=A1", "r1 r2"},
		{"&from=2026-03-02", "r2 r3"},
		{"&to=2026-03-02T10:00:00Z", "r1"}, // to is excluded
		{"&from=2026-03-02&to=2026-03-03", "r2"},
		{"&file_id=" + f2.FileID + "&account_id=A2", "r3"},
		{"&sync_status=unsynced&account_id=A2", "r3"},
		{"&sync_status=synced", ""},
	} {
		if got := recordIDs(q+c.query, "record_id"); got != c.want {
			t.Errorf("MURs %s: %q, want %q", c.query, got, c.want)
		}
	}
	e := "/api/v1/exceptions?client=" + client
	for _, c := range []struct{ query, want string }{
		{"", "x1 x2"},
		{"&account_id=A9", "x2"},
		{"&status=open&code=BAD_QUANTITY", "x1"},
		{"&stage=rate", "x2"},
		{"&from=" + before.Format(time.RFC3339Nano) + "&to=" + after.Format(time.RFC3339Nano), "x1 x2"},
		{"&to=" + before.Format(time.RFC3339Nano), ""},
	} {
		if got := recordIDs(e+c.query, "record_id"); got != c.want {
			t.Errorf("exceptions %s: %q, want %q", c.query, got, c.want)
		}
	}
	for _, c := range []struct{ path, want string }{
		{q + "&from=yesterday", `from: \"yesterday\" is not an RFC 3339 time (2026-03-01T00:00:00Z) or a date`},
		{q + "&from=2026-03-02&to=2026-03-01", "from (2026-03-02T00:00:00Z) must be before to (2026-03-01T00:00:00Z)"},
		{q + "&sync_status=done", `sync_status: \"done\" is not a sync status (unsynced, batched, synced, failed)`},
		{q + "&file_id=abc", `file_id: \"abc\" is not a file id`},
		{e + "&status=closed", `status: \"closed\" is not an exception status (open, reprocessing, resolved, discarded)`},
		{e + "&code=NOPE", `code: \"NOPE\" is not an exception code (MALFORMED_RECORD,`},
		{e + "&stage=bill", `stage: \"bill\" is not a stage (ingest, mediate, rate, exceptions)`},
	} {
		w.expect("GET", c.path, "", http.StatusBadRequest, c.want)
	}

	// The CSV of MURs has attributes after qualifiers.
	b := w.expect("GET", q+"&format=csv&account_id=A2", "", http.StatusOK, "")
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v\n%s", err, b)
	}
	col := map[string]string{}
	for i, name := range rows[0] {
		col[name] = rows[1][i]
	}
	if strings.Join(rows[0], ",") != strings.Join(MURColumns, ",") || col["attributes"] != `{"cell":"r3-cell"}` || col["record_id"] != "r3" {
		t.Fatalf("csv header %v, row %v", rows[0], rows[1])
	}
}

// TestNoRouteAnswersTheDatabasesWords: with the database gone, the routes
// answer that they failed and where to look, never the SQL or the
// driver's error.
func TestNoRouteAnswersTheDatabasesWords(t *testing.T) {
	w := newFilesWorld(t)
	closed, err := store.Open(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	fs := filestore.New(closed)
	srv := *w.srv
	srv.DB, srv.Files, srv.Records = closed, fs, usagestore.New(closed)
	srv.Receiver = &ingest.Receiver{Registry: fs, ArchiveDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Clients: ingest.KnownClients{Catalog: catalogstore.New(closed)}}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	w.url = hs.URL
	id := ids.New()
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/api/v1/files", "", http.StatusInternalServerError, "internal error listing files: see the server log (ref "},
		{"GET", "/api/v1/files/" + id, "", http.StatusInternalServerError, "internal error reading the file: see the server log"},
		{"POST", "/api/v1/files/" + id + "/cancel", `{"reason":"x"}`, http.StatusInternalServerError, "internal error reading the file"},
		{"POST", "/api/v1/files?client=c&name=u.csv", usageCSV, http.StatusInternalServerError, `internal error checking client \"c\"`},
		{"GET", "/api/v1/murs?client=c", "", http.StatusInternalServerError, "internal error exporting"},
		{"GET", "/api/v1/exceptions?client=c&format=csv", "", http.StatusInternalServerError, "internal error exporting"},
		{"GET", "/readyz", "", http.StatusServiceUnavailable, "database: the connection pool is closed (the server log has the details)"},
	} {
		w.expect(c.method, c.path, c.body, c.status, c.want)
	}
}

// TestBodiesSayWhatTheyHold: a request body that does not decode is
// answered with what it holds and what was expected.
func TestBodiesSayWhatTheyHold(t *testing.T) {
	w := newFilesWorld(t)
	for _, c := range []struct{ path, body, want string }{
		{"/api/v1/feed/outcomes", `["e1"]`, `body: a JSON array where a JSON object {\"event_ids\": [...]} was expected`},
		{"/api/v1/feed/outcomes", `{"event_ids":"e1"}`, `body: event_ids: a JSON string where a list was expected`},
		{"/api/v1/feed/outcomes", `{"event_ids":[`, `body: the JSON ends before a JSON object {\"event_ids\": [...]} is complete`},
		{"/api/v1/feed/outcomes", ``, `body: empty; expected a JSON object {\"event_ids\": [...]}`},
		{"/api/v1/feed/events/reprocess", `{"event_ids":[1]}`, `body: event_ids: a JSON number where a string was expected`},
		{"/api/v1/feed/events/reprocess", `{"client":7}`, `body: client: a JSON number where a string was expected`},
	} {
		w.expect("POST", c.path, c.body, http.StatusBadRequest, c.want)
	}
}

// TestUploadToAFullArchive: an upload the archive cannot store (here a
// client folder that is a file; docs/ingestion.md, "A full or read-only
// disk") is answered 507 with the cause and without the archive's path,
// and nothing is registered; the same upload goes through once the
// archive takes it.
func TestUploadToAFullArchive(t *testing.T) {
	w := newFilesWorld(t)
	client := w.prefix + "settled"
	archive := w.srv.Receiver.ArchiveDir
	if err := os.WriteFile(filepath.Join(archive, client), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := w.expect("POST", "/api/v1/files?name=u.csv&client="+client, usageCSV, http.StatusInsufficientStorage,
		`the file archive cannot store the file u.csv (not a directory): nothing was registered; send it again once the archive has room`)
	if strings.Contains(string(b), archive) {
		t.Errorf("the answer names the archive's path: %s", b)
	}
	if list, _ := w.fs.ListFiles(context.Background(), files.Filter{Clients: []string{client}, Limit: 10}); len(list) != 0 {
		t.Fatalf("an upload the archive refused left files: %+v", list)
	}
	if err := os.Remove(filepath.Join(archive, client)); err != nil {
		t.Fatal(err)
	}
	w.expect("POST", "/api/v1/files?name=u.csv&client="+client, usageCSV, http.StatusCreated, `"status":"received"`)
}
