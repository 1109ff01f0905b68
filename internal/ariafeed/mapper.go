package ariafeed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/jsonx"
)

// Header is the first data line of a feed event: which entity it is
// about, when and at which tick.
type Header struct {
	Ref struct {
		Type string                     `json:"type"`
		IDs  map[string]json.RawMessage `json:"ids"`
	} `json:"ref"`
	TStamp string `json:"tstamp"`
	Tick   int64  `json:"tick"`
}

// Message is one feed event as received.
type Message struct {
	ID   string // the SSE event id
	Kind string // load, create, update or delete
	Data string // the two data lines
}

// State keeps the last full form of each entity seen on the feed, so that
// an update, which may leave out unchanged fields, can be completed, and
// the account number to account id aliases that plan instances need.
type State interface {
	// LoadEntity returns the stored entity and its tick.
	LoadEntity(ctx context.Context, client, lomType, id string) (tick int64, entity json.RawMessage, found bool, err error)
	// SaveEntity stores an entity at tick, with its alternative ids.
	SaveEntity(ctx context.Context, client, lomType, id string, tick int64, entity json.RawMessage, ids map[string]string) error
	// AccountByNumber returns the id under which the account with the
	// given account_no was stored.
	AccountByNumber(ctx context.Context, client, accountNo string) (string, bool, error)
}

// LOM types the mapper understands, and the entity each becomes.
var lomEntities = map[string]string{
	"Account":       feed.EntityAccount,
	"Usage_Type":    feed.EntityUsageType,
	"Plan":          feed.EntityPlan,
	"Plan_Instance": feed.EntitySubscription,
	"Discount_Rule": feed.EntityDiscount,
}

// idFields lists, per LOM type, the ids that name an entity, preferred
// first: the client's own id when the core system has one, else its
// number.
var idFields = map[string][]string{
	"Account":       {"client_account_id", "account_no"},
	"Usage_Type":    {"usage_type_cd", "usage_type_no"},
	"Plan":          {"client_plan_id", "plan_no"},
	"Plan_Instance": {"client_plan_instance_id", "plan_instance_no"},
	"Discount_Rule": {"client_rule_id", "rule_no"},
}

// ErrSkipped marks a feed event of a type Vivace does not keep (contacts,
// payment methods, ...). It is counted and acknowledged, never an error.
var ErrSkipped = errors.New("entity type not kept by Vivace")

// Mapper turns feed messages into core feed events for one client.
type Mapper struct {
	Client string
	State  State
}

// Map returns the core feed event for msg. A message whose header or
// entity cannot be read still yields an event, carrying the problem in
// SourceError, so that it is recorded as failed where operators look.
// Messages of types Vivace does not keep return ErrSkipped.
func (m *Mapper) Map(ctx context.Context, msg Message) (feed.Event, error) {
	ev, err := m.mapMessage(ctx, msg)
	var bad *badMessage
	if errors.As(err, &bad) {
		return m.failed(msg, bad), nil
	}
	return ev, err
}

// badMessage is a message that cannot be mapped; what is known of it is
// kept for the failed event.
type badMessage struct {
	header *Header
	entity string
	id     string
	err    error
}

func (b *badMessage) Error() string { return b.err.Error() }

func (m *Mapper) failed(msg Message, b *badMessage) feed.Event {
	ev := feed.Event{
		EventID:     "aria/" + m.Client + "/bad/" + msg.ID,
		Client:      m.Client,
		Entity:      b.entity,
		EntityID:    b.id,
		Op:          feed.OpUpsert,
		SourceError: fmt.Sprintf("feed event %s (%s): %v", msg.ID, msg.Kind, b.err),
		OccurredAt:  time.Now().UTC(),
	}
	if b.header != nil {
		ev.Version = b.header.Tick
		if t, err := parseTime(b.header.TStamp); err == nil && t != nil {
			ev.OccurredAt = t.UTC()
		}
	}
	if ev.EntityID == "" {
		ev.EntityID = msg.ID
	}
	raw, _ := json.Marshal(map[string]string{"raw": clip(msg.Data)})
	ev.Data = raw
	return ev
}

