package bulkapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/bulkapi"
	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/money"
)

const (
	clientNo = 4242
	authKey  = "the-fake-core-key"
)

func startCore(t *testing.T, f fakecore.Faults) *fakecore.Server {
	t.Helper()
	s, err := fakecore.Start("", fakecore.Config{Credentials: []fakecore.Credential{{ClientNo: clientNo, AuthKey: authKey}}, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newClient(t *testing.T, url, key string, opts ...bulkapi.Option) *bulkapi.Client {
	t.Helper()
	c, err := bulkapi.New(url, clientNo, bulkapi.NewSecret(key),
		append([]bulkapi.Option{bulkapi.WithBackoff(time.Millisecond, 5*time.Millisecond), bulkapi.WithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type agg struct{ id, acct, typ, units, net, cur string }

// records builds usage records the way the sync does: exact decimals
// through Units and Amount, the day as usage_date.
func records(t *testing.T, aggs ...agg) []bulkapi.UsageRec {
	t.Helper()
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	out := make([]bulkapi.UsageRec, len(aggs))
	for i, a := range aggs {
		q, err := money.Parse(a.units)
		if err != nil {
			t.Fatal(err)
		}
		n, err := money.Parse(a.net)
		if err != nil {
			t.Fatal(err)
		}
		units, err := bulkapi.Units(&q)
		if err != nil {
			t.Fatal(err)
		}
		amt, err := bulkapi.Amount(&n, a.cur)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = bulkapi.UsageRec{ClientAcctID: a.acct, UsageTypeCode: a.typ, UsageUnits: units, Amt: amt,
			UsageDate: bulkapi.FormatDate(day), ClientRecordID: a.id, Qualifier1: "plan-1", Comments: "aggregated"}
	}
	return out
}

func TestAgainstTheFakeCore(t *testing.T) {
	s := startCore(t, fakecore.Faults{RejectAccounts: map[string]fakecore.Rejection{"ACC-X": {}}})
	c := newClient(t, s.URL(), authKey)
	recs := records(t,
		agg{"agg-1", "ACC-1", "VOICE", "120.5", "12.3", "USD"},
		agg{"agg-2", "ACC-1", "VOICE", "0.5", "0.05", "USD"},
		agg{"agg-3", "ACC-J", "DATA", "10", "1234", "JPY"},
		agg{"agg-4", "ACC-B", "DATA", "3", "1.5", "BHD"},
		agg{"agg-5", "ACC-X", "DATA", "1", "1", "USD"})
	res, err := c.Send(context.Background(), bulkapi.Batch{ReceiptID: "batch-1", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 {
		t.Fatalf("errors %+v", res.Errors)
	}
	if e, ok := res.RecordError("agg-5"); !ok || e.RecordErrorCode != bulkapi.CodeAccountNotFound {
		t.Errorf("agg-5: %+v %v", e, ok)
	}
	totals, err := s.Totals(fakecore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := "[{4242 ACC-1 VOICE 2 121.0 12.35 0} {4242 ACC-B DATA 1 3 1.500 0} {4242 ACC-J DATA 1 10 1234 0}]"
	if fmt.Sprint(totals) != want {
		t.Errorf("totals\n got %v\nwant %s", totals, want)
	}
	r := s.Records(fakecore.Filter{ClientRecordID: "agg-1"})
	if len(r) != 1 || r[0].Amt != "12.30" || r[0].UsageDate != "2024-05-01 00:00:00" || r[0].Qualifier1 != "plan-1" || r[0].Comments != "aggregated" {
		t.Errorf("agg-1 stored as %+v", r)
	}
	// The resend after a fix carries the same ids: nothing added.
	if _, err := c.Send(context.Background(), bulkapi.Batch{Records: recs[:4]}); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Totals(fakecore.Filter{})
	if fmt.Sprint(again) != want {
		t.Errorf("after the resend %v", again)
	}
}

// TestAmountsSumToTheMinorUnit: what the core totals equals the exact sum
// of the amounts sent, to the minor unit, at exponents 0, 2 and 3.
func TestAmountsSumToTheMinorUnit(t *testing.T) {
	s := startCore(t, fakecore.Faults{})
	c := newClient(t, s.URL(), authKey)
	for _, cur := range []string{"JPY", "USD", "KWD"} {
		exp, _ := money.Exponent(cur)
		var want apd.Decimal
		var aggs []agg
		for i := 1; i <= 50; i++ {
			// i·1.2345 rounded to the currency, as rating leaves it.
			d, _ := money.Parse(fmt.Sprintf("%d.2345", i))
			r, err := money.Round(&d, cur)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := apd.BaseContext.Add(&want, &want, &r); err != nil {
				t.Fatal(err)
			}
			aggs = append(aggs, agg{fmt.Sprintf("%s-%d", cur, i), "ACC-" + cur, "VOICE", "1", r.Text('f'), cur})
		}
		if _, err := c.Send(context.Background(), bulkapi.Batch{Records: records(t, aggs...)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Totals(fakecore.Filter{Account: "ACC-" + cur})
		if err != nil || len(got) != 1 {
			t.Fatal(got, err)
		}
		var w apd.Decimal
		_ = money.RoundTo(&w, &want, exp)
		if got[0].Amount != w.Text('f') {
			t.Errorf("%s: core total %s, sum sent %s", cur, got[0].Amount, w.Text('f'))
		}
	}
}

func TestFakeCoreFaultsThroughTheClient(t *testing.T) {
	recs := func(t *testing.T) []bulkapi.UsageRec {
		return records(t, agg{"a", "ACC-1", "VOICE", "1", "1.00", "USD"}, agg{"b", "ACC-2", "VOICE", "2", "2.00", "USD"})
	}
	t.Run("5xx storm then recovery", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{HTTPError: fakecore.HTTPErrorFault{Trigger: fakecore.Trigger{Next: 3}}})
		res, err := newClient(t, s.URL(), authKey).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		if err != nil || res.Attempts != 4 {
			t.Fatalf("%+v %v", res, err)
		}
		if st := s.Stats(); st.HTTPErrors != 3 || st.RecordsStored != 2 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("storm outlasting the attempts", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{HTTPError: fakecore.HTTPErrorFault{Trigger: fakecore.Trigger{Fraction: 1}}})
		_, err := newClient(t, s.URL(), authKey, bulkapi.WithMaxAttempts(3)).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		var ue *bulkapi.UnavailableError
		if !errors.As(err, &ue) || ue.Attempts != 3 || ue.StatusCode != 503 || s.Stats().Calls != 3 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("dropped after storing: resent, billed once", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{Drop: fakecore.Trigger{Next: 1}})
		res, err := newClient(t, s.URL(), authKey).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		if err != nil || res.Attempts != 2 {
			t.Fatalf("%+v %v", res, err)
		}
		totals, _ := s.Totals(fakecore.Filter{})
		if len(totals) != 2 || totals[0].Records != 1 || totals[0].Amount != "1.00" || s.Stats().RecordsReplaced != 2 {
			t.Errorf("totals %v stats %+v", totals, s.Stats())
		}
	})
	t.Run("no answer: timeouts retried", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{Hang: fakecore.Trigger{Next: 2}})
		res, err := newClient(t, s.URL(), authKey, bulkapi.WithTimeout(100*time.Millisecond)).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		if err != nil || res.Attempts != 3 {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("slow answer past the timeout: stored, resent, billed once", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{Slow: fakecore.SlowFault{Trigger: fakecore.Trigger{Next: 1}, Delay: fakecore.Duration(time.Second)}})
		res, err := newClient(t, s.URL(), authKey, bulkapi.WithTimeout(100*time.Millisecond)).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		if err != nil || res.Attempts != 2 {
			t.Fatalf("%+v %v", res, err)
		}
		if st := s.Stats(); st.RecordsStored != 2 || st.RecordsReplaced != 2 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("wrong key: refused whole, nothing stored", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{})
		_, err := newClient(t, s.URL(), "not-the-key").Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		var re *bulkapi.RefusedError
		if !errors.As(err, &re) || re.Code != bulkapi.CodeAuthentication || re.Attempts != 1 || len(s.Records(fakecore.Filter{})) != 0 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("injected 1001: refused, or retried when told", func(t *testing.T) {
		s := startCore(t, fakecore.Faults{Refuse: fakecore.RefuseFault{Trigger: fakecore.Trigger{Next: 1}}})
		_, err := newClient(t, s.URL(), authKey).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		if bulkapi.Classify(err) != bulkapi.ClassRefused {
			t.Fatalf("%v", err)
		}
		_ = s.SetFaults(fakecore.Faults{Refuse: fakecore.RefuseFault{Trigger: fakecore.Trigger{Next: 1}}})
		res, err := newClient(t, s.URL(), authKey, bulkapi.WithRetryCodes(bulkapi.CodeUnexpected)).Send(context.Background(), bulkapi.Batch{Records: recs(t)})
		if err != nil || res.Attempts != 2 {
			t.Fatalf("%+v %v", res, err)
		}
	})
}
