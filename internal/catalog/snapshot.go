package catalog

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Snapshot is an immutable, read-optimised view of one client's catalog.
// Its lookups run for every usage record, so they do not allocate. It is
// safe for concurrent use; the entities it returns are shared and must be
// treated as read-only.
type Snapshot struct {
	client        string
	accounts      map[string]*Account
	usageTypes    map[string]*UsageType
	plans         map[string]*Plan
	subscriptions map[string][]*Subscription // by account, latest effective_from first
	rates         map[rateKey][]*RateSchedule
	discounts     map[string]*Discount
	byAccount     map[string]*discountIndex
	byPlan        map[string]*discountIndex
	problems      []error
}

type rateKey struct {
	plan, usageType, currency string
}

// discountIndex holds one owner's discounts (an account's or a plan's),
// each list in application order.
type discountIndex struct {
	all    []*Discount            // those with no usage type list
	byType map[string][]*Discount // the others, under each listed type
}

// NewSnapshot builds a snapshot from a client's entities, copying them.
// Entities that fail Validate, and repeated ids (the first is kept), are
// left out and listed by Problems: one bad row must not stop a client's
// rating, and the records it would have priced fail with their own codes.
func NewSnapshot(client string, accounts []Account, usageTypes []UsageType, plans []Plan, subscriptions []Subscription, discounts []Discount) *Snapshot {
	s := &Snapshot{
		client:        client,
		accounts:      make(map[string]*Account, len(accounts)),
		usageTypes:    make(map[string]*UsageType, len(usageTypes)),
		plans:         make(map[string]*Plan, len(plans)),
		subscriptions: make(map[string][]*Subscription, len(subscriptions)),
		rates:         make(map[rateKey][]*RateSchedule),
		discounts:     make(map[string]*Discount, len(discounts)),
		byAccount:     make(map[string]*discountIndex),
		byPlan:        make(map[string]*discountIndex),
	}
	check := func(entity, id string, e Entity) bool {
		if err := e.Validate(); err != nil {
			s.problems = append(s.problems, fmt.Errorf("%s %s: %w", entity, id, err))
			return false
		}
		return true
	}
	dup := func(entity, id string) {
		s.problems = append(s.problems, fmt.Errorf("%s %s: listed more than once; the first is kept", entity, id))
	}

	accs := slices.Clone(accounts)
	for i := range accs {
		a := &accs[i]
		switch {
		case !check(EntityAccount, a.ID, a):
		case s.accounts[a.ID] != nil:
			dup(EntityAccount, a.ID)
		default:
			s.accounts[a.ID] = a
		}
	}
	uts := slices.Clone(usageTypes)
	for i := range uts {
		u := &uts[i]
		switch {
		case !check(EntityUsageType, u.Code, u):
		case s.usageTypes[u.Code] != nil:
			dup(EntityUsageType, u.Code)
		default:
			s.usageTypes[u.Code] = u
		}
	}
	for i := range plans {
		p := clonePlan(&plans[i])
		switch {
		case !check(EntityPlan, p.ID, p):
		case s.plans[p.ID] != nil:
			dup(EntityPlan, p.ID)
		default:
			s.plans[p.ID] = p
			for j := range p.Rates {
				r := &p.Rates[j]
				k := rateKey{p.ID, r.UsageType, r.Currency}
				s.rates[k] = append(s.rates[k], r)
			}
		}
	}
	seenSub := make(map[string]bool, len(subscriptions))
	for i := range subscriptions {
		sub := cloneSubscription(&subscriptions[i])
		switch {
		case !check(EntitySubscription, sub.ID, sub):
		case seenSub[sub.ID]:
			dup(EntitySubscription, sub.ID)
		default:
			seenSub[sub.ID] = true
			s.subscriptions[sub.AccountID] = append(s.subscriptions[sub.AccountID], sub)
		}
	}
	for _, list := range s.subscriptions {
		slices.SortFunc(list, func(a, b *Subscription) int {
			// Latest effective_from first (an open start is the earliest);
			// on a tie, the lower id.
			if c := cmpFrom(b.EffectiveFrom, a.EffectiveFrom); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
	}
	for i := range discounts {
		d := cloneDiscount(&discounts[i])
		switch {
		case !check(EntityDiscount, d.ID, d):
		case s.discounts[d.ID] != nil:
			dup(EntityDiscount, d.ID)
		default:
			s.discounts[d.ID] = d
			owners, key := s.byAccount, d.AccountID
			if key == "" {
				owners, key = s.byPlan, d.PlanID
			}
			idx := owners[key]
			if idx == nil {
				idx = &discountIndex{byType: map[string][]*Discount{}}
				owners[key] = idx
			}
			if len(d.UsageTypes) == 0 {
				idx.all = append(idx.all, d)
			}
			for _, u := range d.UsageTypes {
				idx.byType[u] = append(idx.byType[u], d)
			}
		}
	}
	for _, owners := range []map[string]*discountIndex{s.byAccount, s.byPlan} {
		for _, idx := range owners {
			slices.SortFunc(idx.all, compareDiscounts)
			for _, l := range idx.byType {
				slices.SortFunc(l, compareDiscounts)
			}
		}
	}
	return s
}

// cmpFrom orders optional start times, nil first.
func cmpFrom(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}

// compareDiscounts is the application order: kind (free_units, percent,
// amount_per_unit), then ascending priority, then id.
func compareDiscounts(a, b *Discount) int {
	if c := a.Kind.Order() - b.Kind.Order(); c != 0 {
		return c
	}
	if a.Priority != b.Priority {
		if a.Priority < b.Priority {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

// Client is the client the catalog belongs to.
func (s *Snapshot) Client() string { return s.client }

// Problems lists the entities left out of the snapshot and why.
func (s *Snapshot) Problems() []error { return s.problems }

// Account returns the account with id, or nil.
func (s *Snapshot) Account(id string) *Account { return s.accounts[id] }

// UsageType returns the usage type with code, or nil.
func (s *Snapshot) UsageType(code string) *UsageType { return s.usageTypes[code] }

// Plan returns the plan with id, or nil.
func (s *Snapshot) Plan(id string) *Plan { return s.plans[id] }

// Discount returns the discount with id, or nil.
func (s *Snapshot) Discount(id string) *Discount { return s.discounts[id] }

// SubscriptionAt returns the account's subscription in effect at t, or
// nil. When several are, the one with the latest effective_from wins (on
// a tie, the lowest id).
func (s *Snapshot) SubscriptionAt(accountID string, t time.Time) *Subscription {
	for _, sub := range s.subscriptions[accountID] {
		if sub.EffectiveAt(t) {
			return sub
		}
	}
	return nil
}

// RateAt returns the plan's schedule for usageType in currency in effect
// at t, or nil. A valid plan has at most one.
func (s *Snapshot) RateAt(planID, usageType, currency string, t time.Time) *RateSchedule {
	for _, r := range s.rates[rateKey{planID, usageType, currency}] {
		if r.EffectiveAt(t) {
			return r
		}
	}
	return nil
}

// DiscountsAt returns the discounts that apply to a record of usageType at
// t for the account and its plan, in application order.
func (s *Snapshot) DiscountsAt(accountID, planID, usageType string, t time.Time) []*Discount {
	return s.AppendDiscountsAt(nil, accountID, planID, usageType, t)
}

// AppendDiscountsAt is DiscountsAt appending to dst, so that a caller
// reusing dst does not allocate.
func (s *Snapshot) AppendDiscountsAt(dst []*Discount, accountID, planID, usageType string, t time.Time) []*Discount {
	start := len(dst)
	for _, idx := range [2]*discountIndex{s.byAccount[accountID], s.byPlan[planID]} {
		if idx == nil {
			continue
		}
		dst = appendEffective(dst, idx.all, t)
		dst = appendEffective(dst, idx.byType[usageType], t)
	}
	// The lists are each in order; an insertion sort merges the few
	// found without allocating.
	out := dst[start:]
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && compareDiscounts(out[j], out[j-1]) < 0; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return dst
}

func appendEffective(dst, list []*Discount, t time.Time) []*Discount {
	for _, d := range list {
		if d.EffectiveAt(t) {
			dst = append(dst, d)
		}
	}
	return dst
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func clonePlan(p *Plan) *Plan {
	c := &Plan{ID: p.ID, Rates: make([]RateSchedule, len(p.Rates))}
	for i := range p.Rates {
		r := &p.Rates[i]
		cr := &c.Rates[i]
		*cr = RateSchedule{
			UsageType: r.UsageType, Currency: r.Currency, Model: r.Model,
			UnitPrice: r.UnitPrice.clone(), PackageSize: r.PackageSize.clone(),
			EffectiveFrom: cloneTime(r.EffectiveFrom), EffectiveTo: cloneTime(r.EffectiveTo),
		}
		if r.Tiers != nil {
			cr.Tiers = make([]Tier, len(r.Tiers))
			for j, t := range r.Tiers {
				cr.Tiers[j] = Tier{UpTo: t.UpTo.clone(), UnitPrice: t.UnitPrice.clone(), FlatFee: t.FlatFee.clone()}
			}
		}
	}
	return c
}

func cloneSubscription(s *Subscription) *Subscription {
	c := *s
	c.EffectiveFrom, c.EffectiveTo = cloneTime(s.EffectiveFrom), cloneTime(s.EffectiveTo)
	return &c
}

func cloneDiscount(d *Discount) *Discount {
	c := *d
	c.UsageTypes = slices.Clone(d.UsageTypes)
	c.Value = d.Value.clone()
	c.EffectiveFrom, c.EffectiveTo = cloneTime(d.EffectiveFrom), cloneTime(d.EffectiveTo)
	return &c
}
