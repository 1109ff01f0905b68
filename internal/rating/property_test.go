package rating_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/rating"
	"vivace.dev/vivace/internal/rating/reference"
)

func randDec(rng *rand.Rand, maxInt, places int) string {
	s := fmt.Sprint(rng.IntN(maxInt + 1))
	if places > 0 {
		s += "." + fmt.Sprintf("%0*d", places, rng.IntN(pow10(places)))
	}
	return s
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

func randSchedule(rng *rand.Rand) catalog.RateSchedule {
	models := []catalog.Model{catalog.PerUnit, catalog.Graduated, catalog.Volume, catalog.Stairstep, catalog.Package}
	rs := catalog.RateSchedule{Model: models[rng.IntN(len(models))]}
	switch rs.Model {
	case catalog.PerUnit:
		rs.UnitPrice = catalog.Dec(randDec(rng, 3, rng.IntN(5)))
	case catalog.Package:
		rs.UnitPrice = catalog.Dec(randDec(rng, 20, 2))
		rs.PackageSize = catalog.Dec(fmt.Sprint(1 + rng.IntN(50)))
	default:
		n := 1 + rng.IntN(5)
		up := 0
		for i := range n {
			var t catalog.Tier
			if i < n-1 {
				up += 1 + rng.IntN(40)
				t.UpTo = catalog.Dec(fmt.Sprint(up))
			}
			if rs.Model == catalog.Stairstep {
				t.FlatFee = catalog.Dec(randDec(rng, 30, 2))
			} else {
				t.UnitPrice = catalog.Dec(randDec(rng, 2, rng.IntN(5)))
				if rng.IntN(2) == 0 {
					t.FlatFee = catalog.Dec(randDec(rng, 10, 2))
				}
			}
			rs.Tiers = append(rs.Tiers, t)
		}
	}
	return rs
}

func randDiscounts(rng *rand.Rand) []catalog.Discount {
	var out []catalog.Discount
	for i := range rng.IntN(4) {
		d := catalog.Discount{ID: fmt.Sprintf("d%d", i), Priority: rng.IntN(3)}
		if rng.IntN(2) == 0 {
			d.AccountID = "A"
		} else {
			d.PlanID = "P"
		}
		switch rng.IntN(3) {
		case 0:
			d.Kind, d.Value = catalog.FreeUnits, catalog.Dec(randDec(rng, 60, rng.IntN(2)))
		case 1:
			d.Kind, d.Value = catalog.Percent, catalog.Dec(randDec(rng, 99, rng.IntN(3)))
		default:
			d.Kind, d.Value = catalog.AmountPerUnit, catalog.Dec(randDec(rng, 1, 3))
		}
		out = append(out, d)
	}
	return out
}

// TestAgainstReference rates random usage on random catalogs with the
// engine and with the reference, and compares every rounded amount and
// the cumulative counters.
func TestAgainstReference(t *testing.T) {
	currencies := map[string]int{"USD": 2, "JPY": 0, "BHD": 3}
	curList := []string{"USD", "JPY", "BHD"}
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 99))
		cur := curList[rng.IntN(len(curList))]
		rs := randSchedule(rng)
		ds := randDiscounts(rng)
		snap := snapshot(t, cur, rs, ds...)
		var e rating.Engine
		var r rating.Result
		led := rating.NewMemLedger()
		ref := reference.New()
		for i := range 30 {
			qty := randDec(rng, 25, rng.IntN(4))
			if rng.IntN(10) == 0 {
				qty = "0"
			}
			at := time.Date(2026, time.Month(3+rng.IntN(2)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
			in := rating.Input{AccountID: "A", UsageType: "U", Quantity: dec(qty), UsageTime: at}
			if err := e.Rate(snap, led, &in, &r); err != nil {
				t.Fatalf("seed %d record %d: %v", seed, i, err)
			}
			if want, _ := json.Marshal(r.Detail()); !bytes.Equal(r.DetailJSON(), want) {
				t.Fatalf("seed %d record %d: DetailJSON\n%s\njson.Marshal(Detail())\n%s", seed, i, r.DetailJSON(), want)
			}
			checkDetailNumbers(t, &r)
			q, _ := new(big.Rat).SetString(qty)
			month := at.Format("2006-01")
			g, d := ref.Price(month, month, &snap.Plan("P").Rates[0], ds, q)
			places := currencies[cur]
			wantG, wantD := reference.RoundHalfUp(g, places), reference.RoundHalfUp(d, places)
			if r.Gross.String() != wantG || r.Discount.String() != wantD {
				t.Fatalf("seed %d record %d (%s, q=%s, %s): engine gross %s discount %s, reference %s %s\nschedule %+v\ndetail %s",
					seed, i, rs.Model, qty, cur, r.Gross.String(), r.Discount.String(), wantG, wantD, rs, r.DetailJSON())
			}
		}
		for _, k := range led.UsageKeys() {
			v, _ := led.Usage(k)
			want := ref.Usage(k.Month.String())
			got, _ := new(big.Rat).SetString(v.Text('f'))
			if want == nil || got.Cmp(want) != 0 {
				t.Fatalf("seed %d: counter %v = %s, reference %v", seed, k, v.Text('f'), want)
			}
		}
	}
}

// checkDetailNumbers: the rate detail's numbers carry no zeros they do
// not need, and the trimmed text has exactly the engine's values.
func checkDetailNumbers(t *testing.T, r *rating.Result) {
	t.Helper()
	raw := r.DetailJSON()
	if trailingZeros.Match(raw) {
		t.Fatalf("a number with zeros it does not need: %s", raw)
	}
	var d struct {
		Before        string `json:"cumulative_before"`
		After         string `json:"cumulative_after"`
		GrossExact    string `json:"gross_exact"`
		DiscountExact string `json:"discount_exact"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text string
		want *apd.Decimal
	}{{d.Before, &r.Before}, {d.After, &r.After}, {d.GrossExact, &r.GrossExact}, {d.DiscountExact, &r.DiscountExact}} {
		got, _ := new(big.Rat).SetString(c.text)
		want, _ := new(big.Rat).SetString(c.want.Text('f'))
		if got == nil || want == nil || got.Cmp(want) != 0 {
			t.Fatalf("detail %q is not the engine's %s", c.text, c.want.Text('f'))
		}
	}
}
