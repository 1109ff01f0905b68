package usagestore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/filestore/filestoretest"
	"vivace.dev/vivace/internal/store/usagestore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestClaimLeaseAndCounts(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs, us := filestore.New(st), usagestore.New(st)
	client := "claim-" + ids.New()[24:]
	f, err := fs.RegisterFile(ctx, filestoretest.File(client, "c1"))
	if err != nil {
		t.Fatal(err)
	}
	claimed := filestoretest.Claim(t, fs, f.FileID, "reader-1", time.Minute)
	if claimed.Status != files.Processing {
		t.Fatalf("claimed = %+v", claimed)
	}
	if err := fs.RenewLease(ctx, f.FileID, "reader-2", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a reader renewed a lease it does not hold: %v", err)
	}
	// Two exceptions arrive before the reader has counted the file.
	exs := []exceptions.Exception{exception(client, f.FileID, 2), exception(client, f.FileID, 3)}
	n, err := us.InsertExceptions(ctx, exs)
	if err != nil || n != 2 {
		t.Fatalf("insert: %d %v", n, err)
	}
	// A replay of the same messages counts nothing.
	if n, err := us.InsertExceptions(ctx, exs); err != nil || n != 0 {
		t.Fatalf("replay counted: %d %v", n, err)
	}
	got, err := fs.FileRead(ctx, f.FileID, 3)
	if err != nil || got.Status != files.Processing || got.Exceptions != 2 {
		t.Fatalf("after read: %+v %v", got, err)
	}
	if _, err := us.InsertExceptions(ctx, []exceptions.Exception{exception(client, f.FileID, 4)}); err != nil {
		t.Fatal(err)
	}
	got, err = fs.GetFile(ctx, f.FileID)
	if err != nil || got.Status != files.Done || got.FinishedAt == nil || *got.Records != 3 {
		t.Fatalf("not done when counts add up: %+v %v", got, err)
	}
}

func TestFileReadAfterCountsAddUp(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs, us := filestore.New(st), usagestore.New(st)
	client := "late-" + ids.New()[24:]
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "l1"))
	filestoretest.Claim(t, fs, f.FileID, "r", time.Minute)
	if _, err := us.InsertExceptions(ctx, []exceptions.Exception{exception(client, f.FileID, 2)}); err != nil {
		t.Fatal(err)
	}
	got, err := fs.FileRead(ctx, f.FileID, 1)
	if err != nil || got.Status != files.Done {
		t.Fatalf("file not done at once: %+v %v", got, err)
	}
}

func exception(client, fileID string, line int64) exceptions.Exception {
	rec, _ := json.Marshal(map[string]string{"record_id": "r", "quantity": "x"})
	return exceptions.Exception{Client: client, FileID: fileID, Line: line, RecordID: "r", Stage: "mediate",
		Code: "BAD_QUANTITY", Field: "quantity", Message: "quantity \"x\" is not a decimal number", Record: rec}
}

