package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fileResult struct {
	FileID     string `json:"file_id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Records    int64  `json:"records"`
	MURs       int64  `json:"murs"`
	Exceptions int64  `json:"exceptions"`
	Filtered   int64  `json:"filtered"`
	Split      int64  `json:"split"`
	Reason     string `json:"reason"`
}

func decodeLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, v)
	}
	return out
}

// TestSampleDataSet runs the demo's path: the sample catalog through the
// feed, the sample file through ingest, mediate and rate, and checks every
// line's outcome against tests/testdata/demo/README.md.
func TestSampleDataSet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startDev(t, "")
	demo := filepath.Join(repoRoot(t), "tests/testdata/demo")

	out, errOut, code := d.run(ctx, "feed", "publish", "--wait", filepath.Join(demo, "catalog.jsonl"))
	if code != 0 {
		t.Fatalf("feed publish: exit %d\n%s\n%s\n%s", code, out, errOut, d.log.String())
	}
	var feedCounts struct{ Events, Applied, Ignored, Failed int }
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &feedCounts); err != nil {
		t.Fatalf("feed publish output %q: %v", out, err)
	}
	if feedCounts.Events != 13 || feedCounts.Applied != 13 || feedCounts.Failed != 0 {
		t.Fatalf("feed counts = %+v", feedCounts)
	}

	out, errOut, code = d.run(ctx, "ingest", "--client", "demo", "--wait", filepath.Join(demo, "usage.csv"))
	if code != 0 {
		t.Fatalf("ingest: exit %d\n%s\n%s\n%s", code, out, errOut, d.log.String())
	}
	res := decodeLines[fileResult](t, out)
	if len(res) != 1 {
		t.Fatalf("ingest printed %d lines: %q", len(res), out)
	}
	r := res[0]
	if r.Status != "done" || r.Records != 19 || r.MURs != 7 || r.Exceptions != 12 || r.Filtered != 0 || r.Name != "usage.csv" {
		t.Fatalf("file result = %+v", r)
	}

	out, _, code = d.run(ctx, "murs", "export", "--client", "demo")
	if code != 0 {
		t.Fatalf("murs export exit %d", code)
	}
	type mur struct {
		RecordID       string          `json:"record_id"`
		FileID         string          `json:"file_id"`
		Line           int64           `json:"line"`
		AccountID      string          `json:"account_id"`
		Quantity       string          `json:"quantity"`
		Currency       string          `json:"currency"`
		GrossAmount    string          `json:"gross_amount"`
		DiscountAmount string          `json:"discount_amount"`
		NetAmount      string          `json:"net_amount"`
		SyncStatus     string          `json:"sync_status"`
		RateDetail     json.RawMessage `json:"rate_detail"`
	}
	murs := decodeLines[mur](t, out)
	want := map[int64]struct{ id, net string }{
		2: {"r-0001", "0.63"}, 3: {"r-0002", "3.13"}, 4: {"r-0003", "0.10"}, 5: {"r-0004", "3.00"},
		17: {"r-0016", "0.00"}, 18: {"r-0017", "0.03"}, 20: {"r-0019", "0.07"},
	}
	if len(murs) != len(want) {
		t.Fatalf("%d MURs, want %d: %s", len(murs), len(want), out)
	}
	for _, m := range murs {
		w, ok := want[m.Line]
		if !ok || m.RecordID != w.id || m.NetAmount != w.net || m.GrossAmount != w.net || m.Currency != "USD" ||
			m.FileID != r.FileID || m.SyncStatus != "unsynced" || len(m.RateDetail) < 10 {
			t.Errorf("MUR %+v, want line %d %+v", m, m.Line, w)
		}
	}

	out, _, code = d.run(ctx, "exceptions", "export", "--client", "demo")
	if code != 0 {
		t.Fatalf("exceptions export exit %d", code)
	}
	type exception struct {
		RecordID string          `json:"record_id"`
		FileID   string          `json:"file_id"`
		Line     int64           `json:"line"`
		Stage    string          `json:"stage"`
		Code     string          `json:"code"`
		Field    string          `json:"field"`
		Message  string          `json:"message"`
		Status   string          `json:"status"`
		Record   json.RawMessage `json:"record"`
	}
	exs := decodeLines[exception](t, out)
	wantCodes := map[int64]string{
		6: "BAD_QUANTITY", 7: "MISSING_FIELD", 8: "BAD_TIMESTAMP", 9: "BAD_TIMESTAMP", 10: "MALFORMED_RECORD",
		11: "UNKNOWN_ACCOUNT", 12: "ACCOUNT_CLOSED", 13: "UNKNOWN_USAGE_TYPE", 14: "NO_SUBSCRIPTION", 15: "NO_RATE",
		16: "DUPLICATE_RECORD", 19: "BAD_QUANTITY",
	}
	if len(exs) != len(wantCodes) {
		t.Fatalf("%d exceptions, want %d: %s", len(exs), len(wantCodes), out)
	}
	for _, e := range exs {
		if wantCodes[e.Line] != e.Code || e.FileID != r.FileID || e.Status != "open" || e.Message == "" || len(e.Record) < 2 {
			t.Errorf("line %d: exception %+v, want %s", e.Line, e, wantCodes[e.Line])
		}
	}

	// The same content again is refused, visibly, and the command fails.
	out, _, code = d.run(ctx, "ingest", "--client", "demo", "--wait", filepath.Join(demo, "usage.csv"))
	dup := decodeLines[fileResult](t, out)
	if code == 0 || len(dup) != 1 || dup[0].Status != "rejected" || !strings.Contains(dup[0].Reason, "duplicate") {
		t.Fatalf("duplicate file: exit %d, %q", code, out)
	}
	d.checkBooks(ctx, "demo")
}

// TestNotAUsageFile checks that a file that is not CSV at all is refused
// with a message that says why, and that nothing of it is processed.
func TestNotAUsageFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := startDev(t, "")
	bin := filepath.Join(t.TempDir(), "photo.csv")
	if err := os.WriteFile(bin, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := d.run(ctx, "ingest", "--client", "demo", "--wait", bin)
	res := decodeLines[fileResult](t, out)
	if code == 0 || len(res) != 1 || res[0].Status != "rejected" || !strings.Contains(res[0].Reason, "binary content") ||
		res[0].Records != 0 || res[0].MURs != 0 || res[0].Exceptions != 0 {
		t.Fatalf("exit %d, %q", code, out)
	}
}
