package mursync

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
)

// Aggregation is what Aggregate makes of a set of MURs.
type Aggregation struct {
	Records []Record
	// Of[i] is the index in Records of the record MUR i went into, or
	// -1 when MUR i cannot be sent (see Unsendable).
	Of []int32
	// Unsendable lists the MURs that cannot become part of any record,
	// with the reason; they are marked failed instead of blocking the
	// rest. Rating never makes such MURs; the list exists so that a MUR
	// damaged by hand cannot hold up its client's sync.
	Unsendable []Unsendable
}

// Unsendable is a MUR that cannot be sent.
type Unsendable struct {
	Index  int // in the MURs given to Aggregate
	Reason string
}

// sumCtx adds exactly: a sum that would need rounding is an error.
var sumCtx = apd.Context{
	Precision:   120,
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.DefaultTraps | apd.Inexact | apd.Rounded,
}

type aggKey struct {
	account, usageType, currency string
	day                          int64 // days since 1970-01-01 UTC
}

type acc struct {
	key        aggKey
	units, amt apd.Decimal
	murs       int
	quals      [4]string
	mixed      [4]bool
	oldest     time.Time
	usageTime  time.Time // of the first MUR (a record of one MUR sends it)
}

// Aggregate sums MURs into aggregated records. With aggregate on, the
// MURs of one account, usage type, currency and UTC day of usage_time
// make one record: units and net amounts are summed exactly, a qualifier
// is kept when all of its MURs have the same value, and usage_date is
// the day's start. With aggregate off, every MUR is a record of its own,
// with its own usage time and qualifiers. newID gives each record its
// id. Records come sorted by account, usage type, day and currency
// (aggregated) or in the order of the MURs (not aggregated), so that
// batches are cut the same way from the same MURs.
//
// All MURs are expected to be of one client.
func Aggregate(murs []MUR, aggregate bool, newID func() string) (Aggregation, error) {
	out := Aggregation{Of: make([]int32, len(murs))}
	var accs []*acc
	index := map[aggKey]int32{}
	var q, n apd.Decimal
	for i := range murs {
		m := &murs[i]
		if reason := parseMUR(m, &q, &n); reason != "" {
			out.Of[i] = -1
			out.Unsendable = append(out.Unsendable, Unsendable{Index: i, Reason: reason})
			continue
		}
		t := m.UsageTime.UTC()
		k := aggKey{account: m.AccountID, usageType: m.UsageType, currency: m.Currency, day: dayNumber(t)}
		var a *acc
		if aggregate {
			if j, ok := index[k]; ok {
				a = accs[j]
				out.Of[i] = j
			}
		}
		if a == nil {
			a = &acc{key: k, quals: m.Qualifiers, oldest: m.RatedAt, usageTime: t}
			if aggregate {
				index[k] = int32(len(accs))
			}
			out.Of[i] = int32(len(accs))
			accs = append(accs, a)
		} else {
			for j := range a.quals {
				if !a.mixed[j] && a.quals[j] != m.Qualifiers[j] {
					a.mixed[j], a.quals[j] = true, ""
				}
			}
			if m.RatedAt.Before(a.oldest) {
				a.oldest = m.RatedAt
			}
		}
		if _, err := sumCtx.Add(&a.units, &a.units, &q); err != nil {
			return Aggregation{}, fmt.Errorf("sum the units of account %s, usage type %s: %w", m.AccountID, m.UsageType, err)
		}
		if _, err := sumCtx.Add(&a.amt, &a.amt, &n); err != nil {
			return Aggregation{}, fmt.Errorf("sum the amounts of account %s, usage type %s: %w", m.AccountID, m.UsageType, err)
		}
		a.murs++
	}

	order := make([]int32, len(accs)) // order[r] = accumulator of record r
	for i := range order {
		order[i] = int32(i)
	}
	if aggregate {
		slices.SortFunc(order, func(x, y int32) int {
			a, b := accs[x].key, accs[y].key
			return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.usageType, b.usageType),
				cmp.Compare(a.day, b.day), cmp.Compare(a.currency, b.currency))
		})
	}
	recordOf := make([]int32, len(accs)) // recordOf[accumulator] = record
	out.Records = make([]Record, len(accs))
	for r, j := range order {
		recordOf[j] = int32(r)
		a := accs[j]
		exp, _ := money.Exponent(a.key.currency)
		var amt apd.Decimal
		if err := money.RoundTo(&amt, &a.amt, exp); err != nil {
			return Aggregation{}, err
		}
		day := time.Unix(a.key.day*86400, 0).UTC()
		rec := Record{
			ID: newID(), AccountID: a.key.account, UsageType: a.key.usageType, Currency: a.key.currency,
			Day: day, UsageDate: day, Units: a.units.Text('f'), Amount: amt.Text('f'), MURs: a.murs,
			Qualifiers: a.quals, OldestRatedAt: a.oldest,
		}
		if aggregate {
			rec.Comments = strconv.Itoa(a.murs) + " MURs of " + day.Format(time.DateOnly)
			if a.murs == 1 {
				rec.Comments = "1 MUR of " + day.Format(time.DateOnly)
			}
		} else {
			rec.UsageDate = a.usageTime.Truncate(time.Second)
		}
		out.Records[r] = rec
	}
	for i, j := range out.Of {
		if j >= 0 {
			out.Of[i] = recordOf[j]
		}
	}
	if !aggregate {
		for i, j := range out.Of {
			if j >= 0 {
				out.Records[j].Comments = "MUR " + murs[i].RecordID
			}
		}
	}
	return out, nil
}

// parseMUR reads a MUR's quantity and net amount into q and n, or says
// why the MUR cannot be sent.
func parseMUR(m *MUR, q, n *apd.Decimal) string {
	exp, ok := money.Exponent(m.Currency)
	if !ok {
		return fmt.Sprintf("currency %q is not an ISO 4217 code", m.Currency)
	}
	if err := money.ParseInto(q, m.Quantity); err != nil {
		return "quantity: " + err.Error()
	}
	if q.Negative {
		return fmt.Sprintf("quantity %s is negative", m.Quantity)
	}
	if err := money.ParseInto(n, m.NetAmount); err != nil {
		return "net_amount: " + err.Error()
	}
	var r apd.Decimal
	if err := money.RoundTo(&r, n, exp); err != nil || r.Cmp(n) != 0 {
		return fmt.Sprintf("net_amount %s has more decimals than %s's minor unit (%d)", m.NetAmount, m.Currency, exp)
	}
	if m.AccountID == "" || m.UsageType == "" {
		return "account_id or usage_type is empty"
	}
	return ""
}

// dayNumber is the UTC day of t, counted from 1970-01-01.
func dayNumber(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s < 0 && s%86400 != 0 {
		d--
	}
	return d
}

// Cut splits n records, in order, into batches of at most size: the
// half-open ranges [from, to) of each.
func Cut(n, size int) [][2]int {
	if size < 1 {
		size = 1
	}
	var out [][2]int
	for from := 0; from < n; from += size {
		out = append(out, [2]int{from, min(from+size, n)})
	}
	return out
}
