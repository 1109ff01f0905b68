// Package reference is a second, deliberately plain implementation of the
// rating rules of docs/rating.md, for tests to check the engine against. It
// prices with exact rationals (math/big), walks every tier, sorts the
// discounts afresh for every record and rounds half-up at the end. It is
// slow and allocates freely; it must never be used to bill.
//
// It shares nothing with package rating but the catalog types: a mistake
// in the engine's arithmetic, tier walk, discount order or rounding shows
// up as a difference.
package reference

import (
	"fmt"
	"math/big"
	"sort"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/money"
)

// Rater keeps the cumulative state the rules depend on: monthly usage per
// account and usage type, and the monthly use of each free-units
// allowance per account.
type Rater struct {
	usage     map[string]*big.Rat
	allowance map[string]*big.Rat
}

// New returns a Rater with every counter at zero.
func New() *Rater {
	return &Rater{usage: map[string]*big.Rat{}, allowance: map[string]*big.Rat{}}
}

// Amounts is what the reference makes of one record, rounded to the
// currency's minor unit and formatted as the engine formats them.
type Amounts struct {
	Currency             string
	Gross, Discount, Net string
}

// Rate prices one record against snap and advances the counters. The
// subscription, schedule and discounts are picked with the snapshot's
// lookups (their selection rules have their own tests); an error says
// which is missing.
func (r *Rater) Rate(snap *catalog.Snapshot, accountID, usageType, quantity string, at time.Time) (Amounts, error) {
	acct := snap.Account(accountID)
	if acct == nil {
		return Amounts{}, fmt.Errorf("reference: unknown account %q", accountID)
	}
	sub := snap.SubscriptionAt(accountID, at)
	if sub == nil {
		return Amounts{}, fmt.Errorf("reference: account %q has no subscription at %s", accountID, at)
	}
	rs := snap.RateAt(sub.PlanID, usageType, acct.Currency, at)
	if rs == nil {
		return Amounts{}, fmt.Errorf("reference: plan %q has no %s rate for %q at %s", sub.PlanID, acct.Currency, usageType, at)
	}
	q, ok := new(big.Rat).SetString(quantity)
	if !ok || q.Sign() < 0 {
		return Amounts{}, fmt.Errorf("reference: bad quantity %q", quantity)
	}
	var ds []catalog.Discount
	for _, d := range snap.DiscountsAt(accountID, sub.PlanID, usageType, at) {
		ds = append(ds, *d)
	}
	month := at.UTC().Format("2006-01")
	gross, disc := r.Price(accountID+"|"+usageType+"|"+month, accountID+"|"+month, rs, ds, q)
	places, ok := money.Exponent(acct.Currency)
	if !ok {
		return Amounts{}, fmt.Errorf("reference: unknown currency %q", acct.Currency)
	}
	g, d := RoundHalfUp(gross, int(places)), RoundHalfUp(disc, int(places))
	gr, _ := new(big.Rat).SetString(g)
	dr, _ := new(big.Rat).SetString(d)
	return Amounts{Currency: acct.Currency, Gross: g, Discount: d, Net: format(new(big.Rat).Sub(gr, dr), int(places))}, nil
}

// Usage returns the cumulative usage under key (see Price), or nil.
func (r *Rater) Usage(key string) *big.Rat { return r.usage[key] }

// Price applies rs and the discounts ds (in any order) to q units, the
// cumulative usage being the counter usageKey and each free-units
// allowance's use the counter allowanceKey + discount id, and advances
// both. It returns the exact gross and discount.
func (r *Rater) Price(usageKey, allowanceKey string, rs *catalog.RateSchedule, ds []catalog.Discount, q *big.Rat) (gross, disc *big.Rat) {
	c0 := r.usage[usageKey]
	if c0 == nil {
		c0 = new(big.Rat)
	}
	gross = Gross(rs, c0, q)
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
			key := allowanceKey + "|" + d.ID
			used := r.allowance[key]
			if used == nil {
				used = new(big.Rat)
			}
			left := maxRat(new(big.Rat).Sub(v, used), new(big.Rat))
			u := minRat(left, new(big.Rat).Sub(q, freed))
			if u.Sign() > 0 {
				disc.Add(disc, new(big.Rat).Quo(new(big.Rat).Mul(gross, u), q))
				freed.Add(freed, u)
				r.allowance[key] = new(big.Rat).Add(used, u)
			}
		case catalog.Percent:
			disc.Add(disc, new(big.Rat).Quo(new(big.Rat).Mul(new(big.Rat).Sub(gross, disc), v), big.NewRat(100, 1)))
		case catalog.AmountPerUnit:
			a := new(big.Rat).Mul(v, new(big.Rat).Sub(q, freed))
			disc.Add(disc, minRat(a, new(big.Rat).Sub(gross, disc)))
		}
	}
	r.usage[usageKey] = new(big.Rat).Add(c0, q)
	return gross, disc
}

// Gross is the exact gross of q units under rs when the month's usage
// before them is c0.
func Gross(rs *catalog.RateSchedule, c0, q *big.Rat) *big.Rat {
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
		// A tier's flat fee is charged by the record that enters it.
		if c0.Cmp(lower) <= 0 && lower.Cmp(c1) < 0 {
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

// RoundHalfUp formats r (≥ 0) rounded half-up to places decimals.
func RoundHalfUp(r *big.Rat, places int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	x.Add(x, big.NewRat(1, 2))
	n := new(big.Int).Div(x.Num(), x.Denom()) // floor, x ≥ 0
	return insertPoint(n.String(), places)
}

// format writes an exact r with places decimals (r must have no more).
func format(r *big.Rat, places int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	if !x.IsInt() {
		panic("reference: " + r.String() + " has more than the currency's decimals")
	}
	s := x.Num().String()
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	s = insertPoint(s, places)
	if neg {
		s = "-" + s
	}
	return s
}

func insertPoint(s string, places int) string {
	if places == 0 {
		return s
	}
	for len(s) <= places {
		s = "0" + s
	}
	return s[:len(s)-places] + "." + s[len(s)-places:]
}

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
