package feed

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const good = `{"event_id":"e1","client":"c","entity":"subscription","entity_id":"S1","version":3,` +
	`"occurred_at":"2026-03-01T00:00:00Z","op":"upsert","data":{"account_id":"A1","plan_id":"P1"}}`

func TestParseAndValidate(t *testing.T) {
	e, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(nil); err != nil {
		t.Fatalf("a good event: %v", err)
	}
	if e.Version != 3 || e.Entity != EntitySubscription || e.OccurredAt.Month() != 3 {
		t.Fatalf("parsed %+v", e)
	}
	// A misspelt field is kept as an extra one, and the field it should
	// have been is missing.
	typo, err := Parse([]byte(strings.Replace(good, `"op"`, `"opp"`, 1)))
	if err != nil || string(typo.Extra["opp"]) != `"upsert"` {
		t.Fatalf("misspelt op: %+v %v", typo, err)
	}
	if err := typo.Validate(nil); err == nil || !strings.Contains(err.Error(), "op: required") {
		t.Fatalf("misspelt op validated: %v", err)
	}
	for in, want := range map[string]string{
		good + ` {}`: "more than one JSON value",
		`[1]`:        "not a feed event",
		strings.Replace(good, `"version":3`, `"version":"3"`, 1): "not a feed event",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v; want …%s…", in, err, want)
		}
	}
}

// TestValidateListsEveryProblem: each problem names its field, all at once.
func TestValidateListsEveryProblem(t *testing.T) {
	e := Event{Entity: "invoice", Version: 0, Op: "merge"}
	err := e.Validate(nil)
	for _, want := range []string{"event_id: required", "client: required",
		`entity: "invoice" is not one of account, usage_type, plan, subscription, discount`, "entity_id: required",
		"version: must be a positive integer", "occurred_at: required", `op: "merge" is not upsert or delete`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	e, _ = Parse([]byte(good))
	e.Data = json.RawMessage(`null`)
	if err := e.Validate(nil); err == nil || !strings.Contains(err.Error(), "data: required for an upsert") {
		t.Errorf("null data: %v", err)
	}
	e.Op, e.Data = OpDelete, nil
	if err := e.Validate(nil); err != nil {
		t.Errorf("a delete needs no data: %v", err)
	}
}

// TestValidateChecksDataOnlyWhenTheEnvelopeIsSound, and reports the
// producer's own error first.
func TestValidateChecksDataOnlyWhenTheEnvelopeIsSound(t *testing.T) {
	calls := 0
	check := func(entity string, data json.RawMessage) ([]string, json.RawMessage, error) {
		calls++
		return nil, nil, fmt.Errorf("%s: plan_id: unknown", entity)
	}
	e, _ := Parse([]byte(good))
	if err := e.Validate(check); err == nil || err.Error() != "data: subscription: plan_id: unknown" || calls != 1 {
		t.Fatalf("data check: %v (%d calls)", err, calls)
	}
	e.Client = ""
	if err := e.Validate(check); calls != 1 || err == nil {
		t.Fatalf("the data was checked with a broken envelope (%d calls): %v", calls, err)
	}
	e, _ = Parse([]byte(good))
	e.SourceError = "entity 42: unexpected end of JSON input"
	err := e.Validate(nil)
	if err == nil || !strings.HasPrefix(err.Error(), "source: entity 42") {
		t.Fatalf("source error: %v", err)
	}
}

func TestReferences(t *testing.T) {
	for _, c := range []struct {
		entity, op, data, want string
	}{
		{EntitySubscription, OpUpsert, `{"account_id":"A1","plan_id":"P1"}`, "account/A1 plan/P1"},
		{EntityDiscount, OpUpsert, `{"plan_id":"P1","kind":"percent"}`, "plan/P1"},
		{EntityPlan, OpUpsert, `{"rates":[{"usage_type":"V"},{"usage_type":"D"},{"usage_type":"V"},{"usage_type":""}]}`, "usage_type/V usage_type/D"},
		{EntityAccount, OpUpsert, `{"currency":"USD"}`, ""},
		{EntitySubscription, OpDelete, ``, ""},
		{EntitySubscription, OpUpsert, `{"account_id":7}`, ""},
	} {
		e := Event{Entity: c.entity, Op: c.op, Data: json.RawMessage(c.data)}
		var got []string
		for _, r := range e.References() {
			got = append(got, r.Entity+"/"+r.ID)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s %s %s: references %v, want %s", c.op, c.entity, c.data, got, c.want)
		}
	}
}

// TestEnvelopeExtrasAreKept: fields the envelope does not know are kept
// as received and written back; the known ones read as usual, in any
// case encoding/json accepts.
func TestEnvelopeExtrasAreKept(t *testing.T) {
	in := strings.Replace(good, `{"event_id"`, `{"source":"core-7","trace_id":{"span":[1,2]},"Client":"c","event_id"`, 1)
	in = strings.Replace(in, `"client":"c",`, ``, 1)
	e, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if e.Client != "c" || e.Version != 3 || len(e.Extra) != 2 || string(e.Extra["trace_id"]) != `{"span":[1,2]}` {
		t.Fatalf("parsed %+v", e)
	}
	if err := e.Validate(nil); err != nil {
		t.Fatalf("an event with extra fields: %v", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.Extra["source"]) != `"core-7"` || string(back.Extra["trace_id"]) != `{"span":[1,2]}` || back.EventID != "e1" {
		t.Fatalf("written %s, read back %+v", b, back)
	}
	// Without extras an event is written exactly as before.
	plain, _ := Parse([]byte(good))
	b, _ = json.Marshal(plain)
	if want := `{"event_id":"e1","client":"c","entity":"subscription","entity_id":"S1","version":3,"occurred_at":"2026-03-01T00:00:00Z","op":"upsert","data":{"account_id":"A1","plan_id":"P1"}}`; string(b) != want {
		t.Fatalf("written %s\nwant    %s", b, want)
	}
	// A field of the wrong type is still an error.
	if _, err := Parse([]byte(strings.Replace(in, `"version":3`, `"version":"3"`, 1))); err == nil {
		t.Fatal("a string version was read")
	}
}
