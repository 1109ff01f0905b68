package ariafeed_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/ariafeed"
	"vivace.dev/vivace/internal/catalog"
)

// memState is the mapper's state in memory.
type memState struct{ m map[string]json.RawMessage }

func (s *memState) LoadEntity(_ context.Context, client, lomType, id string) (int64, json.RawMessage, bool, error) {
	e, ok := s.m[client+lomType+id]
	return 1, e, ok, nil
}
func (s *memState) SaveEntity(_ context.Context, client, lomType, id string, _ int64, e json.RawMessage, _ map[string]string) error {
	s.m[client+lomType+id] = e
	return nil
}
func (s *memState) AccountByNumber(context.Context, string, string) (string, bool, error) {
	return "", false, nil
}

// TestMapperIgnoresWhatItDoesNotRead: fields of the native feed the
// mapper does not read, at every level (header, entity, rate schedule,
// tier), and codes written as numbers change nothing in the event it
// makes; what it cannot read is said in the feed's terms.
func TestMapperIgnoresWhatItDoesNotRead(t *testing.T) {
	mapOne := func(kind, header, entity string) (string, string) {
		m := &ariafeed.Mapper{Client: "c", State: &memState{m: map[string]json.RawMessage{}}}
		ev, err := m.Map(context.Background(), ariafeed.Message{ID: "1", Kind: kind, Data: header + "\n" + entity})
		if err != nil {
			t.Fatal(err)
		}
		if ev.SourceError != "" {
			return "", ev.SourceError
		}
		if _, _, _, err := catalog.Check(ev.Entity, ev.EntityID, ev.Data); err != nil {
			t.Fatalf("mapped %s: %v", ev.Data, err)
		}
		return string(ev.Data), ""
	}
	plain, _ := mapOne("create", `{"ref":{"type":"Plan","ids":{"client_plan_id":"GOLD"}},"tstamp":"2026-03-01T10:00:00Z","tick":5}`,
		`{"client_plan_id":"GOLD","rate_schedules":[{"currency_cd":"usd","usage_type_cd":"7","pricing_rule":"Flat Rate Per Tier",`+
			`"rate_tiers":[{"to_unit":10,"rate_per_unit":"5"},{"to_unit":null,"rate_per_unit":"9"}]}]}`)
	wide, _ := mapOne("create", `{"ref":{"type":"Plan","ids":{"client_plan_id":"GOLD"},"href":"/plans/70"},"tstamp":"2026-03-01T10:00:00Z","tick":5,"seq":99}`,
		`{"client_plan_id":"GOLD","plan_name":"Gold","plan_desc":"best","schedule_count":1,"rate_schedules":[{"currency_cd":"usd",`+
			`"usage_type_cd":7,"schedule_no":3,"schedule_name":"std","pricing_rule":"Flat Rate Per Tier","default_ind":1,`+
			`"rate_tiers":[{"from_unit":1,"to_unit":10,"rate_per_unit":5,"description":"first"},{"from_unit":11,"to_unit":null,"rate_per_unit":"9","tier_no":2}]}]}`)
	if plain == "" || wide != plain {
		t.Fatalf("mapped with extra fields:\n got %s\nwant %s", wide, plain)
	}
	disc, _ := mapOne("create", `{"ref":{"type":"Discount_Rule","ids":{"client_rule_id":"D1"}},"tick":6}`,
		`{"client_rule_id":"D1","client_account_id":"A","discount_type":"P","amount":10,"usage_type_cds":["VOICE",7],"rule_name":"x"}`)
	if !strings.Contains(disc, `"usage_types":["VOICE","7"]`) {
		t.Fatalf("discount %s", disc)
	}
	for _, c := range []struct{ header, entity, want string }{
		{`{"ref":{"type":"Plan","ids":{"client_plan_id":"G"}},"tick":5}`, `[1,2]`, "entity line: a JSON array where an object was expected"},
		{`{"ref":{"type":"Plan","ids":{"client_plan_id":"G"}},"tick":"5"}`, `{}`, "header line: tick: a JSON string where a whole number was expected"},
		{`{"ref":{"type":"Plan","ids":{"client_plan_id":"G"}},"tick":5}`, `{"client_plan_id":"G","rate_schedules":{"currency_cd":"usd"}}`,
			"rate_schedules: a JSON object where a list of rate schedule objects was expected"},
		{`{"ref":{"type":"Discount_Rule","ids":{"client_rule_id":"D"}},"tick":5}`, `{"client_rule_id":"D","discount_type":"P","usage_type_cds":[{"a":1}]}`,
			`usage_type_cds[0]: {"a":1} is not a usage type code`},
	} {
		_, bad := mapOne("update", c.header, c.entity)
		if !strings.Contains(bad, c.want) || strings.Contains(bad, "Go ") || strings.Contains(bad, "json.RawMessage") {
			t.Errorf("%s %s: %q, want …%s…", c.header, c.entity, bad, c.want)
		}
	}
}
