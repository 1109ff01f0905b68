// Package rating prices usage records against a client's catalog: it
// picks the subscription and rate schedule in effect, applies the pricing
// model to the record's place in the account's cumulative monthly usage,
// applies the matching discounts and rounds the result to the currency's
// minor unit (docs/rating.md, "The rules in short"). It is pure domain code: the
// cumulative state lives behind the Ledger interface, and it knows nothing
// of Kafka, Benthos or SQL.
package rating

import (
	"fmt"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/money"
)

// exact is the context for sums and products, which must not round: it
// traps Inexact, so an amount that would lose a digit is an error rather
// than a silent rounding.
var exact = apd.Context{
	Precision:   200,
	Rounding:    apd.RoundHalfUp,
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.DefaultTraps | apd.Inexact,
}

// quotient is the context for the one division the rules need, a
// free_units discount's share gross × u / q, which may not terminate
// (1 / 3). Forty significant digits is far below any currency's minor
// unit for every amount a usage record can carry, so the final half-up
// rounding is unaffected.
var quotient = apd.Context{
	Precision:   40,
	Rounding:    apd.RoundHalfEven,
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.DefaultTraps,
}

var (
	zero apd.Decimal
	one  = *apd.New(1, 0)
)

// Input is the part of a usage record rating reads.
type Input struct {
	AccountID string
	UsageType string
	Quantity  apd.Decimal // non-negative
	UsageTime time.Time
}

// Result is a rated record: the amounts and everything that produced
// them. A Result is reused across calls to Engine.Rate to keep the hot
// path free of allocations; copy what must outlive the next call.
type Result struct {
	Currency      string
	Subscription  *catalog.Subscription
	Schedule      *catalog.RateSchedule
	Month         Month
	Before, After apd.Decimal // cumulative quantity this month, before and after the record
	Packages      apd.Decimal // package model: packages charged
	Tiers         []TierCharge
	Discounts     []DiscountCharge
	GrossExact    apd.Decimal
	DiscountExact apd.Decimal
	Gross         apd.Decimal // rounded half-up to the currency's minor unit
	Discount      apd.Decimal // rounded half-up to the currency's minor unit
	Net           apd.Decimal // Gross − Discount
}

// TierCharge is what one tier contributed to a tiered model's gross.
type TierCharge struct {
	Tier      int // 1-based, as an operator counts tiers
	Units     apd.Decimal
	UnitPrice apd.Decimal
	Amount    apd.Decimal // Units × UnitPrice (volume: the record's whole quantity)
	Entered   bool        // the record entered the tier, charging its flat fee
	FlatFee   apd.Decimal // the flat fee charged, zero when not entered
}

// DiscountCharge is what one discount took off.
type DiscountCharge struct {
	Discount *catalog.Discount
	Units    apd.Decimal // free_units: the units it freed
	Amount   apd.Decimal // exact, before rounding
}

// Engine rates records. It keeps scratch space between calls, so it is not
// safe for concurrent use: give each goroutine its own.
type Engine struct {
	t1, t2, t3, lo apd.Decimal
	freed, left    apd.Decimal
	discounts      []*catalog.Discount
}

