package feed

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ev is an event of client c in a decide test.
func ev(id, entity, entityID string, version int64, op, data string) Event {
	e := Event{EventID: id, Client: "c", Entity: entity, EntityID: entityID, Version: version,
		OccurredAt: time.Date(2026, 1, 1, 0, 0, int(version), 0, time.UTC), Op: op}
	if data != "" {
		e.Data = json.RawMessage(data)
	}
	return e
}

func results(d *Decision) string {
	var b strings.Builder
	for i, o := range d.Outcomes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(o.Outcome))
	}
	return b.String()
}

// TestDecideOutcomes: versions, redelivery, deletes and references, as if
// the events were applied one by one.
func TestDecideOutcomes(t *testing.T) {
	invalid := errors.New("currency: \"usd\" is not an ISO 4217 code")
	for _, tc := range []struct {
		name    string
		events  []Event
		invalid map[int]error
		state   map[EntityKey]EntityState
		want    string
	}{{
		name: "newer applies, older and equal are ignored",
		events: []Event{ev("e1", "account", "A", 2, OpUpsert, `{}`), ev("e2", "account", "A", 1, OpUpsert, `{}`),
			ev("e3", "account", "A", 2, OpUpsert, `{}`), ev("e4", "account", "A", 3, OpUpsert, `{}`)},
		want: "applied ignored ignored applied",
	}, {
		name:   "stored version counts",
		events: []Event{ev("e1", "account", "A", 4, OpUpsert, `{}`), ev("e2", "account", "A", 5, OpUpsert, `{}`)},
		state:  map[EntityKey]EntityState{{"c", "account", "A"}: {Version: 4, Live: true}},
		want:   "ignored applied",
	}, {
		name:   "the same id twice gets the first outcome",
		events: []Event{ev("e1", "account", "A", 2, OpUpsert, `{}`), ev("e1", "account", "A", 2, OpUpsert, `{}`)},
		want:   "applied applied",
	}, {
		name: "a delete before its create wins over the older create",
		events: []Event{ev("e1", "account", "B", 5, OpDelete, ""), ev("e2", "account", "B", 1, OpUpsert, `{}`),
			ev("e3", "subscription", "S", 1, OpUpsert, `{"account_id":"B","plan_id":"P"}`)},
		state: map[EntityKey]EntityState{{"c", "plan", "P"}: {Version: 1, Live: true}},
		want:  "applied ignored pending",
	}, {
		name:    "invalid fails, whatever is stored",
		events:  []Event{ev("e1", "account", "D", 1, OpUpsert, `{"currency":"usd"}`)},
		invalid: map[int]error{0: invalid},
		want:    "failed",
	}, {
		name: "references: pending until live, in batch order",
		events: []Event{ev("s1", "subscription", "S1", 1, OpUpsert, `{"account_id":"A","plan_id":"P"}`),
			ev("a1", "account", "A", 1, OpUpsert, `{}`),
			ev("s2", "subscription", "S2", 1, OpUpsert, `{"account_id":"A","plan_id":"P"}`),
			ev("d1", "discount", "D1", 1, OpUpsert, `{"plan_id":"P"}`),
			ev("p1", "plan", "P2", 1, OpUpsert, `{"rates":[{"usage_type":"VOICE"},{"usage_type":"VOICE"}]}`)},
		state: map[EntityKey]EntityState{{"c", "plan", "P"}: {Version: 1, Live: true},
			{"c", "usage_type", "VOICE"}: {Version: 1, Live: false}},
		want: "pending applied applied applied pending",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			inv := make([]error, len(tc.events))
			for i, err := range tc.invalid {
				inv[i] = err
			}
			state := tc.state
			if state == nil {
				state = map[EntityKey]EntityState{}
			}
			d := NewBatch(tc.events, inv, SourceFeed, false).Decide(Stored{Entities: state})
			if got := results(d); got != tc.want {
				t.Fatalf("outcomes %s, want %s", got, tc.want)
			}
		})
	}
}

