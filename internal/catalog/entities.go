// Package catalog is the typed model of a client's catalog as the core
// feed describes it (accounts, usage types, plans with their rate
// schedules, subscriptions, discounts), the checks each entity must pass,
// and Snapshot, the immutable read-optimised view the rater looks records
// up in. It knows nothing of Kafka, Benthos or SQL.
package catalog

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
)

// Status is an account's status.
type Status string

// Account statuses. Suspended accounts are still rated; closed ones are
// not.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusClosed    Status = "closed"
)

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusSuspended || s == StatusClosed
}

// Model is a rate schedule's pricing model.
type Model string

// Pricing models (docs/rating.md). In the core system's terms,
// graduated is Standard, volume is Volume Discount and stairstep is Flat
// Rate Per Tier.
const (
	PerUnit   Model = "per_unit"
	Graduated Model = "graduated"
	Volume    Model = "volume"
	Stairstep Model = "stairstep"
	Package   Model = "package"
)

// Valid reports whether m is one of the models.
func (m Model) Valid() bool {
	switch m {
	case PerUnit, Graduated, Volume, Stairstep, Package:
		return true
	}
	return false
}

// Tiered reports whether the model prices by tiers.
func (m Model) Tiered() bool { return m == Graduated || m == Volume || m == Stairstep }

// DiscountKind is what a discount takes off.
type DiscountKind string

// Discount kinds, listed in the order they apply.
const (
	FreeUnits     DiscountKind = "free_units"
	Percent       DiscountKind = "percent"
	AmountPerUnit DiscountKind = "amount_per_unit"
)

// Valid reports whether k is one of the kinds.
func (k DiscountKind) Valid() bool { return k.Order() >= 0 }

// Order is the kind's place in the order discounts apply (free_units 0,
// percent 1, amount_per_unit 2); -1 for an unknown kind.
func (k DiscountKind) Order() int {
	switch k {
	case FreeUnits:
		return 0
	case Percent:
		return 1
	case AmountPerUnit:
		return 2
	}
	return -1
}

// Account is a billed account. Its currency picks the rate schedule.
type Account struct {
	ID       string `json:"-"` // the feed event's entity_id
	Currency string `json:"currency"`
	Status   Status `json:"status"`
	Name     string `json:"name,omitempty"`
}

// UsageType is a kind of usage the catalog prices.
type UsageType struct {
	Code        string `json:"-"` // the feed event's entity_id
	Unit        string `json:"unit,omitempty"`
	Description string `json:"description,omitempty"`
}

// Plan is a set of rate schedules.
type Plan struct {
	ID    string         `json:"-"` // the feed event's entity_id
	Rates []RateSchedule `json:"rates"`
}

// RateSchedule prices one usage type in one currency over a period.
type RateSchedule struct {
	UsageType     string     `json:"usage_type"`
	Currency      string     `json:"currency"`
	Model         Model      `json:"model"`
	UnitPrice     *Decimal   `json:"unit_price,omitempty"`   // per_unit, package
	Tiers         []Tier     `json:"tiers,omitempty"`        // graduated, volume, stairstep
	PackageSize   *Decimal   `json:"package_size,omitempty"` // package
	EffectiveFrom *time.Time `json:"effective_from,omitempty"`
	EffectiveTo   *time.Time `json:"effective_to,omitempty"`
}

// Tier i covers cumulative quantities in (Tiers[i-1].UpTo, UpTo]; the
// first starts at 0 and the last, whose UpTo is nil, has no upper bound.
type Tier struct {
	UpTo      *Decimal `json:"up_to"`
	UnitPrice *Decimal `json:"unit_price,omitempty"`
	FlatFee   *Decimal `json:"flat_fee,omitempty"`
}

// Subscription puts an account on a plan over a period.
type Subscription struct {
	ID            string     `json:"-"` // the feed event's entity_id
	AccountID     string     `json:"account_id"`
	PlanID        string     `json:"plan_id"`
	EffectiveFrom *time.Time `json:"effective_from,omitempty"`
	EffectiveTo   *time.Time `json:"effective_to,omitempty"`
}

// Discount belongs to one account or to every account on one plan, and
// applies to the listed usage types (all of them when the list is empty).
type Discount struct {
	ID            string       `json:"-"` // the feed event's entity_id
	AccountID     string       `json:"account_id,omitempty"`
	PlanID        string       `json:"plan_id,omitempty"`
	UsageTypes    []string     `json:"usage_types,omitempty"`
	Kind          DiscountKind `json:"kind"`
	Value         *Decimal     `json:"value"`
	Priority      int          `json:"priority"`
	EffectiveFrom *time.Time   `json:"effective_from,omitempty"`
	EffectiveTo   *time.Time   `json:"effective_to,omitempty"`
}

// effectiveAt reports from ≤ t < to, a nil bound being open.
func effectiveAt(from, to *time.Time, t time.Time) bool {
	return (from == nil || !t.Before(*from)) && (to == nil || t.Before(*to))
}

