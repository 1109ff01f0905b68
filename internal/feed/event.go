// Package feed is the core system's catalog-account sync without
// storage: the events' envelope and its checks, what applying a batch of
// them decides (applied, ignored, pending, failed: Decide), and the
// Applier that runs those decisions through a Store and lets events
// waiting for an entity apply once it arrives.
package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"vivace.dev/vivace/internal/jsonx"
)

// Entities the feed carries.
const (
	EntityAccount      = "account"
	EntityUsageType    = "usage_type"
	EntityPlan         = "plan"
	EntitySubscription = "subscription"
	EntityDiscount     = "discount"
)

// Ops.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Result is what applying an event came to.
type Result string

// Results of applying an event.
const (
	Applied Result = "applied"
	Ignored Result = "ignored" // not newer than what is stored
	Failed  Result = "failed"
	// Pending: the event names an entity the catalog does not hold yet (a
	// subscription to a plan still on its way). It is tried again as
	// entities arrive, and fails with MISSING_REFERENCE when the wait
	// runs out.
	Pending Result = "pending"
)

// Repairable reports whether an event with this result may be applied
// again (retried, reprocessed or edited by an operator): only failed and
// pending events are; the others keep their outcome.
func (r Result) Repairable() bool { return r == Failed || r == Pending }

// Code says why an event failed or waits.
type Code string

// Codes of failed and pending events.
const (
	// CodeInvalidEvent: the event cannot be applied as it is (not an
	// event, a required field missing, a value of the wrong type or
	// invalid).
	CodeInvalidEvent Code = "INVALID_EVENT"
	// CodeMissingReference: the event names an entity the catalog does
	// not hold; pending, and failed once the wait runs out.
	CodeMissingReference Code = "MISSING_REFERENCE"
	// CodeReferenceFailed: the event names an entity whose own event
	// failed. It waits for that entity and applies once it is repaired.
	CodeReferenceFailed Code = "REFERENCE_FAILED"
)

// Source is who applied an event: the feed as delivered, a retry of a
// pending event, or an operator.
type Source string

// Sources of an event's outcome.
const (
	SourceFeed  Source = "feed"  // as delivered on the feed topic
	SourceRetry Source = "retry" // a pending event tried again as entities arrived
)

// Operator is the source of an event an operator reprocessed or edited.
func Operator(name string) Source { return Source("operator:" + name) }

// Ref names one catalog entity.
type Ref struct {
	Entity, ID string
}

// References returns the entities an upsert's data names and that must
// exist for it to apply: a subscription's account and plan, a discount's
// account or plan, a plan's usage types. Deletes name none. Data that
// does not decode names none (validation reports it).
func (e *Event) References() []Ref {
	if e.Op != OpUpsert {
		return nil
	}
	var d struct {
		AccountID string `json:"account_id"`
		PlanID    string `json:"plan_id"`
		Rates     []struct {
			UsageType string `json:"usage_type"`
		} `json:"rates"`
	}
	if json.Unmarshal(e.Data, &d) != nil {
		return nil
	}
	var refs []Ref
	switch e.Entity {
	case EntitySubscription, EntityDiscount:
		if d.AccountID != "" {
			refs = append(refs, Ref{EntityAccount, d.AccountID})
		}
		if d.PlanID != "" {
			refs = append(refs, Ref{EntityPlan, d.PlanID})
		}
	case EntityPlan:
		seen := map[string]bool{}
		for _, r := range d.Rates {
			if r.UsageType != "" && !seen[r.UsageType] {
				seen[r.UsageType] = true
				refs = append(refs, Ref{EntityUsageType, r.UsageType})
			}
		}
	}
	return refs
}

// Event is one message of the core feed.
type Event struct {
	EventID    string          `json:"event_id"`
	Client     string          `json:"client"`
	Entity     string          `json:"entity"`
	EntityID   string          `json:"entity_id"`
	Version    int64           `json:"version"`
	OccurredAt time.Time       `json:"occurred_at"`
	Op         string          `json:"op"`
	Data       json.RawMessage `json:"data,omitempty"`
	// SourceError is set by a producer that could not read the entity it
	// was given (the core system's native feed sent malformed JSON, say):
	// the event is recorded as failed with this message, so that the
	// problem is on record where operators look instead of being dropped.
	SourceError string `json:"source_error,omitempty"`

	// Extra holds the envelope's fields Vivace does not use (a source, a
	// trace id, whatever a new release adds), as received: they are kept
	// with the event, written back with it and otherwise ignored.
	Extra map[string]json.RawMessage `json:"-"`
	// Warnings name what Validate found in the data and ignores: fields
	// Vivace does not use, fields the entity's model does not use. They
	// never fail the event; its outcome carries them.
	Warnings []string `json:"-"`
	// Kept is the data as the catalog keeps it, without what Warnings name,
	// when Validate found that to differ from Data.
	Kept json.RawMessage `json:"-"`
}

// DataValidator checks an upsert's data for one entity kind. An error
// means the data cannot be applied: something needed is missing, of the
// wrong type or invalid. Otherwise it returns what it ignores, each
// warning naming its field, and the data without it (nil when nothing was
// left out).
type DataValidator func(entity string, data json.RawMessage) (warnings []string, kept json.RawMessage, err error)

