package uiapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/authstore"
)

type excPage struct {
	Exceptions struct {
		TotalCount int
		Edges      []struct {
			Cursor string
			Node   map[string]any
		}
		PageInfo struct {
			EndCursor   string
			HasNextPage bool
		}
		CountsByCode []struct {
			Code  string
			Count int
		}
		CountsByStage []struct {
			Stage string
			Count int
		}
	}
}

const excQuery = `query($f: ExceptionFilter, $first: Int, $after: String) {
  exceptions(filter: $f, first: $first, after: $after) {
    totalCount
    edges { cursor node { id client recordId fileId line stage code field message status record } }
    pageInfo { endCursor hasNextPage }
    countsByCode { code count }
    countsByStage { stage count }
  }
}`

// TestExceptions: a client's token lists its client's exceptions only,
// page by page, with counts by code and stage that cover the whole
// filter; a client it does not cover is refused, not answered empty.
func TestExceptions(t *testing.T) {
	w := newWorld(t)
	var all excPage
	w.ok("acme-viewer", excQuery, nil, &all)
	if got := clientsOf(all); !slices.Equal(got, []string{w.acme}) {
		t.Errorf("acme's exceptions: clients %v", got)
	}
	if all.Exceptions.TotalCount != 3 || len(all.Exceptions.Edges) != 3 || all.Exceptions.PageInfo.HasNextPage {
		t.Errorf("acme's exceptions: %+v", all.Exceptions)
	}
	if c := all.Exceptions.CountsByCode; len(c) != 2 || c[0].Code != "BAD_QUANTITY" || c[0].Count != 2 || c[1].Code != "UNKNOWN_ACCOUNT" || c[1].Count != 1 {
		t.Errorf("counts by code: %+v", c)
	}
	if c := all.Exceptions.CountsByStage; len(c) != 2 || c[0].Stage != "mediate" || c[0].Count != 2 || c[1].Stage != "rate" {
		t.Errorf("counts by stage: %+v", c)
	}

	// Page by page, newest first, the same three.
	var seen []string
	after := ""
	for range 4 {
		var p excPage
		vars := map[string]any{"first": 2}
		if after != "" {
			vars["after"] = after
		}
		w.ok("acme-viewer", excQuery, vars, &p)
		for _, e := range p.Exceptions.Edges {
			seen = append(seen, e.Cursor)
		}
		if p.Exceptions.TotalCount != 3 {
			t.Errorf("page after %q: totalCount %d", after, p.Exceptions.TotalCount)
		}
		if !p.Exceptions.PageInfo.HasNextPage {
			break
		}
		after = p.Exceptions.PageInfo.EndCursor
	}
	var want []string
	for _, e := range all.Exceptions.Edges {
		want = append(want, e.Cursor)
	}
	if !slices.Equal(seen, want) || !slices.IsSortedFunc(want, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("pages: %v, want %v newest first", seen, want)
	}

	// Filters.
	var p excPage
	w.ok("admin", excQuery, map[string]any{"f": map[string]any{"client": w.beta, "code": "UNKNOWN_ACCOUNT"}}, &p)
	if p.Exceptions.TotalCount != 1 || p.Exceptions.Edges[0].Node["client"] != w.beta || p.Exceptions.Edges[0].Node["stage"] != "rate" {
		t.Errorf("beta's UNKNOWN_ACCOUNT: %+v", p.Exceptions)
	}
	w.ok("admin", excQuery, map[string]any{"f": map[string]any{"accountId": "A1", "stage": "mediate", "fileId": w.files[w.acme]}}, &p)
	if p.Exceptions.TotalCount != 1 || p.Exceptions.Edges[0].Node["client"] != w.acme {
		t.Errorf("acme's A1: %+v", p.Exceptions)
	}
	w.ok("admin", excQuery, map[string]any{"f": map[string]any{"from": "2000-01-01T00:00:00Z", "to": "2001-01-01T00:00:00Z"}}, &p)
	if p.Exceptions.TotalCount != 0 || len(p.Exceptions.Edges) != 0 || len(p.Exceptions.CountsByCode) != 0 {
		t.Errorf("a range with none: %+v", p.Exceptions)
	}
	var rec map[string]any
	_ = json.Unmarshal([]byte(`{}`), &rec)
	if node := all.Exceptions.Edges[2].Node; node["record"].(map[string]any)["quantity"] != "x" {
		t.Errorf("the record as it arrived: %v", node["record"])
	}

	_, r := w.query("acme-viewer", excQuery, map[string]any{"f": map[string]any{"client": w.beta}})
	w.refused("beta's exceptions", r)
	for name, f := range map[string]map[string]any{
		"status": {"status": "lost"}, "stage": {"stage": "bill"}, "code": {"code": "NOPE"},
		"fileId": {"fileId": "x"}, "from": {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
	} {
		_, r := w.query("admin", excQuery, map[string]any{"f": f})
		if !slices.Equal(r.codes(), []string{"BAD_INPUT"}) || !strings.Contains(r.Errors[0].Message, name) {
			t.Errorf("filter %v: %+v", f, r.Errors)
		}
	}
	_, r = w.query("admin", excQuery, map[string]any{"after": "nowhere"})
	if !slices.Equal(r.codes(), []string{"BAD_INPUT"}) {
		t.Errorf("a cursor that is none: %+v", r.Errors)
	}
}

// TestOneException: an exception with its file; another client's is null
// for a token that does not cover it, as one that does not exist.
func TestOneException(t *testing.T) {
	w := newWorld(t)
	const q = `query($id: ID!) { exception(id: $id) { id client code record file { id name client exceptions murs } history { action } } }`
	var out struct {
		Exception *struct {
			ID, Client, Code string
			File             struct {
				ID, Name, Client string
				Exceptions, MURs int
			}
			History []any
		}
	}
	w.ok("acme-viewer", q, map[string]any{"id": w.excs[w.acme]}, &out)
	if e := out.Exception; e == nil || e.ID != w.excs[w.acme] || e.File.ID != w.files[w.acme] || e.File.Client != w.acme || e.History == nil {
		t.Errorf("acme's exception: %+v", out.Exception)
	}
	for _, id := range []string{"0193a2b4-c5d6-7e8f-9012-3456789abcde", "not-an-id"} {
		out.Exception = nil
		w.ok("acme-viewer", q, map[string]any{"id": id}, &out)
		if out.Exception != nil {
			t.Errorf("exception %s for acme: %+v", id, out.Exception)
		}
	}
	_, r := w.query("acme-viewer", q, map[string]any{"id": w.excs[w.beta]})
	w.refused("beta's exception", r)
	if strings.Contains(r.Errors[0].Message, w.beta) {
		t.Errorf("the refusal names beta: %s", r.Errors[0].Message)
	}
}

// TestFilesAndMURs: files with their counts, MURs with totals by currency,
// each kept to the token's clients.
func TestFilesAndMURs(t *testing.T) {
	w := newWorld(t)
	var fs struct {
		Files []struct {
			ID, Client, Status string
			Records            *int
		}
		File *struct{ ID string }
	}
	w.ok("acme-viewer", `query($id: ID!) { files { id client status records } file(id: $id) { id } }`, map[string]any{"id": w.files[w.acme]}, &fs)
	if len(fs.Files) != 1 || fs.Files[0].ID != w.files[w.acme] || fs.Files[0].Records != nil || fs.File == nil {
		t.Errorf("acme's files: %+v", fs)
	}
	_, r := w.query("acme-viewer", `{ files(filter: {client: "`+w.beta+`"}) { id } }`, nil)
	w.refused("beta's files", r)
	_, r = w.query("acme-viewer", `{ file(id: "`+w.files[w.beta]+`") { id } }`, nil)
	w.refused("beta's file", r)

	var ms struct {
		MURs struct {
			TotalCount int
			Edges      []struct {
				Node struct{ Client, Currency, NetAmount string }
			}
			Totals []struct {
				Currency, Quantity, GrossAmount, DiscountAmount, NetAmount string
				MURs                                                       int
			}
		}
	}
	w.ok("acme-viewer", `{ murs(first: 1) { totalCount edges { node { client currency netAmount } } totals { currency murs quantity grossAmount discountAmount netAmount } } }`, nil, &ms)
	if ms.MURs.TotalCount != 2 || len(ms.MURs.Edges) != 1 || ms.MURs.Edges[0].Node.Client != w.acme {
		t.Errorf("acme's MURs: %+v", ms.MURs)
	}
	if tt := ms.MURs.Totals; len(tt) != 2 || tt[0].Currency != "EUR" || tt[1].Currency != "USD" || tt[1].GrossAmount != "1.50" ||
		tt[1].DiscountAmount != "0.50" || tt[1].NetAmount != "1.00" || tt[1].MURs != 1 || tt[1].Quantity != "2" {
		t.Errorf("totals: %+v", tt)
	}
	_, r = w.query("acme-viewer", `{ murs(filter: {client: "`+w.beta+`"}) { totalCount } }`, nil)
	w.refused("beta's MURs", r)
}

// TestFeedEvents: the catalog sync's errors, kept to the token's
// clients; reprocessing needs an operator of the event's client and is
// audited.
func TestFeedEvents(t *testing.T) {
	w := newWorld(t)
	var out struct {
		FeedEvents []struct{ ID, Client, Outcome, Code, Message string }
	}
	w.ok("acme-viewer", `{ feedEvents(filter: {outcome: "failed"}) { id client outcome code message } }`, nil, &out)
	if len(out.FeedEvents) != 1 || out.FeedEvents[0].ID != w.acmeEvent || out.FeedEvents[0].Message == "" {
		t.Errorf("acme's failed events: %+v", out.FeedEvents)
	}
	const m = `mutation($ids: [ID!], $client: String) { reprocessFeedEvents(ids: $ids, client: $client) { id outcome } }`
	_, r := w.query("acme-viewer", m, map[string]any{"ids": []string{w.acmeEvent}})
	w.refused("a viewer's reprocess", r)
	_, r = w.query("acme-operator", m, map[string]any{"ids": []string{w.betaEvent}})
	w.refused("beta's event", r)
	_, r = w.query("acme-operator", m, map[string]any{"client": w.beta})
	w.refused("beta's events by filter", r)
	var rep struct {
		ReprocessFeedEvents []struct{ ID, Outcome string }
	}
	w.ok("acme-operator", m, map[string]any{"client": w.acme}, &rep)
	if len(rep.ReprocessFeedEvents) != 1 || rep.ReprocessFeedEvents[0].ID != w.acmeEvent || rep.ReprocessFeedEvents[0].Outcome != "failed" {
		t.Errorf("acme's reprocess: %+v", rep)
	}
	var audit struct {
		AuditLog []struct{ Action, Target, Client, Actor string }
	}
	w.ok("acme-viewer", `{ auditLog(filter: {action: "feed.reprocess"}) { action target client actor } }`, nil, &audit)
	if len(audit.AuditLog) != 1 || audit.AuditLog[0].Target != "feed_event:"+w.acmeEvent || !strings.HasPrefix(audit.AuditLog[0].Actor, "acme-operator-") {
		t.Errorf("the audit log: %+v", audit.AuditLog)
	}
	_, r = w.query("acme-viewer", `{ auditLog(filter: {client: "`+w.beta+`"}) { action } }`, nil)
	w.refused("beta's audit log", r)
}

// TestSettings: only an admin token for every client reads and changes
// the system settings; a bad value is refused with the reason.
func TestSettings(t *testing.T) {
	w := newWorld(t)
	for _, tok := range []string{"acme-admin", "viewer-all", "acme-operator"} {
		_, r := w.query(tok, `{ settings { key } }`, nil)
		w.refused(tok+" reading settings", r)
		_, r = w.query(tok, `mutation { setSetting(key: "mur_sync.batch_size", value: 10) { key } }`, nil)
		w.refused(tok+" changing a setting", r)
	}
	var out struct {
		SetSetting struct {
			Key       string
			Value     json.RawMessage
			IsDefault bool
			UpdatedBy string
		}
	}
	w.ok("admin", `mutation { setSetting(key: "mur_sync.batch_size", value: 10) { key value isDefault updatedBy } }`, nil, &out)
	if string(out.SetSetting.Value) != "10" || out.SetSetting.IsDefault || !strings.HasPrefix(out.SetSetting.UpdatedBy, "admin-") {
		t.Errorf("set: %+v", out.SetSetting)
	}
	_, r := w.query("admin", `mutation { setSetting(key: "mur_sync.batch_size", value: "many") { key } }`, nil)
	if !slices.Equal(r.codes(), []string{"BAD_INPUT"}) {
		t.Errorf("a bad value: %+v", r.Errors)
	}
	_, r = w.query("admin", `mutation { resetSetting(key: "no.such") { key } }`, nil)
	if !slices.Equal(r.codes(), []string{"NOT_FOUND"}) {
		t.Errorf("an unknown key: %+v", r.Errors)
	}
	var all struct{ Settings []struct{ Key string } }
	w.ok("admin", `{ settings { key } }`, nil, &all)
	if len(all.Settings) < 5 {
		t.Errorf("settings: %+v", all.Settings)
	}
}

// TestLimits: depth, size, page and complexity limits answer errors that
// say which, and nothing runs.
func TestLimits(t *testing.T) {
	w := newWorld(t)
	deep := `{ exceptions { edges { node { file { id } history { before } } } } }`
	if _, r := w.query("admin", deep, nil); len(r.Errors) != 0 {
		t.Errorf("a query within the depth: %+v", r.Errors)
	}
	for what, q := range map[string]string{
		"depth":     `{ __type(name: "Query") { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } }`,
		"first":     `{ exceptions(first: 501) { totalCount } }`,
		"cost":      `{ ` + strings.Repeat(`x: files(first: 500) { id } `, 0) + costly() + ` }`,
		"length":    `{ me { name } }` + strings.Repeat(" ", MaxQueryLength),
		"selection": `{ ` + strings.Repeat(`me { name tokenId } `, MaxSelections) + ` }`,
	} {
		code, r := w.query("admin", q, nil)
		if len(r.Errors) == 0 || code != http.StatusOK && code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d %s", what, code, r.Data)
		}
	}
	big := `{"query": "{ me { name } }", "variables": {"x": "` + strings.Repeat("a", MaxBody) + `"}}`
	if code, body := w.post("admin", "/graphql", []byte(big)); code != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "1 MiB") {
		t.Errorf("a large body: %d %.200s", code, body)
	}
	if code, _ := w.post("", "/graphql", []byte(`{"query":"{ me { name } }"}`)); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
}

