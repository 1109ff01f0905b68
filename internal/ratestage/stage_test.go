package ratestage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/usagestore"
	"vivace.dev/vivace/internal/usage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newStage returns a stage over the stores of st.
func newStage(st *store.Store) *ratestage.Stage {
	return ratestage.New(usagestore.New(st), catalogstore.New(st), nil)
}

var seq int

// unique names a client no earlier run of the test used in this database.
func unique(name string) string { return fmt.Sprintf("%s-%d", name, time.Now().UnixNano()) }

// seed applies catalog events for client: two accounts (one closed), a
// usage type priced per unit and a graduated one, and one subscription.
func seed(t *testing.T, st *store.Store, client string) {
	t.Helper()
	events := []struct{ entity, id, data string }{
		{"usage_type", "VOICE", `{"unit":"minute"}`},
		{"usage_type", "DATA", `{"unit":"GB"}`},
		{"usage_type", "FAX", `{"unit":"page"}`},
		{"plan", "P1", `{"rates":[
			{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.05"},
			{"usage_type":"DATA","currency":"USD","model":"graduated","tiers":[
				{"up_to":"10","unit_price":"1.00"},{"up_to":null,"unit_price":"0.50"}]}]}`},
		{"account", "A1", `{"currency":"USD","status":"active"}`},
		{"account", "A2", `{"currency":"USD","status":"closed"}`},
		{"account", "A3", `{"currency":"USD","status":"suspended"}`},
		{"account", "A4", `{"currency":"USD","status":"active"}`},
		{"subscription", "S1", `{"account_id":"A1","plan_id":"P1","effective_from":"2026-01-01T00:00:00Z"}`},
		{"subscription", "S3", `{"account_id":"A3","plan_id":"P1"}`},
	}
	var evs []feed.Event
	for _, e := range events {
		seq++
		evs = append(evs, feed.Event{EventID: fmt.Sprintf("ev-%s-%d", client, seq), Client: client, Entity: e.entity,
			EntityID: e.id, Version: 1, OccurredAt: time.Now(), Op: feed.OpUpsert, Data: json.RawMessage(e.data)})
	}
	applyAll(t, st, evs)
}

func newFile(t testing.TB, st *store.Store, client string) string {
	t.Helper()
	seq++
	f, err := filestore.New(st).RegisterFile(context.Background(), files.File{FileID: ids.New(), Client: client, Name: "u.csv",
		Source: "http", Format: "csv", SHA256: fmt.Sprintf("sha-%d", seq)})
	if err != nil {
		t.Fatal(err)
	}
	return f.FileID
}

func rec(client, file string, line int64, id, acct, ut, qty, at string) ratestage.Item {
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		panic(err)
	}
	return ratestage.Item{Record: usage.Record{
		Source:   usage.Source{Client: client, FileID: file, Line: line},
		RecordID: id, AccountID: acct, UsageType: ut, Quantity: qty, UsageTime: ts,
	}}
}

type murRow struct{ gross, net, detail string }

