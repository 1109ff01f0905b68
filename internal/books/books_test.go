package books

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestLedgerRowsCompareAsDecimals(t *testing.T) {
	for _, c := range []struct {
		stored, summed string
		finding        bool
	}{
		{"5", "5.000", false},
		{"", "0", false},     // a sum of zero quantities with no row
		{"0", "", false},     // a row created at zero whose records failed
		{"0.0001", "", true}, // a row no MUR explains
		{"", "1", true},
		{"15.001", "15", true},
		{"x", "1", true},
	} {
		_, got := CheckLedgerRow(Counters, LedgerRow{Client: "c", AccountID: "A", Item: "V", Stored: c.stored, Summed: c.summed})
		if got != c.finding {
			t.Errorf("stored %q, summed %q: finding %v, want %v", c.stored, c.summed, got, c.finding)
		}
	}
}

func TestSyncedGroups(t *testing.T) {
	ok := SyncedGroup{Client: "c", AggregateID: "a", MURs: 2, Units: "3", Amount: "1.50", Exists: true, AggregateClient: "c",
		Status: "synced", BatchStatus: "done", SentMURs: 2, SentUnits: "3.0", SentAmount: "1.5"}
	if fs := CheckSynced(ok); len(fs) != 0 {
		t.Fatalf("an acknowledged record is a finding: %v", fs)
	}
	for want, change := range map[string]func(*SyncedGroup){
		"without an aggregated record": func(g *SyncedGroup) { g.AggregateID, g.Exists = "", false },
		"does not exist":               func(g *SyncedGroup) { g.Exists = false },
		"of client d":                  func(g *SyncedGroup) { g.AggregateClient = "d" },
		"is pending":                   func(g *SyncedGroup) { g.Status = "pending" },
		"batch is missing":             func(g *SyncedGroup) { g.BatchStatus = "" },
		"3 synced MURs, as the core":   func(g *SyncedGroup) { g.SentMURs = 3 },
		"units 3.0":                    func(g *SyncedGroup) { g.Units = "3.01" },
		"amount 1.5":                   func(g *SyncedGroup) { g.Amount = "1.49" },
	} {
		g := ok
		change(&g)
		fs := CheckSynced(g)
		if len(fs) != 1 || !strings.Contains(fs[0].String(), want) {
			t.Errorf("%+v: findings %v, want one saying %q", g, fs, want)
		}
	}
}

// fakeLedger passes fixed rows: the check decides which are findings.
type fakeLedger struct{ counters []LedgerRow }

func (f fakeLedger) Snapshot(ctx context.Context, fn func(Ledger) error) error { return fn(f) }
func (fakeLedger) Scope(context.Context, string) (Scope, error)                { return Scope{Files: 1}, nil }
func (fakeLedger) Files(_ context.Context, _ string, fn func(FileTotals) error) error {
	r := int64(3)
	return fn(FileTotals{FileID: "f1", Client: "c", Name: "u.csv", Status: "done", Exists: true, Records: &r, MURs: 2, Filtered: 1,
		RowMURs: 2, RowFiltered: 1})
}
func (fakeLedger) Duplicates(context.Context, string, func(Duplicate) error) error { return nil }
func (f fakeLedger) Counters(_ context.Context, _ string, fn func(LedgerRow) error) error {
	for _, r := range f.counters {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
func (fakeLedger) Allowances(context.Context, string, func(LedgerRow) error) error { return nil }
func (fakeLedger) Synced(context.Context, string, func(SyncedGroup) error) error   { return nil }

func TestReportCountsAllAndListsSamples(t *testing.T) {
	var rows []LedgerRow
	for range 30 {
		rows = append(rows, LedgerRow{Client: "c", AccountID: "A", Item: "V", Month: 24314, Stored: "2", Summed: "1"})
	}
	rows = append(rows, LedgerRow{Client: "c", AccountID: "B", Item: "V", Stored: "1.0", Summed: "1"})
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rep, err := Check(context.Background(), fakeLedger{rows}, Options{Samples: 5, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() || rep.Findings() != 30 {
		t.Fatalf("findings = %d, want 30", rep.Findings())
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	txt := b.String()
	for _, want := range []string{
		"OK    file_balance",
		"FAIL  counters",
		"30 finding(s)",
		"client c: counter of account A, usage type V, month 2026-03: want 1 (the sum of its MURs), got 2",
		"… and 25 more",
		"the books do not balance",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("report lacks %q:\n%s", want, txt)
		}
	}
}