// Rate prices in against snap, reading and then advancing the cumulative
// counters in led. On failure it returns a *codes.Error (UNKNOWN_ACCOUNT,
// ACCOUNT_CLOSED, UNKNOWN_USAGE_TYPE, NO_SUBSCRIPTION, NO_RATE, checked in
// that order) or, for a fault in the ledger or the arithmetic, another
// error; either way the ledger is left unchanged by this record.
func (e *Engine) Rate(snap *catalog.Snapshot, led Ledger, in *Input, r *Result) error {
	r.Tiers = r.Tiers[:0]
	r.Discounts = r.Discounts[:0]
	r.Packages.SetInt64(0)
	if in.Quantity.Negative || in.Quantity.Form != apd.Finite {
		return codes.Errorf(codes.BadQuantity, "quantity", "%s is not a non-negative number", in.Quantity.String())
	}
	acct := snap.Account(in.AccountID)
	if acct == nil {
		return codes.Errorf(codes.UnknownAccount, "account_id", "account %q is not in the catalog of client %q", in.AccountID, snap.Client())
	}
	if acct.Status == catalog.StatusClosed {
		return codes.Errorf(codes.AccountClosed, "account_id", "account %q is closed", in.AccountID)
	}
	if snap.UsageType(in.UsageType) == nil {
		return codes.Errorf(codes.UnknownUsageType, "usage_type", "usage type %q is not in the catalog of client %q", in.UsageType, snap.Client())
	}
	t := in.UsageTime
	sub := snap.SubscriptionAt(in.AccountID, t)
	if sub == nil {
		return codes.Errorf(codes.NoSubscription, "usage_time", "account %q has no subscription in effect at %s", in.AccountID, t.UTC().Format(time.RFC3339))
	}
	rs := snap.RateAt(sub.PlanID, in.UsageType, acct.Currency, t)
	if rs == nil {
		return codes.Errorf(codes.NoRate, "usage_type", "plan %q has no %s rate for usage type %q in effect at %s", sub.PlanID, acct.Currency, in.UsageType, t.UTC().Format(time.RFC3339))
	}
	r.Currency, r.Subscription, r.Schedule = acct.Currency, sub, rs
	r.Month = MonthOf(t)

	uk := UsageKey{AccountID: in.AccountID, UsageType: in.UsageType, Month: r.Month}
	before, err := led.Usage(uk)
	if err != nil {
		return err
	}
	if before == nil {
		before = &zero
	}
	r.Before.Set(before)
	q := &in.Quantity
	if _, err := exact.Add(&r.After, &r.Before, q); err != nil {
		return arith("cumulative quantity", err)
	}
	if err := e.gross(rs, q, r); err != nil {
		return err
	}
	if err := e.discount(snap, led, in, sub.PlanID, r); err != nil {
		return err
	}
	if err := money.RoundTo(&r.Gross, &r.GrossExact, exponent(r.Currency)); err != nil {
		return err
	}
	if err := money.RoundTo(&r.Discount, &r.DiscountExact, exponent(r.Currency)); err != nil {
		return err
	}
	if _, err := exact.Sub(&r.Net, &r.Gross, &r.Discount); err != nil {
		return arith("net amount", err)
	}

	// Every read is done: advance the ledger.
	if err := led.AddUsage(uk, q); err != nil {
		return err
	}
	for i := range r.Discounts {
		dc := &r.Discounts[i]
		if dc.Discount.Kind != catalog.FreeUnits || dc.Units.IsZero() {
			continue
		}
		ak := AllowanceKey{AccountID: in.AccountID, DiscountID: dc.Discount.ID, Month: r.Month}
		if err := led.AddAllowance(ak, &dc.Units); err != nil {
			return err
		}
	}
	return nil
}

func exponent(currency string) int32 {
	exp, _ := money.Exponent(currency) // the catalog checked the code
	return exp
}

func arith(what string, err error) error {
	return fmt.Errorf("rating: %s: %w", what, err)
}

// gross sets r.GrossExact (and the tier or package detail) for q units
// taking the cumulative quantity from r.Before to r.After.
func (e *Engine) gross(rs *catalog.RateSchedule, q *apd.Decimal, r *Result) error {
	g := &r.GrossExact
	switch rs.Model {
	case catalog.PerUnit:
		if _, err := exact.Mul(g, q, &rs.UnitPrice.Decimal); err != nil {
			return arith("per_unit gross", err)
		}
		return nil
	case catalog.Package:
		// (⌈c1 / size⌉ − ⌈c0 / size⌉) × unit_price
		if err := ceilQuo(&e.t1, &r.After, &rs.PackageSize.Decimal); err != nil {
			return err
		}
		if err := ceilQuo(&e.t2, &r.Before, &rs.PackageSize.Decimal); err != nil {
			return err
		}
		if _, err := exact.Sub(&r.Packages, &e.t1, &e.t2); err != nil {
			return arith("packages", err)
		}
		if _, err := exact.Mul(g, &r.Packages, &rs.UnitPrice.Decimal); err != nil {
			return arith("package gross", err)
		}
		return nil
	}
	return e.tiered(rs, q, r)
}

// ceilQuo sets d to ⌈x / y⌉ for x ≥ 0, y > 0.
func ceilQuo(d, x, y *apd.Decimal) error {
	var rem apd.Decimal
	if _, err := exact.QuoInteger(d, x, y); err != nil {
		return arith("package count", err)
	}
	if _, err := exact.Rem(&rem, x, y); err != nil {
		return arith("package count", err)
	}
	if rem.Sign() > 0 {
		if _, err := exact.Add(d, d, &one); err != nil {
			return arith("package count", err)
		}
	}
	return nil
}

