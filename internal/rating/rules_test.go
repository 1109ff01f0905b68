package rating_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/rating"
)

var march = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func tiers(spec ...string) []catalog.Tier {
	// spec: up_to, unit_price, flat_fee triples; "" means null.
	var out []catalog.Tier
	for i := 0; i+2 < len(spec); i += 3 {
		var t catalog.Tier
		if spec[i] != "" {
			t.UpTo = catalog.Dec(spec[i])
		}
		if spec[i+1] != "" {
			t.UnitPrice = catalog.Dec(spec[i+1])
		}
		if spec[i+2] != "" {
			t.FlatFee = catalog.Dec(spec[i+2])
		}
		out = append(out, t)
	}
	return out
}

// snapshot builds a catalog with account A (currency cur) on plan P whose
// only schedule is rs for usage type U, plus the given discounts.
func snapshot(t *testing.T, cur string, rs catalog.RateSchedule, discounts ...catalog.Discount) *catalog.Snapshot {
	t.Helper()
	rs.UsageType, rs.Currency = "U", cur
	s := catalog.NewSnapshot("c",
		[]catalog.Account{{ID: "A", Currency: cur, Status: catalog.StatusActive}},
		[]catalog.UsageType{{Code: "U"}, {Code: "V"}},
		[]catalog.Plan{{ID: "P", Rates: []catalog.RateSchedule{rs}}},
		[]catalog.Subscription{{ID: "S", AccountID: "A", PlanID: "P"}},
		discounts)
	if p := s.Problems(); len(p) > 0 {
		t.Fatalf("test catalog is invalid: %v", p)
	}
	return s
}

func dec(s string) apd.Decimal {
	d, _, err := apd.NewFromString(s)
	if err != nil {
		panic(err)
	}
	return *d
}

type step struct {
	qty                  string
	at                   time.Time
	gross, discount, net string
}

func run(t *testing.T, snap *catalog.Snapshot, steps []step) {
	t.Helper()
	var e rating.Engine
	var r rating.Result
	led := rating.NewMemLedger()
	for i, s := range steps {
		at := s.at
		if at.IsZero() {
			at = march
		}
		in := rating.Input{AccountID: "A", UsageType: "U", Quantity: dec(s.qty), UsageTime: at}
		if err := e.Rate(snap, led, &in, &r); err != nil {
			t.Fatalf("record %d (q=%s): %v", i+1, s.qty, err)
		}
		if r.Gross.String() != s.gross || r.Discount.String() != s.discount || r.Net.String() != s.net {
			t.Fatalf("record %d (q=%s): gross %s discount %s net %s; want %s %s %s\ndetail %s",
				i+1, s.qty, r.Gross.String(), r.Discount.String(), r.Net.String(), s.gross, s.discount, s.net, r.DetailJSON())
		}
	}
}

