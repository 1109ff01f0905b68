package bulkapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
)

// FormatDate writes t as usage_date: yyyy-mm-dd hh24:mi:ss in UTC.
func FormatDate(t time.Time) string { return t.UTC().Format(DateLayout) }

// ParseDate reads a usage_date: yyyy-mm-dd hh24:mi:ss, or yyyy-mm-dd
// alone (the core then takes 00:00:00), as UTC.
func ParseDate(s string) (time.Time, error) {
	layout := DateLayout
	if len(s) == len("2006-01-02") {
		layout = "2006-01-02"
	}
	// time.Parse would also take fractional seconds the layout lacks.
	t, err := time.Parse(layout, s)
	if err != nil || len(s) != len(layout) {
		return time.Time{}, fmt.Errorf("usage_date %q is not yyyy-mm-dd hh24:mi:ss", s)
	}
	return t, nil
}

// ErrAmount is wrapped by every error of Amount and Units.
var ErrAmount = errors.New("amount cannot be sent")

// Amount writes an exact net amount as amt: a currency value (not a count
// of minor units) with exactly the currency's ISO 4217 minor-unit decimals:
// 12.3 USD is 12.30, 1234 JPY is 1234, 1.5 BHD is 1.500. An amount with
// more decimals than that, other than trailing zeros, is an error, never
// rounded here: amounts are rounded once, when they are rated, and sums of
// rounded amounts stay on the minor unit. The currency code may be upper
// or lower case.
func Amount(net *apd.Decimal, currency string) (json.Number, error) {
	if net == nil || net.Form != apd.Finite {
		return "", fmt.Errorf("%w: %s %s is not a finite number", ErrAmount, decimalText(net), currency)
	}
	exp, ok := money.Exponent(strings.ToUpper(currency))
	if !ok {
		return "", fmt.Errorf("%w: currency %q: %w", ErrAmount, currency, money.ErrUnknownCurrency)
	}
	var r apd.Decimal
	if err := money.RoundTo(&r, net, exp); err != nil {
		return "", fmt.Errorf("%w: %v", ErrAmount, err)
	}
	if r.Cmp(net) != 0 {
		return "", fmt.Errorf("%w: %s %s has more decimals than the currency's %d", ErrAmount, net.Text('f'), currency, exp)
	}
	return json.Number(r.Text('f')), nil
}

// Units writes an exact quantity as usage_units (or billable_units): its
// decimal text without exponent, as it is (2.50 stays 2.50).
func Units(q *apd.Decimal) (json.Number, error) {
	if q == nil || q.Form != apd.Finite {
		return "", fmt.Errorf("%w: units %s are not a finite number", ErrAmount, decimalText(q))
	}
	var c apd.Decimal
	c.Set(q)
	if c.IsZero() {
		c.Negative = false
	}
	return json.Number(c.Text('f')), nil
}

func decimalText(d *apd.Decimal) string {
	if d == nil {
		return "nil"
	}
	return d.String()
}
