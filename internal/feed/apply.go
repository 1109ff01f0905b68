package feed

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned for an event id that is not on record.
var ErrNotFound = errors.New("not found")

// EditRefused is an edit that cannot be made as sent: the edited event is
// not an event, changes its id, or replaces one that is not failed or
// pending. Its message is for the person who sent it; any other error of
// Edit is the storage's.
type EditRefused struct{ Err error }

func (e *EditRefused) Error() string { return e.Err.Error() }
func (e *EditRefused) Unwrap() error { return e.Err }

// Store is what applying events needs from storage;
// internal/store/catalogstore implements it.
type Store interface {
	// Update runs fn in one transaction and commits it. When the
	// transaction loses a race with a concurrent writer of the same
	// entities or events it runs fn again from the start, so fn must be
	// repeatable.
	Update(ctx context.Context, fn func(Tx) error) error
	// Waiting returns the pending events that wait for any of keys,
	// oldest first.
	Waiting(ctx context.Context, keys []EntityKey) ([]Event, error)
	// Ready returns, oldest first, pending events whose references are
	// all live now: those with the given ids, or, when ids is nil, those
	// of the given clients (of every client when none is given).
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
	// returns how many.
	ExpirePending(ctx context.Context, wait time.Duration) (int, error)
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
	// Write stores the decision: the outcomes of the events it records
	// (with b.Source), the entities it writes and the change counters of
	// their clients.
	Write(ctx context.Context, b *Batch, d *Decision) error
}

// Applier applies feed events to the catalog through a Store, and lets
// the events waiting for an entity apply once it arrives.
type Applier struct{ Store Store }

// NewApplier returns an Applier over st.
func NewApplier(st Store) *Applier { return &Applier{Store: st} }

// Apply applies delivered events in one transaction, in the order given
// (invalid[i] is why events[i] cannot apply, or nil; invalid may be nil),
// and returns each event's outcome (see Batch.Decide). An event id on
// record keeps its first outcome, so a redelivered event is neither
// applied twice nor reported differently. Events that were waiting for
// what the batch applied are applied too before Apply returns.
func (a *Applier) Apply(ctx context.Context, events []Event, invalid []error) ([]Outcome, error) {
	return a.apply(ctx, NewBatch(events, invalid, SourceFeed, false))
}

func (a *Applier) apply(ctx context.Context, b *Batch) ([]Outcome, error) {
	var d *Decision
	err := a.Store.Update(ctx, func(tx Tx) error {
		onRecord, err := tx.Outcomes(ctx, b.IDs(), b.Again)
		if err != nil {
			return err
		}
		state, err := tx.States(ctx, b.Keys())
		if err != nil {
			return err
		}
		d = b.Decide(onRecord, state)
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
	var pending []string
	for _, o := range out {
		if o.Outcome == Pending {
			pending = append(pending, o.EventID)
		}
	}
	if len(pending) > 0 {
		now, err := a.retryReady(ctx, nil, pending)
		if err != nil {
			return nil, fmt.Errorf("retry events left pending: %w", err)
		}
		for i := range out {
			if o, ok := now[out[i].EventID]; ok && out[i].Outcome == Pending {
				out[i] = o
			}
		}
	}
	// What arrived may be what pending events wait for; they apply now,
	// and what they apply in turn frees the next (usage type, plan,
	// subscription).
	if applied := d.Applied(); len(applied) > 0 {
		waiting, err := a.Store.Waiting(ctx, applied)
		if err != nil {
			return nil, fmt.Errorf("find events waiting for applied entities: %w", err)
		}
		if len(waiting) > 0 {
			if _, err := a.apply(ctx, NewBatch(waiting, nil, SourceRetry, true)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
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
	out, err := a.apply(ctx, NewBatch(events, nil, SourceRetry, true))
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
// (code MISSING_REFERENCE, with what they waited for), and returns how
// many.
func (a *Applier) ExpirePending(ctx context.Context, wait time.Duration) (int, error) {
	return a.Store.ExpirePending(ctx, wait)
}

// Reprocess applies failed or pending events again as they are on record
// (after an edit, as edited), checking each with validate, and returns
// their outcomes; by names who asked (recorded as the source
// "operator:<by>"). An event that is not failed or pending keeps its
// outcome; an unknown id is an error naming it, wrapping ErrNotFound.
func (a *Applier) Reprocess(ctx context.Context, ids []string, by string, validate DataValidator) ([]Outcome, error) {
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
	invalid := make([]error, len(events))
	for i := range events {
		invalid[i] = events[i].Validate(validate)
	}
	return a.apply(ctx, NewBatch(events, invalid, Operator(by), true))
}

// Edit replaces a failed or pending event's content with edited (a whole
// event; its event_id must be the same or empty), keeps the content first
// received, and reprocesses it.
func (a *Applier) Edit(ctx context.Context, id string, edited []byte, by string, validate DataValidator) (Outcome, error) {
	e, err := Parse(edited)
	if err != nil {
		return Outcome{}, &EditRefused{err}
	}
	if e.EventID == "" {
		e.EventID = id
	}
	if e.EventID != id {
		return Outcome{}, &EditRefused{fmt.Errorf("event_id: the edited event says %q; it must stay %q", e.EventID, id)}
	}
	replaced, current, err := a.Store.Replace(ctx, id, e)
	if err != nil {
		return Outcome{}, err
	}
	if !replaced {
		return Outcome{}, &EditRefused{fmt.Errorf("feed event %q was %s: only failed or pending events can be edited", id, current)}
	}
	out, err := a.Reprocess(ctx, []string{id}, by, validate)
	if err != nil {
		return Outcome{}, err
	}
	return out[0], nil
}
