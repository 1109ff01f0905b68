package rating

import (
	"encoding/json"
	"time"

	"vivace.dev/vivace/internal/catalog"
)

// Detail is the MUR's rate_detail: everything a person needs to check an
// amount by hand — the subscription and plan, the schedule, where the
// record fell in the month's cumulative usage, what each tier charged and
// what each discount took off, and the exact amounts before rounding.
type Detail struct {
	SubscriptionID string           `json:"subscription_id"`
	PlanID         string           `json:"plan_id"`
	Schedule       ScheduleDetail   `json:"schedule"`
	Month          Month            `json:"month"`
	Before         string           `json:"cumulative_before"`
	After          string           `json:"cumulative_after"`
	Packages       string           `json:"packages,omitempty"`
	Tiers          []TierDetail     `json:"tiers,omitempty"`
	Discounts      []DiscountDetail `json:"discounts,omitempty"`
	GrossExact     string           `json:"gross_exact"`
	DiscountExact  string           `json:"discount_exact"`
}

// ScheduleDetail names the rate schedule used.
type ScheduleDetail struct {
	UsageType     string        `json:"usage_type"`
	Currency      string        `json:"currency"`
	Model         catalog.Model `json:"model"`
	UnitPrice     string        `json:"unit_price,omitempty"`
	PackageSize   string        `json:"package_size,omitempty"`
	EffectiveFrom *time.Time    `json:"effective_from,omitempty"`
	EffectiveTo   *time.Time    `json:"effective_to,omitempty"`
}

// TierDetail is one tier's part of the gross.
type TierDetail struct {
	Tier      int    `json:"tier"`
	Units     string `json:"units"`
	UnitPrice string `json:"unit_price"`
	Amount    string `json:"amount"`
	FlatFee   string `json:"flat_fee,omitempty"`
}

// DiscountDetail is one discount's part of the discount amount.
type DiscountDetail struct {
	ID       string               `json:"id"`
	Kind     catalog.DiscountKind `json:"kind"`
	Value    string               `json:"value"`
	Priority int                  `json:"priority"`
	Units    string               `json:"units,omitempty"`
	Amount   string               `json:"amount"`
}

// Detail returns the result's rate detail.
func (r *Result) Detail() Detail {
	rs := r.Schedule
	d := Detail{
		SubscriptionID: r.Subscription.ID,
		PlanID:         r.Subscription.PlanID,
		Schedule: ScheduleDetail{
			UsageType: rs.UsageType, Currency: rs.Currency, Model: rs.Model,
			EffectiveFrom: rs.EffectiveFrom, EffectiveTo: rs.EffectiveTo,
		},
		Month:         r.Month,
		Before:        r.Before.Text('f'),
		After:         r.After.Text('f'),
		GrossExact:    r.GrossExact.Text('f'),
		DiscountExact: r.DiscountExact.Text('f'),
	}
	if rs.UnitPrice != nil {
		d.Schedule.UnitPrice = rs.UnitPrice.String()
	}
	if rs.PackageSize != nil {
		d.Schedule.PackageSize = rs.PackageSize.String()
		d.Packages = r.Packages.Text('f')
	}
	for i := range r.Tiers {
		t := &r.Tiers[i]
		td := TierDetail{Tier: t.Tier, Units: t.Units.Text('f'), UnitPrice: t.UnitPrice.Text('f'), Amount: t.Amount.Text('f')}
		if t.Entered {
			td.FlatFee = t.FlatFee.Text('f')
		}
		d.Tiers = append(d.Tiers, td)
	}
	for i := range r.Discounts {
		dc := &r.Discounts[i]
		dd := DiscountDetail{ID: dc.Discount.ID, Kind: dc.Discount.Kind, Value: dc.Discount.Value.String(),
			Priority: dc.Discount.Priority, Amount: dc.Amount.Text('f')}
		if dc.Discount.Kind == catalog.FreeUnits {
			dd.Units = dc.Units.Text('f')
		}
		d.Discounts = append(d.Discounts, dd)
	}
	return d
}

// DetailJSON returns the rate detail as JSON.
func (r *Result) DetailJSON() []byte {
	b, err := json.Marshal(r.Detail())
	if err != nil {
		// Every field is a string, number or time: this cannot fail.
		panic(err)
	}
	return b
}