// EffectiveAt reports whether the schedule is in effect at t.
func (r *RateSchedule) EffectiveAt(t time.Time) bool {
	return effectiveAt(r.EffectiveFrom, r.EffectiveTo, t)
}

// EffectiveAt reports whether the subscription is in effect at t.
func (s *Subscription) EffectiveAt(t time.Time) bool {
	return effectiveAt(s.EffectiveFrom, s.EffectiveTo, t)
}

// EffectiveAt reports whether the discount is in effect at t.
func (d *Discount) EffectiveAt(t time.Time) bool {
	return effectiveAt(d.EffectiveFrom, d.EffectiveTo, t)
}

// Applies reports whether the discount covers usageType.
func (d *Discount) Applies(usageType string) bool {
	if len(d.UsageTypes) == 0 {
		return true
	}
	for _, u := range d.UsageTypes {
		if u == usageType {
			return true
		}
	}
	return false
}

// FieldError is one problem with one field of an entity. Field is a path
// into the entity's JSON data, such as rates[1].tiers[2].up_to.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// problems collects FieldErrors under a path prefix.
type problems struct {
	prefix string
	errs   []error
}

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Field: p.prefix + field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) required(field, value string) {
	if strings.TrimSpace(value) == "" {
		p.add(field, "required")
	}
}

func (p *problems) currency(field, code string) {
	switch {
	case code == "":
		p.add(field, "required")
	case !money.Known(code):
		if money.Known(strings.ToUpper(code)) {
			p.add(field, "%q must be written in upper case (%s)", code, strings.ToUpper(code))
		} else {
			p.add(field, "%q is not an active ISO 4217 currency code", code)
		}
	}
}

// decimal checks an optional non-negative decimal; positive also rules
// out zero.
func (p *problems) decimal(field string, d *Decimal, required, positive bool) {
	switch {
	case d == nil:
		if required {
			p.add(field, "required")
		}
	case d.Form != apd.Finite:
		p.add(field, "must be a finite number")
	case d.Sign() < 0:
		p.add(field, "must not be negative")
	case positive && d.Sign() == 0:
		p.add(field, "must be greater than 0")
	}
}

func (p *problems) period(from, to *time.Time) {
	if from != nil && to != nil && !to.After(*from) {
		p.add("effective_to", "must be after effective_from")
	}
}

// Validate checks the account; all problems are reported together.
func (a *Account) Validate() error {
	var p problems
	p.required("entity_id", a.ID)
	p.currency("currency", a.Currency)
	switch {
	case a.Status == "":
		p.add("status", "required")
	case !a.Status.Valid():
		p.add("status", "%q is not one of active, suspended, closed", a.Status)
	}
	return errors.Join(p.errs...)
}

// Validate checks the usage type.
func (u *UsageType) Validate() error {
	var p problems
	p.required("entity_id", u.Code)
	return errors.Join(p.errs...)
}

// Validate checks the plan and every rate schedule in it, and that no two
// schedules for the same usage type and currency are in effect at the
// same time (which would make the rate ambiguous).
func (pl *Plan) Validate() error {
	var p problems
	p.required("entity_id", pl.ID)
	for i := range pl.Rates {
		q := problems{prefix: fmt.Sprintf("rates[%d].", i)}
		pl.Rates[i].validate(&q)
		p.errs = append(p.errs, q.errs...)
	}
	for j := range pl.Rates {
		b := &pl.Rates[j]
		for i := 0; i < j; i++ {
			a := &pl.Rates[i]
			if a.UsageType == b.UsageType && a.Currency == b.Currency && overlap(a.EffectiveFrom, a.EffectiveTo, b.EffectiveFrom, b.EffectiveTo) {
				p.add(fmt.Sprintf("rates[%d]", j), "overlaps rates[%d] (%s in %s): schedules for the same usage type and currency must not be in effect at the same time",
					i, a.UsageType, a.Currency)
				break
			}
		}
	}
	return errors.Join(p.errs...)
}

// overlap reports whether [f1, t1) and [f2, t2) share an instant, nil
// bounds being open.
func overlap(f1, t1, f2, t2 *time.Time) bool {
	before := func(a, b *time.Time) bool { // a < b with a as a lower and b as an upper bound
		return a == nil || b == nil || a.Before(*b)
	}
	return before(f1, t2) && before(f2, t1)
}

// Validate checks one rate schedule on its own.
func (r *RateSchedule) Validate() error {
	var p problems
	r.validate(&p)
	return errors.Join(p.errs...)
}