func clip(s string) string {
	if len(s) > 2048 {
		return s[:2048] + "…"
	}
	return s
}

func (m *Mapper) mapMessage(ctx context.Context, msg Message) (feed.Event, error) {
	op := feed.OpUpsert
	switch msg.Kind {
	case "load", "create", "update":
	case "delete":
		op = feed.OpDelete
	default:
		return feed.Event{}, &badMessage{err: fmt.Errorf("event type %q is not load, create, update or delete", msg.Kind)}
	}
	hline, eline, err := splitData(msg.Data)
	if err != nil {
		return feed.Event{}, &badMessage{err: err}
	}
	var h Header
	if err := json.Unmarshal(hline, &h); err != nil {
		return feed.Event{}, &badMessage{err: fmt.Errorf("header line: %w", jsonx.Describe(err, "an object with ref, tstamp and tick"))}
	}
	entity, known := lomEntities[h.Ref.Type]
	if h.Ref.Type == "" {
		return feed.Event{}, &badMessage{header: &h, err: errors.New("header line: ref.type is missing")}
	}
	if !known {
		return feed.Event{}, fmt.Errorf("%w: %s", ErrSkipped, h.Ref.Type)
	}
	if h.Tick <= 0 {
		return feed.Event{}, &badMessage{header: &h, entity: entity, err: errors.New("header line: tick must be a positive integer")}
	}
	ids := map[string]string{}
	for k, v := range h.Ref.IDs {
		if s := scalar(v); s != "" {
			ids[k] = s
		}
	}
	var fields map[string]json.RawMessage // splitData made sure there is an entity line
	if err := json.Unmarshal(eline, &fields); err != nil {
		return feed.Event{}, &badMessage{header: &h, entity: entity, id: pickID(h.Ref.Type, ids, nil),
			err: fmt.Errorf("entity line: %w", jsonx.Describe(err, "an object"))}
	}
	id := pickID(h.Ref.Type, ids, fields)
	if id == "" {
		return feed.Event{}, &badMessage{header: &h, entity: entity,
			err: fmt.Errorf("%s names none of its ids (%s)", h.Ref.Type, strings.Join(idFields[h.Ref.Type], ", "))}
	}
	for _, k := range idFields[h.Ref.Type] {
		if v := scalar(fields[k]); v != "" {
			ids[k] = v
		}
	}
	at := time.Now().UTC()
	if t, err := parseTime(h.TStamp); err == nil && t != nil {
		at = t.UTC()
	}
	ev := feed.Event{
		EventID:    fmt.Sprintf("aria/%s/%s/%s/%d/%s", m.Client, h.Ref.Type, id, h.Tick, op),
		Client:     m.Client,
		Entity:     entity,
		EntityID:   id,
		Version:    h.Tick,
		OccurredAt: at,
		Op:         op,
	}
	if op == feed.OpDelete {
		return ev, nil
	}

	// An update may leave out what did not change: complete it from the
	// last full form seen. Only a newer tick changes the stored form.
	full := fields
	tick, stored, found, err := m.State.LoadEntity(ctx, m.Client, h.Ref.Type, id)
	if err != nil {
		return feed.Event{}, err
	}
	if found && msg.Kind == "update" {
		var prev map[string]json.RawMessage
		if err := json.Unmarshal(stored, &prev); err == nil {
			for k, v := range fields {
				prev[k] = v
			}
			full = prev
		}
	}
	if !found || h.Tick > tick {
		b, err := json.Marshal(full)
		if err != nil {
			return feed.Event{}, err
		}
		if err := m.State.SaveEntity(ctx, m.Client, h.Ref.Type, id, h.Tick, b, ids); err != nil {
			return feed.Event{}, err
		}
	}
	data, err := m.convert(ctx, h.Ref.Type, full)
	if err != nil {
		return feed.Event{}, &badMessage{header: &h, entity: entity, id: id, err: fmt.Errorf("%s %s: %v", h.Ref.Type, id, err)}
	}
	ev.Data = data
	return ev, nil
}

