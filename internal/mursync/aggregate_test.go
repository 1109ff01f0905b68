package mursync

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
)

func seqIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("id-%03d", n) }
}

func mur(rec, acct, typ, at, qty, net, cur string, q ...string) MUR {
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		panic(err)
	}
	m := MUR{ID: "m-" + rec, RecordID: rec, AccountID: acct, UsageType: typ, UsageTime: t, Currency: cur,
		Quantity: qty, NetAmount: net, RatedAt: t.Add(time.Hour)}
	copy(m.Qualifiers[:], q)
	return m
}

func TestAggregate(t *testing.T) {
	murs := []MUR{
		mur("r1", "A2", "calls", "2026-03-01T23:59:59Z", "1.5", "0.15", "USD", "roaming", "cell-1"),
		mur("r2", "A1", "calls", "2026-03-01T00:00:00Z", "2", "0.20", "USD", "roaming", "cell-2"),
		mur("r3", "A2", "calls", "2026-03-01T10:00:00+05:00", "0.25", "0.03", "USD", "roaming", "cell-1"),
		mur("r4", "A2", "calls", "2026-03-02T00:00:00Z", "10", "1.00", "USD"),
		mur("r5", "A2", "sms", "2026-03-01T12:00:00Z", "3", "30", "JPY"),
		mur("r6", "A1", "calls", "2026-03-01T18:30:00Z", "0.000001", "0.00", "USD", "roaming"),
	}
	agg, err := Aggregate(murs, true, seqIDs())
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		acct, typ, day, units, amount string
		murs                          int
		quals                         [4]string
	}
	var got []rec
	for _, r := range agg.Records {
		got = append(got, rec{r.AccountID, r.UsageType, r.Day.Format(time.DateOnly), r.Units, r.Amount, r.MURs, r.Qualifiers})
		if !r.UsageDate.Equal(r.Day) {
			t.Errorf("%s: usage_date %s is not the day's start", r.ID, r.UsageDate)
		}
	}
	want := []rec{
		{"A1", "calls", "2026-03-01", "2.000001", "0.20", 2, [4]string{"roaming"}},
		{"A2", "calls", "2026-03-01", "1.75", "0.18", 2, [4]string{"roaming", "cell-1"}},
		{"A2", "calls", "2026-03-02", "10", "1.00", 1, [4]string{}},
		{"A2", "sms", "2026-03-01", "3", "30", 1, [4]string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records\n got %v\nwant %v", got, want)
	}
	// r3 is 05:00 UTC on 1 March, so it joins r1; r4 is the next UTC day.
	if wantOf := []int32{1, 0, 1, 2, 3, 0}; !reflect.DeepEqual(agg.Of, wantOf) {
		t.Fatalf("Of = %v, want %v", agg.Of, wantOf)
	}
	if agg.Records[0].Comments != "2 MURs of 2026-03-01" || agg.Records[2].Comments != "1 MUR of 2026-03-02" {
		t.Errorf("comments %q, %q", agg.Records[0].Comments, agg.Records[2].Comments)
	}
	if !agg.Records[0].OldestRatedAt.Equal(murs[1].RatedAt) {
		t.Errorf("oldest rated_at %s", agg.Records[0].OldestRatedAt)
	}
}

func TestAggregateOff(t *testing.T) {
	murs := []MUR{
		mur("r1", "A1", "calls", "2026-03-01T10:00:00.75Z", "1.5", "0.15", "USD", "q1"),
		mur("r2", "A1", "calls", "2026-03-01T11:00:00Z", "2", "0.2", "USD"),
	}
	agg, err := Aggregate(murs, false, seqIDs())
	if err != nil {
		t.Fatal(err)
	}
	if len(agg.Records) != 2 || !reflect.DeepEqual(agg.Of, []int32{0, 1}) {
		t.Fatalf("records %+v, Of %v", agg.Records, agg.Of)
	}
	r := agg.Records[0]
	if r.Units != "1.5" || r.Amount != "0.15" || r.MURs != 1 || r.Qualifiers[0] != "q1" || r.Comments != "MUR r1" ||
		!r.UsageDate.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("record %+v", r)
	}
	if agg.Records[1].Amount != "0.20" {
		t.Errorf("amount %q is not written with the currency's two decimals", agg.Records[1].Amount)
	}
}

