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
			d := NewBatch(tc.events, inv, SourceFeed, false).Decide(nil, state)
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
	d := b.Decide(nil, map[EntityKey]EntityState{})
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
	delivered := NewBatch(events, nil, SourceFeed, false).Decide(onRecord, map[EntityKey]EntityState{})
	if got := results(delivered); got != "applied failed pending" || len(delivered.Record) != 0 || len(delivered.Writes) != 0 {
		t.Fatalf("delivered again: %s, recorded %v, writes %v", got, delivered.Record, delivered.Writes)
	}
	again := NewBatch(events, nil, Operator("ana"), true).Decide(onRecord, map[EntityKey]EntityState{})
	if got := results(again); got != "applied applied applied" || fmt.Sprint(again.Record) != "[1 2]" || len(again.Writes) != 2 {
		t.Fatalf("applied again: %s, recorded %v, writes %v", got, again.Record, again.Writes)
	}
}
