package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vivace.dev/vivace/internal/fakecore"
)

// browser starts Debian's chromium headless with a fresh profile, or
// skips where it is not installed (scripts/install-deps.sh --browser
// installs it).
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/install-deps.sh --browser installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return bctx
}

// screenshots is where the console test saves its screenshots:
// VIVACE_SCREENSHOTS (docs/images when the docs are updated), else a
// temporary directory.
func screenshots(t *testing.T) string {
	if dir := os.Getenv("VIVACE_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

func shot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.CaptureScreenshot()(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
	})
}

// into runs a and keeps its value in dst.
func into[T any](a chromedp.Action[T], dst *T) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := a(ctx, t)
		*dst = v
		return err
	})
}

// login opens the console and logs in with token.
func login(api, token string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(api+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("nav")),
	)
}

// gqlAs sends a GraphQL request from the page, with the token the page
// logged in with, and keeps the answer's JSON in out.
func gqlAs(query string, out *string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`fetch("/graphql", {method: "POST", headers: {"Content-Type": "application/json",
		Authorization: "Bearer " + sessionStorage.getItem("vivace-token")}, body: JSON.stringify({query: %q})}).then(r => r.text())`, query)
	return into(chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise), out)
}

// setQuantity edits the record in the editor: its quantity becomes q.
func setQuantity(q string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const t = document.getElementById("ed-record");
			const r = JSON.parse(t.value); r.quantity = %q; t.value = JSON.stringify(r, null, 2); })()`, q))(ctx, t)
		return err
	})
}

// until waits for a JavaScript condition to hold.
func until(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(3*time.Minute))(ctx, t)
		return err
	})
}

// run runs the steps one by one, each within 3 minutes (a record's way
// through the pipeline on a busy machine included), and names the one
// that fails.
func run(t *testing.T, b context.Context, what string, d *devProcess, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b); err != nil { // the browser starts here, without a step's timeout
		t.Fatalf("%s: starting the browser: %v", what, err)
	}
	for i, s := range steps {
		ctx, cancel := context.WithTimeout(b, 3*time.Minute)
		_, err := chromedp.Run(ctx, s)
		cancel()
		if err != nil {
			ctx, cancel := context.WithTimeout(b, 10*time.Second)
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#flash").textContent + " | " + document.body.innerText.slice(0, 2000)`))
			cancel()
			t.Fatalf("%s: step %d: %v\nthe page: %s\n%s", what, i+1, err, page, d.log.String())
		}
	}
}