func TestAggregateUnsendable(t *testing.T) {
	murs := []MUR{
		mur("ok", "A1", "calls", "2026-03-01T10:00:00Z", "1", "1.00", "USD"),
		mur("cur", "A1", "calls", "2026-03-01T10:00:00Z", "1", "1.00", "XXY"),
		mur("scale", "A1", "calls", "2026-03-01T10:00:00Z", "1", "1.001", "USD"),
		mur("neg", "A1", "calls", "2026-03-01T10:00:00Z", "-1", "1.00", "USD"),
		mur("nan", "A1", "calls", "2026-03-01T10:00:00Z", "NaN", "1.00", "USD"),
		mur("ok2", "A1", "calls", "2026-03-01T11:00:00Z", "2", "1.50", "USD"),
	}
	agg, err := Aggregate(murs, true, seqIDs())
	if err != nil {
		t.Fatal(err)
	}
	if len(agg.Records) != 1 || agg.Records[0].Units != "3" || agg.Records[0].Amount != "2.50" || agg.Records[0].MURs != 2 {
		t.Fatalf("records %+v", agg.Records)
	}
	if !reflect.DeepEqual(agg.Of, []int32{0, -1, -1, -1, -1, 0}) {
		t.Fatalf("Of %v", agg.Of)
	}
	wants := []string{"not an ISO 4217 code", "more decimals than USD's minor unit (2)", "is negative", "quantity:"}
	for i, u := range agg.Unsendable {
		if u.Index != i+1 || !strings.Contains(u.Reason, wants[i]) {
			t.Errorf("unsendable %d: %+v, want index %d saying %q", i, u, i+1, wants[i])
		}
	}
}

// The records' sums equal the MURs' sums per account, usage type and
// day, exactly, whatever the order and however the MURs are spread.
func TestAggregateSumsProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		n := 1 + rng.IntN(400)
		murs := make([]MUR, n)
		type key struct{ acct, typ, day string }
		wantUnits, wantAmt := map[key]*apd.Decimal{}, map[key]*apd.Decimal{}
		for i := range murs {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
			qty := fmt.Sprintf("%d.%06d", rng.IntN(1000), rng.IntN(1000000))
			net := fmt.Sprintf("%d.%02d", rng.IntN(100000), rng.IntN(100))
			murs[i] = MUR{ID: fmt.Sprint(i), RecordID: fmt.Sprint(i), AccountID: fmt.Sprintf("A%d", rng.IntN(5)),
				UsageType: []string{"calls", "data"}[rng.IntN(2)], UsageTime: at, Currency: "EUR",
				Quantity: qty, NetAmount: net, RatedAt: at}
			k := key{murs[i].AccountID, murs[i].UsageType, at.Format(time.DateOnly)}
			for _, p := range []struct {
				m map[key]*apd.Decimal
				v string
			}{{wantUnits, qty}, {wantAmt, net}} {
				if p.m[k] == nil {
					p.m[k] = new(apd.Decimal)
				}
				d, _, _ := apd.NewFromString(p.v)
				if _, err := sumCtx.Add(p.m[k], p.m[k], d); err != nil {
					t.Fatal(err)
				}
			}
		}
		agg, err := Aggregate(murs, round%2 == 0, seqIDs())
		if err != nil {
			t.Fatal(err)
		}
		gotUnits, gotAmt := map[key]*apd.Decimal{}, map[key]*apd.Decimal{}
		total := 0
		for _, r := range agg.Records {
			k := key{r.AccountID, r.UsageType, r.Day.Format(time.DateOnly)}
			for _, p := range []struct {
				m map[key]*apd.Decimal
				v string
			}{{gotUnits, r.Units}, {gotAmt, r.Amount}} {
				if p.m[k] == nil {
					p.m[k] = new(apd.Decimal)
				}
				d, _, _ := apd.NewFromString(p.v)
				_, _ = sumCtx.Add(p.m[k], p.m[k], d)
			}
			total += r.MURs
		}
		if total != n {
			t.Fatalf("round %d: records hold %d MURs of %d", round, total, n)
		}
		for k, w := range wantUnits {
			if gotUnits[k] == nil || gotUnits[k].Cmp(w) != 0 || gotAmt[k].Cmp(wantAmt[k]) != 0 {
				t.Fatalf("round %d %v: units %v amount %v, want %v %v", round, k, gotUnits[k], gotAmt[k], w, wantAmt[k])
			}
		}
		for i, j := range agg.Of {
			r := agg.Records[j]
			if r.AccountID != murs[i].AccountID || r.UsageType != murs[i].UsageType || !r.Day.Equal(murs[i].UsageTime.Truncate(24*time.Hour)) {
				t.Fatalf("round %d: MUR %d went into record %+v", round, i, r)
			}
		}
	}
}