func TestModels(t *testing.T) {
	// Tiers: (0,10] at 1.00 fee 5, (10,20] at 0.50 fee 3, (20,∞) at 0.25 fee 1.
	tiered := tiers("10", "1.00", "5", "20", "0.50", "3", "", "0.25", "1")
	cases := []struct {
		name  string
		rs    catalog.RateSchedule
		steps []step
	}{
		{"per_unit", catalog.RateSchedule{Model: catalog.PerUnit, UnitPrice: catalog.Dec("0.05")}, []step{
			{qty: "0", gross: "0.00", discount: "0.00", net: "0.00"},
			{qty: "12.5", gross: "0.63", discount: "0.00", net: "0.63"}, // 0.625 rounds half-up
			{qty: "1", gross: "0.05", discount: "0.00", net: "0.05"},
		}},
		{"graduated", catalog.RateSchedule{Model: catalog.Graduated, Tiers: tiered}, []step{
			{qty: "0", gross: "0.00", discount: "0.00", net: "0.00"},    // enters nothing
			{qty: "10", gross: "15.00", discount: "0.00", net: "15.00"}, // ends exactly on the boundary: 10×1 + fee 5
			{qty: "5", gross: "5.50", discount: "0.00", net: "5.50"},    // starts on the boundary, enters tier 2: 5×0.5 + 3
			{qty: "20", gross: "10.75", discount: "0.00", net: "10.75"}, // 15→35: 5×0.5 + 15×0.25 + fee 1 + ... see below
			{qty: "1", gross: "0.25", discount: "0.00", net: "0.25"},    // all in tier 3, no fee
		}},
		{"graduated across every tier in one record", catalog.RateSchedule{Model: catalog.Graduated, Tiers: tiered}, []step{
			{qty: "30", gross: "26.50", discount: "0.00", net: "26.50"}, // 10×1 + 10×0.5 + 10×0.25 + fees 5+3+1
		}},
		{"volume", catalog.RateSchedule{Model: catalog.Volume, Tiers: tiered}, []step{
			{qty: "0", gross: "0.00", discount: "0.00", net: "0.00"},    // c1 = 0: first tier's price, nothing entered
			{qty: "10", gross: "15.00", discount: "0.00", net: "15.00"}, // c1 = 10 is in tier 1: 10×1 + fee 5
			{qty: "4", gross: "5.00", discount: "0.00", net: "5.00"},    // c1 = 14 in tier 2: 4×0.5 + fee 3
			{qty: "10", gross: "3.50", discount: "0.00", net: "3.50"},   // c1 = 24 in tier 3: 10×0.25 + fee 1
		}},
		{"stairstep", catalog.RateSchedule{Model: catalog.Stairstep, Tiers: tiers("10", "", "5", "20", "", "3", "", "", "1")}, []step{
			{qty: "0", gross: "0.00", discount: "0.00", net: "0.00"},
			{qty: "0.5", gross: "5.00", discount: "0.00", net: "5.00"},
			{qty: "9.5", gross: "0.00", discount: "0.00", net: "0.00"}, // ends on 10: enters nothing new
			{qty: "15", gross: "4.00", discount: "0.00", net: "4.00"},  // 10→25 enters tiers 2 and 3
		}},
		{"package", catalog.RateSchedule{Model: catalog.Package, UnitPrice: catalog.Dec("2.00"), PackageSize: catalog.Dec("100")}, []step{
			{qty: "0", gross: "0.00", discount: "0.00", net: "0.00"},
			{qty: "1", gross: "2.00", discount: "0.00", net: "2.00"},   // opens package 1
			{qty: "99", gross: "0.00", discount: "0.00", net: "0.00"},  // fills it exactly
			{qty: "201", gross: "6.00", discount: "0.00", net: "6.00"}, // 100→301: packages 2, 3, 4
		}},
	}
	// The graduated case's fourth record, 15 → 35: (15,20] 5×0.50 = 2.50,
	// (20,35] 15×0.25 = 3.75, enters tier 3 (fee 1): 7.25.
	cases[1].steps[3] = step{qty: "20", gross: "7.25", discount: "0.00", net: "7.25"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, snapshot(t, "USD", c.rs), c.steps) })
	}
}

func TestCountersResetEachMonth(t *testing.T) {
	rs := catalog.RateSchedule{Model: catalog.Graduated, Tiers: tiers("10", "1.00", "", "", "0.10", "")}
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	run(t, snapshot(t, "USD", rs), []step{
		{qty: "10", gross: "10.00", discount: "0.00", net: "10.00"},
		{qty: "10", gross: "1.00", discount: "0.00", net: "1.00"},
		{qty: "10", at: april, gross: "10.00", discount: "0.00", net: "10.00"}, // a new month starts at tier 1
	})
}

