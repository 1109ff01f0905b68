package catalog

import (
	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
)

// Decimal is an exact decimal as the feed writes it: a JSON string
// ("2.50") or a JSON number (2.5). It is written back as a JSON string in
// plain notation, keeping its scale ("2.50"), so no reader ever sees it as
// a binary float.
type Decimal struct {
	apd.Decimal
}

// NewDecimal parses s with money.Parse's rules.
func NewDecimal(s string) (Decimal, error) {
	d, err := money.Parse(s)
	return Decimal{d}, err
}

// MustDecimal is NewDecimal for literals known to be valid; it panics
// otherwise.
func MustDecimal(s string) Decimal {
	d, err := NewDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

// Dec returns a pointer to a new Decimal parsed from s; it panics on an
// invalid literal. It keeps catalogs written in Go short.
func Dec(s string) *Decimal {
	d := MustDecimal(s)
	return &d
}

// MarshalJSON writes the decimal as a JSON string in plain notation.
func (d Decimal) MarshalJSON() ([]byte, error) {
	return d.AppendJSON(make([]byte, 0, 24)), nil
}

// AppendJSON appends the decimal as a JSON string in plain notation.
func (d *Decimal) AppendJSON(b []byte) []byte {
	b = append(b, '"')
	b = d.Decimal.Append(b, 'f')
	return append(b, '"')
}

// UnmarshalJSON accepts a JSON string or number; null leaves d unchanged
// (a pointer field decodes null as nil before getting here).
func (d *Decimal) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	v, err := money.ParseJSON(b)
	if err != nil {
		return err
	}
	d.Decimal.Set(&v)
	return nil
}

// String writes the decimal in plain notation.
func (d Decimal) String() string {
	return d.Decimal.Text('f')
}

// clone returns a deep copy of d (nil for nil).
func (d *Decimal) clone() *Decimal {
	if d == nil {
		return nil
	}
	c := new(Decimal)
	c.Decimal.Set(&d.Decimal)
	return c
}