func TestDayNumber(t *testing.T) {
	for _, tt := range []struct {
		at   time.Time
		want int64
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(86399, 0), 0},
		{time.Unix(86400, 0), 1},
		{time.Unix(-1, 0), -1},
		{time.Unix(-86400, 0), -1},
		{time.Unix(-86401, 0), -2},
	} {
		if got := dayNumber(tt.at); got != tt.want {
			t.Errorf("dayNumber(%s) = %d, want %d", tt.at.UTC(), got, tt.want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		n, size int
		want    [][2]int
	}{
		{0, 10, nil},
		{5, 10, [][2]int{{0, 5}}},
		{10, 5, [][2]int{{0, 5}, {5, 10}}},
		{11, 5, [][2]int{{0, 5}, {5, 10}, {10, 11}}},
		{3, 0, [][2]int{{0, 1}, {1, 2}, {2, 3}}},
	} {
		if got := Cut(tt.n, tt.size); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Cut(%d, %d) = %v, want %v", tt.n, tt.size, got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	m := BatchMessage{BatchID: "b1", Records: []Record{{ID: "r1"}, {ID: "r2"}, {ID: "r3"}}}
	at := time.Unix(100, 0)
	o := Decide(m, Answer{Attempts: 2, Refused: map[string]RecordError{"r2": {1009, "account does not exist"}, "other": {1, "x"}}}, nil, at)
	if o.Status != Done || o.Attempts != 2 || len(o.Refused) != 1 || o.Refused["r2"].Code != 1009 || o.Call != nil {
		t.Fatalf("per-record refusal: %+v", o)
	}
	if got := MURError(o, o.Refused["r2"]); got != "record_error_code 1009: account does not exist" {
		t.Errorf("MUR error %q", got)
	}
	call := &CallError{Failure: FailRefused, Code: 1004, Message: "authentication error", Attempts: 1}
	o = Decide(m, Answer{}, call, at)
	if o.Status != Failed || o.Call != call || o.Attempts != 1 || o.Refused != nil {
		t.Fatalf("whole-call failure: %+v", o)
	}
	if got := MURError(o, RecordError{}); got != "batch b1 failed (refused): error_code 1004: authentication error" {
		t.Errorf("MUR error %q", got)
	}
	if call.Retryable() || !(&CallError{Failure: FailUnavailable}).Retryable() {
		t.Error("only an unavailable core is worth trying again unasked")
	}
}

func TestBatchMessageJSON(t *testing.T) {
	m := BatchMessage{BatchID: "b1", Client: "acme", JobID: "j1", CreatedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Records: []Record{{ID: "r1", AccountID: "A1", UsageType: "calls", Currency: "USD",
			UsageDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Units: "1.5", Amount: "0.15", MURs: 3,
			Qualifiers: [4]string{"x", "", "", "y"}, Comments: "3 MURs of 2026-03-01"}}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"batch_id":"b1","client":"acme","job_id":"j1","created_at":"2026-03-01T00:00:00Z","record_count":1,"records":[` +
		`{"client_record_id":"r1","account_id":"A1","usage_type":"calls","currency":"USD","usage_date":"2026-03-01T00:00:00Z",` +
		`"units":"1.5","amount":"0.15","murs":3,"qualifier_1":"x","qualifier_4":"y","comments":"3 MURs of 2026-03-01"}]}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
	var back BatchMessage
	if err := json.Unmarshal(append(b[:len(b)-1], `,"later_field":1}`...), &back); err != nil {
		t.Fatal(err)
	}
	m.Records[0].Day, m.Count = time.Time{}, 1
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip\n got %+v\nwant %+v", back, m)
	}
	for _, bad := range []string{`{"client":"x"}`, `{"batch_id":"b","client":"x","records":[{"client_record_id":"r","usage_date":"soon"}]}`,
		`{"batch_id":"b","client":"x","records":[{"usage_date":"2026-03-01T00:00:00Z"}]}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s was read", bad)
		}
	}
}

// A batch too large for one message goes without its records, which the
// sync service reads from the database.
func TestBatchMessageOmitsLargeRecords(t *testing.T) {
	m := BatchMessage{BatchID: "b1", Client: "acme", Records: make([]Record, 4000)}
	for i := range m.Records {
		m.Records[i] = Record{ID: fmt.Sprintf("01a2339c-c7f5-737f-9199-%012d", i), AccountID: "ACCOUNT-000001", UsageType: "VOICE",
			Currency: "USD", Units: "123.456", Amount: "12.34", MURs: 7, Comments: "7 MURs of 2026-03-01"}
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxInline {
		t.Fatalf("%d bytes", len(b))
	}
	var back BatchMessage
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Omitted || back.Count != 4000 || len(back.Records) != 0 {
		t.Fatalf("read back: omitted %v, count %d, %d records", back.Omitted, back.Count, len(back.Records))
	}
	m.Records = m.Records[:100]
	if b, _ = m.Encode(); json.Unmarshal(b, &back) != nil || back.Omitted || len(back.Records) != 100 {
		t.Fatalf("a small batch: omitted %v, %d records", back.Omitted, len(back.Records))
	}
}

func TestSummaryComplete(t *testing.T) {
	if err := (Summary{Synced: 3, Failed: 2}).Complete(); err != nil {
		t.Fatalf("records refused one by one: %v", err)
	}
	err := Summary{Unanswered: 2, Failures: []BatchFailure{{BatchID: "b1", Failure: FailRefused, Code: 1004, Message: "authentication error", Records: 7}}}.Complete()
	if err == nil || !strings.Contains(err.Error(), "batch b1 of 7 records failed (refused): error_code 1004: authentication error") ||
		!strings.Contains(err.Error(), "2 batches not answered") {
		t.Fatalf("Complete = %v", err)
	}
}