func TestDiscounts(t *testing.T) {
	perUnit := catalog.RateSchedule{Model: catalog.PerUnit, UnitPrice: catalog.Dec("1.00")}
	free := func(id, value string, prio int) catalog.Discount {
		return catalog.Discount{ID: id, AccountID: "A", Kind: catalog.FreeUnits, Value: catalog.Dec(value), Priority: prio}
	}
	pct := catalog.Discount{ID: "pct", PlanID: "P", Kind: catalog.Percent, Value: catalog.Dec("10")}
	apu := func(value string) catalog.Discount {
		return catalog.Discount{ID: "apu", AccountID: "A", Kind: catalog.AmountPerUnit, Value: catalog.Dec(value)}
	}
	cases := []struct {
		name  string
		rs    catalog.RateSchedule
		ds    []catalog.Discount
		steps []step
	}{
		{"free units carried across records", perUnit, []catalog.Discount{free("f", "15", 0)}, []step{
			{qty: "10", gross: "10.00", discount: "10.00", net: "0.00"},
			{qty: "10", gross: "10.00", discount: "5.00", net: "5.00"}, // 5 left
			{qty: "10", gross: "10.00", discount: "0.00", net: "10.00"},
			{qty: "10", at: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC), gross: "10.00", discount: "10.00", net: "0.00"},
		}},
		{"two free_units by priority", perUnit, []catalog.Discount{free("b", "4", 2), free("a", "3", 1)}, []step{
			{qty: "5", gross: "5.00", discount: "5.00", net: "0.00"}, // a frees 3, b frees 2
			{qty: "5", gross: "5.00", discount: "2.00", net: "3.00"}, // a spent, b has 2 left
		}},
		{"percent after free units", perUnit, []catalog.Discount{pct, free("f", "4", 0)}, []step{
			{qty: "10", gross: "10.00", discount: "4.60", net: "5.40"}, // 4 + (10−4)×10%
		}},
		{"amount per unit on the units not freed", perUnit, []catalog.Discount{apu("0.30"), free("f", "4", 0)}, []step{
			{qty: "10", gross: "10.00", discount: "5.80", net: "4.20"}, // 4 + 0.30×6
		}},
		{"amount per unit never past gross", perUnit, []catalog.Discount{apu("5")}, []step{
			{qty: "3", gross: "3.00", discount: "3.00", net: "0.00"},
		}},
		{"all three kinds in order", perUnit, []catalog.Discount{apu("0.10"), pct, free("f", "2", 0)}, []step{
			{qty: "10", gross: "10.00", discount: "3.60", net: "6.40"}, // 2 + 0.8 + 0.1×8
		}},
		{"usage type restriction", perUnit, []catalog.Discount{{ID: "v", AccountID: "A", UsageTypes: []string{"V"}, Kind: catalog.Percent, Value: catalog.Dec("50")}}, []step{
			{qty: "10", gross: "10.00", discount: "0.00", net: "10.00"},
		}},
		{"free units on a graduated gross", catalog.RateSchedule{Model: catalog.Graduated, Tiers: tiers("10", "1.00", "", "", "0.50", "")},
			[]catalog.Discount{free("f", "5", 0)}, []step{
				{qty: "20", gross: "15.00", discount: "3.75", net: "11.25"}, // 15 × 5/20
			}},
		{"not yet effective", perUnit, []catalog.Discount{{ID: "late", AccountID: "A", Kind: catalog.Percent, Value: catalog.Dec("50"),
			EffectiveFrom: ptr(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC))}}, []step{
			{qty: "10", gross: "10.00", discount: "0.00", net: "10.00"},
			{qty: "10", at: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), gross: "10.00", discount: "5.00", net: "5.00"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, snapshot(t, "USD", c.rs, c.ds...), c.steps) })
	}
}

func ptr[T any](v T) *T { return &v }

func TestRoundingPerCurrency(t *testing.T) {
	cases := []struct{ cur, price, qty, gross string }{
		{"USD", "0.125", "1", "0.13"}, // half-up, away from zero
		{"USD", "0.124999", "1", "0.12"},
		{"JPY", "0.5", "1", "1"},
		{"JPY", "1.49", "1", "1"},
		{"BHD", "1.0005", "1", "1.001"},
		{"BHD", "0.0001", "4", "0.000"},
		// Rounding only at the end: 3 × 0.3333 = 0.9999 → 1.00, not 3 × 0.33.
		{"USD", "0.3333", "3", "1.00"},
	}
	for _, c := range cases {
		t.Run(c.cur+" "+c.price, func(t *testing.T) {
			rs := catalog.RateSchedule{Model: catalog.PerUnit, UnitPrice: catalog.Dec(c.price)}
			run(t, snapshot(t, c.cur, rs), []step{{qty: c.qty, gross: c.gross, discount: zeroIn(c.cur), net: c.gross}})
		})
	}
}

func zeroIn(cur string) string {
	switch cur {
	case "JPY":
		return "0"
	case "BHD":
		return "0.000"
	}
	return "0.00"
}

