package catalog

import (
	"testing"

	"vivace.dev/vivace/internal/msgcheck"
)

// FuzzDataMessages: an event's data that is not what its entity needs is
// refused in the data's terms (the field, what it holds, what was
// expected), never Go's.
func FuzzDataMessages(f *testing.F) {
	for _, s := range []struct{ entity, data string }{
		{EntityPlan, `{"rates":{"a":1}}`},
		{EntityPlan, `{"rates":[{"usage_type":1,"currency":["USD"],"model":"per_unit","unit_price":{"x":1}}]}`},
		{EntityPlan, `{"rates":[{"usage_type":"V","currency":"USD","model":"graduated","tiers":[{"up_to":"x","unit_price":true}]}]}`},
		{EntityAccount, `[1]`},
		{EntityAccount, `{"currency":7,"status":null}`},
		{EntitySubscription, `{"account_id":{"a":1},"plan_id":"P","effective_from":"soon"}`},
		{EntityDiscount, `{"account_id":"A","kind":"free_units","value":[1],"priority":"high","usage_types":"V"}`},
		{EntityUsageType, `"x"`},
	} {
		f.Add(s.entity, s.data)
	}
	f.Fuzz(func(t *testing.T, entity, data string) {
		_, _, _, err := Check(entity, "id", []byte(data))
		if err == nil {
			return
		}
		if w := msgcheck.Internals(err.Error()); w != "" {
			t.Fatalf("%s %q: speaks of Go (%q): %v", entity, data, w, err)
		}
	})
}
