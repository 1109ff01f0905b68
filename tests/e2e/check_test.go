package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/books"
)

// TestCheckCommand runs vivace check as a nightly job would: its exit
// status and JSON for balanced books, for a counter changed by hand, and
// for a database that does not answer.
func TestCheckCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := newDev(t, "") // not started: check works on the database
	db := openDB(t)
	client := "check" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if _, err := db.Pool().Exec(ctx, `INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
		VALUES ($1, 'A1', 'VOICE', 24314, 0)`, client); err != nil {
		t.Fatal(err)
	}
	report := func(args ...string) (books.Report, string, int) {
		out, errOut, code := d.run(ctx, append([]string{"check", "--json"}, args...)...)
		var r books.Report
		if code < 2 {
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("vivace check --json printed %q: %v", out, err)
			}
		}
		return r, errOut, code
	}
	if r, errOut, code := report("--client", client); code != 0 || !r.Clean() || r.Scope.Counters != 1 {
		t.Fatalf("balanced books: exit %d, %+v %s", code, r, errOut)
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE usage_counters SET quantity = 7 WHERE client = $1`, client); err != nil {
		t.Fatal(err)
	}
	r, errOut, code := report("--client", client)
	if code != 1 || r.Findings() != 1 || !strings.Contains(errOut, "1 finding(s)") {
		t.Fatalf("a counter changed by hand: exit %d, %d findings, %s", code, r.Findings(), errOut)
	}
	for _, res := range r.Results {
		if res.Invariant == books.Counters && (len(res.Samples) != 1 || res.Samples[0].Got != "7") {
			t.Errorf("counters: %+v", res)
		}
	}
	out, _, code := d.run(ctx, "check", "--client", client)
	if code != 1 || !strings.Contains(out, "FAIL  counters") || !strings.Contains(out, "client "+client+": counter of account A1, usage type VOICE, month 2026-03: want 0 (no MUR), got 7") {
		t.Fatalf("text report: exit %d\n%s", code, out)
	}

	d.DSN = "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=5"
	_, errOut, code = d.run(ctx, "check")
	if code != 2 || !strings.Contains(errOut, "could not check the books") || !strings.Contains(errOut, "nowhere") {
		t.Fatalf("no database: exit %d: %s", code, errOut)
	}
}