func TestEffectiveDatedSchedulesAndSubscriptions(t *testing.T) {
	switchAt := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	s := catalog.NewSnapshot("c",
		[]catalog.Account{{ID: "A", Currency: "EUR", Status: catalog.StatusSuspended}},
		[]catalog.UsageType{{Code: "U"}},
		[]catalog.Plan{
			{ID: "OLD", Rates: []catalog.RateSchedule{{UsageType: "U", Currency: "EUR", Model: catalog.PerUnit, UnitPrice: catalog.Dec("1")}}},
			{ID: "NEW", Rates: []catalog.RateSchedule{
				{UsageType: "U", Currency: "EUR", Model: catalog.PerUnit, UnitPrice: catalog.Dec("2"), EffectiveTo: ptr(switchAt.Add(24 * time.Hour))},
				{UsageType: "U", Currency: "EUR", Model: catalog.PerUnit, UnitPrice: catalog.Dec("3"), EffectiveFrom: ptr(switchAt.Add(24 * time.Hour))},
			}},
		},
		[]catalog.Subscription{
			{ID: "S1", AccountID: "A", PlanID: "OLD", EffectiveTo: ptr(switchAt)},
			{ID: "S2", AccountID: "A", PlanID: "NEW", EffectiveFrom: ptr(switchAt)},
		}, nil)
	if p := s.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	var e rating.Engine
	var r rating.Result
	led := rating.NewMemLedger()
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{switchAt.Add(-time.Nanosecond), "1.00"},
		{switchAt, "2.00"}, // the boundary instant belongs to the new subscription
		{switchAt.Add(24 * time.Hour), "3.00"},
	} {
		in := rating.Input{AccountID: "A", UsageType: "U", Quantity: dec("1"), UsageTime: c.at}
		if err := e.Rate(s, led, &in, &r); err != nil {
			t.Fatal(err)
		}
		if r.Gross.String() != c.want {
			t.Errorf("at %s: gross %s, want %s", c.at, r.Gross.String(), c.want)
		}
	}
}

func TestErrorsLeaveLedgerUnchanged(t *testing.T) {
	s := catalog.NewSnapshot("c",
		[]catalog.Account{{ID: "A", Currency: "USD", Status: catalog.StatusActive}, {ID: "X", Currency: "USD", Status: catalog.StatusClosed},
			{ID: "N", Currency: "USD", Status: catalog.StatusActive}, {ID: "E", Currency: "EUR", Status: catalog.StatusActive}},
		[]catalog.UsageType{{Code: "U"}},
		[]catalog.Plan{{ID: "P", Rates: []catalog.RateSchedule{{UsageType: "U", Currency: "USD", Model: catalog.PerUnit, UnitPrice: catalog.Dec("1")}}}},
		[]catalog.Subscription{{ID: "S", AccountID: "A", PlanID: "P"}, {ID: "SX", AccountID: "X", PlanID: "P"}, {ID: "SE", AccountID: "E", PlanID: "P"}}, nil)
	cases := []struct {
		acct, ut string
		code     codes.Code
	}{
		{"nobody", "U", codes.UnknownAccount},
		{"X", "U", codes.AccountClosed},
		{"A", "nothing", codes.UnknownUsageType},
		{"N", "U", codes.NoSubscription},
		{"E", "U", codes.NoRate}, // a EUR account on a plan priced in USD only
	}
	var e rating.Engine
	var r rating.Result
	for _, c := range cases {
		led := rating.NewMemLedger()
		in := rating.Input{AccountID: c.acct, UsageType: c.ut, Quantity: dec("1"), UsageTime: march}
		err := e.Rate(s, led, &in, &r)
		ce, ok := codes.As(err)
		if !ok || ce.Code != c.code {
			t.Errorf("%s/%s: err %v, want %s", c.acct, c.ut, err, c.code)
		}
		if n := len(led.TouchedUsage()) + len(led.TouchedAllowances()); n != 0 {
			t.Errorf("%s/%s: the failed record changed %d ledger entries", c.acct, c.ut, n)
		}
	}
}

