package feed

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned for an event id that is not on record.
var ErrNotFound = errors.New("not found")

// Store is what applying events needs from storage;
// internal/store/catalogstore implements it.
type Store interface {
	// Update runs fn in one transaction and commits it. When the
	// transaction loses a race with a concurrent writer of the same
	// entities or events it runs fn again from the start, so fn must be
	// repeatable.
	Update(ctx context.Context, fn func(Tx) error) error
	// Waiting returns the events that wait for any of keys, oldest first:
	// the pending ones, and with failedToo those that failed because an
	// entity they name failed (REFERENCE_FAILED).
	Waiting(ctx context.Context, keys []EntityKey, failedToo bool) ([]Event, error)
	// Ready returns, oldest first, the waiting events (pending, or failed
	// with REFERENCE_FAILED) whose references are all live now: those
	// with the given ids, or, when ids is nil, those of the given clients
	// (of every client when none is given).
	Ready(ctx context.Context, clients, ids []string) ([]Event, error)
	// Events returns the events on record with the given ids as they
	// stand (edited ones as edited), oldest first; unknown ids are left
	// out.
	Events(ctx context.Context, ids []string) ([]Event, error)
	// Replace puts e in place of the event with id id, keeping the
	// content first received, if that event is failed or pending; it
	// reports whether it did, and the event's outcome. An unknown id is
	// an error wrapping ErrNotFound.
	Replace(ctx context.Context, id string, e Event) (replaced bool, current Result, err error)
	// ExpirePending fails the events that have been pending longer than
	// wait (code MISSING_REFERENCE, with what they waited for) and
	// returns the entities of the events it failed.
	ExpirePending(ctx context.Context, wait time.Duration) ([]EntityKey, error)
}

// Tx is one transaction applying a batch.
type Tx interface {
	// Outcomes returns the outcomes on record of the ids (unknown ids are
	// absent); with lock, the events on record stay locked until the
	// transaction ends.
	Outcomes(ctx context.Context, ids []string, lock bool) (map[string]Outcome, error)
	// States returns what the catalog holds of keys (absent: never
	// stored).
	States(ctx context.Context, keys []EntityKey) (map[EntityKey]EntityState, error)
	// Failed returns, for those of keys whose latest event on record
	// (ignored ones aside) failed, that event's outcome.
	Failed(ctx context.Context, keys []EntityKey) (map[EntityKey]Outcome, error)
	// Write stores the decision: the outcomes of the events it records
	// (with b.Source), the entities it writes and the change counters of
	// their clients.
	Write(ctx context.Context, b *Batch, d *Decision) error
}

// Applier applies feed events to the catalog through a Store, and lets
// the events waiting for an entity apply once it arrives (or fail at once
// when it fails).
type Applier struct {
	Store Store
	// Check checks each event's data (catalog.ValidateData); nil checks
	// the envelope only.
	Check DataValidator
}

// NewApplier returns an Applier over st that checks data with check.
func NewApplier(st Store, check DataValidator) *Applier { return &Applier{Store: st, Check: check} }

// Apply applies delivered events in one transaction, in the order given,
// and returns each event's outcome (see Batch.Decide). invalid[i] is why
// events[i] could not be read, or nil (invalid may be nil); every event
// read is validated with the Applier's Check. An event id on record
// keeps its first outcome, so a redelivered event is neither applied
// twice nor reported differently. Events that were waiting for what the
// batch applied are applied too before Apply returns, and pending events
// naming what failed fail.
func (a *Applier) Apply(ctx context.Context, events []Event, invalid []error) ([]Outcome, error) {
	return a.apply(ctx, a.batch(events, invalid, SourceFeed, false))
}

// batch validates the events that were read and makes a batch of them.
func (a *Applier) batch(events []Event, invalid []error, source Source, again bool) *Batch {
	if invalid == nil {
		invalid = make([]error, len(events))
	}
	for i := range events {
		if invalid[i] == nil {
			invalid[i] = events[i].Validate(a.Check)
		}
	}
	return NewBatch(events, invalid, source, again)
}

