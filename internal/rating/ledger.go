package rating

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/apd/v3"
)

// Month is a UTC calendar month as year×12 + month − 1 (March 2026 is
// 2026×12 + 2), compact enough for a map key and a database integer.
type Month int32

// MonthOf returns the UTC calendar month of t.
func MonthOf(t time.Time) Month {
	y, m, _ := t.UTC().Date()
	return Month(y*12 + int(m) - 1)
}

// Year returns the month's year.
func (m Month) Year() int { return int(m) / 12 }

// Month returns the month of the year.
func (m Month) Month() time.Month { return time.Month(int(m)%12 + 1) }

// Start returns the first instant of the month, in UTC.
func (m Month) Start() time.Time { return time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, time.UTC) }

// String writes the month as 2026-03.
func (m Month) String() string { return string(m.AppendText(nil)) }

// AppendText appends the month as 2026-03.
func (m Month) AppendText(b []byte) []byte {
	y, mo := m.Year(), int(m.Month())
	if y < 0 || y > 9999 {
		return fmt.Appendf(b, "%04d-%02d", y, mo)
	}
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-', byte('0'+mo/10), byte('0'+mo%10))
}

// MarshalText writes the month as 2026-03.
func (m Month) MarshalText() ([]byte, error) { return m.AppendText(nil), nil }

// UnmarshalText reads a month written as 2026-03.
func (m *Month) UnmarshalText(b []byte) error {
	t, err := time.Parse("2006-01", string(b))
	if err != nil {
		return fmt.Errorf("month %q: want YYYY-MM", b)
	}
	*m = MonthOf(t)
	return nil
}

// UsageKey addresses a cumulative usage counter: the quantity an account
// used of a usage type in a month (of one client: a ledger holds one
// client's state).
type UsageKey struct {
	AccountID string
	UsageType string
	Month     Month
}

// AllowanceKey addresses how much of a free_units discount's monthly
// allowance an account has used.
type AllowanceKey struct {
	AccountID  string
	DiscountID string
	Month      Month
}

// Ledger is the cumulative state rating reads and advances. The engine
// owns no storage: the caller provides the ledger, typically a MemLedger
// loaded from the database for a batch and written back in the same
// transaction as the batch's MURs.
//
// Reads return nil for a key never used (zero); the decimals returned
// belong to the ledger and are only read. The engine reads everything it
// needs before it writes, and writes only for a record that rated; a
// ledger whose Add fails is left in an unspecified state and must be
// discarded with the transaction.
type Ledger interface {
	Usage(UsageKey) (*apd.Decimal, error)
	AddUsage(UsageKey, *apd.Decimal) error
	AllowanceUsed(AllowanceKey) (*apd.Decimal, error)
	AddAllowance(AllowanceKey, *apd.Decimal) error
}

// ledgerCtx adds exactly: ledger values stay far below its precision.
var ledgerCtx = apd.Context{
	Precision:   200,
	Rounding:    apd.RoundHalfEven,
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.DefaultTraps | apd.Inexact,
}

// MemLedger is an in-memory Ledger that remembers which keys rating
// changed, so that only those are written back. It is not safe for
// concurrent use.
type MemLedger struct {
	usage     map[UsageKey]*ledgerEntry
	allowance map[AllowanceKey]*ledgerEntry
}

type ledgerEntry struct {
	v       apd.Decimal
	touched bool
}

// NewMemLedger returns an empty ledger.
func NewMemLedger() *MemLedger { return NewMemLedgerSized(0, 0) }

// NewMemLedgerSized is NewMemLedger with room for about counters usage
// counters and allowances allowances.
func NewMemLedgerSized(counters, allowances int) *MemLedger {
	return &MemLedger{usage: make(map[UsageKey]*ledgerEntry, counters), allowance: make(map[AllowanceKey]*ledgerEntry, allowances)}
}

// LoadUsage sets a counter's stored value without marking it changed.
func (m *MemLedger) LoadUsage(k UsageKey, v *apd.Decimal) {
	e := m.usage[k]
	if e == nil {
		e = &ledgerEntry{}
		m.usage[k] = e
	}
	e.v.Set(v)
}

// LoadAllowance sets an allowance's stored use without marking it
// changed.
func (m *MemLedger) LoadAllowance(k AllowanceKey, v *apd.Decimal) {
	e := m.allowance[k]
	if e == nil {
		e = &ledgerEntry{}
		m.allowance[k] = e
	}
	e.v.Set(v)
}

// Usage implements Ledger.
func (m *MemLedger) Usage(k UsageKey) (*apd.Decimal, error) {
	if e := m.usage[k]; e != nil {
		return &e.v, nil
	}
	return nil, nil
}

// AllowanceUsed implements Ledger.
func (m *MemLedger) AllowanceUsed(k AllowanceKey) (*apd.Decimal, error) {
	if e := m.allowance[k]; e != nil {
		return &e.v, nil
	}
	return nil, nil
}

// AddUsage implements Ledger.
func (m *MemLedger) AddUsage(k UsageKey, q *apd.Decimal) error {
	e := m.usage[k]
	if e == nil {
		e = &ledgerEntry{}
		m.usage[k] = e
	}
	return add(e, q)
}

// AddAllowance implements Ledger.
func (m *MemLedger) AddAllowance(k AllowanceKey, u *apd.Decimal) error {
	e := m.allowance[k]
	if e == nil {
		e = &ledgerEntry{}
		m.allowance[k] = e
	}
	return add(e, u)
}

func add(e *ledgerEntry, d *apd.Decimal) error {
	if _, err := ledgerCtx.Add(&e.v, &e.v, d); err != nil {
		return fmt.Errorf("ledger: add %s: %w", d.String(), err)
	}
	e.touched = true
	return nil
}

// UsageKeys lists every counter the ledger holds, in key order.
func (m *MemLedger) UsageKeys() []UsageKey { return sortedKeys(m.usage, false, compareUsageKeys) }

// TouchedUsage lists the counters rating changed, in key order.
func (m *MemLedger) TouchedUsage() []UsageKey { return sortedKeys(m.usage, true, compareUsageKeys) }

// AllowanceKeys lists every allowance the ledger holds, in key order.
func (m *MemLedger) AllowanceKeys() []AllowanceKey {
	return sortedKeys(m.allowance, false, compareAllowanceKeys)
}

// TouchedAllowances lists the allowances rating changed, in key order.
func (m *MemLedger) TouchedAllowances() []AllowanceKey {
	return sortedKeys(m.allowance, true, compareAllowanceKeys)
}

// Reset empties the ledger, keeping its maps' room.
func (m *MemLedger) Reset() {
	clear(m.usage)
	clear(m.allowance)
}

// sortedKeys lists the keys of m (only the changed ones when touchedOnly),
// sorted by compare.
func sortedKeys[K comparable](m map[K]*ledgerEntry, touchedOnly bool, compare func(a, b K) int) []K {
	out := make([]K, 0, len(m))
	for k, e := range m {
		if !touchedOnly || e.touched {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, compare)
	return out
}

func compareUsageKeys(a, b UsageKey) int {
	return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.UsageType, b.UsageType), cmp.Compare(a.Month, b.Month))
}

func compareAllowanceKeys(a, b AllowanceKey) int {
	return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.DiscountID, b.DiscountID), cmp.Compare(a.Month, b.Month))
}