func (r *RateSchedule) validate(p *problems) {
	p.required("usage_type", r.UsageType)
	p.currency("currency", r.Currency)
	p.period(r.EffectiveFrom, r.EffectiveTo)
	switch {
	case r.Model == "":
		p.add("model", "required")
		return
	case !r.Model.Valid():
		p.add("model", "%q is not one of per_unit, graduated, volume, stairstep, package", r.Model)
		return
	}
	if !r.Model.Tiered() {
		p.decimal("unit_price", r.UnitPrice, true, false)
		if r.Model == Package {
			p.decimal("package_size", r.PackageSize, true, true)
		}
		return
	}
	if len(r.Tiers) == 0 {
		p.add("tiers", "at least one tier is required for the %s model", r.Model)
		return
	}
	last := len(r.Tiers) - 1
	var prev *Decimal
	for i := range r.Tiers {
		t := &r.Tiers[i]
		f := fmt.Sprintf("tiers[%d].", i)
		switch {
		case t.UpTo == nil && i < last:
			p.add(f+"up_to", "required on every tier but the last")
		case t.UpTo != nil && i == last:
			p.add(f+"up_to", "must be null on the last tier, which has no upper bound")
		case t.UpTo != nil:
			if t.UpTo.Form != apd.Finite {
				p.add(f+"up_to", "must be a finite number")
			} else if i == 0 && t.UpTo.Sign() <= 0 {
				p.add(f+"up_to", "must be greater than 0")
			} else if prev != nil && t.UpTo.Cmp(&prev.Decimal) <= 0 {
				p.add(f+"up_to", "must be greater than the previous tier's up_to")
			}
		}
		if t.UpTo != nil {
			prev = t.UpTo
		}
		if r.Model == Stairstep {
			p.decimal(f+"flat_fee", t.FlatFee, true, false)
		} else {
			p.decimal(f+"unit_price", t.UnitPrice, true, false)
			p.decimal(f+"flat_fee", t.FlatFee, false, false)
		}
	}
}

// unused is a field set in an entity's data that its model does not use.
type unused struct{ field, why string }

// clearUnused clears, and lists, the prices and sizes the schedule's
// model does not use: a package_size outside the package model, tiers on
// a model without tiers, a schedule's unit_price on a tiered model and a
// tier's unit_price on the stairstep model (zero ones stay: they say
// nothing). The core system writes some of them as a matter of course,
// so they are ignored rather than refused. prefix is the schedule's path.
func (r *RateSchedule) clearUnused(prefix string) []unused {
	if !r.Model.Valid() {
		return nil // refused by validate
	}
	var out []unused
	if r.Model != Package && r.PackageSize != nil {
		out = append(out, unused{prefix + "package_size", "only used by the package model"})
		r.PackageSize = nil
	}
	if !r.Model.Tiered() {
		if len(r.Tiers) > 0 {
			out = append(out, unused{prefix + "tiers", fmt.Sprintf("not used by the %s model", r.Model)})
		}
		r.Tiers = nil
		return out
	}
	if r.UnitPrice != nil && !r.UnitPrice.IsZero() {
		out = append(out, unused{prefix + "unit_price", fmt.Sprintf("not used by the %s model (prices are per tier)", r.Model)})
		r.UnitPrice = nil
	}
	if r.Model == Stairstep {
		for i := range r.Tiers {
			if t := &r.Tiers[i]; t.UnitPrice != nil && !t.UnitPrice.IsZero() {
				out = append(out, unused{fmt.Sprintf("%stiers[%d].unit_price", prefix, i),
					"not used by the stairstep model (it charges the flat_fee of each tier entered)"})
				t.UnitPrice = nil
			}
		}
	}
	return out
}

// clearUnused clears, and lists, what the plan's schedules' models do not
// use.
func (pl *Plan) clearUnused() []unused {
	var out []unused
	for i := range pl.Rates {
		out = append(out, pl.Rates[i].clearUnused(fmt.Sprintf("rates[%d].", i))...)
	}
	return out
}

// Validate checks the subscription.
func (s *Subscription) Validate() error {
	var p problems
	p.required("entity_id", s.ID)
	p.required("account_id", s.AccountID)
	p.required("plan_id", s.PlanID)
	p.period(s.EffectiveFrom, s.EffectiveTo)
	return errors.Join(p.errs...)
}

// Validate checks the discount.
func (d *Discount) Validate() error {
	var p problems
	p.required("entity_id", d.ID)
	switch {
	case d.AccountID == "" && d.PlanID == "":
		p.add("account_id", "one of account_id or plan_id is required")
	case d.AccountID != "" && d.PlanID != "":
		p.add("plan_id", "must not be set together with account_id: a discount belongs to an account or to a plan")
	}
	seen := make(map[string]bool, len(d.UsageTypes))
	for i, u := range d.UsageTypes {
		f := fmt.Sprintf("usage_types[%d]", i)
		if strings.TrimSpace(u) == "" {
			p.add(f, "must not be empty")
		} else if seen[u] {
			p.add(f, "%q is listed twice", u)
		}
		seen[u] = true
	}
	switch {
	case d.Kind == "":
		p.add("kind", "required")
	case !d.Kind.Valid():
		p.add("kind", "%q is not one of free_units, percent, amount_per_unit", d.Kind)
	}
	p.decimal("value", d.Value, true, false)
	if d.Kind == Percent && d.Value != nil && d.Value.Form == apd.Finite && d.Value.Cmp(&hundred.Decimal) > 0 {
		p.add("value", "a percent must be between 0 and 100")
	}
	p.period(d.EffectiveFrom, d.EffectiveTo)
	return errors.Join(p.errs...)
}

var hundred = MustDecimal("100")