func TestExportExceptions(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs, us := filestore.New(st), usagestore.New(st)
	client := "exp-" + ids.New()[24:]
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "e1"))
	if _, err := us.InsertExceptions(ctx, []exceptions.Exception{exception(client, f.FileID, 2)}); err != nil {
		t.Fatal(err)
	}
	var got []exceptions.Exception
	err := us.ExportExceptions(ctx, exceptions.Filter{Client: client}, func(e exceptions.Exception) error {
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d exceptions, %v", len(got), err)
	}
	e := got[0]
	if e.Line != 2 || e.Code != "BAD_QUANTITY" || e.Field != "quantity" || e.Status != exceptions.Open || e.Stage != "mediate" {
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
	fs, us := filestore.New(st), usagestore.New(st)
	client := "copy-" + ids.New()[24:]
	f, err := fs.RegisterFile(ctx, filestoretest.File(client, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	in := []murs.MUR{{
		Client: client, RecordID: "tab\there", FileID: f.FileID, Line: 2, AccountID: `back\slash`, UsageType: "NL\nCR\r",
		Quantity: "12.500", UsageTime: at, Currency: "USD", GrossAmount: "1.25", DiscountAmount: "0.00", NetAmount: "1.25",
		RateDetail: json.RawMessage(`{"note":"a\tb\\c\nd"}`), Qualifiers: map[string]string{"k": "v\tw"},
		Attributes: map[string]string{`\N`: "\\N"},
	}, {
		Client: client, RecordID: "", FileID: f.FileID, Line: 3, Part: 1, AccountID: "A", UsageType: "U",
		Quantity: "0", UsageTime: at, Currency: "JPY", GrossAmount: "0", DiscountAmount: "0", NetAmount: "0",
		RateDetail: json.RawMessage(`{}`),
	}}
	if err := us.Rate(ctx, func(tx ratestage.Tx) error { return tx.InsertMURs(ctx, in) }); err != nil {
		t.Fatal(err)
	}
	var out []murs.MUR
	if err := us.ExportMURs(ctx, murs.Filter{Client: client}, func(m murs.MUR) error { out = append(out, m); return nil }); err != nil {
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
	err = us.Rate(ctx, func(tx ratestage.Tx) error { return tx.InsertMURs(ctx, again) })
	if !errors.Is(err, usagestore.ErrConcurrentRecord) {
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
	fs, us := filestore.New(st), usagestore.New(st)
	client := "filt-" + ids.New()[24:]
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "f1"))
	filestoretest.Claim(t, fs, f.FileID, "r", time.Minute)
	filtered := exceptions.Exception{Client: client, FileID: f.FileID, Line: 3, RecordID: "r3", Stage: "mediate",
		Code: codes.Filtered, Message: "test traffic", Record: json.RawMessage(`{"account_id":"TEST-1"}`)}
	batch := []exceptions.Exception{exception(client, f.FileID, 2), filtered}
	for range 2 { // the second time is a replay
		if _, err := us.InsertExceptions(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := fs.FileRead(ctx, f.FileID, 2)
	if err != nil || got.Status != files.Done || got.Exceptions != 1 || got.Filtered != 1 {
		t.Fatalf("file: %+v %v", got, err)
	}
	var n int
	err = us.ExportExceptions(ctx, exceptions.Filter{Client: client}, func(exceptions.Exception) error { n++; return nil })
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
	fs, us := filestore.New(st), usagestore.New(st)
	client := "twice-" + ids.New()[24:]
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "t1"))
	e := exception(client, f.FileID, 2)
	n, err := us.InsertExceptions(ctx, []exceptions.Exception{e, e})
	if err != nil || n != 1 {
		t.Fatalf("stored %d, %v; want 1", n, err)
	}
}

// TestSplitLineCountsEveryPart: a line that mediation split into three
// records is accounted for only when all three have ended somewhere; the
// first part rated must not make the file look done. The file is
// reported finished once, by the transaction that finished it.
func TestSplitLineCountsEveryPart(t *testing.T) {
	var finished []files.Finished
	ctx := files.WithObserver(context.Background(), func(f files.Finished) { finished = append(finished, f) })
	st := pgtest.Store(t)
	fs, us := filestore.New(st), usagestore.New(st)
	client := "split-" + ids.New()[24:]
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "s1"))
	filestoretest.Claim(t, fs, f.FileID, "r", time.Minute)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	part0 := murs.MUR{Client: client, RecordID: "call-7", FileID: f.FileID, Line: 3, Part: 0, Parts: 3,
		AccountID: "A", UsageType: "VOICE", Quantity: "2", UsageTime: at, Currency: "USD",
		GrossAmount: "0.20", DiscountAmount: "0.00", NetAmount: "0.20", RateDetail: json.RawMessage(`{}`)}
	if err := us.Rate(ctx, func(tx ratestage.Tx) error {
		if err := tx.InsertMURs(ctx, []murs.MUR{part0}); err != nil {
			return err
		}
		return tx.InsertExceptions(ctx, []exceptions.Exception{exception(client, f.FileID, 2)})
	}); err != nil {
		t.Fatal(err)
	}
	// Two lines read, two outcomes stored: without the split's parts the
	// file would be done here.
	got, err := fs.FileRead(ctx, f.FileID, 2)
	if err != nil || got.Status != files.Processing || *got.Records != 4 || got.Split != 2 {
		t.Fatalf("after read: %+v %v", got, err)
	}
	part1 := exception(client, f.FileID, 3)
	part1.Part, part1.Parts = 1, 3
	part2 := exceptions.Exception{Client: client, FileID: f.FileID, Line: 3, Part: 2, Parts: 3, RecordID: "call-7-2",
		Stage: "mediate", Code: codes.Filtered, Message: "zero-rated leg", Record: json.RawMessage(`{}`)}
	for range 2 { // the second time is a replay: the line is not counted again
		if _, err := us.InsertExceptions(ctx, []exceptions.Exception{part1}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ = fs.GetFile(ctx, f.FileID); got.Status != files.Processing || len(finished) != 0 {
		t.Fatalf("done with a part missing: %+v, finished %v", got, finished)
	}
	if _, err := us.InsertExceptions(ctx, []exceptions.Exception{part2}); err != nil {
		t.Fatal(err)
	}
	got, err = fs.GetFile(ctx, f.FileID)
	if err != nil || got.Status != files.Done || *got.Records != 4 || got.Split != 2 ||
		got.MURs != 1 || got.Exceptions != 2 || got.Filtered != 1 {
		t.Fatalf("final: %+v %v", got, err)
	}
	if len(finished) != 1 || finished[0].FileID != f.FileID || finished[0].Client != client ||
		finished[0].Took != got.FinishedAt.Sub(got.ReceivedAt) {
		t.Fatalf("finished files reported: %+v (file %+v)", finished, got)
	}
}

// TestUnstorableRecords: a record jsonb cannot hold (a NUL in a string,
// bytes that are not JSON or not UTF-8) is stored readable, its bytes
// kept in raw, instead of failing the batch; raw given by the stage is
// kept as given.
func TestUnstorableRecords(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs, us := filestore.New(st), usagestore.New(st)
	client := "raw-" + ids.New()[24:]
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "raw1"))
	cases := []struct {
		record, raw []byte
		wantRaw     []byte // nil: no raw kept
		wantShown   string // the record column's raw text; "": the record as given
	}{
		{[]byte(`{"record_id":"r"}`), nil, nil, ""},
		{[]byte(`{"note":"a\u0000b"}`), nil, []byte(`{"note":"a\u0000b"}`), `{"note":"a\u0000b"}`},
		{[]byte("not json \x00 \xff"), nil, []byte("not json \x00 \xff"), "not json \uFFFD \uFFFD"},
		{[]byte(`{"shown":"clipped"}`), []byte("the whole \x00 message"), []byte("the whole \x00 message"), ""},
	}
	var exs []exceptions.Exception
	for i, c := range cases {
		e := exception(client, f.FileID, int64(i+2))
		e.Record, e.Raw = c.record, c.raw
		exs = append(exs, e)
	}
	if n, err := us.InsertExceptions(ctx, exs); err != nil || n != len(cases) {
		t.Fatalf("InsertExceptions = %d, %v", n, err)
	}
	for i, c := range cases {
		var raw []byte
		var shown *string
		if err := st.Pool().QueryRow(ctx, `SELECT raw, record->>'raw' FROM exceptions WHERE file_id = $1 AND line = $2`,
			f.FileID, i+2).Scan(&raw, &shown); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, c.wantRaw) {
			t.Errorf("case %d: raw %q, want %q", i, raw, c.wantRaw)
		}
		if got := ""; shown != nil {
			got = *shown
			if got != c.wantShown {
				t.Errorf("case %d: record shows %q, want %q", i, got, c.wantShown)
			}
		} else if c.wantShown != "" {
			t.Errorf("case %d: record kept as given, want it shown as %q", i, c.wantShown)
		}
	}
}

// TestUnreadableMessages: a message no file can take is kept byte for
// byte, once per topic position.
func TestUnreadableMessages(t *testing.T) {
	ctx := context.Background()
	us := usagestore.New(pgtest.Store(t))
	m := exceptions.Unreadable{Stage: "rate", Topic: "usage.mediated", Partition: 1, Offset: 7, Reason: "not JSON \x00", Raw: []byte("\x00\xff")}
	for range 2 {
		if _, err := us.InsertUnreadable(ctx, []exceptions.Unreadable{m}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := us.Unreadable(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Raw, m.Raw) || got[0].Stage != "rate" || got[0].Offset != 7 || got[0].Reason != "not JSON " {
		t.Errorf("kept %+v, want the message once", got)
	}
}