// TestDetailJSONEscapes holds the hand-written rate detail to
// encoding/json's output for ids that need escaping.
func TestDetailJSONEscapes(t *testing.T) {
	for _, id := range []string{`plain`, `q"uote\back`, "tab\tnl\ncr\r", "<b>&amp;", "\x01\x1f\x7f", "café ☕", "line\u2028sep", "bad\xffutf8"} {
		snap := catalog.NewSnapshot("c",
			[]catalog.Account{{ID: "A", Currency: "USD", Status: catalog.StatusActive}},
			[]catalog.UsageType{{Code: "U"}},
			[]catalog.Plan{{ID: id, Rates: []catalog.RateSchedule{{UsageType: "U", Currency: "USD", Model: catalog.Package,
				UnitPrice: catalog.Dec("2.00"), PackageSize: catalog.Dec("10")}}}},
			[]catalog.Subscription{{ID: id + "-sub", AccountID: "A", PlanID: id}},
			[]catalog.Discount{{ID: id + "-d", PlanID: id, Kind: catalog.FreeUnits, Value: catalog.Dec("5")}})
		if p := snap.Problems(); len(p) > 0 {
			t.Fatalf("%q: %v", id, p)
		}
		var e rating.Engine
		var r rating.Result
		in := rating.Input{AccountID: "A", UsageType: "U", Quantity: dec("12"), UsageTime: time.Now()}
		if err := e.Rate(snap, rating.NewMemLedger(), &in, &r); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(r.Detail())
		if got := r.DetailJSON(); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", id, got, want)
		}
	}
}

// TestDetailNumbersTrimmed: the rate detail writes each number with the
// digits its value needs. A free-units amount is a quotient worked to 40
// digits (gross × units / quantity); when it comes out whole it is "4",
// not "4.000000000000000000000000000000000000000", and prices given as
// "1.00" are "1". Every number keeps its exact value.
func TestDetailNumbersTrimmed(t *testing.T) {
	snap := catalog.NewSnapshot("c",
		[]catalog.Account{{ID: "A", Currency: "USD", Status: catalog.StatusActive}},
		[]catalog.UsageType{{Code: "U"}},
		[]catalog.Plan{{ID: "P", Rates: []catalog.RateSchedule{{UsageType: "U", Currency: "USD", Model: catalog.Graduated,
			Tiers: tiers("10", "1.00", "", "", "0.50", "")}}}},
		[]catalog.Subscription{{ID: "S", AccountID: "A", PlanID: "P"}},
		[]catalog.Discount{{ID: "f", AccountID: "A", Kind: catalog.FreeUnits, Value: catalog.Dec("4.000")},
			{ID: "p", AccountID: "A", Kind: catalog.Percent, Value: catalog.Dec("10.0")}})
	if p := snap.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	var e rating.Engine
	var r rating.Result
	in := rating.Input{AccountID: "A", UsageType: "U", Quantity: dec("20.00"), UsageTime: march}
	if err := e.Rate(snap, rating.NewMemLedger(), &in, &r); err != nil {
		t.Fatal(err)
	}
	var got struct {
		After string `json:"cumulative_after"`
		Tiers []struct {
			UnitPrice string `json:"unit_price"`
			Amount    string `json:"amount"`
		} `json:"tiers"`
		Discounts []struct {
			Value, Units, Amount string
		} `json:"discounts"`
		GrossExact    string `json:"gross_exact"`
		DiscountExact string `json:"discount_exact"`
	}
	raw := r.DetailJSON()
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	// gross 10 × 1.00 + 10 × 0.50 = 15; free units 15 × 4 / 20 = 3 exactly
	// (a 40-digit quotient); percent 10 % of 12 = 1.2.
	want := []struct{ what, got, want string }{
		{"cumulative_after", got.After, "20"},
		{"tier 1 unit_price", got.Tiers[0].UnitPrice, "1"},
		{"tier 2 amount", got.Tiers[1].Amount, "5"},
		{"free units value", got.Discounts[0].Value, "4"},
		{"free units units", got.Discounts[0].Units, "4"},
		{"free units amount", got.Discounts[0].Amount, "3"},
		{"percent value", got.Discounts[1].Value, "10"},
		{"percent amount", got.Discounts[1].Amount, "1.2"},
		{"gross_exact", got.GrossExact, "15"},
		{"discount_exact", got.DiscountExact, "4.2"},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("%s: %q, want %q\n%s", w.what, w.got, w.want, raw)
		}
	}
	if r.Gross.String() != "15.00" || r.Discount.String() != "4.20" {
		t.Errorf("amounts %s %s, want 15.00 4.20", r.Gross.String(), r.Discount.String())
	}
	if trailingZeros.Match(raw) {
		t.Errorf("a number with zeros it does not need: %s", raw)
	}
}

// trailingZeros finds a decimal string with zeros after its last digit.
var trailingZeros = regexp.MustCompile(`"-?\d+\.\d*0"`)