// costly is a query of more lists than MaxCost allows.
func costly() string {
	var b strings.Builder
	for i := range MaxCost/MaxFirst + 1 {
		fmt.Fprintf(&b, "f%d: files(first: %d) { id } ", i, MaxFirst)
	}
	return b.String()
}

// TestInternalErrors: a database that fails is an error that refers to
// the log, with no SQL and no driver's words.
func TestInternalErrors(t *testing.T) {
	w := newWorld(t)
	closed, err := store.Open(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	g := newAPI(closed, nil, w.gql.Logger)
	if err := g.Init(); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{DB: closed, Auth: auth.NewService(authstore.New(w.st), authstore.New(w.st)), Logger: w.gql.Logger}
	srv.MountConsole(g.Handler(), Console())
	w.http = httptest.NewServer(srv.Handler())
	defer w.http.Close()
	_, r := w.query("admin", `{ exceptions { totalCount edges { cursor } } }`, nil)
	if len(r.Errors) == 0 || r.codes()[0] != "INTERNAL" || strings.Contains(r.Errors[0].Message, "closed") ||
		strings.Contains(r.Errors[0].Message, "SELECT") || !strings.Contains(r.Errors[0].Message, "see the server log (ref ") {
		t.Fatalf("%+v", r.Errors)
	}
	ref := r.Errors[0].Message[strings.LastIndex(r.Errors[0].Message, "ref ")+4 : len(r.Errors[0].Message)-1]
	if !strings.Contains(w.logs.String(), "ref="+ref) || !strings.Contains(w.logs.String(), "closed pool") {
		t.Errorf("the log has no ref %s with the cause:\n%s", ref, w.logs.String())
	}
}

// TestConsoleFiles: the page and its assets answer without a token;
// nothing else does.
func TestConsoleFiles(t *testing.T) {
	w := newWorld(t)
	for path, want := range map[string]int{"/": 200, "/console/app.js": 200, "/console/app.css": 200,
		"/console/nothing.js": 404, "/index.html": 401, "/console/../graphql": 401} {
		resp, err := http.Get(w.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if want == 200 && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: no content security policy", path)
		}
	}
}

// TestCatalogHealth: the console's count of feed events that need a
// person keeps to the token's clients.
func TestCatalogHealth(t *testing.T) {
	w := newWorld(t)
	var out struct {
		Health struct{ Catalog struct{ Failed, Pending int } }
	}
	w.ok("acme-viewer", `{ health { catalog { failed pending } } }`, nil, &out)
	if out.Health.Catalog.Failed != 1 || out.Health.Catalog.Pending != 0 {
		t.Errorf("acme's catalog health: %+v, want 1 failed and 0 pending", out.Health.Catalog)
	}
	w.ok("admin", `{ health { catalog { failed pending } } }`, nil, &out)
	if out.Health.Catalog.Failed < 2 {
		t.Errorf("every client's catalog health: %+v, want at least acme's and beta's failed event", out.Health.Catalog)
	}
}