func murRows(t *testing.T, st *store.Store, client string) map[string]murRow {
	t.Helper()
	out := map[string]murRow{}
	err := usagestore.New(st).ExportMURs(context.Background(), murs.Filter{Client: client}, func(m murs.MUR) error {
		out[m.RecordID] = murRow{m.GrossAmount, m.NetAmount, string(m.RateDetail)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exceptionCodes(t *testing.T, st *store.Store, client string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := usagestore.New(st).ExportExceptions(context.Background(), exceptions.Filter{Client: client}, func(x exceptions.Exception) error {
		out[x.RecordID] = string(x.Code)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRateBatch(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := unique("acme")
	seed(t, st, client)
	file := newFile(t, st, client)
	stage := newStage(st)

	batch := []ratestage.Item{
		rec(client, file, 2, "r1", "A1", "VOICE", "10", "2026-03-01T10:00:00Z"),
		rec(client, file, 3, "r2", "A1", "DATA", "8", "2026-03-01T11:00:00Z"),
		rec(client, file, 4, "r3", "A1", "DATA", "5", "2026-03-02T11:00:00Z"), // crosses into tier 2: 2×1.00 + 3×0.50
		rec(client, file, 5, "r4", "NOPE", "VOICE", "1", "2026-03-01T10:00:00Z"),
		rec(client, file, 6, "r5", "A2", "VOICE", "1", "2026-03-01T10:00:00Z"),
		rec(client, file, 7, "r6", "A1", "SMS", "1", "2026-03-01T10:00:00Z"),
		rec(client, file, 8, "r7", "A4", "VOICE", "1", "2026-03-01T10:00:00Z"),
		rec(client, file, 9, "r8", "A1", "FAX", "1", "2026-03-01T10:00:00Z"),
		rec(client, file, 10, "r9", "A1", "VOICE", "1", "2025-12-31T23:59:59Z"),  // before the subscription
		rec(client, file, 11, "r1", "A1", "VOICE", "1", "2026-03-01T10:00:00Z"),  // same id, other line
		rec(client, file, 12, "r10", "A3", "VOICE", "3", "2026-03-01T10:00:00Z"), // suspended: rated
	}
	sum, err := stage.Rate(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if sum.MURs != 4 || sum.Exceptions != 7 || sum.Replayed != 0 {
		t.Fatalf("summary = %+v, want 4 MURs, 7 exceptions", sum)
	}
	got := murRows(t, st, client)
	want := map[string]string{"r1": "0.50", "r2": "8.00", "r3": "3.50", "r10": "0.15"}
	for id, net := range want {
		if got[id].net != net {
			t.Errorf("MUR %s net = %q, want %s", id, got[id].net, net)
		}
	}
	var detail struct {
		Tiers []struct {
			Tier  int    `json:"tier"`
			Units string `json:"units"`
		} `json:"tiers"`
		Before string `json:"cumulative_before"`
	}
	if err := json.Unmarshal([]byte(got["r3"].detail), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Before != "8" || len(detail.Tiers) != 2 || detail.Tiers[0].Units != "2" || detail.Tiers[1].Units != "3" {
		t.Errorf("r3 rate_detail = %s", got["r3"].detail)
	}
	wantCodes := map[string]string{
		"r4": "UNKNOWN_ACCOUNT", "r5": "ACCOUNT_CLOSED", "r6": "UNKNOWN_USAGE_TYPE", "r7": "NO_SUBSCRIPTION",
		"r8": "NO_RATE", "r9": "NO_SUBSCRIPTION", "r1": "DUPLICATE_RECORD",
	}
	codes := exceptionCodes(t, st, client)
	for id, c := range wantCodes {
		if codes[id] != c {
			t.Errorf("exception for %s = %q, want %s", id, codes[id], c)
		}
	}

	// A replay of the same messages changes nothing.
	sum, err = stage.Rate(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if sum.MURs != 0 || sum.Replayed != 4 {
		t.Fatalf("replay summary = %+v, want no new MURs and 4 replayed", sum)
	}
	if n := len(murRows(t, st, client)); n != 4 {
		t.Fatalf("after replay: %d MURs, want 4", n)
	}
	f, err := filestore.New(st).GetFile(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	if f.MURs != 4 || f.Exceptions != 7 {
		t.Fatalf("file counts = %d MURs, %d exceptions; want 4 and 7", f.MURs, f.Exceptions)
	}

	// The counters carried: the next DATA record is all in tier 2.
	file2 := newFile(t, st, client)
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file2, 2, "r11", "A1", "DATA", "2", "2026-03-03T00:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	if got := murRows(t, st, client)["r11"].net; got != "1.00" {
		t.Fatalf("r11 net = %s, want 1.00 (2 units in tier 2)", got)
	}
}

func TestCatalogChangeSeenByNextBatch(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := unique("beta")
	seed(t, st, client)
	file := newFile(t, st, client)
	stage := newStage(st)
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file, 2, "x1", "A1", "VOICE", "10", "2026-03-01T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	ev := feed.Event{EventID: "price-change-" + client, Client: client, Entity: "plan", EntityID: "P1", Version: 2,
		OccurredAt: time.Now(), Op: feed.OpUpsert,
		Data: json.RawMessage(`{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.07"}]}`)}
	if _, err := feed.NewApplier(catalogstore.New(st), nil).Apply(ctx, []feed.Event{ev}, []error{nil}); err != nil {
		t.Fatal(err)
	}
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file, 3, "x2", "A1", "VOICE", "10", "2026-03-01T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	got := murRows(t, st, client)
	if got["x1"].net != "0.50" || got["x2"].net != "0.70" {
		t.Fatalf("nets = %s, %s; want 0.50 then 0.70 after the price change", got["x1"].net, got["x2"].net)
	}
}

func TestConcurrentBatchesShareCounters(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := unique("gamma")
	seed(t, st, client)
	stage := newStage(st)
	// Ten batches of DATA for one account rated concurrently: whatever
	// the order, the month's 20 units cost 10×1.00 + 10×0.50.
	errs := make(chan error, 10)
	for b := 0; b < 10; b++ {
		file := newFile(t, st, client)
		go func() {
			_, err := stage.Rate(ctx, []ratestage.Item{
				rec(client, file, 2, fmt.Sprintf("c%d-1", b), "A1", "DATA", "1", "2026-03-01T10:00:00Z"),
				rec(client, file, 3, fmt.Sprintf("c%d-2", b), "A1", "DATA", "1", "2026-03-01T10:00:00Z"),
			})
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var total float64
	for _, m := range murRows(t, st, client) {
		var v float64
		if _, err := fmt.Sscan(m.net, &v); err != nil {
			t.Fatalf("net amount %q: %v", m.net, err)
		}
		total += v
	}
	if total != 15 {
		t.Fatalf("total net = %v, want 15.00", total)
	}
}

// TestStoredRecordIDFoundWithoutLookUp: a stage rates a batch without
// looking its record ids up first; one that already has a MUR (from
// another file) makes the COPY fail, and the batch is rated again with
// the look-up: the record becomes a DUPLICATE_RECORD exception and
// nothing of the first attempt counts, the counters included.
func TestStoredRecordIDFoundWithoutLookUp(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := unique("again")
	seed(t, st, client)
	file1, file2 := newFile(t, st, client), newFile(t, st, client)
	if _, err := newStage(st).Rate(ctx, []ratestage.Item{rec(client, file1, 2, "d1", "A1", "DATA", "8", "2026-03-01T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	// A new process: nothing remembered, no file seen.
	stage := newStage(st)
	sum, err := stage.Rate(ctx, []ratestage.Item{
		rec(client, file2, 2, "d1", "A1", "DATA", "8", "2026-03-01T10:00:00Z"),
		rec(client, file2, 3, "d2", "A1", "DATA", "4", "2026-03-01T11:00:00Z"), // 2×1.00 + 2×0.50
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.MURs != 1 || sum.Exceptions != 1 || sum.ByCode[codes.DuplicateRecord] != 1 {
		t.Fatalf("summary = %+v, want 1 MUR and 1 DUPLICATE_RECORD", sum)
	}
	got := murRows(t, st, client)
	if got["d1"].net != "8.00" || got["d2"].net != "3.00" {
		t.Fatalf("d1 net %s, d2 net %s; want 8.00 and 3.00", got["d1"].net, got["d2"].net)
	}
	// The next batch of that file looks up first; the counter stands at 14.
	sum, err = stage.Rate(ctx, []ratestage.Item{
		rec(client, file2, 2, "d1", "A1", "DATA", "8", "2026-03-01T10:00:00Z"), // the duplicate again: a replay of its exception
		rec(client, file2, 4, "d3", "A1", "DATA", "2", "2026-03-01T12:00:00Z"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d3 := murRows(t, st, client)["d3"].net; sum.MURs != 1 || d3 != "1.00" {
		t.Fatalf("summary = %+v, d3 net %s; want 1 MUR at 1.00", sum, d3)
	}
	f, err := filestore.New(st).GetFile(ctx, file2)
	if err != nil {
		t.Fatal(err)
	}
	if f.MURs != 2 || f.Exceptions != 1 {
		t.Fatalf("file counts = %d MURs, %d exceptions; want 2 and 1", f.MURs, f.Exceptions)
	}
}