// pickID returns the most preferred of the type's id fields that the
// ref's ids or the entity carry.
func pickID(lomType string, ids map[string]string, fields map[string]json.RawMessage) string {
	for _, k := range idFields[lomType] {
		if v := ids[k]; v != "" {
			return v
		}
		if v := scalar(fields[k]); v != "" {
			return v
		}
	}
	return ""
}

// scalar renders a JSON string or number as text; anything else (null,
// objects) is "".
func scalar(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return strings.TrimSpace(s)
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(v, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// refID reads a field that is either a plain value or a reference
// {"type":..,"ids":{..}}, returning the first of keys found among the ids.
func refID(v json.RawMessage, keys ...string) string {
	if s := scalar(v); s != "" {
		return s
	}
	var ref struct {
		IDs map[string]json.RawMessage `json:"ids"`
	}
	if json.Unmarshal(v, &ref) != nil {
		return ""
	}
	for _, k := range keys {
		if s := scalar(ref.IDs[k]); s != "" {
			return s
		}
	}
	return ""
}

// parseTime reads RFC 3339 timestamps and plain dates (taken as UTC
// midnight); empty or null is nil.
func parseTime(s string) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "null" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return &t, nil
		}
	}
	return nil, fmt.Errorf("%q is not a date or an RFC 3339 timestamp", s)
}

// timeField reads a date or timestamp field, in UTC to the second; empty
// or null is nil.
func timeField(fields map[string]json.RawMessage, key string) (*time.Time, error) {
	return timeValue(key, scalar(fields[key]))
}

