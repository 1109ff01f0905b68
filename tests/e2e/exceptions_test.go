package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/api"
)

// worksCatalog: one usage type at 0.50 a call, one account with a plan.
const worksCatalog = `{"event_id":"works-1","client":"works","entity":"usage_type","entity_id":"CALL","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{}}
{"event_id":"works-2","client":"works","entity":"plan","entity_id":"P","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"rates":[{"usage_type":"CALL","currency":"USD","model":"per_unit","unit_price":"0.50"}]}}
{"event_id":"works-3","client":"works","entity":"account","entity_id":"A1","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"currency":"USD","status":"active"}}
{"event_id":"works-4","client":"works","entity":"subscription","entity_id":"S1","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"account_id":"A1","plan_id":"P"}}
`

// TestWorkingExceptions: a file with a BAD_QUANTITY and an
// UNKNOWN_ACCOUNT record is worked from the command line as an operator
// would: the bad quantity edited and reprocessed becomes a MUR and the
// file's counts move; reprocessing it again makes no second MUR; a
// corrected copy of the unknown account's record, sent in another file,
// becomes a MUR and resolves the old exception as superseded, naming its
// file and line; what is left is discarded with a reason.
func TestWorkingExceptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d := startDev(t, "", "--clients", write("clients.yaml", "clients:\n  works: {}\n"))
	if out, errOut, code := d.run(ctx, "feed", "publish", "--wait", write("catalog.jsonl", worksCatalog)); code != 0 {
		t.Fatalf("feed publish: exit %d\n%s\n%s", code, out, errOut)
	}
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	out, errOut, code := d.run(ctx, "ingest", "--client", "works", "--wait", write("usage.csv",
		"record_id,account_id,usage_type,quantity,usage_time\n"+
			"w1,A1,CALL,2,"+at+"\n"+
			"w2,A1,CALL,two,"+at+"\n"+ // BAD_QUANTITY
			"w3,GHOST,CALL,1,"+at+"\n"+ // UNKNOWN_ACCOUNT
			"w4,A1,CALL,,"+at+"\n")) // MISSING_FIELD
	files := decodeLines[fileResult](t, out)
	if code != 0 || len(files) != 1 || files[0].MURs != 1 || files[0].Exceptions != 3 {
		t.Fatalf("ingest: exit %d\n%s\n%s", code, out, errOut)
	}
	file := files[0].FileID

	out, errOut, code = d.run(ctx, "exceptions", "show", "--client", "works")
	list := decodeLines[api.ExceptionDetail](t, out)
	if code != 0 || len(list) != 3 || !strings.Contains(errOut, "3 shown of 3") || !strings.Contains(errOut, "mediate/BAD_QUANTITY 1") {
		t.Fatalf("show: exit %d\n%s\n%s", code, out, errOut)
	}
	byCode := map[string]string{}
	for _, e := range list {
		byCode[e.Code] = e.ExceptionID
	}
	badQty, unknown, missing := byCode["BAD_QUANTITY"], byCode["UNKNOWN_ACCOUNT"], byCode["MISSING_FIELD"]
	out, _, _ = d.run(ctx, "exceptions", "show", "--file", file, "--code", "UNKNOWN_ACCOUNT", "--stage", "rate")
	if got := decodeLines[api.ExceptionDetail](t, out); len(got) != 1 || got[0].ExceptionID != unknown || got[0].Fields["account_id"] != "GHOST" {
		t.Fatalf("show by file, code and stage: %s", out)
	}

	// An edit that fails the checks is refused naming them; a good one is
	// kept beside the record as it arrived.
	if out, errOut, code := d.run(ctx, "exceptions", "edit", badQty, "--set", "quantity=-2"); code != 1 || !strings.Contains(errOut, "BAD_QUANTITY") {
		t.Fatalf("a bad edit: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = d.run(ctx, "exceptions", "edit", badQty, "--set", "quantity=3")
	edited := decodeLines[api.ExceptionDetail](t, out)
	if code != 0 || len(edited) != 1 || edited[0].Fields["quantity"] != "3" || !strings.Contains(string(edited[0].Record), `"two"`) {
		t.Fatalf("edit: exit %d\n%s\n%s", code, out, errOut)
	}

	// Reprocessed, it becomes a MUR; the file's counts move.
	if out, errOut, code := d.run(ctx, "exceptions", "reprocess", badQty); code != 0 || !strings.Contains(out, badQty) {
		t.Fatalf("reprocess: exit %d\n%s\n%s", code, out, errOut)
	}
	e := waitException(ctx, t, d, badQty, func(e api.ExceptionDetail) bool { return e.Status == "resolved" })
	if e.Resolution != "rated" || e.Attempts != 2 {
		t.Fatalf("resolved: %+v", e)
	}
	f := waitCounts(ctx, t, d, file, func(f fileResult) bool { return f.MURs == 2 })
	if f.Exceptions != 2 || f.Status != "done" {
		t.Fatalf("file after the reprocess: %+v", f)
	}
	// Again: nothing sent, no second MUR.
	if out, errOut, code := d.run(ctx, "exceptions", "reprocess", badQty); code != 1 || !strings.Contains(out, "not open") {
		t.Fatalf("second reprocess: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, _ = d.run(ctx, "murs", "export", "--client", "works")
	if n := strings.Count(out, `"record_id":"w2"`); n != 1 {
		t.Fatalf("%d MURs of w2:\n%s", n, out)
	}

	// The unknown account reprocessed as it is fails again, open with one
	// more attempt.
	if out, errOut, code := d.run(ctx, "exceptions", "reprocess", "--file", file, "--code", "UNKNOWN_ACCOUNT"); code != 0 || !strings.Contains(out, `"done":1`) {
		t.Fatalf("reprocess by filter: exit %d\n%s\n%s", code, out, errOut)
	}
	waitException(ctx, t, d, unknown, func(e api.ExceptionDetail) bool { return e.Status == "open" && e.Attempts == 2 })

	// A corrected copy (same record id, right account) in another file
	// becomes a MUR; the old exception is superseded, naming the source.
	out, errOut, code = d.run(ctx, "ingest", "--client", "works", "--wait", write("fixed.csv",
		"record_id,account_id,usage_type,quantity,usage_time\nw3,A1,CALL,1,"+at+"\n"))
	fixed := decodeLines[fileResult](t, out)
	if code != 0 || len(fixed) != 1 || fixed[0].MURs != 1 {
		t.Fatalf("corrected copy: exit %d\n%s\n%s", code, out, errOut)
	}
	e = waitException(ctx, t, d, unknown, func(e api.ExceptionDetail) bool { return e.Status == "resolved" })
	if e.Resolution != "superseded" || e.SupersededBy == nil || e.SupersededBy.FileID != fixed[0].FileID || e.SupersededBy.Line != 2 ||
		!strings.Contains(e.Reason, fixed[0].FileID) {
		t.Fatalf("superseded: %+v", e)
	}

	// What is left is discarded by filter, with a reason, as a job.
	if _, errOut, code := d.run(ctx, "exceptions", "discard", "--client", "works"); code == 0 || !strings.Contains(errOut, "reason") {
		t.Fatalf("discard without a reason: exit %d %s", code, errOut)
	}
	out, errOut, code = d.run(ctx, "exceptions", "discard", "--client", "works", "--reason", "test line without quantity")
	jobs := decodeLines[api.ExceptionJob](t, out)
	if code != 0 || len(jobs) != 1 || jobs[0].Status != "done" || jobs[0].Done != 1 {
		t.Fatalf("discard: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, _ = d.run(ctx, "exceptions", "show", missing)
	got := decodeLines[api.ExceptionDetail](t, out)
	if len(got) != 1 || got[0].Status != "discarded" || got[0].Reason != "test line without quantity" || len(got[0].History) != 1 ||
		got[0].History[0].Action != "exception.discard" || got[0].History[0].Actor == "" {
		t.Fatalf("discarded: %s", out)
	}
	if f, _ := showFile(ctx, t, d, file); f.Exceptions != 2 || f.MURs != 2 || f.Records != 4 {
		t.Fatalf("file at the end: %+v", f)
	}
}

func waitException(ctx context.Context, t *testing.T, d *devProcess, id string, ok func(api.ExceptionDetail) bool) api.ExceptionDetail {
	t.Helper()
	for {
		out, errOut, code := d.run(ctx, "exceptions", "show", id)
		if got := decodeLines[api.ExceptionDetail](t, out); code == 0 && len(got) == 1 && ok(got[0]) {
			return got[0]
		} else if ctx.Err() != nil {
			t.Fatalf("exception %s never reached the state wanted: exit %d\n%s\n%s", id, code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func showFile(ctx context.Context, t *testing.T, d *devProcess, id string) (fileResult, error) {
	t.Helper()
	out, errOut, code := d.run(ctx, "files", "show", id)
	got := decodeLines[fileResult](t, out)
	if code != 0 || len(got) != 1 {
		return fileResult{}, fmt.Errorf("files show: exit %d %s", code, errOut)
	}
	return got[0], nil
}

func waitCounts(ctx context.Context, t *testing.T, d *devProcess, id string, ok func(fileResult) bool) fileResult {
	t.Helper()
	for {
		f, err := showFile(ctx, t, d, id)
		if err == nil && ok(f) {
			return f
		} else if ctx.Err() != nil {
			t.Fatalf("file %s never reached the state wanted: %+v %v", id, f, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