// TestConsole drives the console in headless Chromium over the sample
// data set: log in, the monitoring screen with the file's counts, the
// exceptions filtered by code with their counts, the record editor with
// the validation error; a viewer sees no edit controls and the API
// refuses its mutations anyway.
func TestConsole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	d := startDevOwnDB(t)
	demo := filepath.Join(repoRoot(t), "tests/testdata/demo")
	if out, errOut, code := d.run(ctx, "feed", "publish", "--wait", filepath.Join(demo, "catalog.jsonl")); code != 0 {
		t.Fatalf("feed publish: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code := d.run(ctx, "ingest", "--client", "demo", "--wait", filepath.Join(demo, "usage.csv"))
	if code != 0 {
		t.Fatalf("ingest: exit %d\n%s\n%s", code, out, errOut)
	}
	file := decodeLines[fileResult](t, out)[0]
	// A feed event the catalog sync refuses: an account without a status.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"event_id":"demo-ev-bad-1","client":"demo","entity":"account","entity_id":"A900","version":1,`+
		`"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"currency":"USD"}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, _ := d.run(ctx, "feed", "publish", "--wait", bad); !strings.Contains(out, `"failed":1`) {
		t.Fatalf("feed publish of a bad event: %s %s", out, errOut)
	}
	admin, err := os.ReadFile(filepath.Join(d.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = d.run(ctx, "token", "create", "--name", "console-viewer", "--client", "demo", "--role", "viewer")
	if code != 0 {
		t.Fatalf("token create: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	viewer := lines[len(lines)-1]
	dir := screenshots(t)

	b := browser(t, ctx)
	var filesText, countsText, editorError, record, refusedText, murList, feedText string
	run(t, b, "console as admin", d,
		chromedp.Navigate(d.API+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		shot(dir, "console-login"),
		login(d.API, strings.TrimSpace(string(admin))),
		chromedp.WaitVisible(chromedp.CSS(`#files tbody tr[data-file="`+file.FileID+`"]`)),
		into(chromedp.Text(chromedp.CSS("#files tbody")), &filesText),
		shot(dir, "console-monitor"),
		// Exceptions, by key: 2, then filter by code.
		chromedp.KeyEvent("2"),
		chromedp.WaitVisible(chromedp.ID("exc-filter")),
		chromedp.WaitVisible(chromedp.CSS(`#exc-counts button[data-code="BAD_QUANTITY"]`)),
		chromedp.Click(chromedp.CSS(`#exc-counts button[data-code="BAD_QUANTITY"]`)),
		until(`document.querySelectorAll("#exc-table tbody tr").length === 2 && document.querySelector("#exc-counts").textContent.startsWith("2 ")`),
		into(chromedp.Text(chromedp.ID("exc-counts")), &countsText),
		shot(dir, "console-exceptions"),
		chromedp.Click(chromedp.CSS(`#exc-table tbody tr[data-record="r-0005"]`)),
		chromedp.WaitVisible(chromedp.ID("editor")),
		into(chromedp.Text(chromedp.ID("ed-error")), &editorError),
		into(chromedp.Value(chromedp.ID("ed-record")), &record),
		shot(dir, "console-editor"),
		// An edit that still fails is refused with the reason.
		setQuantity("five"),
		chromedp.Click(chromedp.ID("ed-save")),
		until(`document.querySelector("#ed-result").textContent.includes("BAD_QUANTITY")`),
		into(chromedp.Text(chromedp.ID("ed-result")), &refusedText),
		shot(dir, "console-editor-refused"),
		setQuantity("5"),
		chromedp.Click(chromedp.ID("ed-save")),
		until(`document.querySelector("#ed-result").textContent.startsWith("saved") && document.querySelector("#ed-history").textContent.includes("exception.edit")`),
		chromedp.Click(chromedp.ID("ed-reprocess")),
		until(`document.querySelector("#flash").textContent.startsWith("1 sent back")`),
		// It becomes a MUR: the exception is resolved, the file's counts move.
		until(`[...document.querySelectorAll("#ed-meta dd")].some(d => d.textContent === "resolved (rated)")`),
		shot(dir, "console-editor-resolved"),
		chromedp.KeyEvent("1"),
		until(`(() => { const r = document.querySelector('#files tbody tr[data-file="`+file.FileID+`"]'); return r && r.querySelector(".files-murs").textContent === "8" && r.querySelector(".files-exceptions").textContent === "11"; })()`),
		shot(dir, "console-monitor-after"),
		gqlAs(`{ murs(filter: {client: "demo"}, first: 100) { edges { node { recordId quantity } } } }`, &murList),
		chromedp.KeyEvent("3"),
		chromedp.WaitVisible(chromedp.CSS(`#feed tbody input[type=checkbox]`)),
		into(chromedp.Text(chromedp.CSS("#feed tbody")), &feedText),
		shot(dir, "console-catalog"),
		chromedp.Click(chromedp.CSS(`#feed tbody input[type=checkbox]`)),
		chromedp.Click(chromedp.ID("feed-reprocess-sel")),
		until(`document.querySelector("#flash").textContent === "0 of 1 applied"`),
		chromedp.KeyEvent("4"),
		chromedp.WaitVisible(chromedp.ID("batches")),
	)
	if !strings.Contains(filesText, "usage.csv") || !strings.Contains(filesText, "done") {
		t.Errorf("monitoring's files: %q", filesText)
	}
	if !strings.HasPrefix(countsText, "2 exceptions") {
		t.Errorf("counts: %q", countsText)
	}
	if !strings.Contains(editorError, "BAD_QUANTITY") || !strings.Contains(record, `"abc"`) {
		t.Errorf("editor: error %q, record %s", editorError, record)
	}
	if !strings.Contains(feedText, "demo-ev-bad-1") || !strings.Contains(feedText, "status") {
		t.Errorf("catalog sync errors: %q", feedText)
	}
	if !strings.Contains(refusedText, "quantity") {
		t.Errorf("a refused edit: %q", refusedText)
	}
	if !strings.Contains(murList, `{"recordId":"r-0005","quantity":"5"}`) {
		t.Errorf("r-0005 as a MUR: %s", murList)
	}

	// A viewer: no edit controls anywhere, and the API refuses its
	// mutation when it is sent all the same.
	v := browser(t, ctx)
	var editControls, rowsShown int
	var answer, who string
	run(t, v, "console as viewer", d,
		login(d.API, viewer),
		chromedp.Click(chromedp.CSS(`#nav button[data-view="exceptions"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#exc-counts button[data-code="BAD_QUANTITY"]`)),
		chromedp.Click(chromedp.CSS(`#exc-table tbody tr:first-child`)),
		chromedp.WaitVisible(chromedp.ID("editor")),
		into(chromedp.Evaluate[int](`document.querySelectorAll(".edit, #ed-save, #ed-reprocess, #ed-discard, #exc-table input[type=checkbox]").length`), &editControls),
		into(chromedp.Evaluate[int](`document.querySelectorAll("#exc-table tbody tr").length`), &rowsShown),
		into(chromedp.Text(chromedp.ID("who")), &who),
		shot(dir, "console-viewer"),
		gqlAs(`mutation { reprocessExceptions(filter: {client: "demo", code: "BAD_QUANTITY"}) { accepted } }`, &answer),
	)
	if rowsShown != 11 { // the sample file's exceptions (tests/testdata/demo/README.md)
		t.Errorf("the viewer's list shows %d rows, want 11 (12 less the one reprocessed)", rowsShown)
	}
	if editControls != 0 {
		t.Errorf("the viewer (%s) sees %d edit controls", who, editControls)
	}
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Extensions struct{ Code string } }
	}
	if err := json.Unmarshal([]byte(answer), &r); err != nil || string(r.Data) != "null" || len(r.Errors) != 1 || r.Errors[0].Extensions.Code != "FORBIDDEN" {
		t.Errorf("a viewer's mutation: %s", answer)
	}
}

