package money

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/apd/v3"
)

// ErrUnknownCurrency is returned for a currency code that is not in the
// ISO 4217 table.
var ErrUnknownCurrency = errors.New("unknown currency")

// pow10 and half hold 10^k and 5·10^(k-1) for the rounding fast path.
const maxPow = 128

var (
	pow10 [maxPow]apd.BigInt
	half  [maxPow]apd.BigInt
)

func init() {
	pow10[0].SetInt64(1)
	ten := apd.NewBigInt(10)
	for k := 1; k < maxPow; k++ {
		pow10[k].Mul(&pow10[k-1], ten)
		half[k].Mul(&pow10[k-1], apd.NewBigInt(5))
	}
}

// roundCtx is only used for rounding beyond the table's reach.
var roundCtx = apd.Context{
	Precision:   1000,
	Rounding:    apd.RoundHalfUp,
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.DefaultTraps,
}

// Round returns d rounded half-up (a tie goes away from zero) to the minor
// unit of currency, always written with exactly that many decimal places:
// 2.675 USD is 2.68, 0.5 JPY is 1, 1.0005 BHD is 1.001.
func Round(d *apd.Decimal, currency string) (apd.Decimal, error) {
	var r apd.Decimal
	exp, ok := Exponent(currency)
	if !ok {
		return r, fmt.Errorf("round to %q: %w", currency, ErrUnknownCurrency)
	}
	err := RoundTo(&r, d, exp)
	return r, err
}

// RoundTo sets dst to x rounded half-up to places decimal places, written
// with exactly that exponent. dst may be x. It does not allocate for
// amounts of up to 38 digits.
func RoundTo(dst, x *apd.Decimal, places int32) error {
	if x.Form != apd.Finite {
		return fmt.Errorf("round %s: not a finite number", x.String())
	}
	if places < 0 {
		return fmt.Errorf("round to %d places: must not be negative", places)
	}
	target := -places
	switch {
	case x.Exponent == target:
		dst.Set(x)
	case x.Exponent > target:
		// Exact: only the written form changes (5 → 5.00).
		k := int64(x.Exponent) - int64(target)
		if k >= maxPow {
			return roundSlow(dst, x, target)
		}
		neg := x.Negative
		dst.Coeff.Mul(&x.Coeff, &pow10[k])
		dst.Exponent = target
		dst.Form = apd.Finite
		dst.Negative = neg
	default:
		k := int64(target) - int64(x.Exponent)
		if k >= maxPow {
			if x.NumDigits() < k {
				// |x| < 0.1 of the minor unit: it rounds to zero.
				dst.SetFinite(0, target)
				return nil
			}
			return roundSlow(dst, x, target)
		}
		neg := x.Negative
		var q, r apd.BigInt
		q.QuoRem(&x.Coeff, &pow10[k], &r)
		if r.Cmp(&half[k]) >= 0 {
			q.Add(&q, &pow10[0])
		}
		dst.Coeff.Set(&q)
		dst.Exponent = target
		dst.Form = apd.Finite
		dst.Negative = neg
	}
	if dst.Coeff.Sign() == 0 {
		dst.Negative = false
	}
	return nil
}

func roundSlow(dst, x *apd.Decimal, target int32) error {
	var abs apd.Decimal
	abs.Abs(x)
	if _, err := roundCtx.Quantize(dst, &abs, target); err != nil {
		return fmt.Errorf("round %s: %w", x.String(), err)
	}
	dst.Negative = x.Negative && dst.Coeff.Sign() != 0
	return nil
}
