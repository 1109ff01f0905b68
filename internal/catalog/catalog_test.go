package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDecodeNamesTheField: every refusal says which field of the data is
// at fault, so that an operator can repair the event.
func TestDecodeNamesTheField(t *testing.T) {
	for _, c := range []struct {
		entity, data, want string
	}{
		{EntityAccount, `{"currency":"usd","status":"active"}`, `currency: "usd" must be written in upper case (USD)`},
		{EntityAccount, `{"currency":"ABC","status":"active"}`, `currency: "ABC" is not an active ISO 4217 currency code`},
		{EntityAccount, `{"currency":"USD","status":"gone"}`, `status: "gone" is not one of active, suspended, closed`},
		{EntityAccount, `{"currency":"USD","status":7}`, `status: a JSON number is not allowed here (want a string)`},
		{EntityAccount, `[1]`, `data: must be a JSON object`},
		{EntityAccount, `{"currency":"USD","status":"active"} {}`, `data: more than one JSON value`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1,5"}]}`,
			`rates[0].unit_price: invalid decimal "1,5"`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"-1"}]}`,
			`rates[0].unit_price: must not be negative`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"flat"}]}`,
			`rates[0].model: "flat" is not one of per_unit, graduated, volume, stairstep, package`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"graduated","tiers":[{"up_to":"10","unit_price":"1"},{"up_to":"5","unit_price":"1"},{"up_to":null,"unit_price":"1"}]}]}`,
			`rates[0].tiers[1].up_to: must be greater than the previous tier's up_to`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"volume","tiers":[{"up_to":"10","unit_price":"1"}]}]}`,
			`rates[0].tiers[0].up_to: must be null on the last tier, which has no upper bound`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"stairstep","tiers":[{"up_to":null,"unit_price":"2"}]}]}`,
			`rates[0].tiers[0].flat_fee: required`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1"}],"name":"Gold","extra":{"rates":"x"}} `,
			``}, // the extras are ignored; valid
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1","note":[1]}],"rates_v2":7} {}`,
			`data: more than one JSON value`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1,5","tag":{"value":"x"}}]}`,
			`rates[0].unit_price: invalid decimal "1,5"`},
		{EntityDiscount, `{"plan_id":"P","kind":"percent","value":"5","priority":"2","label":{"value":"n/a"}}`,
			`priority: a JSON string is not allowed here (want an integer)`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"package","unit_price":"1","package_size":"0"}]}`,
			`rates[0].package_size: must be greater than 0`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1","effective_from":"2026-03-01"}]}`,
			`rates[0].effective_from: "2026-03-01" is not an RFC 3339 timestamp`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1","effective_from":"2026-01-01T00:00:00Z"},{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"2","effective_from":"2026-02-01T00:00:00Z"}]}`,
			`rates[1]: overlaps rates[0] (V in USD)`},
		{EntitySubscription, `{"account_id":"A","plan_id":"P","effective_from":"2026-02-01T00:00:00Z","effective_to":"2026-01-01T00:00:00Z"}`,
			`effective_to: must be after effective_from`},
		{EntityDiscount, `{"account_id":"A","plan_id":"P","kind":"percent","value":"5"}`,
			`plan_id: must not be set together with account_id`},
		{EntityDiscount, `{"plan_id":"P","kind":"percent","value":"150"}`, `value: a percent must be between 0 and 100`},
		{EntityDiscount, `{"plan_id":"P","kind":"percent","value":"5","usage_types":["V","V"]}`, `usage_types[1]: "V" is listed twice`},
		{EntityDiscount, `{"plan_id":"P","kind":"bogof","value":"5"}`, `kind: "bogof" is not one of free_units, percent, amount_per_unit`},
	} {
		_, err := Decode(c.entity, "ID-1", []byte(c.data))
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s %s:\n got %v\nwant …%s…", c.entity, c.data, err, c.want)
		}
	}
	if _, err := Decode("invoice", "X", []byte(`{}`)); !errors.Is(err, ErrUnknownEntity) {
		t.Errorf("unknown entity: %v", err)
	}
}

