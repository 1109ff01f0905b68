package money

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
)

// Limits of the decimals Parse accepts. They are far beyond any real
// price or quantity and keep every computation the rater does exact and
// cheap; they admit everything the usage normal-form check admits.
const (
	// MaxDigits bounds the significant digits (leading zeros and trailing
	// zeros after the decimal point do not count).
	MaxDigits = 40
	// MaxIntegerDigits bounds the digits before the decimal point.
	MaxIntegerDigits = 60
	// MaxFractionDigits bounds the digits after the decimal point, once
	// trailing zeros are removed.
	MaxFractionDigits = 30
	// maxLen bounds the text itself.
	maxLen = 200
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid decimal")

// ParseError says why a text is not an acceptable decimal.
type ParseError struct {
	Input  string // the text, shortened when long
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s %s: %s", ErrInvalid, e.Input, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ParseError) Unwrap() error { return ErrInvalid }

func parseErr(s, reason string) error {
	if len(s) > 40 {
		s = s[:40]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return &ParseError{Input: strconv.Quote(s), Reason: reason}
}

// Parse reads a decimal number: an optional sign, digits with an optional
// decimal point, and an optional exponent (1.5, -0.25, 2E3, .5). It
// rejects NaN, infinities, spaces, empty text and numbers beyond the
// limits above, with an error that says which rule was broken. The result
// keeps the written scale (2.50 stays 2.50) except that trailing zeros
// past MaxFractionDigits are dropped; -0 is returned as 0.
func Parse(s string) (apd.Decimal, error) {
	var d apd.Decimal
	err := ParseInto(&d, s)
	return d, err
}

// ParseInto is Parse writing into d; it does not allocate for numbers of
// up to 19 significant digits.
func ParseInto(d *apd.Decimal, s string) error {
	if s == "" {
		return parseErr(s, "empty")
	}
	if len(s) > maxLen {
		return parseErr(s, fmt.Sprintf("longer than %d characters", maxLen))
	}
	i := 0
	neg := false
	switch s[0] {
	case '-':
		neg = true
		i++
	case '+':
		i++
	}
	// Mantissa: digits, at most one point, at least one digit.
	intStart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		fracEnd = i
	}
	if intEnd == intStart && fracEnd == fracStart {
		return parseErr(s, notANumber(s[intStart:]))
	}
	// Exponent.
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			if i-start >= 4 {
				return parseErr(s, "exponent out of range")
			}
			exp = exp*10 + int64(s[i]-'0')
			i++
		}
		if i == start {
			return parseErr(s, "exponent has no digits")
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return parseErr(s, fmt.Sprintf("unexpected %q", rune(s[i])))
	}

	// The digits as one run: integer part then fraction part, without the
	// leading zeros, and the fraction's trailing zeros counted apart.
	intDigits, fracDigits := s[intStart:intEnd], s[fracStart:fracEnd]
	for len(intDigits) > 0 && intDigits[0] == '0' {
		intDigits = intDigits[1:]
	}
	if len(intDigits) == 0 {
		for len(fracDigits) > 0 && fracDigits[0] == '0' {
			fracDigits = fracDigits[1:]
			exp-- // the dropped zero was a fraction digit
		}
	}
	// value = digits(intDigits+fracDigits) × 10^(exp − len(fracDigits))
	scale := exp - int64(len(fracDigits))
	trailing := 0
	for n := len(intDigits) + len(fracDigits); trailing < n; trailing++ {
		var c byte
		if k := n - 1 - trailing; k >= len(intDigits) {
			c = fracDigits[k-len(intDigits)]
		} else {
			c = intDigits[k]
		}
		if c != '0' {
			break
		}
	}
	sig := len(intDigits) + len(fracDigits) - trailing
	if sig == 0 {
		// Zero, in any form: keep a modest scale.
		d.SetFinite(0, int32(min(max(scale, -MaxFractionDigits), 0)))
		return nil
	}
	if sig > MaxDigits {
		return parseErr(s, fmt.Sprintf("more than %d significant digits", MaxDigits))
	}
	redScale := scale + int64(trailing) // scale with the trailing zeros removed
	if redScale < -MaxFractionDigits {
		return parseErr(s, fmt.Sprintf("more than %d digits after the decimal point", MaxFractionDigits))
	}
	if int64(sig)+redScale > MaxIntegerDigits {
		return parseErr(s, fmt.Sprintf("more than %d digits before the decimal point", MaxIntegerDigits))
	}
	// Keep the written scale unless it is finer than the limit.
	keep := len(intDigits) + len(fracDigits)
	if scale < -MaxFractionDigits {
		drop := int(-MaxFractionDigits - scale)
		keep -= drop
		scale += int64(drop)
	}
	if keep <= 19 {
		var v uint64
		for k := 0; k < keep; k++ {
			var c byte
			if k < len(intDigits) {
				c = intDigits[k]
			} else {
				c = fracDigits[k-len(intDigits)]
			}
			v = v*10 + uint64(c-'0')
		}
		d.Coeff.SetUint64(v)
	} else {
		var buf [maxLen]byte
		n := copy(buf[:], intDigits)
		copy(buf[n:], fracDigits)
		if _, ok := d.Coeff.SetString(string(buf[:keep]), 10); !ok {
			return parseErr(s, "not a decimal number")
		}
	}
	d.Form = apd.Finite
	d.Exponent = int32(scale)
	d.Negative = neg
	return nil
}

// ParseJSON reads a decimal written as a JSON number (1.5) or a JSON
// string holding one ("1.5"). null is an error: a caller for which a
// value is optional handles it before.
func ParseJSON(b []byte) (apd.Decimal, error) {
	var d apd.Decimal
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return d, parseErr("", "empty")
	case string(b) == "null":
		return d, parseErr("null", "null is not a number")
	case b[0] == '"':
		if len(b) < 2 || b[len(b)-1] != '"' {
			return d, parseErr(string(b), "unterminated string")
		}
		inner := b[1 : len(b)-1]
		if bytes.IndexByte(inner, '\\') >= 0 {
			return d, parseErr(string(b), "escapes are not allowed in a number")
		}
		return d, ParseInto(&d, string(inner))
	case b[0] == '-' || isDigit(b[0]):
		return d, ParseInto(&d, string(b))
	default:
		return d, parseErr(string(b), "not a number or a string")
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func notANumber(rest string) string {
	switch lower := string(bytes.ToLower([]byte(rest))); lower {
	case "nan", "snan":
		return "NaN is not a number"
	case "inf", "infinity":
		return "infinity is not allowed"
	}
	return "not a decimal number"
}
