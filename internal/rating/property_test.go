package rating_test

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/rating"
)

// The reference prices with exact rationals, the way the rules read, with
// no attention to speed: tier by tier over the whole range, discounts in
// a freshly sorted list, rounding half-up at the end.

func rat(d *catalog.Decimal) *big.Rat {
	if d == nil {
		return new(big.Rat)
	}
	r, ok := new(big.Rat).SetString(d.String())
	if !ok {
		panic(d.String())
	}
	return r
}

func minRat(a, b *big.Rat) *big.Rat {
	if a.Cmp(b) < 0 {
		return a
	}
	return b
}

func maxRat(a, b *big.Rat) *big.Rat {
	if a.Cmp(b) > 0 {
		return a
	}
	return b
}

func ceilRat(r *big.Rat) *big.Int {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

func refGross(rs *catalog.RateSchedule, c0, q *big.Rat) *big.Rat {
	c1 := new(big.Rat).Add(c0, q)
	g := new(big.Rat)
	switch rs.Model {
	case catalog.PerUnit:
		return g.Mul(q, rat(rs.UnitPrice))
	case catalog.Package:
		size := rat(rs.PackageSize)
		n := new(big.Int).Sub(ceilRat(new(big.Rat).Quo(c1, size)), ceilRat(new(big.Rat).Quo(c0, size)))
		return g.Mul(new(big.Rat).SetInt(n), rat(rs.UnitPrice))
	}
	lower := new(big.Rat)
	for i, t := range rs.Tiers {
		var upper *big.Rat
		if t.UpTo != nil {
			upper = rat(t.UpTo)
		}
		entered := c0.Cmp(lower) <= 0 && lower.Cmp(c1) < 0
		if entered {
			g.Add(g, rat(t.FlatFee))
		}
		switch rs.Model {
		case catalog.Graduated:
			hi := c1
			if upper != nil {
				hi = minRat(c1, upper)
			}
			units := new(big.Rat).Sub(hi, maxRat(c0, lower))
			if units.Sign() > 0 {
				g.Add(g, units.Mul(units, rat(t.UnitPrice)))
			}
		case catalog.Volume:
			in := (c1.Cmp(lower) > 0 || (i == 0 && c1.Sign() == 0)) && (upper == nil || c1.Cmp(upper) <= 0)
			if in {
				g.Add(g, new(big.Rat).Mul(q, rat(t.UnitPrice)))
			}
		}
		if upper == nil {
			break
		}
		lower = upper
	}
	return g
}

func roundHalfUp(r *big.Rat, places int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	x.Add(x, big.NewRat(1, 2))
	n := new(big.Int).Div(x.Num(), x.Denom()) // floor, x ≥ 0
	s := n.String()
	if places == 0 {
		return s
	}
	for len(s) <= places {
		s = "0" + s
	}
	return s[:len(s)-places] + "." + s[len(s)-places:]
}

type refState struct {
	usage     map[string]*big.Rat // month
	allowance map[string]*big.Rat // discount id + month
}

func refRate(st *refState, rs *catalog.RateSchedule, ds []catalog.Discount, q *big.Rat, month string) (gross, disc *big.Rat) {
	c0 := st.usage[month]
	if c0 == nil {
		c0 = new(big.Rat)
	}
	gross = refGross(rs, c0, q)
	list := append([]catalog.Discount(nil), ds...)
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].Kind.Order() != list[j].Kind.Order() {
			return list[i].Kind.Order() < list[j].Kind.Order()
		}
		if list[i].Priority != list[j].Priority {
			return list[i].Priority < list[j].Priority
		}
		return list[i].ID < list[j].ID
	})
	disc, freed := new(big.Rat), new(big.Rat)
	for _, d := range list {
		v := rat(d.Value)
		switch d.Kind {
		case catalog.FreeUnits:
			key := d.ID + month
			used := st.allowance[key]
			if used == nil {
				used = new(big.Rat)
			}
			left := maxRat(new(big.Rat).Sub(v, used), new(big.Rat))
			u := minRat(left, new(big.Rat).Sub(q, freed))
			if u.Sign() > 0 {
				disc.Add(disc, new(big.Rat).Quo(new(big.Rat).Mul(gross, u), q))
				freed.Add(freed, u)
				st.allowance[key] = new(big.Rat).Add(used, u)
			}
		case catalog.Percent:
			disc.Add(disc, new(big.Rat).Quo(new(big.Rat).Mul(new(big.Rat).Sub(gross, disc), v), big.NewRat(100, 1)))
		case catalog.AmountPerUnit:
			a := new(big.Rat).Mul(v, new(big.Rat).Sub(q, freed))
			disc.Add(disc, minRat(a, new(big.Rat).Sub(gross, disc)))
		}
	}
	st.usage[month] = new(big.Rat).Add(c0, q)
	return gross, disc
}

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
		ref := &refState{usage: map[string]*big.Rat{}, allowance: map[string]*big.Rat{}}
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
			q, _ := new(big.Rat).SetString(qty)
			g, d := refRate(ref, &snap.Plan("P").Rates[0], ds, q, at.Format("2006-01"))
			places := currencies[cur]
			wantG, wantD := roundHalfUp(g, places), roundHalfUp(d, places)
			if r.Gross.String() != wantG || r.Discount.String() != wantD {
				t.Fatalf("seed %d record %d (%s, q=%s, %s): engine gross %s discount %s, reference %s %s\nschedule %+v\ndetail %s",
					seed, i, rs.Model, qty, cur, r.Gross.String(), r.Discount.String(), wantG, wantD, rs, r.DetailJSON())
			}
		}
		for _, k := range led.UsageKeys() {
			v, _ := led.Usage(k)
			want := ref.usage[k.Month.String()]
			got, _ := new(big.Rat).SetString(v.Text('f'))
			if want == nil || got.Cmp(want) != 0 {
				t.Fatalf("seed %d: counter %v = %s, reference %v", seed, k, v.Text('f'), want)
			}
		}
	}
}
