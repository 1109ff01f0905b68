package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// Units a conversion knows, by dimension, as multiples of the dimension's
// base unit. Byte units come in decimal (kB, MB, GB, TB: powers of 1000)
// and binary (KiB, MiB, GiB, TiB: powers of 1024) forms.
var units = map[string]struct {
	dim    string
	factor string
}{
	"B": {"bytes", "1"}, "kB": {"bytes", "1000"}, "MB": {"bytes", "1000000"}, "GB": {"bytes", "1000000000"},
	"TB": {"bytes", "1000000000000"}, "KiB": {"bytes", "1024"}, "MiB": {"bytes", "1048576"},
	"GiB": {"bytes", "1073741824"}, "TiB": {"bytes", "1099511627776"},
	"ms": {"time", "0.001"}, "s": {"time", "1"}, "min": {"time", "60"}, "h": {"time", "3600"},
}

// Rounding modes of a conversion's result.
const (
	RoundNone   = "none"    // keep every digit the division gives (up to 34)
	RoundUp     = "up"      // away from zero: a started unit counts whole
	RoundDown   = "down"    // towards zero
	RoundHalfUp = "half_up" // to nearest, halves away from zero
)

// Converter turns a quantity in one unit into another, rounded to Scale
// decimal places by Round.
type Converter struct {
	from, to apd.Decimal
	scale    int32
	round    string
}

// NewConverter checks a conversion: both units known and of one dimension,
// a known rounding mode, a scale between 0 and 12.
func NewConverter(from, to, round string, scale int) (*Converter, error) {
	f, ok := units[from]
	if !ok {
		return nil, fmt.Errorf("from: unknown unit %q (known: %s)", from, knownUnits())
	}
	t, ok := units[to]
	if !ok {
		return nil, fmt.Errorf("to: unknown unit %q (known: %s)", to, knownUnits())
	}
	if f.dim != t.dim {
		return nil, fmt.Errorf("from %s to %s: a %s unit cannot become a %s unit", from, to, f.dim, t.dim)
	}
	switch round {
	case RoundNone, RoundUp, RoundDown, RoundHalfUp:
	default:
		return nil, fmt.Errorf("round: %q is not none, up, down or half_up", round)
	}
	if scale < 0 || scale > 12 {
		return nil, fmt.Errorf("scale: %d is not between 0 and 12", scale)
	}
	c := &Converter{scale: int32(scale), round: round}
	// The factors are this file's own constants; one that does not parse
	// is a programming error, reported rather than silently zero.
	if _, _, err := c.from.SetString(f.factor); err != nil {
		return nil, fmt.Errorf("unit factor %q: %w", f.factor, err)
	}
	if _, _, err := c.to.SetString(t.factor); err != nil {
		return nil, fmt.Errorf("unit factor %q: %w", t.factor, err)
	}
	return c, nil
}

func knownUnits() string {
	var names []string
	for k := range units {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

var convCtx = apd.BaseContext.WithPrecision(34)

// Convert converts a non-negative decimal quantity.
func (c *Converter) Convert(q string) (string, error) {
	var d apd.Decimal
	if _, _, err := d.SetString(strings.TrimSpace(q)); err != nil || d.Form != apd.Finite {
		return "", fmt.Errorf("%q is not a decimal number", q)
	}
	if d.Negative && !d.IsZero() {
		return "", fmt.Errorf("%q is negative", q)
	}
	// No result aliases an operand: some apd operations (Ceil among them)
	// give wrong answers in place.
	var base, r apd.Decimal
	if _, err := convCtx.Mul(&base, &d, &c.from); err != nil {
		return "", err
	}
	if _, err := convCtx.Quo(&r, &base, &c.to); err != nil {
		return "", err
	}
	if c.round != RoundNone {
		// Quantities are never negative, so up is the ceiling, down the
		// floor and half up the floor of x + 0.5, taken at scale places.
		var shift, scaled, rounded, half, sum apd.Decimal
		shift.SetFinite(1, c.scale)
		if _, err := convCtx.Mul(&scaled, &r, &shift); err != nil {
			return "", err
		}
		var err error
		switch c.round {
		case RoundUp:
			_, err = convCtx.Ceil(&rounded, &scaled)
		case RoundDown:
			_, err = convCtx.Floor(&rounded, &scaled)
		default:
			half.SetFinite(5, -1)
			if _, err = convCtx.Add(&sum, &scaled, &half); err == nil {
				_, err = convCtx.Floor(&rounded, &sum)
			}
		}
		if err != nil {
			return "", err
		}
		if _, err := convCtx.Quo(&r, &rounded, &shift); err != nil {
			return "", err
		}
	}
	var out apd.Decimal
	out.Reduce(&r)
	return out.Text('f'), nil
}