// graphql sends a query to the running vivace dev with token and decodes
// the answer.
func graphql(ctx context.Context, t *testing.T, d *devProcess, token, query string, out any) []string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, err := http.NewRequestWithContext(ctx, "POST", d.API+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Extensions struct{ Code string } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("graphql %s: %d: %v", query, resp.StatusCode, err)
	}
	var codes []string
	for _, e := range r.Errors {
		codes = append(codes, e.Extensions.Code)
	}
	if out != nil && len(codes) == 0 {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("graphql %s: %v: %s", query, err, r.Data)
		}
	}
	return codes
}

// TestConsoleSyncRetry: records the core refuses are MUR sync failures in
// GraphQL and on the console's MUR sync screen; retrySync sends them
// again once the core takes them, and a viewer may not.
func TestConsoleSyncRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	core, client, flags := startCore(t, "console")
	d := startDevOwnDB(t, flags...)
	usage := prepareClient(ctx, t, d, client, 300, 20)
	ingestWait(ctx, t, d, client, usage)
	refused := anAccount(t, usage)
	if err := core.SetFaults(fakecore.Faults{RejectAccounts: map[string]fakecore.Rejection{refused: {}}}); err != nil {
		t.Fatal(err)
	}
	first := syncRun(ctx, t, d, 0, "run", "--client", client)
	if first.Failed == 0 {
		t.Fatalf("no record refused: %+v", first)
	}
	adminToken, err := os.ReadFile(filepath.Join(d.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(adminToken))
	out, errOut, code := d.run(ctx, "token", "create", "--name", "sync-viewer", "--client", client, "--role", "viewer")
	if code != 0 {
		t.Fatalf("token create: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	viewer := lines[len(lines)-1]

	var failed struct {
		SyncRecords []struct{ ID, AccountID, BatchID, ErrorMessage string }
	}
	graphql(ctx, t, d, admin, `{ syncRecords(client: "`+client+`", status: "failed", first: 500) { id accountId batchId errorMessage } }`, &failed)
	if len(failed.SyncRecords) != first.Failed {
		t.Fatalf("%d failed records in GraphQL, the cycle says %d", len(failed.SyncRecords), first.Failed)
	}
	for _, r := range failed.SyncRecords {
		if r.AccountID != refused || r.ErrorMessage == "" {
			t.Fatalf("failed record %+v", r)
		}
	}

	// The console's MUR sync screen shows them, with a retry for an
	// operator and none for a viewer.
	b := browser(t, ctx)
	var retries, viewerRetries int
	run(t, b, "MUR sync as admin", d,
		login(d.API, admin),
		chromedp.Click(chromedp.CSS(`#nav button[data-view="sync"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#records tbody tr td button`)),
		into(chromedp.Evaluate[int](`document.querySelectorAll("#records tbody button").length`), &retries),
		shot(screenshots(t), "console-sync-failed"),
	)
	if retries != first.Failed {
		t.Errorf("%d retry buttons for %d failed records", retries, first.Failed)
	}
	v := browser(t, ctx)
	run(t, v, "MUR sync as viewer", d,
		login(d.API, viewer),
		chromedp.Click(chromedp.CSS(`#nav button[data-view="sync"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#records tbody tr td`)),
		into(chromedp.Evaluate[int](`document.querySelectorAll("#records button, #batches button").length`), &viewerRetries),
	)
	if viewerRetries != 0 {
		t.Errorf("the viewer sees %d retry buttons", viewerRetries)
	}

	if err := core.SetFaults(fakecore.Faults{}); err != nil {
		t.Fatal(err)
	}
	retry := `mutation { retrySync(client: "` + client + `", batchId: "` + failed.SyncRecords[0].BatchID + `") { aggregates synced failed jobIds error } }`
	if codes := graphql(ctx, t, d, viewer, retry, nil); !slices.Equal(codes, []string{"FORBIDDEN"}) {
		t.Errorf("a viewer's retry: %v", codes)
	}
	var again struct {
		RetrySync struct {
			Aggregates, Synced, Failed int
			JobIDs                     []string
			Error                      string
		}
	}
	if codes := graphql(ctx, t, d, admin, retry, &again); len(codes) != 0 {
		t.Fatalf("retry: %v", codes)
	}
	if r := again.RetrySync; r.Synced == 0 || r.Failed != 0 || r.Synced != r.Aggregates || len(r.JobIDs) != 1 || r.Error != "" {
		t.Fatalf("retry: %+v", r)
	}
	var audit struct {
		AuditLog []struct{ Action, Target string }
	}
	graphql(ctx, t, d, admin, `{ auditLog(filter: {action: "sync.retry"}) { action target } }`, &audit)
	if len(audit.AuditLog) != 1 || audit.AuditLog[0].Target != "sync_batch:"+failed.SyncRecords[0].BatchID {
		t.Errorf("the retry's audit entry: %+v", audit.AuditLog)
	}
}