// TestDecideRecordsWritesAndWaits: what the store is told to write.
func TestDecideRecordsWritesAndWaits(t *testing.T) {
	events := []Event{
		ev("e1", "account", "A", 1, OpUpsert, `{"name":"one"}`),
		ev("e2", "account", "A", 2, OpUpsert, `{"name":"two"}`),
		ev("e3", "account", "A", 3, OpDelete, ""),
		ev("e1", "account", "A", 1, OpUpsert, `{"name":"one"}`), // again in the batch: not recorded twice
		ev("e4", "account", "C", 1, OpDelete, ""),
		ev("s1", "subscription", "S1", 1, OpUpsert, `{"account_id":"A","plan_id":"P"}`),
		ev("x1", "account", "X", 1, OpUpsert, `{}`), // invalid
	}
	inv := make([]error, len(events))
	inv[6] = errors.New("status: required")
	b := NewBatch(events, inv, SourceFeed, false)
	if keys := fmt.Sprint(b.Keys()); keys != "[{c account A} {c account C} {c subscription S1} {c plan P}]" {
		t.Fatalf("keys %s", keys)
	}
	d := b.Decide(Stored{})
	if got := results(d); got != "applied applied applied applied applied pending failed" {
		t.Fatalf("outcomes %s", got)
	}
	if fmt.Sprint(d.Record) != "[0 1 2 4 5 6]" {
		t.Fatalf("recorded %v", d.Record)
	}
	// One write per entity, in first-applied order, with its last event;
	// a delete carries the batch's last upsert's data, or none.
	if len(d.Writes) != 2 {
		t.Fatalf("writes %+v", d.Writes)
	}
	a, c := d.Writes[0], d.Writes[1]
	if a.Key != (EntityKey{"c", "account", "A"}) || a.Event.EventID != "e3" || string(a.Data) != `{"name":"two"}` {
		t.Fatalf("account A written as %+v (event %s)", a, a.Event.EventID)
	}
	if c.Key.ID != "C" || c.Event.EventID != "e4" || c.Data != nil {
		t.Fatalf("account C written as %+v", c)
	}
	if fmt.Sprint(d.Applied()) != "[{c account A} {c account C}]" {
		t.Fatalf("applied %v", d.Applied())
	}
	// The subscription waits for its account (deleted) and plan (absent).
	if fmt.Sprint(d.Waits[5]) != "[{c account A} {c plan P}]" || d.Waits[0] != nil {
		t.Fatalf("waits %v", d.Waits)
	}
	if o := d.Outcomes[5]; o.Code != CodeMissingReference || o.Message != `subscription "S1" names account "A" and plan "P", not in the catalog of client "c"` {
		t.Fatalf("pending outcome %+v", o)
	}
	if o := d.Outcomes[6]; o.Code != CodeInvalidEvent || o.Message != "status: required" {
		t.Fatalf("failed outcome %+v", o)
	}
}

// TestDecideOutcomesOnRecord: delivered events keep the outcome on record;
// events applied again replace only failed and pending ones.
func TestDecideOutcomesOnRecord(t *testing.T) {
	events := []Event{ev("e1", "account", "A", 1, OpUpsert, `{}`), ev("e2", "account", "B", 1, OpUpsert, `{}`),
		ev("e3", "account", "C", 1, OpUpsert, `{}`)}
	onRecord := map[string]Outcome{
		"e1": {EventID: "e1", Outcome: Applied},
		"e2": {EventID: "e2", Outcome: Failed, Code: CodeInvalidEvent, Message: "was bad"},
		"e3": {EventID: "e3", Outcome: Pending, Code: CodeMissingReference},
	}
	delivered := NewBatch(events, nil, SourceFeed, false).Decide(Stored{Outcomes: onRecord})
	if got := results(delivered); got != "applied failed pending" || len(delivered.Record) != 0 || len(delivered.Writes) != 0 {
		t.Fatalf("delivered again: %s, recorded %v, writes %v", got, delivered.Record, delivered.Writes)
	}
	again := NewBatch(events, nil, Operator("ana"), true).Decide(Stored{Outcomes: onRecord})
	if got := results(again); got != "applied applied applied" || fmt.Sprint(again.Record) != "[1 2]" || len(again.Writes) != 2 {
		t.Fatalf("applied again: %s, recorded %v, writes %v", got, again.Record, again.Writes)
	}
}

