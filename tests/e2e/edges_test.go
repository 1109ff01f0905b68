package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// edgesCatalog is a small catalog for client edges: one usage type, a
// plan at 0.50 a call, two accounts, and 4 free calls a month for A1.
const edgesCatalog = `{"event_id":"edges-1","client":"edges","entity":"usage_type","entity_id":"CALL","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{}}
{"event_id":"edges-2","client":"edges","entity":"plan","entity_id":"P","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"rates":[{"usage_type":"CALL","currency":"USD","model":"per_unit","unit_price":"0.50"}]}}
{"event_id":"edges-3","client":"edges","entity":"account","entity_id":"A1","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"currency":"USD","status":"active"}}
{"event_id":"edges-4","client":"edges","entity":"account","entity_id":"A2","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"currency":"USD","status":"active"}}
{"event_id":"edges-5","client":"edges","entity":"subscription","entity_id":"S1","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"account_id":"A1","plan_id":"P"}}
{"event_id":"edges-6","client":"edges","entity":"subscription","entity_id":"S2","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"account_id":"A2","plan_id":"P"}}
{"event_id":"edges-7","client":"edges","entity":"discount","entity_id":"FREE4","version":1,"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"account_id":"A1","kind":"free_units","value":"4"}}
`

// edgesClients reads edges' usage_time as London wall-clock time.
const edgesClients = `clients:
  edges:
    usage_time:
      format: "2006-01-02 15:04:05"
      zone: Europe/London
    validation:
      max_age: 87600h
`

