package ariafeed_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/ariafeed"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
)

// TestMapperBuildsCatalogData maps one entity of each kind and pricing
// rule and checks the data is exactly what the catalog decodes, without
// a problem; a value the catalog could not read fails the event naming
// the Data Feed's field.
func TestMapperBuildsCatalogData(t *testing.T) {
	ctx := context.Background()
	client := "map-" + store.NewID()[24:]
	m := &ariafeed.Mapper{Client: client, State: catalogstore.NewAriaFeedState(pgtest.Store(t))}
	for i, tc := range []struct {
		lomType, ids, entity string
		want                 string // the event's data; empty: failed
		err                  string // what SourceError names
	}{
		{"Usage_Type", `{"usage_type_cd":"SMS"}`, `{"usage_type_cd":"SMS","usage_type_name":"Texts","usage_unit_type":"message"}`,
			`{"unit":"message","description":"Texts"}`, ""},
		{"Usage_Type", `{"usage_type_cd":"DATA"}`, `{"usage_type_cd":"DATA"}`, `{}`, ""},
		{"Account", `{"client_account_id":"A-9"}`, `{"client_account_id":"A-9","currency":"gbp","status":0,"first_name":"Ada","last_name":"L"}`,
			`{"currency":"GBP","status":"closed","name":"Ada L"}`, ""},
		{"Plan", `{"client_plan_id":"TIERS"}`, `{"client_plan_id":"TIERS","rate_schedules":[` +
			`{"currency_cd":"usd","usage_type_cd":"VOICE","pricing_rule":"Standard","effective_from":"2026-01-01T10:00:00.5Z","rate_tiers":[{"to_unit":100,"rate_per_unit":"0.10","flat_fee":"1.00"},{"rate_per_unit":0.05}]},` +
			`{"currency_cd":"usd","usage_type_cd":"SMS","pricing_rule":"Flat Rate Per Tier","rate_tiers":[{"to_unit":10,"rate_per_unit":"5"},{"rate_per_unit":"8"}]},` +
			`{"currency_cd":"usd","usage_type_cd":"DATA","pricing_rule":"Package","package_size":1024,"rate_tiers":[{"rate_per_unit":"2.50"}]}]}`,
			`{"rates":[` +
				`{"usage_type":"VOICE","currency":"USD","model":"graduated","tiers":[{"up_to":"100","unit_price":"0.10","flat_fee":"1.00"},{"up_to":null,"unit_price":"0.05"}],"effective_from":"2026-01-01T10:00:00Z"},` +
				`{"usage_type":"SMS","currency":"USD","model":"stairstep","tiers":[{"up_to":"10","flat_fee":"5"},{"up_to":null,"flat_fee":"8"}]},` +
				`{"usage_type":"DATA","currency":"USD","model":"package","unit_price":"2.50","package_size":"1024"}]}`, ""},
		{"Plan_Instance", `{"client_plan_instance_id":"S-1"}`, `{"client_plan_instance_id":"S-1","client_account_id":"A-9","plan_no":{"type":"Plan","ids":{"client_plan_id":"TIERS"}},"activation_date":"2026-02-01","termination_date":"2026-03-01 00:00:00"}`,
			`{"account_id":"A-9","plan_id":"TIERS","effective_from":"2026-02-01T00:00:00Z","effective_to":"2026-03-01T00:00:00Z"}`, ""},
		{"Discount_Rule", `{"client_rule_id":"D2"}`, `{"client_rule_id":"D2","client_plan_id":"TIERS","discount_type":"U","amount":"100","usage_type_cds":["SMS"]}`,
			`{"plan_id":"TIERS","usage_types":["SMS"],"kind":"free_units","value":"100","priority":0}`, ""},
		{"Plan", `{"client_plan_id":"BAD"}`, `{"client_plan_id":"BAD","rate_schedules":[{"currency_cd":"usd","usage_type_cd":"VOICE","pricing_rule":"Volume Discount","rate_tiers":[{"to_unit":"ten","rate_per_unit":"0.1"}]}]}`,
			"", `Plan BAD: rate_schedules[0].rate_tiers[0].to_unit: "ten" is not a decimal`},
		{"Discount_Rule", `{"client_rule_id":"D3"}`, `{"client_rule_id":"D3","discount_type":"P","amount":"ten"}`,
			"", `Discount_Rule D3: amount: "ten" is not a decimal`},
	} {
		data := fmt.Sprintf(`{"ref":{"type":%q,"ids":%s},"tstamp":"2026-03-01T10:00:00Z","tick":%d}`+"\n%s", tc.lomType, tc.ids, i+1, tc.entity)
		ev, err := m.Map(ctx, ariafeed.Message{ID: fmt.Sprint(i), Kind: "create", Data: data})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.lomType, tc.ids, err)
		}
		if tc.err != "" {
			if !strings.Contains(ev.SourceError, tc.err) {
				t.Errorf("%s %s: SourceError %q, want one naming %s", tc.lomType, tc.ids, ev.SourceError, tc.err)
			}
			continue
		}
		if ev.SourceError != "" || string(ev.Data) != tc.want {
			t.Errorf("%s %s:\n got %s (%s)\nwant %s", tc.lomType, tc.ids, ev.Data, ev.SourceError, tc.want)
			continue
		}
		if _, err := catalog.Decode(ev.Entity, ev.EntityID, ev.Data); err != nil {
			t.Errorf("%s %s: the catalog refuses the mapped data: %v", tc.lomType, tc.ids, err)
		}
	}
}
