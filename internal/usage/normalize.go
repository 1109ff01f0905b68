package usage

import (
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/codes"
)

// Rules are the normal-form checks' settings for one client.
type Rules struct {
	// MaxAge is how old usage_time may be; 0 means no limit.
	MaxAge time.Duration `json:"max_age" yaml:"max_age"`
	// MaxFuture is how far usage_time may be ahead of now (clock skew).
	MaxFuture time.Duration `json:"max_future" yaml:"max_future"`
	// MaxQuantity, when set, is the largest quantity accepted.
	MaxQuantity string `json:"max_quantity" yaml:"max_quantity"`
}

// DefaultRules are the documented defaults (docs/formats.md): at most 90
// days old and 15 minutes in the future.
func DefaultRules() Rules {
	return Rules{MaxAge: 90 * 24 * time.Hour, MaxFuture: 15 * time.Minute}
}

// maxDigits bounds the quantities accepted: far beyond any real usage,
// small enough that a hostile value cannot make arithmetic expensive.
const maxDigits = 30

// Normalize checks a raw record and returns it in normal form. A failure
// is a *codes.Error with the first code that applies, in the documented
// order (docs/exceptions.md): MISSING_FIELD, BAD_QUANTITY, BAD_TIMESTAMP.
func Normalize(raw Raw, rules Rules, now time.Time) (Record, error) {
	var missing []string
	for _, f := range RequiredFields {
		if strings.TrimSpace(raw.Fields[f]) == "" {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return Record{}, codes.Errorf(codes.MissingField, missing[0], "required field %s is missing or empty", strings.Join(missing, ", "))
	}
	q, err := ParseQuantity(raw.Fields[FieldQuantity], rules.MaxQuantity)
	if err != nil {
		return Record{}, err
	}
	ts, err := ParseUsageTime(raw.Fields[FieldUsageTime], rules, now)
	if err != nil {
		return Record{}, err
	}
	rec := Record{
		Source:    raw.Source,
		RecordID:  strings.TrimSpace(raw.Fields[FieldRecordID]),
		AccountID: strings.TrimSpace(raw.Fields[FieldAccountID]),
		UsageType: strings.TrimSpace(raw.Fields[FieldUsageType]),
		Quantity:  q,
		UsageTime: ts,
	}
	for k, v := range raw.Fields {
		switch k {
		case FieldRecordID, FieldAccountID, FieldUsageType, FieldQuantity, FieldUsageTime:
		case QualifierFields[0], QualifierFields[1], QualifierFields[2], QualifierFields[3]:
			if v != "" {
				if rec.Qualifiers == nil {
					rec.Qualifiers = make(map[string]string, 4)
				}
				rec.Qualifiers[k] = v
			}
		default:
			if rec.Attributes == nil {
				rec.Attributes = make(map[string]string, len(raw.Fields))
			}
			rec.Attributes[k] = v
		}
	}
	return rec, nil
}

// ParseQuantity checks that s is a finite, non-negative decimal within
// max (when max is set) and returns its canonical text.
func ParseQuantity(s, max string) (string, error) {
	s = strings.TrimSpace(s)
	if max == "" {
		if c, ok := plainQuantity(s); ok {
			return c, nil
		}
	}
	d, _, err := apd.NewFromString(s)
	if err != nil || d.Form != apd.Finite {
		return "", codes.Errorf(codes.BadQuantity, FieldQuantity, "quantity %q is not a decimal number", clip(s))
	}
	if d.Negative && !d.IsZero() {
		return "", codes.Errorf(codes.BadQuantity, FieldQuantity, "quantity %s is negative", s)
	}
	if d.NumDigits() > maxDigits || d.Exponent > maxDigits || d.Exponent < -maxDigits {
		return "", codes.Errorf(codes.BadQuantity, FieldQuantity, "quantity %q is out of range", clip(s))
	}
	if max != "" {
		m, _, err := apd.NewFromString(max)
		if err == nil && d.Cmp(m) > 0 {
			return "", codes.Errorf(codes.BadQuantity, FieldQuantity, "quantity %s is above the maximum %s", s, max)
		}
	}
	d.Negative = false
	var r apd.Decimal
	r.Reduce(d)
	// 'f' writes 1E+3 as 1000, so exports stay readable.
	return r.Text('f'), nil
}

// plainQuantity reads the common case of a quantity, digits with at most
// one decimal point between digits, without the decimal library, and
// returns the same canonical text ParseQuantity gives: leading zeros of
// the whole part and trailing zeros of the fraction removed. ok is false
// for anything else (signs, exponents, spaces, too many digits), which
// ParseQuantity then reads in full.
func plainQuantity(s string) (string, bool) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || len(frac) > maxDigits || !allDigits(whole) || !allDigits(frac) {
		return "", false
	}
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	// Significant digits: the coefficient without its leading zeros.
	sig := len(whole) + len(frac)
	if whole == "" {
		sig = len(strings.TrimLeft(frac, "0"))
	}
	if sig > maxDigits || len(whole) > maxDigits {
		return "", false
	}
	if whole == "" {
		whole = "0"
	}
	if frac == "" {
		return whole, true
	}
	return whole + "." + frac, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseUsageTime parses an RFC 3339 timestamp and checks it against the
// validation window.
func ParseUsageTime(s string, rules Rules, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, codes.Errorf(codes.BadTimestamp, FieldUsageTime, "usage_time %q is not an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)", clip(s))
	}
	t = t.UTC()
	if rules.MaxAge > 0 && t.Before(now.Add(-rules.MaxAge)) {
		return time.Time{}, codes.Errorf(codes.BadTimestamp, FieldUsageTime, "usage_time %s is older than the %s window", s, fmtDuration(rules.MaxAge))
	}
	if t.After(now.Add(rules.MaxFuture)) {
		return time.Time{}, codes.Errorf(codes.BadTimestamp, FieldUsageTime, "usage_time %s is more than %s in the future", s, fmtDuration(rules.MaxFuture))
	}
	return t, nil
}

func fmtDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
