package feed

import (
	"encoding/json"
	"fmt"
	"strings"
)

// EntityKey names one catalog entity of a client.
type EntityKey struct{ Client, Entity, ID string }

// Key returns the key of the entity the event writes.
func (e *Event) Key() EntityKey { return EntityKey{e.Client, e.Entity, e.EntityID} }

// EntityState is what the catalog holds of an entity.
type EntityState struct {
	Version int64 // the stored version
	Live    bool  // stored and not deleted
}

// Batch is events applied together, in order, in one transaction.
type Batch struct {
	Events []Event
	// Invalid holds, for each event, why it cannot be applied (its
	// validation error), or nil.
	Invalid []error
	// Source is recorded as who applied the events.
	Source Source
	// Again is set for events applied again (a pending event retried, an
	// event reprocessed): only their failed and pending outcomes on record
	// are replaced, and those are locked while the batch decides, so that
	// two operators cannot reprocess one event twice. A delivered event
	// whose id is on record keeps its first outcome.
	Again bool

	refs [][]Ref
}

// NewBatch makes a batch of events; invalid may be nil when all are
// valid. Each valid event's references are decoded from its data once,
// here.
func NewBatch(events []Event, invalid []error, source Source, again bool) *Batch {
	if invalid == nil {
		invalid = make([]error, len(events))
	}
	b := &Batch{Events: events, Invalid: invalid, Source: source, Again: again, refs: make([][]Ref, len(events))}
	for i := range events {
		if invalid[i] == nil {
			b.refs[i] = events[i].References()
		}
	}
	return b
}

// IDs returns the events' ids, in batch order.
func (b *Batch) IDs() []string {
	ids := make([]string, len(b.Events))
	for i := range b.Events {
		ids[i] = b.Events[i].EventID
	}
	return ids
}

// Keys returns the entities whose stored state the decision reads: those
// the valid events write and those they name.
func (b *Batch) Keys() []EntityKey {
	seen := map[EntityKey]bool{}
	var keys []EntityKey
	add := func(k EntityKey) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for i := range b.Events {
		if b.Invalid[i] != nil {
			continue
		}
		e := &b.Events[i]
		add(e.Key())
		for _, r := range b.refs[i] {
			add(EntityKey{e.Client, r.Entity, r.ID})
		}
	}
	return keys
}

// Decision is what applying a batch comes to.
type Decision struct {
	// Outcomes holds each event's outcome, in batch order.
	Outcomes []Outcome
	// Record lists the events whose outcome is to be written: the first
	// of each id in the batch, unless its outcome on record stands.
	Record []int
	// Waits holds, for each pending event, the entities it waits for.
	Waits [][]EntityKey
	// Writes are the entities to store, in the order they first applied,
	// each with its last applied event.
	Writes []Write
}

// Write is an entity to store: the batch's last applied event of it.
type Write struct {
	Key   EntityKey
	Event *Event
	// Data is what to store: an upsert's data; for a delete, the data of
	// the batch's last applied upsert of the entity, or nil when there is
	// none (the stored data stays, marked deleted).
	Data json.RawMessage
}

// Applied returns the entities the decision writes.
func (d *Decision) Applied() []EntityKey {
	keys := make([]EntityKey, len(d.Writes))
	for i, w := range d.Writes {
		keys[i] = w.Key
	}
	return keys
}

// Decide gives each event of the batch its outcome, as if the events were
// applied one by one in order, against the outcomes on record of their
// ids and the stored state of the entities in Keys (absent: never
// stored). An event is
//
//   - applied when its version is newer than the stored one (deletes too,
//     as soft deletes) and every entity it names is live;
//   - ignored when a version at least as new is stored, so replays and
//     late arrivals change nothing;
//   - pending when it names an entity the catalog does not hold (yet); it
//     waits for those entities (Decision.Waits);
//   - failed when invalid (code INVALID_EVENT).
//
// An event id on record keeps its outcome (see Batch.Again), and the same
// id twice in the batch gets the first one's outcome. Decide updates
// state as events apply.
func (b *Batch) Decide(onRecord map[string]Outcome, state map[EntityKey]EntityState) *Decision {
	n := len(b.Events)
	d := &Decision{Outcomes: make([]Outcome, n), Waits: make([][]EntityKey, n)}
	writes := map[EntityKey]int{} // index in d.Writes
	lastData := map[EntityKey]json.RawMessage{}
	first := map[string]int{}
	for i := range b.Events {
		e := &b.Events[i]
		if o, ok := onRecord[e.EventID]; ok && (!b.Again || !o.Outcome.Repairable()) {
			d.Outcomes[i] = o
			continue
		}
		if j, ok := first[e.EventID]; ok {
			d.Outcomes[i] = d.Outcomes[j] // the same event twice in one batch
			d.Outcomes[i].EventID = e.EventID
			continue
		}
		first[e.EventID] = i
		d.Record = append(d.Record, i)
		o := decide(e, b.refs[i], b.Invalid[i], state)
		d.Outcomes[i] = o
		switch o.Outcome {
		case Pending:
			waits := make([]EntityKey, len(b.refs[i]))
			for j, r := range b.refs[i] {
				waits[j] = EntityKey{e.Client, r.Entity, r.ID}
			}
			d.Waits[i] = waits
			continue
		case Applied:
		default:
			continue
		}
		k := e.Key()
		state[k] = EntityState{Version: e.Version, Live: e.Op == OpUpsert}
		w, ok := writes[k]
		if !ok {
			w = len(d.Writes)
			writes[k] = w
			d.Writes = append(d.Writes, Write{Key: k})
		}
		d.Writes[w].Event, d.Writes[w].Data = e, e.Data
		if e.Op == OpUpsert {
			lastData[k] = e.Data
		} else {
			d.Writes[w].Data = lastData[k]
		}
	}
	return d
}

// decide gives one event's outcome against the state so far.
func decide(e *Event, refs []Ref, invalid error, state map[EntityKey]EntityState) Outcome {
	o := Outcome{EventID: e.EventID}
	if invalid != nil {
		o.Outcome, o.Code, o.Message = Failed, CodeInvalidEvent, invalid.Error()
		return o
	}
	if st, ok := state[e.Key()]; ok && e.Version <= st.Version {
		o.Outcome, o.Message = Ignored, fmt.Sprintf("version %d is not newer than the stored version %d", e.Version, st.Version)
		return o
	}
	var missing []string
	for _, r := range refs {
		if !state[EntityKey{e.Client, r.Entity, r.ID}].Live {
			missing = append(missing, fmt.Sprintf("%s %q", r.Entity, r.ID))
		}
	}
	if len(missing) > 0 {
		o.Outcome, o.Code = Pending, CodeMissingReference
		o.Message = fmt.Sprintf("%s %q names %s, not in the catalog of client %q", e.Entity, e.EntityID,
			strings.Join(missing, " and "), e.Client)
		return o
	}
	o.Outcome = Applied
	return o
}