// TestEdgesOfUsage: what a new user runs into first, each answered
// clearly and each command returning: a file that is not usage, a
// misspelt client, a client's own timestamp format, rate_detail's
// numbers, the exports' filters, and the files commands, cancel included.
func TestEdgesOfUsage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
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
	d := startDev(t, "", "--clients", write("clients.yaml", edgesClients))
	if out, errOut, code := d.run(ctx, "feed", "publish", "--wait", write("catalog.jsonl", edgesCatalog)); code != 0 {
		t.Fatalf("feed publish: exit %d\n%s\n%s", code, out, errOut)
	}

	// Prose is not usage: refused, naming its columns and columns:.
	prose := write("prose.txt", "It was a bright cold day in April, and the clocks were striking thirteen.\n"+
		"Winston Smith, his chin nuzzled into his breast, slipped quickly through the glass doors.\n")
	out, errOut, code := d.run(ctx, "ingest", "--client", "edges", "--wait", prose)
	res := decodeLines[fileResult](t, out)
	if code != 1 || len(res) != 1 || res[0].Status != "rejected" ||
		!strings.Contains(res[0].Reason, `its columns are "It was a bright cold day in April"`) || !strings.Contains(res[0].Reason, "under columns:") {
		t.Fatalf("prose: exit %d\n%s\n%s", code, out, errOut)
	}

	// A misspelt client is refused before anything is sent, and nothing
	// of it is registered; --new-client takes it on purpose.
	usage := write("usage.csv", "record_id,account_id,usage_type,quantity,usage_time,cell\n"+
		"e1,A1,CALL,10,2026-07-01 10:00:00,C1\n"+ // 09:00 UTC (summer time); 4 of the 10 free
		"e2,A2,CALL,2,2026-07-02 10:00:00,C2\n"+
		"e3,A2,CALL,1,2026-07-02T10:00:00Z,C3\n") // not the client's format: BAD_TIMESTAMP
	out, errOut, code = d.run(ctx, "ingest", "--client", "edgez", "--wait", usage)
	if code != 1 || !strings.Contains(errOut, `client "edgez" is not known`) || !strings.Contains(errOut, "--new-client") {
		t.Fatalf("unknown client: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := d.run(ctx, "files", "list", "--client", "edgez"); code != 0 || out != "" || !strings.Contains(errOut, "0 files") {
		t.Fatalf("files of the refused client: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = d.run(ctx, "ingest", "--client", "edgez", "--new-client", usage)
	if res := decodeLines[fileResult](t, out); code != 0 || len(res) != 1 || res[0].Status == "rejected" {
		t.Fatalf("--new-client: exit %d\n%s\n%s", code, out, errOut)
	}

	// The client's timestamps, rated.
	out, errOut, code = d.run(ctx, "ingest", "--client", "edges", "--wait", usage)
	res = decodeLines[fileResult](t, out)
	if code != 0 || len(res) != 1 || res[0].Status != "done" || res[0].Records != 3 || res[0].MURs != 2 || res[0].Exceptions != 1 {
		t.Fatalf("usage: exit %d\n%s\n%s\n%s", code, out, errOut, d.log.String())
	}
	fileID := res[0].FileID

	type mur struct {
		RecordID   string          `json:"record_id"`
		UsageTime  time.Time       `json:"usage_time"`
		Net        string          `json:"net_amount"`
		RateDetail json.RawMessage `json:"rate_detail"`
	}
	murIDs := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.run(ctx, append([]string{"murs", "export", "--client", "edges"}, args...)...)
		if code != 0 {
			t.Fatalf("murs export %v: exit %d\n%s", args, code, errOut)
		}
		var ids []string
		for _, m := range decodeLines[mur](t, out) {
			ids = append(ids, m.RecordID)
		}
		return strings.Join(ids, " ")
	}
	out, _, _ = d.run(ctx, "murs", "export", "--client", "edges", "--account", "A1")
	ms := decodeLines[mur](t, out)
	if len(ms) != 1 || !ms[0].UsageTime.Equal(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)) || ms[0].Net != "3.00" {
		t.Fatalf("e1: %s", out)
	}
	var detail struct {
		Discounts []struct{ Value, Units, Amount string } `json:"discounts"`
		Gross     string                                  `json:"gross_exact"`
	}
	if err := json.Unmarshal(ms[0].RateDetail, &detail); err != nil || len(detail.Discounts) != 1 ||
		detail.Discounts[0].Amount != "2" || detail.Discounts[0].Value != "4" || detail.Gross != "5" {
		t.Fatalf("e1 rate_detail: %s", ms[0].RateDetail)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "e1 e2"},
		{[]string{"--account", "A2"}, "e2"},
		{[]string{"--from", "2026-07-02"}, "e2"},
		{[]string{"--to", "2026-07-02"}, "e1"},
		{[]string{"--file-id", fileID, "--status", "unsynced"}, "e1 e2"},
		{[]string{"--status", "synced"}, ""},
	} {
		if got := murIDs(c.args...); got != c.want {
			t.Errorf("murs export %v: %q, want %q", c.args, got, c.want)
		}
	}
	if _, errOut, code := d.run(ctx, "murs", "export", "--client", "edges", "--status", "done"); code != 1 || !strings.Contains(errOut, `sync_status: "done" is not a sync status`) {
		t.Errorf("a wrong status: exit %d\n%s", code, errOut)
	}
	out, _, _ = d.run(ctx, "murs", "export", "--client", "edges", "--format", "csv", "--account", "A2")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 || !strings.Contains(strings.Join(rows[0], ","), "qualifiers,attributes,rated_at") || !strings.Contains(strings.Join(rows[1], ","), `{"cell":"C2"}`) {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	out, _, code = d.run(ctx, "exceptions", "export", "--client", "edges", "--code", "BAD_TIMESTAMP", "--account", "A2", "--from", "2026-01-01")
	var exs []struct{ RecordID, Message string }
	if code == 0 {
		exs = decodeLines[struct{ RecordID, Message string }](t, out)
	}
	if len(exs) != 1 || !strings.Contains(exs[0].Message, `is not the client's format "2006-01-02 15:04:05" in Europe/London (e.g. 2026-03-01 12:00:00)`) {
		t.Fatalf("BAD_TIMESTAMP: exit %d %s", code, out)
	}

	// files show, list, wait.
	out, _, code = d.run(ctx, "files", "show", fileID)
	if files := decodeLines[fileResult](t, out); code != 0 || len(files) != 1 || files[0].Status != "done" {
		t.Fatalf("files show: exit %d %s", code, out)
	}
	out, _, code = d.run(ctx, "files", "list", "--client", "edges", "--status", "done")
	if files := decodeLines[fileResult](t, out); code != 0 || len(files) != 1 || files[0].FileID != fileID {
		t.Fatalf("files list: exit %d %s", code, out)
	}
	out, _, code = d.run(ctx, "files", "wait", fileID)
	if res := decodeLines[fileResult](t, out); code != 0 || len(res) != 1 || res[0].MURs != 2 {
		t.Fatalf("files wait: exit %d %s", code, out)
	}
	if _, errOut, code := d.run(ctx, "files", "cancel", "--reason", "too late", fileID); code != 1 || !strings.Contains(errOut, "is done already: there is nothing to cancel") {
		t.Fatalf("cancel a done file: exit %d %s", code, errOut)
	}

	// Cancel a big file while it is processed: it fails at once; what was
	// read ends as usual and the counts add up for it.
	var b strings.Builder
	b.WriteString("record_id,account_id,usage_type,quantity,usage_time\n")
	const big = 500_000
	for i := range big {
		fmt.Fprintf(&b, "big-%d,A2,CALL,1,2026-07-03 10:00:00\n", i)
	}
	out, errOut, code = d.run(ctx, "ingest", "--client", "edges", write("big.csv", b.String()))
	res = decodeLines[fileResult](t, out)
	if code != 0 || len(res) != 1 {
		t.Fatalf("big: exit %d %s %s", code, out, errOut)
	}
	bigID := res[0].FileID
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		out, _, _ = d.run(ctx, "files", "show", bigID)
		if strings.Contains(out, `"status":"processing"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the big file is not processed: %s", out)
		}
	}
	out, errOut, code = d.run(ctx, "files", "cancel", "--reason", "wrong file", bigID)
	if code != 0 || !strings.Contains(out, `"status":"failed"`) || !regexp.MustCompile(`"reason":"cancelled by \S+: wrong file`).MatchString(out) {
		t.Fatalf("cancel: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = d.run(ctx, "files", "wait", bigID)
	if res := decodeLines[fileResult](t, out); code != 1 || len(res) != 1 || res[0].Status != "failed" {
		t.Fatalf("files wait on the cancelled file: exit %d %s", code, out)
	}
	type entry struct {
		Records                    *int64
		MURs, Exceptions, Filtered int64
		Reason                     string
		CancelledBy                string `json:"cancelled_by"`
	}
	var e entry
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		out, _, _ = d.run(ctx, "files", "show", bigID)
		if got := decodeLines[entry](t, out); len(got) == 1 {
			e = got[0]
		}
		if e.Records != nil && *e.Records == e.MURs+e.Exceptions+e.Filtered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled file's counts never added up: %s", out)
		}
	}
	// Cancelled part-way, or (on a fast machine) after its last line was
	// read: either way the reason says which.
	partial := strings.Contains(e.Reason, "the rest of the file was not read") && *e.Records < big
	whole := strings.Contains(e.Reason, "every record had been read") && *e.Records == big
	if e.CancelledBy == "" || !partial && !whole {
		t.Fatalf("cancelled file: %s", out)
	}
	t.Logf("cancelled file: %d records, %d MURs, %d exceptions: %s", *e.Records, e.MURs, e.Exceptions, e.Reason)
}