// Validate checks the envelope, and the data with check when given. All
// problems are reported together, each naming its field. What the check
// ignores is left in e.Warnings and e.Kept.
func (e *Event) Validate(check DataValidator) error {
	e.Warnings, e.Kept = nil, nil
	var errs []error
	if e.SourceError != "" {
		errs = append(errs, fmt.Errorf("source: %s", e.SourceError))
	}
	if strings.TrimSpace(e.EventID) == "" {
		errs = append(errs, errors.New("event_id: required"))
	}
	if strings.TrimSpace(e.Client) == "" {
		errs = append(errs, errors.New("client: required"))
	}
	switch e.Entity {
	case EntityAccount, EntityUsageType, EntityPlan, EntitySubscription, EntityDiscount:
	case "":
		errs = append(errs, errors.New("entity: required"))
	default:
		errs = append(errs, fmt.Errorf("entity: %q is not one of account, usage_type, plan, subscription, discount", e.Entity))
	}
	if strings.TrimSpace(e.EntityID) == "" {
		errs = append(errs, errors.New("entity_id: required"))
	}
	if e.Version <= 0 {
		errs = append(errs, errors.New("version: must be a positive integer"))
	}
	if e.OccurredAt.IsZero() {
		errs = append(errs, errors.New("occurred_at: required (RFC 3339)"))
	}
	switch e.Op {
	case OpUpsert:
		if len(e.Data) == 0 || string(e.Data) == "null" {
			errs = append(errs, errors.New("data: required for an upsert"))
		} else if check != nil && len(errs) == 0 {
			warnings, kept, err := check(e.Entity, e.Data)
			if err != nil {
				errs = append(errs, fmt.Errorf("data: %w", err))
			}
			for _, w := range warnings {
				e.Warnings = append(e.Warnings, "data: "+w)
			}
			e.Kept = kept
		}
	case OpDelete:
	case "":
		errs = append(errs, errors.New("op: required"))
	default:
		errs = append(errs, fmt.Errorf("op: %q is not upsert or delete", e.Op))
	}
	return errors.Join(errs...)
}

// Parse decodes one event. Envelope fields Vivace does not use are kept
// in Extra; a misspelt field Vivace needs is found by Validate, which
// names it as missing.
func Parse(b []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not a feed event: %w", jsonx.Describe(err, "an event object"))
	}
	if dec.More() {
		return e, errors.New("not a feed event: more than one JSON value")
	}
	return e, nil
}

// envelope is Event without its methods, for encoding/json.
type envelope Event

// envelopeFields are the JSON names of the fields Event reads.
var envelopeFields = map[string]bool{"event_id": true, "client": true, "entity": true, "entity_id": true,
	"version": true, "occurred_at": true, "op": true, "data": true, "source_error": true}

// UnmarshalJSON reads an event, keeping the fields it does not use in
// Extra. Events without such fields, the usual case, are read in one pass.
func (e *Event) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v envelope
	err := dec.Decode(&v)
	if err == nil {
		*e = Event(v)
		return nil
	}
	// encoding/json says that a field is unknown only in its message;
	// the fields are then sorted out by name.
	if !strings.HasPrefix(err.Error(), "json: unknown field ") {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	v = envelope{}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for k, raw := range fields {
		if !knownEnvelopeField(k) {
			if v.Extra == nil {
				v.Extra = map[string]json.RawMessage{}
			}
			v.Extra[k] = raw
		}
	}
	*e = Event(v)
	return nil
}

// knownEnvelopeField matches a name as encoding/json does: exactly, else
// ignoring case.
func knownEnvelopeField(k string) bool {
	return envelopeFields[k] || envelopeFields[strings.ToLower(k)]
}

// MarshalJSON writes the event with its extra fields.
func (e Event) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(envelope(e))
	if err != nil || len(e.Extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		if !knownEnvelopeField(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := b[:len(b)-1] // without the closing brace
	for _, k := range keys {
		name, _ := json.Marshal(k)
		out = append(append(append(append(out, ','), name...), ':'), e.Extra[k]...)
	}
	return append(out, '}'), nil
}

// Outcome is what became of an event.
type Outcome struct {
	EventID string
	Outcome Result
	Code    Code // for failed and pending events
	Message string
	// Warnings name what the event carried that Vivace ignores.
	Warnings []string
}

// EventRecord is an event on record with its outcome.
type EventRecord struct {
	EventID         string
	Client          string
	Entity          string
	EntityID        string
	Version         int64
	Op              string
	OccurredAt      *time.Time
	Outcome         Result
	Code            Code
	Message         string
	Source          Source
	Attempts        int
	ReceivedAt      time.Time
	AppliedAt       *time.Time
	UpdatedAt       time.Time
	Payload         json.RawMessage // the event as it stands (edited: as edited)
	OriginalPayload json.RawMessage // the event as first received, when edited
	Warnings        []string        // what the event carried that Vivace ignores
}

// EventFilter selects events on record. Empty fields match all.
type EventFilter struct {
	Client   string
	Outcome  Result
	Code     Code
	Entity   string
	EntityID string
	Warned   bool // only events with warnings
	Limit    int  // default 1000

	// Clients, when not empty, keeps to these clients (a token's scope).
	Clients []string
	// EventIDs, when not empty, keeps to these events.
	EventIDs []string
}
