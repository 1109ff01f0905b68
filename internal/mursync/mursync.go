// Package mursync is MUR sync, the third block of Vivace: it takes the
// monetized usage records (MURs) the rate stage stored, sums them into
// aggregated records, cuts those into batches and has each batch sent to
// the core billing system's bulk usage call, then marks every MUR with
// what the core answered.
//
// Two services share the work, and each can crash at any point without
// losing a MUR or billing one twice:
//
//   - Ops, the operations service, runs a cycle per client (on a schedule
//     or on demand, one at a time per client across replicas): it reads
//     the client's unsynced MURs, aggregates them (Aggregate), cuts
//     batches (Cut), commits the aggregated records (each naming its
//     MURs) and the batches in one transaction under the client's lock,
//     then publishes each batch to the batches topic and waits for the
//     answers.
//   - Sender, the sync service, takes a batch from the topic, calls the
//     core, and applies the answer (Decide) in one transaction: each
//     record synced or failed with the core's code, or the whole batch
//     failed with its reason, and each MUR stamped with its record and
//     batch and marked accordingly; nothing half-marked.
//
// A MUR is written once in the usual course: by its batch's answer. A
// batch whose answer has not come when its cycle ends (or whose cycle's
// process died) has its MURs marked batched, with their record and batch,
// before the next cycle reads MURs; the answer then marks them synced or
// failed.
//
// An aggregated record keeps its id, the core's client_record_id, for
// good: a batch sent again after a crash, or records sent again after a
// fix (Ops.Run with a retry), carry the same ids, and the core replaces
// rather than adds what it already holds.
//
// The package knows nothing of PostgreSQL, Kafka, HTTP or Benthos; it
// declares the ports it needs (OpsStore, SendStore, Broker, Core,
// SettingsSource) and the adapters implement them.
package mursync

import (
	"errors"
	"fmt"
	"time"
)

// MUR is what the sync reads of an unsynced monetized usage record.
// Quantities and amounts are exact decimal text.
type MUR struct {
	ID         string
	RecordID   string
	AccountID  string
	UsageType  string
	UsageTime  time.Time
	Currency   string
	Quantity   string
	NetAmount  string
	Qualifiers [4]string // qualifier_1 .. qualifier_4, "" when absent
	RatedAt    time.Time
	// Ref is the store's own note of where it found the MUR, handed back
	// with the plan (Plan.Refs) so that it can find the place again
	// without a search; 0 when it has none.
	Ref uint64
}

// Record is an aggregated record: one entry of a bulk call's usage_recs.
type Record struct {
	// ID is the record's own id, sent as client_record_id: the core's
	// key for not billing it twice.
	ID        string
	AccountID string
	UsageType string
	Currency  string
	Day       time.Time // the UTC day of its MURs' usage
	// UsageDate is sent as usage_date: the UTC day's start for an
	// aggregated record, the MUR's usage time for a record of one MUR.
	UsageDate  time.Time
	Units      string // the MURs' quantities summed, exact
	Amount     string // their net amounts summed, with the currency's minor digits
	MURs       int
	Qualifiers [4]string
	Comments   string
	// OldestRatedAt is when the oldest of its MURs was rated.
	OldestRatedAt time.Time
}

// BatchStatus is where a batch is in its life.
type BatchStatus string

// The batch states, in order. Ready, Published and Sending are open:
// the batch waits for its answer. Done and Failed are answered.
const (
	Ready     BatchStatus = "ready"     // its records are assigned; not yet on the topic
	Published BatchStatus = "published" // on the topic, waiting for the sync service
	Sending   BatchStatus = "sending"   // the sync service is calling the core
	Done      BatchStatus = "done"      // answered: each record synced or failed
	Failed    BatchStatus = "failed"    // the call failed as a whole
)

// Answered reports whether the batch has its answer.
func (s BatchStatus) Answered() bool { return s == Done || s == Failed }

// RecordStatus is an aggregated record's state, and its MURs'.
type RecordStatus string

// Record states.
const (
	Pending RecordStatus = "pending" // in a batch without an answer yet
	Synced  RecordStatus = "synced"
	Refused RecordStatus = "failed" // the core refused it, or its batch failed
)

// Failure says why a whole batch failed.
type Failure string

// The kinds of whole-batch failure.
const (
	// FailRefused: the core refused the call (error_code ≠ 0, e.g. 1004
	// authentication) and recorded nothing.
	FailRefused Failure = "refused"
	// FailUnavailable: no answer after every attempt (timeouts, lost
	// connections, 5xx). What the core recorded is unknown; sending the
	// same records again is safe. The next cycle sends them again.
	FailUnavailable Failure = "unavailable"
	// FailBadAnswer: the core answered something that is not a bulk
	// usage answer, or an HTTP status that is no temporary trouble.
	FailBadAnswer Failure = "bad_answer"
	// FailInvalid: the batch breaks the call's rules and was not sent.
	FailInvalid Failure = "invalid"
	// FailNoEndpoint: no core endpoint or credentials are set for the
	// client.
	FailNoEndpoint Failure = "no_endpoint"
)

// CallError is a bulk call that failed as a whole.
type CallError struct {
	Failure  Failure
	Code     int64 // the core's error_code, when it gave one
	Message  string
	Attempts int
}

func (e *CallError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("core call %s: error_code %d: %s", e.Failure, e.Code, e.Message)
	}
	return fmt.Sprintf("core call %s: %s", e.Failure, e.Message)
}

// Retryable reports whether sending the same records again may succeed
// without anyone fixing anything.
func (e *CallError) Retryable() bool { return e.Failure == FailUnavailable }

// RecordError is the core's refusal of one record.
type RecordError struct {
	Code    int64  `json:"record_error_code"`
	Message string `json:"record_error_msg"`
}

// Errors of the services.
var (
	// ErrBusy: another cycle for the client is running (here or in
	// another replica).
	ErrBusy = errors.New("a sync cycle for this client is already running")
	// ErrNothingToRetry: the retry asked for names no failed record.
	ErrNothingToRetry = errors.New("no failed records to send again")
	// ErrAnswered: the batch already has its answer (a redelivery); it
	// is not marked twice.
	ErrAnswered = errors.New("the batch already has its answer")
	// ErrUnknownBatch: the batch is not in the database.
	ErrUnknownBatch = errors.New("no such sync batch")
	// ErrConcurrentChange: MURs or records changed under a cycle (its
	// lock was lost); the transaction rolled back and nothing changed.
	ErrConcurrentChange = errors.New("MURs or sync records changed under the cycle")
)