// TestDecideFailedReferences: an event naming an entity whose latest event
// failed fails at once, naming that event, and waits for the entity all
// the same; a failure earlier in the batch counts too, and one repaired
// later in the batch does not.
func TestDecideFailedReferences(t *testing.T) {
	events := []Event{
		ev("s1", "subscription", "S1", 1, OpUpsert, `{"account_id":"A","plan_id":"P"}`), // P failed on record
		ev("p2", "plan", "Q", 1, OpUpsert, `{"rates":[]}`),                              // invalid here
		ev("s2", "subscription", "S2", 1, OpUpsert, `{"account_id":"A","plan_id":"Q"}`),
		ev("p3", "plan", "R", 1, OpUpsert, `{"rates":[]}`), // invalid, then repaired below
		ev("p4", "plan", "R", 2, OpUpsert, `{"rates":[]}`),
		ev("s3", "subscription", "S3", 1, OpUpsert, `{"account_id":"A","plan_id":"R"}`),
		ev("s4", "subscription", "S4", 1, OpUpsert, `{"account_id":"B","plan_id":"R"}`), // B never arrived
	}
	inv := make([]error, len(events))
	inv[1] = errors.New("rates[0].currency: required")
	inv[3] = errors.New("rates[0].model: required")
	b := NewBatch(events, inv, SourceFeed, false)
	state := map[EntityKey]EntityState{{"c", "account", "A"}: {Version: 1, Live: true}}
	// R is written by a valid event of the batch: not asked about.
	if missing := fmt.Sprint(b.MissingRefs(state)); missing != "[{c plan P} {c plan Q} {c account B}]" {
		t.Fatalf("missing refs %s", missing)
	}
	d := b.Decide(Stored{Entities: state, Failed: map[EntityKey]Outcome{
		{"c", "plan", "P"}: {EventID: "p1", Outcome: Failed, Code: CodeInvalidEvent, Message: "data: rates: required"}}})
	if got := results(d); got != "failed failed failed failed applied applied pending" {
		t.Fatalf("outcomes %s", got)
	}
	s1, s2 := d.Outcomes[0], d.Outcomes[2]
	if s1.Code != CodeReferenceFailed || s1.Message != `subscription "S1" names plan "P", whose event p1 failed (data: rates: required); it applies once that is repaired` {
		t.Fatalf("S1: %+v", s1)
	}
	if s2.Code != CodeReferenceFailed || !strings.Contains(s2.Message, `plan "Q", whose event p2 failed (rates[0].currency: required)`) {
		t.Fatalf("S2: %+v", s2)
	}
	// Both wait for their plan (and account), to apply once it is repaired.
	if fmt.Sprint(d.Waits[0]) != "[{c account A} {c plan P}]" || fmt.Sprint(d.Waits[2]) != "[{c account A} {c plan Q}]" {
		t.Fatalf("waits %v", d.Waits)
	}
	// What failed here, for the events waiting for it: the plans and the
	// subscriptions, R not (it applied after all).
	if fmt.Sprint(d.Failed) != "[{c subscription S1} {c plan Q} {c subscription S2}]" {
		t.Fatalf("failed %v", d.Failed)
	}
}

// TestDecideWarningsAndKeptData: an event's warnings go with its outcome,
// and the catalog keeps its data without what they name.
func TestDecideWarningsAndKeptData(t *testing.T) {
	e := ev("p1", "plan", "P", 1, OpUpsert, `{"rates":[],"name":"Gold","colour":"gold"}`)
	e.Warnings = []string{"data: colour: not used by Vivace; ignored"}
	e.Kept = json.RawMessage(`{"rates":[]}`)
	d := NewBatch([]Event{e}, nil, SourceFeed, false).Decide(Stored{})
	if o := d.Outcomes[0]; o.Outcome != Applied || fmt.Sprint(o.Warnings) != "[data: colour: not used by Vivace; ignored]" {
		t.Fatalf("outcome %+v", o)
	}
	if string(d.Writes[0].Data) != `{"rates":[]}` {
		t.Fatalf("written %s", d.Writes[0].Data)
	}
}