func timeValue(field, s string) (*time.Time, error) {
	t, err := parseTime(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	if t == nil {
		return nil, nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u, nil
}

// decimal reads an amount or quantity; empty is nil.
func decimal(field, s string) (*catalog.Decimal, error) {
	if s == "" {
		return nil, nil
	}
	d, err := catalog.NewDecimal(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a decimal: %v", field, s, err)
	}
	return &d, nil
}

// convert maps a full LOM entity onto the data of Vivace's entity, built
// as the catalog's own type and written as the catalog reads it.
func (m *Mapper) convert(ctx context.Context, lomType string, f map[string]json.RawMessage) (json.RawMessage, error) {
	var v any
	var err error
	switch lomType {
	case "Account":
		v = m.account(f)
	case "Usage_Type":
		desc := scalar(f["usage_type_desc"])
		if desc == "" {
			desc = scalar(f["usage_type_name"])
		}
		v = catalog.UsageType{Unit: refID(f["usage_unit_type"], "code", "usage_unit_type_cd", "name"), Description: desc}
	case "Plan":
		v, err = planRates(f)
	case "Plan_Instance":
		v, err = m.planInstance(ctx, f)
	case "Discount_Rule":
		v, err = m.discount(ctx, f)
	default:
		return nil, fmt.Errorf("%w: %s", ErrSkipped, lomType)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// account maps Account. Status numbers follow the core system: above
// zero active, -1 suspended, anything else (inactive, cancelled,
// terminated) closed.
func (m *Mapper) account(f map[string]json.RawMessage) catalog.Account {
	a := catalog.Account{Currency: strings.ToUpper(refID(f["currency"], "code", "currency_cd"))}
	status := refID(f["status"], "status_no", "enum")
	switch n, err := strconv.Atoi(status); {
	case err != nil:
		a.Status = catalog.Status(strings.ToLower(status)) // passed on; the catalog names it if invalid
	case n > 0:
		a.Status = catalog.StatusActive
	case n == -1:
		a.Status = catalog.StatusSuspended
	default:
		a.Status = catalog.StatusClosed
	}
	a.Name = scalar(f["company_name"])
	if a.Name == "" {
		a.Name = strings.TrimSpace(scalar(f["first_name"]) + " " + scalar(f["last_name"]))
	}
	if a.Name == "" {
		a.Name = scalar(f["userid"])
	}
	return a
}

// rateSchedule and rateTier are the parts of a Plan's rate schedules the
// mapper reads; everything else a schedule carries is ignored. Values
// are read as text whether the core system writes them as strings or
// numbers.
type rateSchedule struct {
	CurrencyCD    json.RawMessage `json:"currency_cd"`
	UsageTypeCD   json.RawMessage `json:"usage_type_cd"`
	PricingRule   json.RawMessage `json:"pricing_rule"`
	PackageSize   json.RawMessage `json:"package_size"`
	EffectiveFrom json.RawMessage `json:"effective_from"`
	EffectiveTo   json.RawMessage `json:"effective_to"`
	Tiers         []struct {
		ToUnit      json.RawMessage `json:"to_unit"`
		RatePerUnit json.RawMessage `json:"rate_per_unit"`
		FlatFee     json.RawMessage `json:"flat_fee"`
	} `json:"rate_tiers"`
}

// planRates maps a Plan's rate_schedules. Pricing rules: Standard is
// graduated (per_unit when it has one open-ended tier and no fee), Volume
// Discount is volume, Flat Rate Per Tier is stairstep (each tier's rate
// is the tier's price), Package is package.
func planRates(f map[string]json.RawMessage) (catalog.Plan, error) {
	var schedules []rateSchedule
	if raw, ok := f["rate_schedules"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &schedules); err != nil {
			return catalog.Plan{}, fmt.Errorf("rate_schedules: %w", jsonx.Describe(err, "a list of rate schedule objects"))
		}
	}
	p := catalog.Plan{Rates: make([]catalog.RateSchedule, 0, len(schedules))}
	for i, s := range schedules {
		r, err := rateScheduleOf(fmt.Sprintf("rate_schedules[%d]", i), s)
		if err != nil {
			return catalog.Plan{}, err
		}
		p.Rates = append(p.Rates, r)
	}
	return p, nil
}

func rateScheduleOf(at string, s rateSchedule) (catalog.RateSchedule, error) {
	r := catalog.RateSchedule{UsageType: scalar(s.UsageTypeCD), Currency: strings.ToUpper(scalar(s.CurrencyCD))}
	var err error
	if r.EffectiveFrom, err = timeValue(at+".effective_from", scalar(s.EffectiveFrom)); err != nil {
		return r, err
	}
	if r.EffectiveTo, err = timeValue(at+".effective_to", scalar(s.EffectiveTo)); err != nil {
		return r, err
	}
	if len(s.Tiers) == 0 {
		return r, fmt.Errorf("%s.rate_tiers: none", at)
	}
	first := s.Tiers[0]
	switch strings.ToLower(scalar(s.PricingRule)) {
	case "standard", "":
		if len(s.Tiers) == 1 && scalar(first.ToUnit) == "" && scalar(first.FlatFee) == "" {
			r.Model = catalog.PerUnit
			r.UnitPrice, err = decimal(at+".rate_tiers[0].rate_per_unit", scalar(first.RatePerUnit))
			return r, err
		}
		r.Model = catalog.Graduated
		r.Tiers, err = tiers(at, s, false)
	case "volume discount":
		r.Model = catalog.Volume
		r.Tiers, err = tiers(at, s, false)
	case "flat rate per tier":
		r.Model = catalog.Stairstep
		r.Tiers, err = tiers(at, s, true)
	case "package":
		r.Model = catalog.Package
		if r.UnitPrice, err = decimal(at+".rate_tiers[0].rate_per_unit", scalar(first.RatePerUnit)); err != nil {
			return r, err
		}
		r.PackageSize, err = decimal(at+".package_size", scalar(s.PackageSize))
	default:
		return r, fmt.Errorf("%s.pricing_rule: %q is not Standard, Volume Discount, Flat Rate Per Tier or Package", at, scalar(s.PricingRule))
	}
	return r, err
}

// tiers maps a schedule's rate tiers; with flat, each tier's rate is the
// tier's price (a flat fee).
func tiers(at string, s rateSchedule, flat bool) ([]catalog.Tier, error) {
	out := make([]catalog.Tier, len(s.Tiers))
	for i, t := range s.Tiers {
		field := fmt.Sprintf("%s.rate_tiers[%d]", at, i)
		var tier catalog.Tier
		var err error
		if tier.UpTo, err = decimal(field+".to_unit", scalar(t.ToUnit)); err != nil {
			return nil, err
		}
		rate, err := decimal(field+".rate_per_unit", scalar(t.RatePerUnit))
		if err != nil {
			return nil, err
		}
		if flat {
			tier.FlatFee = rate
		} else {
			tier.UnitPrice = rate
			if tier.FlatFee, err = decimal(field+".flat_fee", scalar(t.FlatFee)); err != nil {
				return nil, err
			}
		}
		out[i] = tier
	}
	return out, nil
}

// accountID names the account a plan instance or discount belongs to: its
// client account id, else the id under which the account with its number
// was stored, else the number itself.
func (m *Mapper) accountID(ctx context.Context, f map[string]json.RawMessage) (string, error) {
	if id := scalar(f["client_account_id"]); id != "" {
		return id, nil
	}
	no := refID(f["account_no"], "account_no")
	if no == "" {
		return "", nil
	}
	id, ok, err := m.State.AccountByNumber(ctx, m.Client, no)
	if err != nil || !ok {
		return no, err
	}
	return id, nil
}

func planID(f map[string]json.RawMessage) string {
	if id := scalar(f["client_plan_id"]); id != "" {
		return id
	}
	return refID(f["plan_no"], "client_plan_id", "plan_no")
}

func (m *Mapper) planInstance(ctx context.Context, f map[string]json.RawMessage) (catalog.Subscription, error) {
	var s catalog.Subscription
	var err error
	if s.AccountID, err = m.accountID(ctx, f); err != nil {
		return s, err
	}
	s.PlanID = planID(f)
	if s.EffectiveFrom, err = timeField(f, "activation_date"); err != nil {
		return s, err
	}
	s.EffectiveTo, err = timeField(f, "termination_date")
	return s, err
}

// discount maps Discount_Rule: discount_type P (percent), F (a flat amount
// per unit) or U (free units), amount, and the account or plan it applies
// to.
func (m *Mapper) discount(ctx context.Context, f map[string]json.RawMessage) (catalog.Discount, error) {
	var d catalog.Discount
	switch strings.ToUpper(scalar(f["discount_type"])) {
	case "P":
		d.Kind = catalog.Percent
	case "F":
		d.Kind = catalog.AmountPerUnit
	case "U":
		d.Kind = catalog.FreeUnits
	default:
		return d, fmt.Errorf("discount_type: %q is not P, F or U", scalar(f["discount_type"]))
	}
	var err error
	if d.Value, err = decimal("amount", scalar(f["amount"])); err != nil {
		return d, err
	}
	acct, err := m.accountID(ctx, f)
	if err != nil {
		return d, err
	}
	if acct != "" {
		d.AccountID = acct
	} else {
		d.PlanID = planID(f)
	}
	if p := scalar(f["priority"]); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			d.Priority = n
		}
	}
	if raw, ok := f["usage_type_cds"]; ok && string(raw) != "null" {
		var codes []json.RawMessage
		if err := json.Unmarshal(raw, &codes); err != nil {
			return d, fmt.Errorf("usage_type_cds: %w", jsonx.Describe(err, "a list of usage type codes"))
		}
		d.UsageTypes = make([]string, len(codes))
		for i, c := range codes {
			if d.UsageTypes[i] = scalar(c); d.UsageTypes[i] == "" {
				return d, fmt.Errorf("usage_type_cds[%d]: %s is not a usage type code", i, c)
			}
		}
	}
	if d.EffectiveFrom, err = timeField(f, "start_date"); err != nil {
		return d, err
	}
	d.EffectiveTo, err = timeField(f, "end_date")
	return d, err
}