// TestDecodeReportsEveryProblem: one event with several faults lists
// them all, not just the first.
func TestDecodeReportsEveryProblem(t *testing.T) {
	_, err := Decode(EntityPlan, "P", []byte(`{"rates":[{"currency":"usd","model":"graduated","unit_price":"1","tiers":[],"package_size":-1}]}`))
	for _, want := range []string{"rates[0].usage_type: required", `rates[0].currency: "usd"`,
		"rates[0].tiers: at least one tier"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// TestCheckIgnoresWhatVivaceDoesNotUse: fields Vivace does not use, at
// every level, and fields a model does not use are warnings naming the
// field, never refusals, and the data kept is what Vivace uses.
func TestCheckIgnoresWhatVivaceDoesNotUse(t *testing.T) {
	for _, c := range []struct {
		entity, data string
		warnings     []string
		kept         string // "" when nothing is left out
	}{
		{EntityAccount, `{"currency":"USD","status":"active","nmae":"x"}`,
			[]string{"nmae: not used by Vivace; ignored"}, `{"currency":"USD","status":"active"}`},
		{EntityAccount, `{"currency":"USD","status":"active","name":"Acme"}`, nil, ""},
		{EntityUsageType, `{"unit":"minute","name":"Voice","description":"calls","unit_no":7}`,
			[]string{"unit_no: not used by Vivace; ignored"}, `{"description":"calls","unit":"minute"}`},
		{EntityPlan, `{"name":"Gold","description":"best","rates":[{"usage_type":"V","currency":"USD","model":"stairstep",` +
			`"schedule_no":3,"tiers":[{"up_to":"10","unit_price":"0.5","flat_fee":"5","from_unit":1},{"up_to":null,"unit_price":0,"flat_fee":"9"}]}]}`,
			[]string{"rates[0].schedule_no: not used by Vivace; ignored", "rates[0].tiers[0].from_unit: not used by Vivace; ignored",
				"rates[0].tiers[0].unit_price: not used by the stairstep model (it charges the flat_fee of each tier entered); ignored"},
			`{"rates":[{"currency":"USD","model":"stairstep","tiers":[{"flat_fee":"5","up_to":"10"},{"flat_fee":"9","unit_price":0,"up_to":null}],"usage_type":"V"}]}`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1","package_size":"10",` +
			`"tiers":[{"up_to":null,"unit_price":"1"}]},{"usage_type":"D","currency":"USD","model":"volume","unit_price":"2","tiers":[{"up_to":null,"unit_price":"1"}]}]}`,
			[]string{"rates[0].package_size: only used by the package model; ignored", "rates[0].tiers: not used by the per_unit model; ignored",
				"rates[1].unit_price: not used by the volume model (prices are per tier); ignored"},
			`{"rates":[{"currency":"USD","model":"per_unit","unit_price":"1","usage_type":"V"},{"currency":"USD","model":"volume","tiers":[{"unit_price":"1","up_to":null}],"usage_type":"D"}]}`},
		{EntitySubscription, `{"account_id":"A","plan_id":"P","status":"active","Plan_Instance_No":9}`,
			[]string{"Plan_Instance_No: not used by Vivace; ignored", "status: not used by Vivace; ignored"}, `{"account_id":"A","plan_id":"P"}`},
		{EntityDiscount, `{"plan_id":"P","kind":"percent","value":"5","name":"Spring","client_rule_id":"R1"}`,
			[]string{"client_rule_id: not used by Vivace; ignored"}, `{"kind":"percent","plan_id":"P","value":"5"}`},
	} {
		_, warnings, kept, err := Check(c.entity, "ID-1", []byte(c.data))
		if err != nil || strings.Join(warnings, "|") != strings.Join(c.warnings, "|") || string(kept) != c.kept {
			t.Errorf("%s %s:\n got %q %s %v\nwant %q %s", c.entity, c.data, warnings, kept, err, c.warnings, c.kept)
		}
		if c.kept == "" {
			continue
		}
		// What is kept is all Vivace reads: checked again, it is the same
		// entity and nothing more is ignored.
		e1, _ := Decode(c.entity, "ID-1", []byte(c.data))
		e2, w2, k2, err := Check(c.entity, "ID-1", kept)
		if err != nil || len(w2) != 0 || k2 != nil || fmt.Sprintf("%+v", e1) != fmt.Sprintf("%+v", e2) {
			t.Errorf("%s kept %s: %+v (warnings %q, kept %s, %v), want %+v", c.entity, kept, e2, w2, k2, err, e1)
		}
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func tp(s string) *time.Time { v := at(s); return &v }

// TestSnapshotLookups: which subscription, rate schedule and discounts
// are in effect at a time, as docs/rating.md's rules define them.
func TestSnapshotLookups(t *testing.T) {
	sub := func(id, plan, from, to string) Subscription {
		s := Subscription{ID: id, AccountID: "A", PlanID: plan, EffectiveFrom: tp(from)}
		if to != "" {
			s.EffectiveTo = tp(to)
		}
		return s
	}
	rate := func(price, from, to string) RateSchedule {
		r := RateSchedule{UsageType: "V", Currency: "USD", Model: PerUnit, UnitPrice: Dec(price), EffectiveFrom: tp(from)}
		if to != "" {
			r.EffectiveTo = tp(to)
		}
		return r
	}
	plans := []Plan{
		{ID: "OLD", Rates: []RateSchedule{rate("1", "2026-01-01T00:00:00Z", "")}},
		{ID: "NEW", Rates: []RateSchedule{rate("2", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"), rate("3", "2026-03-01T00:00:00Z", "")}},
	}
	discounts := []Discount{
		{ID: "d-pct-2", AccountID: "A", Kind: Percent, Value: Dec("10"), Priority: 2},
		{ID: "d-free", PlanID: "NEW", UsageTypes: []string{"V"}, Kind: FreeUnits, Value: Dec("5")},
		{ID: "d-pct-1", PlanID: "NEW", Kind: Percent, Value: Dec("5"), Priority: 1},
		{ID: "d-apu", AccountID: "A", UsageTypes: []string{"V"}, Kind: AmountPerUnit, Value: Dec("0.01")},
		{ID: "d-sms", AccountID: "A", UsageTypes: []string{"SMS"}, Kind: Percent, Value: Dec("50")},
		{ID: "d-late", AccountID: "A", Kind: Percent, Value: Dec("1"), EffectiveFrom: tp("2026-06-01T00:00:00Z")},
	}
	s := NewSnapshot("c", []Account{{ID: "A", Currency: "USD", Status: StatusActive}}, []UsageType{{Code: "V"}}, plans,
		[]Subscription{sub("s-old", "OLD", "2026-01-01T00:00:00Z", ""), sub("s-new", "NEW", "2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z")},
		discounts)

	for when, want := range map[string]string{
		"2025-12-31T23:59:59Z": "", "2026-01-15T00:00:00Z": "s-old", "2026-02-01T00:00:00Z": "s-new",
		"2026-03-31T23:59:59Z": "s-new", "2026-04-01T00:00:00Z": "s-old",
	} {
		got := ""
		if sub := s.SubscriptionAt("A", at(when)); sub != nil {
			got = sub.ID
		}
		if got != want {
			t.Errorf("subscription at %s = %q, want %q (the latest effective_from wins, effective_to is exclusive)", when, got, want)
		}
	}
	for when, want := range map[string]string{"2026-02-28T23:59:59Z": "2", "2026-03-01T00:00:00Z": "3"} {
		r := s.RateAt("NEW", "V", "USD", at(when))
		if r == nil || r.UnitPrice.String() != want {
			t.Errorf("NEW's rate at %s = %v, want unit price %s", when, r, want)
		}
	}
	if r := s.RateAt("NEW", "V", "EUR", at("2026-03-01T00:00:00Z")); r != nil {
		t.Errorf("a rate in EUR: %+v", r)
	}
	var ids []string
	for _, d := range s.DiscountsAt("A", "NEW", "V", at("2026-03-01T00:00:00Z")) {
		ids = append(ids, d.ID)
	}
	// By kind (free units, percent, amount per unit), then priority.
	if got := strings.Join(ids, ","); got != "d-free,d-pct-1,d-pct-2,d-apu" {
		t.Errorf("discounts in order = %s", got)
	}
	if n := len(s.DiscountsAt("A", "NEW", "V", at("2026-07-01T00:00:00Z"))); n != 5 {
		t.Errorf("%d discounts in July, want 5 (d-late applies from June)", n)
	}
	if s.Account("A") == nil || s.UsageType("V") == nil || s.Plan("OLD") == nil || s.Discount("d-apu") == nil || s.Account("B") != nil {
		t.Error("lookups by id")
	}
}
