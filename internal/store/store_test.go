package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newFile(client, sha string) store.File {
	return store.File{FileID: store.NewID(), Client: client, Name: "usage.csv", Source: "http",
		Location: "/archive/usage.csv", Format: "csv", SizeBytes: 10, SHA256: sha}
}

func TestRegisterDuplicate(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "dup-" + store.NewID()[24:]
	first, err := st.RegisterFile(ctx, newFile(client, "abc"))
	if err != nil || first.Status != store.FileReceived {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := st.RegisterFile(ctx, newFile(client, "abc"))
	if !errors.Is(err, store.ErrDuplicateFile) {
		t.Fatalf("second: err = %v, want ErrDuplicateFile", err)
	}
	if second.Status != store.FileRejected || second.FileID == first.FileID || second.Reason == "" {
		t.Fatalf("second = %+v", second)
	}
	// Another client may send the same content.
	if _, err := st.RegisterFile(ctx, newFile(client+"-other", "abc")); err != nil {
		t.Fatal(err)
	}
	// A third copy is refused too, and both refusals stay visible.
	if _, err := st.RegisterFile(ctx, newFile(client, "abc")); !errors.Is(err, store.ErrDuplicateFile) {
		t.Fatalf("third: %v", err)
	}
	files, err := st.ListFiles(ctx, client, 10)
	if err != nil || len(files) != 3 {
		t.Fatalf("list: %d files, %v", len(files), err)
	}
}

func TestClaimLeaseAndCounts(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "claim-" + store.NewID()[24:]
	f, err := st.RegisterFile(ctx, newFile(client, "c1"))
	if err != nil {
		t.Fatal(err)
	}
	claimed := claimOwn(t, st, f.FileID, "reader-1", time.Minute)
	if claimed.Status != store.FileProcessing {
		t.Fatalf("claimed = %+v", claimed)
	}
	if err := st.RenewLease(ctx, f.FileID, "reader-2", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a reader renewed a lease it does not hold: %v", err)
	}
	// Two exceptions arrive before the reader has counted the file.
	exs := []store.Exception{exception(client, f.FileID, 2), exception(client, f.FileID, 3)}
	n, err := st.InsertExceptions(ctx, exs)
	if err != nil || n != 2 {
		t.Fatalf("insert: %d %v", n, err)
	}
	// A replay of the same messages counts nothing.
	if n, err := st.InsertExceptions(ctx, exs); err != nil || n != 0 {
		t.Fatalf("replay counted: %d %v", n, err)
	}
	got, err := st.FileRead(ctx, f.FileID, 3)
	if err != nil || got.Status != store.FileProcessing || got.Exceptions != 2 {
		t.Fatalf("after read: %+v %v", got, err)
	}
	if _, err := st.InsertExceptions(ctx, []store.Exception{exception(client, f.FileID, 4)}); err != nil {
		t.Fatal(err)
	}
	got, err = st.GetFile(ctx, f.FileID)
	if err != nil || got.Status != store.FileDone || got.FinishedAt == nil || *got.Records != 3 {
		t.Fatalf("not done when counts add up: %+v %v", got, err)
	}
}

func TestFileReadAfterCountsAddUp(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "late-" + store.NewID()[24:]
	f, _ := st.RegisterFile(ctx, newFile(client, "l1"))
	claimOwn(t, st, f.FileID, "r", time.Minute)
	if _, err := st.InsertExceptions(ctx, []store.Exception{exception(client, f.FileID, 2)}); err != nil {
		t.Fatal(err)
	}
	got, err := st.FileRead(ctx, f.FileID, 1)
	if err != nil || got.Status != store.FileDone {
		t.Fatalf("file not done at once: %+v %v", got, err)
	}
}

func TestExpiredLeaseIsReclaimed(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "lease-" + store.NewID()[24:]
	// Other tests' files, held for an hour: a one-millisecond lease on an
	// older file would otherwise expire before every next claim and be
	// claimed again and again.
	for {
		if _, err := st.ClaimFile(ctx, "drain", time.Hour); err != nil {
			break
		}
	}
	f, _ := st.RegisterFile(ctx, newFile(client, "x1"))
	claimOwn(t, st, f.FileID, "dead-reader", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	again := claimOwn(t, st, f.FileID, "new-reader", time.Minute)
	if again.FileID != f.FileID {
		t.Fatal("expired lease not reclaimed")
	}
	if err := st.ReleaseLease(ctx, f.FileID, "new-reader"); err != nil {
		t.Fatal(err)
	}
	claimOwn(t, st, f.FileID, "third-reader", time.Minute)
}

// claimOwn claims files until it gets want; other tests' files may be
// claimed on the way (each package shares one database).
func claimOwn(t *testing.T, st *store.Store, want, owner string, lease time.Duration) store.File {
	t.Helper()
	for i := 0; i < 1000; i++ {
		f, err := st.ClaimFile(context.Background(), owner, lease)
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if f.FileID == want {
			return f
		}
	}
	t.Fatalf("file %s never claimed", want)
	return store.File{}
}

func exception(client, fileID string, line int64) store.Exception {
	rec, _ := json.Marshal(map[string]string{"record_id": "r", "quantity": "x"})
	return store.Exception{Client: client, FileID: fileID, Line: line, RecordID: "r", Stage: "mediate",
		Code: "BAD_QUANTITY", Field: "quantity", Message: "quantity \"x\" is not a decimal number", Record: rec}
}

func TestExportExceptions(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "exp-" + store.NewID()[24:]
	f, _ := st.RegisterFile(ctx, newFile(client, "e1"))
	if _, err := st.InsertExceptions(ctx, []store.Exception{exception(client, f.FileID, 2)}); err != nil {
		t.Fatal(err)
	}
	var got []store.Exception
	err := st.ExportExceptions(ctx, store.ExceptionFilter{Client: client}, func(e store.Exception) error {
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d exceptions, %v", len(got), err)
	}
	e := got[0]
	if e.Line != 2 || e.Code != "BAD_QUANTITY" || e.Field != "quantity" || e.Status != store.ExceptionOpen || e.Stage != "mediate" {
		t.Fatalf("exception = %+v", e)
	}
	var rec map[string]string
	if err := json.Unmarshal(e.Record, &rec); err != nil || rec["quantity"] != "x" {
		t.Fatalf("record = %s", e.Record)
	}
}

// TestMURRoundTrip writes MURs whose text holds every character COPY's
// text format escapes, and reads them back unchanged.
func TestMURRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "copy-" + store.NewID()[24:]
	f, err := st.RegisterFile(ctx, newFile(client, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	in := []store.MUR{{
		Client: client, RecordID: "tab\there", FileID: f.FileID, Line: 2, AccountID: `back\slash`, UsageType: "NL\nCR\r",
		Quantity: "12.500", UsageTime: at, Currency: "USD", GrossAmount: "1.25", DiscountAmount: "0.00", NetAmount: "1.25",
		RateDetail: json.RawMessage(`{"note":"a\tb\\c\nd"}`), Qualifiers: map[string]string{"k": "v\tw"},
		Attributes: map[string]string{`\N`: "\\N"},
	}, {
		Client: client, RecordID: "", FileID: f.FileID, Line: 3, Part: 1, AccountID: "A", UsageType: "U",
		Quantity: "0", UsageTime: at, Currency: "JPY", GrossAmount: "0", DiscountAmount: "0", NetAmount: "0",
		RateDetail: json.RawMessage(`{}`),
	}}
	if err := st.Rate(ctx, func(tx *store.RateTx) error { return tx.InsertMURs(ctx, in) }); err != nil {
		t.Fatal(err)
	}
	var out []store.MUR
	if err := st.ExportMURs(ctx, store.MURFilter{Client: client}, func(m store.MUR) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d MURs back", len(out))
	}
	for i, m := range out {
		w := in[i]
		var gotDetail, wantDetail any
		_ = json.Unmarshal(m.RateDetail, &gotDetail)
		_ = json.Unmarshal(w.RateDetail, &wantDetail)
		if m.RecordID != w.RecordID || m.AccountID != w.AccountID || m.UsageType != w.UsageType || m.Quantity != w.Quantity ||
			!m.UsageTime.Equal(w.UsageTime) || m.NetAmount != w.NetAmount || m.Part != w.Part ||
			fmt.Sprint(gotDetail) != fmt.Sprint(wantDetail) || fmt.Sprint(m.Attributes) != fmt.Sprint(w.Attributes) && len(w.Attributes) > 0 ||
			fmt.Sprint(m.Qualifiers) != fmt.Sprint(w.Qualifiers) && len(w.Qualifiers) > 0 {
			t.Errorf("MUR %d:\n got %+v\nwant %+v", i, m, w)
		}
	}
	// The same record id again is a concurrent record: the caller rates
	// the batch again and then sees it as already rated.
	again := in[:1]
	again[0].MURID = ""
	err = st.Rate(ctx, func(tx *store.RateTx) error { return tx.InsertMURs(ctx, again) })
	if !errors.Is(err, store.ErrConcurrentRecord) {
		t.Fatalf("second insert: %v, want ErrConcurrentRecord", err)
	}
}

// TestFilteredRecordsCount: a record dropped on purpose arrives on the
// exceptions route with code FILTERED; it is kept apart from the
// exceptions, counted once as filtered however often it is replayed, and
// the file is done when MURs, exceptions and filtered records add up.
func TestFilteredRecordsCount(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "filt-" + store.NewID()[24:]
	f, _ := st.RegisterFile(ctx, newFile(client, "f1"))
	claimOwn(t, st, f.FileID, "r", time.Minute)
	filtered := store.Exception{Client: client, FileID: f.FileID, Line: 3, RecordID: "r3", Stage: "mediate",
		Code: string(codes.Filtered), Message: "test traffic", Record: json.RawMessage(`{"account_id":"TEST-1"}`)}
	batch := []store.Exception{exception(client, f.FileID, 2), filtered}
	for range 2 { // the second time is a replay
		if _, err := st.InsertExceptions(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.FileRead(ctx, f.FileID, 2)
	if err != nil || got.Status != store.FileDone || got.Exceptions != 1 || got.Filtered != 1 {
		t.Fatalf("file: %+v %v", got, err)
	}
	var n int
	err = st.ExportExceptions(ctx, store.ExceptionFilter{Client: client}, func(store.Exception) error { n++; return nil })
	if err != nil || n != 1 {
		t.Fatalf("%d exceptions listed (%v); the filtered record is not one", n, err)
	}
	var reason string
	if err := st.Pool().QueryRow(ctx, `SELECT reason FROM filtered_records WHERE client = $1 AND line = 3`, client).Scan(&reason); err != nil || reason != "test traffic" {
		t.Fatalf("filtered record: %q %v", reason, err)
	}
}

// TestExceptionTwiceInOneBatch: a stage replayed after a crash can put the
// same record's exception twice into one batch of the exceptions topic;
// it is stored and counted once, and the batch does not fail.
func TestExceptionTwiceInOneBatch(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "twice-" + store.NewID()[24:]
	f, _ := st.RegisterFile(ctx, newFile(client, "t1"))
	e := exception(client, f.FileID, 2)
	n, err := st.InsertExceptions(ctx, []store.Exception{e, e})
	if err != nil || n != 1 {
		t.Fatalf("stored %d, %v; want 1", n, err)
	}
}

// TestSplitLineCountsEveryPart: a line that mediation split into three
// records is accounted for only when all three have ended somewhere; the
// first part rated must not make the file look done. The file is
// reported finished once, by the transaction that finished it.
func TestSplitLineCountsEveryPart(t *testing.T) {
	var finished []store.FinishedFile
	ctx := store.WithFileObserver(context.Background(), func(f store.FinishedFile) { finished = append(finished, f) })
	st := pgtest.Store(t)
	client := "split-" + store.NewID()[24:]
	f, _ := st.RegisterFile(ctx, newFile(client, "s1"))
	claimOwn(t, st, f.FileID, "r", time.Minute)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	part0 := store.MUR{Client: client, RecordID: "call-7", FileID: f.FileID, Line: 3, Part: 0, Parts: 3,
		AccountID: "A", UsageType: "VOICE", Quantity: "2", UsageTime: at, Currency: "USD",
		GrossAmount: "0.20", DiscountAmount: "0.00", NetAmount: "0.20", RateDetail: json.RawMessage(`{}`)}
	if err := st.Rate(ctx, func(tx *store.RateTx) error {
		if err := tx.InsertMURs(ctx, []store.MUR{part0}); err != nil {
			return err
		}
		return tx.InsertExceptions(ctx, []store.Exception{exception(client, f.FileID, 2)})
	}); err != nil {
		t.Fatal(err)
	}
	// Two lines read, two outcomes stored: without the split's parts the
	// file would be done here.
	got, err := st.FileRead(ctx, f.FileID, 2)
	if err != nil || got.Status != store.FileProcessing || *got.Records != 4 || got.Split != 2 {
		t.Fatalf("after read: %+v %v", got, err)
	}
	part1 := exception(client, f.FileID, 3)
	part1.Part, part1.Parts = 1, 3
	part2 := store.Exception{Client: client, FileID: f.FileID, Line: 3, Part: 2, Parts: 3, RecordID: "call-7-2",
		Stage: "mediate", Code: string(codes.Filtered), Message: "zero-rated leg", Record: json.RawMessage(`{}`)}
	for range 2 { // the second time is a replay: the line is not counted again
		if _, err := st.InsertExceptions(ctx, []store.Exception{part1}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ = st.GetFile(ctx, f.FileID); got.Status != store.FileProcessing || len(finished) != 0 {
		t.Fatalf("done with a part missing: %+v, finished %v", got, finished)
	}
	if _, err := st.InsertExceptions(ctx, []store.Exception{part2}); err != nil {
		t.Fatal(err)
	}
	got, err = st.GetFile(ctx, f.FileID)
	if err != nil || got.Status != store.FileDone || *got.Records != 4 || got.Split != 2 ||
		got.MURs != 1 || got.Exceptions != 2 || got.Filtered != 1 {
		t.Fatalf("final: %+v %v", got, err)
	}
	if len(finished) != 1 || finished[0].FileID != f.FileID || finished[0].Client != client ||
		finished[0].Took != got.FinishedAt.Sub(got.ReceivedAt) {
		t.Fatalf("finished files reported: %+v (file %+v)", finished, got)
	}
}
