package tmfstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/usagestore"
	"vivace.dev/vivace/internal/tmf635"
	"vivace.dev/vivace/internal/usage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func post(client, account string) *tmf635.Submission {
	return &tmf635.Submission{Client: client, OwnRecordID: true, Body: json.RawMessage(`{"description":"d"}`),
		Fields: map[string]string{"usage_type": "VOICE", "usage_time": "2026-10-01T08:00:00Z", "account_id": account, "quantity": "1"}}
}

func rate(t *testing.T, st *store.Store, recs ...tmf635.Record) {
	t.Helper()
	var ms []murs.MUR
	for _, r := range recs {
		ms = append(ms, murs.MUR{Client: r.Client, RecordID: r.Posted.Fields["record_id"], FileID: r.FileID, Line: r.Line,
			AccountID: "A1", UsageType: "VOICE", Quantity: "1", UsageTime: time.Now(), Currency: "USD", GrossAmount: "1.5",
			DiscountAmount: "0", NetAmount: "1.5", RateDetail: json.RawMessage(`{}`)})
	}
	if err := usagestore.New(st).Rate(context.Background(), func(tx ratestage.Tx) error { return tx.InsertMURs(context.Background(), ms) }); err != nil {
		t.Fatal(err)
	}
}

// TestPostedUsageLifecycle: posted usages are lines of the day's api
// submission, listed as received until the rate stage stores their
// outcome, then rated, rejected, recycled, billed; each change is queued
// for the subscribers in order, and a refused callback waits its turn.
func TestPostedUsageLifecycle(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	s := New(st)
	client := "acme-" + ids.New()[24:]
	hub := tmf635.Hub{EventSubscription: tmf635.EventSubscription{ID: ids.New(), Callback: "http://x"}, Clients: []string{client}}
	if err := s.CreateHub(ctx, hub, "test"); err != nil {
		t.Fatal(err)
	}
	other := tmf635.Hub{EventSubscription: tmf635.EventSubscription{ID: ids.New(), Callback: "http://y"}, Clients: []string{"nobody"}}
	if err := s.CreateHub(ctx, other, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recs, err := s.Submit(ctx, []*tmf635.Submission{post(client, "A1"), post(client, "A2"), post(client, "A3")}, now)
	if err != nil {
		t.Fatal(err)
	}
	more, err := s.Submit(ctx, []*tmf635.Submission{post(client, "A4")}, now)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, more...)
	for i, r := range recs {
		if r.FileID != recs[0].FileID || r.Line != int64(i+1) || r.Posted.Fields["record_id"] != tmf635.ID(r.FileID, r.Line, 0) {
			t.Fatalf("usage %d: %+v", i, r)
		}
	}
	var records int64
	var status string
	if err := st.Pool().QueryRow(ctx, `SELECT records, status FROM files WHERE file_id = $1`, recs[0].FileID).Scan(&records, &status); err != nil ||
		records != 4 || status != "processing" {
		t.Fatalf("api submission: %d records, %s, %v", records, status, err)
	}
	unsent, err := s.Unsent(ctx, 10)
	if err != nil || len(unsent) != 4 || unsent[0].Line != 1 || unsent[3].Fields["account_id"] != "A4" {
		t.Fatalf("unsent %+v %v", unsent, err)
	}
	if err := s.MarkSent(ctx, unsent[:2]); err != nil {
		t.Fatal(err)
	}
	if unsent, _ = s.Unsent(ctx, 10); len(unsent) != 2 {
		t.Fatalf("after sending two, %d unsent", len(unsent))
	}
	list := func(f tmf635.Filter) []tmf635.Status {
		t.Helper()
		if f.Limit == 0 {
			f.Limit = 100
		}
		rs, total, err := s.List(ctx, []string{client}, f)
		if err != nil {
			t.Fatal(err)
		}
		if total < int64(len(rs)) {
			t.Fatalf("total %d < %d", total, len(rs))
		}
		var out []tmf635.Status
		for i := range rs {
			out = append(out, tmf635.StatusOf(&rs[i]))
		}
		return out
	}
	if got := list(tmf635.Filter{}); !slices.Equal(got, []tmf635.Status{"received", "received", "received", "received"}) {
		t.Fatalf("list %v", got)
	}

	// Line 1 rated, line 2 rejected.
	rate(t, st, recs[0])
	if _, err := usagestore.New(st).InsertExceptions(ctx, []exceptions.Exception{{Client: client, FileID: recs[1].FileID, Line: 2,
		Stage: "mediate", Code: "BAD_QUANTITY", Field: "quantity", Message: "bad", Record: json.RawMessage(`{"usage_type":"VOICE","usage_time":"2026-10-01T08:00:00Z","account_id":"A2"}`)}}); err != nil {
		t.Fatal(err)
	}
	if got := list(tmf635.Filter{}); !slices.Equal(got, []tmf635.Status{"rated", "rejected", "received", "received"}) {
		t.Fatalf("list %v", got)
	}
	if got := list(tmf635.Filter{Statuses: []tmf635.Status{"received"}}); len(got) != 2 {
		t.Fatalf("received: %v", got)
	}
	if got := list(tmf635.Filter{Accounts: []string{"A2"}}); !slices.Equal(got, []tmf635.Status{"rejected"}) {
		t.Fatalf("A2: %v", got)
	}
	from := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	to := from.Add(time.Second)
	if got := list(tmf635.Filter{From: &from, To: &to, Statuses: []tmf635.Status{"rejected", "received"}}); len(got) != 3 {
		t.Fatalf("usage date window: %v", got)
	}
	if got := list(tmf635.Filter{Offset: 1, Limit: 2}); !slices.Equal(got, []tmf635.Status{"rejected", "received"}) {
		t.Fatalf("page: %v", got)
	}
	// Reprocessing the exception: recycled; its MUR: rated; synced: billed.
	if _, err := st.Pool().Exec(ctx, `UPDATE exceptions SET status = 'reprocessing' WHERE file_id = $1`, recs[1].FileID); err != nil {
		t.Fatal(err)
	}
	r, err := s.Usage(ctx, recs[1].FileID, 2, 0)
	if err != nil || tmf635.StatusOf(&r) != tmf635.Recycled {
		t.Fatalf("recycled: %+v %v", r, err)
	}
	rate(t, st, recs[1]) // resolves the exception, as the rate stage does
	if _, err := st.Pool().Exec(ctx, `UPDATE murs SET sync_status = 'synced' WHERE file_id = $1 AND line = 1`, recs[0].FileID); err != nil {
		t.Fatal(err)
	}
	if got := list(tmf635.Filter{}); !slices.Equal(got, []tmf635.Status{"billed", "rated", "received", "received"}) {
		t.Fatalf("list %v", got)
	}
	if _, err := s.Usage(ctx, recs[0].FileID, 9, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("line 9: %v", err)
	}

	// The queue: line 1 received, rated, billed; line 2 received,
	// rejected, recycled, rated; 3 and 4 received. The other hub's
	// clients got nothing.
	type ev struct {
		line   int64
		kind   string
		status tmf635.Status
	}
	var sent []ev
	fail := map[int64]bool{2: true} // line 2's first callback is refused
	for round := 0; round < 10; round++ {
		n, err := s.Deliver(ctx, 100, func(d tmf635.Delivery) error {
			if d.Hub.ID != hub.ID {
				t.Fatalf("delivery to hub %s", d.Hub.ID)
			}
			if fail[d.Line] {
				delete(fail, d.Line)
				return errors.New("listener down")
			}
			sent = append(sent, ev{d.Line, d.Kind, d.Status})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			// Only line 2's refused callback is left, waiting its backoff:
			// bring it forward.
			tag, err := st.Pool().Exec(ctx, `UPDATE tmf_deliveries SET next_at = now() WHERE attempts > 0`)
			if err != nil {
				t.Fatal(err)
			}
			if tag.RowsAffected() == 0 {
				break
			}
		}
	}
	byLine := map[int64][]string{}
	for _, e := range sent {
		byLine[e.line] = append(byLine[e.line], e.kind+":"+string(e.status))
	}
	want := map[int64][]string{
		1: {"create:received", "state:rated", "state:billed"},
		2: {"create:received", "state:rejected", "state:recycled", "state:rated"},
		3: {"create:received"}, 4: {"create:received"},
	}
	for line, w := range want {
		if !slices.Equal(byLine[line], w) {
			t.Errorf("line %d: %v, want %v", line, byLine[line], w)
		}
	}
	var left int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM tmf_deliveries`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d callbacks left", left)
	}
	// A file of MURs only, paged through with the api submission: the
	// pages are the whole list, in order.
	fid := ids.New()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256, status)
		VALUES ($1, $2, 'f.csv', 'http', '', 'csv', 0, 'x', 'processing')`, fid, client); err != nil {
		t.Fatal(err)
	}
	var five []tmf635.Record
	for l := int64(2); l <= 6; l++ {
		five = append(five, tmf635.Record{Client: client, FileID: fid, Line: l,
			Posted: &tmf635.Posted{Fields: map[string]string{"record_id": "f" + strconv.FormatInt(l, 10)}}})
	}
	rate(t, st, five...)
	all, total, err := s.List(ctx, []string{client}, tmf635.Filter{Limit: 100})
	if err != nil || int64(len(all)) != total || total != 9 {
		t.Fatalf("all: %d of %d, %v", len(all), total, err)
	}
	for _, size := range []int{1, 2, 3, 4} {
		var paged []tmf635.Record
		for off := 0; off < int(total); off += size {
			page, _, err := s.List(ctx, []string{client}, tmf635.Filter{Offset: off, Limit: size})
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
		}
		if len(paged) != len(all) {
			t.Fatalf("pages of %d: %d usages, want %d", size, len(paged), len(all))
		}
		for i := range all {
			if paged[i].FileID != all[i].FileID || paged[i].Line != all[i].Line {
				t.Fatalf("pages of %d differ at %d", size, i)
			}
		}
	}

	// Line 3 rejected, then its record id rated from another file: the
	// exception is superseded, and line 3 stays a rejected usage.
	rid := recs[2].Posted.Fields["record_id"]
	if _, err := usagestore.New(st).InsertExceptions(ctx, []exceptions.Exception{{Client: client, FileID: recs[2].FileID, Line: 3,
		RecordID: rid, Stage: "rate", Code: "UNKNOWN_ACCOUNT", Field: "account_id", Message: "unknown", Record: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	rate(t, st, tmf635.Record{Client: client, FileID: fid, Line: 7, Posted: &tmf635.Posted{Fields: map[string]string{"record_id": rid}}})
	var resolution string
	if err := st.Pool().QueryRow(ctx, `SELECT coalesce(resolution, '') FROM exceptions WHERE file_id = $1 AND line = 3`, recs[2].FileID).Scan(&resolution); err != nil || resolution != "superseded" {
		t.Fatalf("line 3's exception: %q %v", resolution, err)
	}
	if r, err := s.Usage(ctx, recs[2].FileID, 3, 0); err != nil || tmf635.StatusOf(&r) != tmf635.Rejected {
		t.Fatalf("superseded usage: %+v %v", r, err)
	}
	if got := list(tmf635.Filter{Statuses: []tmf635.Status{tmf635.Rejected}}); len(got) != 1 {
		t.Fatalf("rejected: %v", got)
	}

	// A deleted hub takes its waiting callbacks with it.
	if _, err := s.Submit(ctx, []*tmf635.Submission{post(client, "A5")}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHub(ctx, hub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetHub(ctx, hub.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted hub: %v", err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM tmf_deliveries`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d callbacks left of a deleted hub", left)
	}
}

// BenchmarkListUsage: GET /usage?limit=100's query over a client with
// VIVACE_BENCH_MURS MURs (default 1,000,000), the first page and one deep
// in; reports the 95th percentile.
func BenchmarkListUsage(b *testing.B) {
	n := 1000000
	if v := os.Getenv("VIVACE_BENCH_MURS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	st := pgtest.Store(b)
	client := "bench"
	files := 10
	fileIDs := make([]string, files)
	for i := range fileIDs {
		fileIDs[i] = ids.New()
		if _, err := st.Pool().Exec(ctx, `INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256, status, records, murs)
			VALUES ($1, $2, $3, 'http', '', 'csv', 0, $3, 'done', $4, $4)`, fileIDs[i], client, fmt.Sprint("f", i), n/files); err != nil {
			b.Fatal(err)
		}
	}
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	_, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"murs"}, []string{"mur_id", "client", "record_id", "file_id", "line", "account_id",
		"usage_type", "quantity", "usage_time", "currency", "gross_amount", "discount_amount", "net_amount", "rate_detail"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i >= n {
					return nil, nil
				}
				f := i % files
				row := []any{ids.New(), client, "r" + strconv.Itoa(i), fileIDs[f], int64(i/files + 2), "ACC" + strconv.Itoa(i%10000),
					"VOICE", "1", at.Add(time.Duration(i) * time.Second), "USD", "1.25", "0", "1.25", "{}"}
				i++
				return row, nil
			}
		}()))
	if err != nil {
		b.Fatal(err)
	}
	s := New(st)
	for _, c := range []struct {
		name string
		f    tmf635.Filter
	}{
		{"first-page", tmf635.Filter{Limit: 100}},
		{"offset-10000", tmf635.Filter{Limit: 100, Offset: 10000}},
		{"status-rated", tmf635.Filter{Limit: 100, Statuses: []tmf635.Status{tmf635.Rated}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				rs, total, err := s.List(ctx, []string{client}, c.f)
				took = append(took, time.Since(start))
				if err != nil || len(rs) != 100 || total < int64(n) {
					b.Fatalf("%d usages of %d: %v", len(rs), total, err)
				}
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

// TestMarkSentBesideSettling: the ingest stage's mark of what it sent
// does not wait for a usage that a rate batch is settling (it would
// deadlock with batches that lock their usages in another order), and a
// settled usage is not sent again, marked or not.
func TestMarkSentBesideSettling(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	s := New(st)
	client := "race-" + ids.New()[24:]
	recs, err := s.Submit(ctx, []*tmf635.Submission{post(client, "A1"), post(client, "A2")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mine := func() []usage.Raw {
		t.Helper()
		all, err := s.Unsent(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []usage.Raw
		for _, r := range all {
			if r.Client == client {
				out = append(out, r)
			}
		}
		return out
	}
	unsent := mine()
	if len(unsent) != 2 {
		t.Fatalf("unsent %+v", unsent)
	}
	// A rate batch storing line 1's MUR, not committed yet: what the
	// trigger on murs does to the usage.
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `UPDATE api_usage SET settled = true WHERE file_id = $1 AND line = 1`, recs[0].FileID); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.MarkSent(mctx, unsent); err != nil {
		t.Fatalf("marking beside a settling batch: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if left := mine(); len(left) != 0 {
		t.Fatalf("sent again: %+v", left)
	}
	var sent []bool
	rows, err := st.Pool().Query(ctx, `SELECT sent_at IS NOT NULL FROM api_usage WHERE file_id = $1 ORDER BY line`, recs[0].FileID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b bool
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b)
	}
	if rows.Err() != nil || !slices.Equal(sent, []bool{false, true}) {
		t.Fatalf("marked sent by line: %v %v", sent, rows.Err())
	}
}