func (a *Applier) apply(ctx context.Context, b *Batch) ([]Outcome, error) {
	var d *Decision
	err := a.Store.Update(ctx, func(tx Tx) error {
		var st Stored
		var err error
		if st.Outcomes, err = tx.Outcomes(ctx, b.IDs(), b.Again); err != nil {
			return err
		}
		if st.Entities, err = tx.States(ctx, b.Keys()); err != nil {
			return err
		}
		if missing := b.MissingRefs(st.Entities); len(missing) > 0 {
			if st.Failed, err = tx.Failed(ctx, missing); err != nil {
				return err
			}
		}
		d = b.Decide(st)
		return tx.Write(ctx, b, d)
	})
	if err != nil {
		return nil, fmt.Errorf("apply feed events: %w", err)
	}
	out := d.Outcomes
	// An event that went pending while another transaction was applying
	// what it names is missed by that transaction's wake-up below, which
	// ran before this one committed; looking again now that both have
	// committed closes the gap. The caller is told the outcome they end
	// with.
	var waiting []string
	for i, o := range out {
		if d.Waits[i] != nil {
			waiting = append(waiting, o.EventID)
		}
	}
	if len(waiting) > 0 {
		now, err := a.retryReady(ctx, nil, waiting)
		if err != nil {
			return nil, fmt.Errorf("retry events left waiting: %w", err)
		}
		for i := range out {
			if o, ok := now[out[i].EventID]; ok && d.Waits[i] != nil {
				out[i] = o
			}
		}
	}
	// What arrived may be what waiting events wait for; they apply now,
	// and what they apply in turn frees the next (usage type, plan,
	// subscription).
	if err := a.retryWaiting(ctx, d.Applied(), true); err != nil {
		return nil, err
	}
	// What failed fails the pending events naming it.
	if err := a.retryWaiting(ctx, d.Failed, false); err != nil {
		return nil, err
	}
	return out, nil
}

// retryWaiting applies again the events that wait for any of keys: the
// pending ones, and with failedToo those failed with REFERENCE_FAILED.
func (a *Applier) retryWaiting(ctx context.Context, keys []EntityKey, failedToo bool) error {
	if len(keys) == 0 {
		return nil
	}
	waiting, err := a.Store.Waiting(ctx, keys, failedToo)
	if err != nil {
		return fmt.Errorf("find events waiting for %d entities: %w", len(keys), err)
	}
	if len(waiting) == 0 {
		return nil
	}
	_, err = a.apply(ctx, a.batch(waiting, nil, SourceRetry, true))
	return err
}

// RetryPending applies again the pending events of the given clients (all
// clients when none are named) whose entities have all arrived. Applying
// events already frees the events waiting for them, and a batch that left
// events pending looks once more after it commits; this catches whatever
// still slips through. It returns how many were applied.
func (a *Applier) RetryPending(ctx context.Context, clients ...string) (int, error) {
	out, err := a.retryReady(ctx, clients, nil)
	n := 0
	for _, o := range out {
		if o.Outcome == Applied {
			n++
		}
	}
	return n, err
}

// retryReady applies the pending events, of the given clients and with the
// given ids (all when nil), whose entities have all arrived, and returns
// their outcomes by event id.
func (a *Applier) retryReady(ctx context.Context, clients, ids []string) (map[string]Outcome, error) {
	events, err := a.Store.Ready(ctx, clients, ids)
	if err != nil || len(events) == 0 {
		return nil, err
	}
	out, err := a.apply(ctx, a.batch(events, nil, SourceRetry, true))
	if err != nil {
		return nil, err
	}
	byID := make(map[string]Outcome, len(out))
	for _, o := range out {
		byID[o.EventID] = o
	}
	return byID, nil
}

// ExpirePending fails the events that have been pending longer than wait
// (code MISSING_REFERENCE, with what they waited for), and with them the
// pending events naming what they were to bring (REFERENCE_FAILED). It
// returns how many expired.
func (a *Applier) ExpirePending(ctx context.Context, wait time.Duration) (int, error) {
	keys, err := a.Store.ExpirePending(ctx, wait)
	if err != nil {
		return 0, err
	}
	return len(keys), a.retryWaiting(ctx, keys, false)
}

// Reprocess applies failed or pending events again as they are on record
// (after an edit, as edited) and returns their outcomes; by names who
// asked (recorded as the source "operator:<by>"). An event that is not
// failed or pending keeps its outcome; an unknown id is an error naming
// it, wrapping ErrNotFound.
func (a *Applier) Reprocess(ctx context.Context, ids []string, by string) ([]Outcome, error) {
	events, err := a.Store.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(events) != len(ids) {
		found := map[string]bool{}
		for _, e := range events {
			found[e.EventID] = true
		}
		for _, id := range ids {
			if !found[id] {
				return nil, fmt.Errorf("feed event %q: %w", id, ErrNotFound)
			}
		}
	}
	return a.apply(ctx, a.batch(events, nil, Operator(by), true))
}

// Edit replaces a failed or pending event's content with edited (a whole
// event; its event_id must be the same or empty), keeps the content first
// received, and reprocesses it.
func (a *Applier) Edit(ctx context.Context, id string, edited []byte, by string) (Outcome, error) {
	e, err := Parse(edited)
	if err != nil {
		return Outcome{}, err
	}
	if e.EventID == "" {
		e.EventID = id
	}
	if e.EventID != id {
		return Outcome{}, fmt.Errorf("event_id: the edited event says %q; it must stay %q", e.EventID, id)
	}
	replaced, current, err := a.Store.Replace(ctx, id, e)
	if err != nil {
		return Outcome{}, err
	}
	if !replaced {
		return Outcome{}, fmt.Errorf("feed event %q was %s: only failed or pending events can be edited", id, current)
	}
	out, err := a.Reprocess(ctx, []string{id}, by)
	if err != nil {
		return Outcome{}, err
	}
	return out[0], nil
}