// tiered prices graduated, volume and stairstep schedules. Tier i covers
// (lower_i, upper_i]; the record enters it when c0 ≤ lower_i < c1.
func (e *Engine) tiered(rs *catalog.RateSchedule, q *apd.Decimal, r *Result) error {
	g := &r.GrossExact
	g.SetInt64(0)
	c0, c1 := &r.Before, &r.After
	e.lo.SetInt64(0)
	for i := range rs.Tiers {
		tier := &rs.Tiers[i]
		lower := &e.lo
		upper := (*apd.Decimal)(nil)
		if tier.UpTo != nil {
			upper = &tier.UpTo.Decimal
		}
		entered := c0.Cmp(lower) <= 0 && lower.Cmp(c1) < 0
		// Units of (c0, c1] inside (lower, upper].
		from := c0
		if lower.Cmp(from) > 0 {
			from = lower
		}
		to := c1
		if upper != nil && upper.Cmp(to) < 0 {
			to = upper
		}
		inTier := to.Cmp(from) > 0
		// Volume: the whole quantity at the price of the tier holding c1
		// (the first tier when c1 = 0).
		holdsC1 := (c1.Cmp(lower) > 0 || (i == 0 && c1.IsZero())) && (upper == nil || c1.Cmp(upper) <= 0)

		var units *apd.Decimal
		switch rs.Model {
		case catalog.Graduated:
			if inTier {
				if _, err := exact.Sub(&e.t1, to, from); err != nil {
					return arith("tier units", err)
				}
				units = &e.t1
			}
		case catalog.Volume:
			if holdsC1 {
				units = q
			}
		}
		if units != nil || entered {
			r.Tiers = append(r.Tiers, TierCharge{})
			tc := &r.Tiers[len(r.Tiers)-1]
			tc.Tier = i + 1
			if units != nil {
				tc.Units.Set(units)
				if tier.UnitPrice != nil {
					tc.UnitPrice.Set(&tier.UnitPrice.Decimal)
				}
				if _, err := exact.Mul(&tc.Amount, &tc.Units, &tc.UnitPrice); err != nil {
					return arith("tier amount", err)
				}
				if _, err := exact.Add(g, g, &tc.Amount); err != nil {
					return arith("gross", err)
				}
			}
			tc.Entered = entered
			if entered && tier.FlatFee != nil {
				tc.FlatFee.Set(&tier.FlatFee.Decimal)
				if _, err := exact.Add(g, g, &tc.FlatFee); err != nil {
					return arith("gross", err)
				}
			}
		}
		if upper == nil {
			break
		}
		e.lo.Set(upper)
		if e.lo.Cmp(c1) >= 0 {
			// No later tier can be entered or hold c1; graduated units
			// beyond c1 do not exist.
			break
		}
	}
	return nil
}

// discount applies the record's discounts in order, setting
// r.DiscountExact and r.Discounts.
func (e *Engine) discount(snap *catalog.Snapshot, led Ledger, in *Input, planID string, r *Result) error {
	d := &r.DiscountExact
	d.SetInt64(0)
	e.discounts = snap.AppendDiscountsAt(e.discounts[:0], in.AccountID, planID, in.UsageType, in.UsageTime)
	if len(e.discounts) == 0 {
		return nil
	}
	q := &in.Quantity
	gross := &r.GrossExact
	e.freed.SetInt64(0) // f: units freed so far
	for _, disc := range e.discounts {
		value := &disc.Value.Decimal
		r.Discounts = append(r.Discounts, DiscountCharge{Discount: disc})
		dc := &r.Discounts[len(r.Discounts)-1]
		switch disc.Kind {
		case catalog.FreeUnits:
			// What is left of the monthly allowance frees the units no
			// earlier free_units discount freed.
			used, err := led.AllowanceUsed(AllowanceKey{AccountID: in.AccountID, DiscountID: disc.ID, Month: r.Month})
			if err != nil {
				return err
			}
			if used == nil {
				used = &zero
			}
			if _, err := exact.Sub(&e.left, value, used); err != nil {
				return arith("allowance", err)
			}
			if _, err := exact.Sub(&e.t1, q, &e.freed); err != nil {
				return arith("allowance", err)
			}
			u := &e.left
			if e.t1.Cmp(u) < 0 {
				u = &e.t1
			}
			if u.Sign() > 0 {
				dc.Units.Set(u)
				// gross × u / q
				if _, err := exact.Mul(&e.t2, gross, u); err != nil {
					return arith("free units", err)
				}
				if _, err := quotient.Quo(&dc.Amount, &e.t2, q); err != nil {
					return arith("free units", err)
				}
				if _, err := exact.Add(&e.freed, &e.freed, u); err != nil {
					return arith("free units", err)
				}
			}
		case catalog.Percent:
			// (gross − discount) × value / 100
			if _, err := exact.Sub(&e.t1, gross, d); err != nil {
				return arith("percent", err)
			}
			if _, err := exact.Mul(&e.t2, &e.t1, value); err != nil {
				return arith("percent", err)
			}
			// Dividing by 100 is exact: move the decimal point.
			dc.Amount.Set(&e.t2)
			dc.Amount.Exponent -= 2
		case catalog.AmountPerUnit:
			// value × (q − f), never past gross.
			if _, err := exact.Sub(&e.t1, q, &e.freed); err != nil {
				return arith("amount per unit", err)
			}
			if _, err := exact.Mul(&dc.Amount, value, &e.t1); err != nil {
				return arith("amount per unit", err)
			}
			if _, err := exact.Sub(&e.t3, gross, d); err != nil {
				return arith("amount per unit", err)
			}
			if dc.Amount.Cmp(&e.t3) > 0 {
				dc.Amount.Set(&e.t3)
			}
		}
		if _, err := exact.Add(d, d, &dc.Amount); err != nil {
			return arith("discount", err)
		}
	}
	return nil
}
