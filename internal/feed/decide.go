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

// Stored is what the decision reads of what is on record.
type Stored struct {
	// Outcomes are the outcomes on record of the batch's event ids.
	Outcomes map[string]Outcome
	// Entities is the stored state of the entities in Batch.Keys (absent:
	// never stored).
	Entities map[EntityKey]EntityState
	// Failed holds, for entities of Batch.MissingRefs, the outcome of the
	// entity's latest event on record when that event failed: an event
	// naming such an entity fails at once instead of waiting for it.
	Failed map[EntityKey]Outcome
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

// MissingRefs returns the entities the valid events name that the stored
// state does not hold live and that no valid event of the batch writes:
// those whose failure, if their latest event failed, fails the events
// naming them.
func (b *Batch) MissingRefs(state map[EntityKey]EntityState) []EntityKey {
	written := map[EntityKey]bool{}
	for i := range b.Events {
		if b.Invalid[i] == nil {
			written[b.Events[i].Key()] = true
		}
	}
	seen := map[EntityKey]bool{}
	var keys []EntityKey
	for i := range b.Events {
		if b.Invalid[i] != nil {
			continue
		}
		for _, r := range b.refs[i] {
			k := EntityKey{b.Events[i].Client, r.Entity, r.ID}
			if !state[k].Live && !written[k] && !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
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
	// Waits holds, for each event that waits for entities (pending, or
	// failed because an entity it names failed), those entities: it is
	// applied again when one of them is.
	Waits [][]EntityKey
	// Failed are the entities whose event failed in this decision while
	// they are not live: events waiting for them fail too.
	Failed []EntityKey
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
// applied one by one in order, against what is on record (st). An event
// is
//
//   - applied when its version is newer than the stored one (deletes too,
//     as soft deletes) and every entity it names is live;
//   - ignored when a version at least as new is stored, so replays and
//     late arrivals change nothing;
//   - failed, code INVALID_EVENT, when invalid;
//   - failed, code REFERENCE_FAILED, when an entity it names is not live
//     and that entity's latest event failed (on record, or earlier in the
//     batch): the outcome names that event and why it failed. It waits for
//     the entity all the same, and applies once that is repaired;
//   - pending, code MISSING_REFERENCE, when it names an entity the catalog
//     does not hold (yet); it waits for those entities.
//
// An event id on record keeps its outcome (see Batch.Again), and the same
// id twice in the batch gets the first one's outcome. Every outcome
// carries the event's warnings. Decide updates st.Entities as events
// apply.
func (b *Batch) Decide(st Stored) *Decision {
	n := len(b.Events)
	d := &Decision{Outcomes: make([]Outcome, n), Waits: make([][]EntityKey, n)}
	state := st.Entities
	if state == nil {
		state = map[EntityKey]EntityState{}
	}
	failed := map[EntityKey]Outcome{} // failures of this batch, of entities not live
	var failedOrder []EntityKey
	writes := map[EntityKey]int{} // index in d.Writes
	lastData := map[EntityKey]json.RawMessage{}
	first := map[string]int{}
	failure := func(k EntityKey) (Outcome, bool) { // whether k's latest event failed
		if f, ok := failed[k]; ok {
			return f, true
		}
		f, ok := st.Failed[k]
		return f, ok
	}
	for i := range b.Events {
		e := &b.Events[i]
		if o, ok := st.Outcomes[e.EventID]; ok && (!b.Again || !o.Outcome.Repairable()) {
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
		o := decide(e, b.refs[i], b.Invalid[i], state, failure)
		o.Warnings = e.Warnings
		d.Outcomes[i] = o
		if o.Outcome == Pending || o.Code == CodeReferenceFailed {
			waits := make([]EntityKey, len(b.refs[i]))
			for j, r := range b.refs[i] {
				waits[j] = EntityKey{e.Client, r.Entity, r.ID}
			}
			d.Waits[i] = waits
		}
		k := e.Key()
		if o.Outcome == Failed && !state[k].Live {
			if _, dup := failed[k]; !dup {
				failedOrder = append(failedOrder, k)
			}
			failed[k] = o
		}
		if o.Outcome != Applied {
			continue
		}
		delete(failed, k)
		state[k] = EntityState{Version: e.Version, Live: e.Op == OpUpsert}
		w, ok := writes[k]
		if !ok {
			w = len(d.Writes)
			writes[k] = w
			d.Writes = append(d.Writes, Write{Key: k})
		}
		data := e.Data
		if e.Kept != nil {
			data = e.Kept
		}
		d.Writes[w].Event, d.Writes[w].Data = e, data
		if e.Op == OpUpsert {
			lastData[k] = data
		} else {
			d.Writes[w].Data = lastData[k]
		}
	}
	for _, k := range failedOrder {
		if _, ok := failed[k]; ok { // not applied later in the batch
			d.Failed = append(d.Failed, k)
		}
	}
	return d
}

// decide gives one event's outcome against the state so far; failure
// tells whether an entity's latest event failed.
func decide(e *Event, refs []Ref, invalid error, state map[EntityKey]EntityState, failure func(EntityKey) (Outcome, bool)) Outcome {
	o := Outcome{EventID: e.EventID}
	if invalid != nil {
		o.Outcome, o.Code, o.Message = Failed, CodeInvalidEvent, invalid.Error()
		return o
	}
	if st, ok := state[e.Key()]; ok && e.Version <= st.Version {
		o.Outcome, o.Message = Ignored, fmt.Sprintf("version %d is not newer than the stored version %d", e.Version, st.Version)
		return o
	}
	var missing, broken []string
	for _, r := range refs {
		k := EntityKey{e.Client, r.Entity, r.ID}
		if state[k].Live {
			continue
		}
		if f, ok := failure(k); ok {
			broken = append(broken, fmt.Sprintf("%s %q, whose event %s failed (%s)", r.Entity, r.ID, f.EventID, f.Message))
		}
		missing = append(missing, fmt.Sprintf("%s %q", r.Entity, r.ID))
	}
	if len(broken) > 0 {
		o.Outcome, o.Code = Failed, CodeReferenceFailed
		o.Message = fmt.Sprintf("%s %q names %s; it applies once that is repaired", e.Entity, e.EntityID, strings.Join(broken, " and "))
		return o
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
