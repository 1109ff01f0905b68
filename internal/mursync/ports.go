package mursync

import (
	"context"
	"time"

	"vivace.dev/vivace/internal/settings"
)

// SettingsSource gives the MUR sync settings in effect; they are read at
// the start of every cycle and of every call, so a change applies
// without a restart.
type SettingsSource interface {
	MURSync(ctx context.Context) (settings.MURSync, error)
}

// Message is one record for the broker.
type Message struct {
	Key, Value []byte
}

// Broker publishes to the batches topic. Publish returns once the broker
// has every message, or an error.
type Broker interface {
	Publish(ctx context.Context, msgs []Message) error
}

// Core is the core billing system's bulk usage call. Send calls it for
// the client's batch with the settings' attempts, timeout and rate
// limit. It returns the records the core refused, by client_record_id,
// and the number of tries; a call that failed as a whole is a
// *CallError; any other error (the context ended) means nothing is known
// and nothing may be marked.
type Core interface {
	Send(ctx context.Context, call Call) (Answer, error)
}

// Call is one bulk call.
type Call struct {
	Client   string
	BatchID  string
	Records  []Record
	Settings settings.MURSync
}

// Answer is a call the core took.
type Answer struct {
	Refused  map[string]RecordError
	Attempts int
}

// JobStatus is where a job is.
type JobStatus string

// Job states.
const (
	JobRunning JobStatus = "running"
	JobDone    JobStatus = "done"   // every batch answered and none failed as a whole
	JobFailed  JobStatus = "failed" // could not run, a batch failed as a whole, or answers did not come in time
)

// Trigger says why a cycle ran.
type Trigger string

// Triggers.
const (
	BySchedule Trigger = "schedule"
	ByHand     Trigger = "manual"
	ByRetry    Trigger = "retry"
)

// Job is one recorded cycle for one client. Aggregates, Batches and
// MURs count what it published; Synced and Failed the records of those
// batches the core has answered for so far (answers that come after the
// job ended still count).
type Job struct {
	ID          string     `json:"job_id"`
	Client      string     `json:"client"`
	Trigger     Trigger    `json:"trigger"`
	RequestedBy string     `json:"requested_by,omitempty"`
	Owner       string     `json:"owner"`
	Status      JobStatus  `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Aggregates  int        `json:"aggregates"`
	Batches     int        `json:"batches"`
	MURs        int64      `json:"murs"`
	Synced      int        `json:"synced"`
	Failed      int        `json:"failed"`
	Error       string     `json:"error,omitempty"`
}

// Cursor is a place in the order in which a cycle reads MURs: the last
// MUR read. A cycle reads its chunks one after another from there, so a
// chunk never holds a MUR of an earlier one (whose records may not be
// committed yet) and the read starts where the last one ended.
type Cursor struct {
	UsageTime time.Time
	ID        string
}

// Plan is one aggregation pass, committed in one transaction: the
// records and batches made, and every MUR's record (or why it cannot be
// sent).
type Plan struct {
	Client  string
	JobID   string
	Records []Record
	// Batches are consecutive ranges of Records.
	Batches []PlannedBatch
	// MURIDs are the MURs read; Of[i] is the index in Records of MUR i's
	// record, -1 for a MUR in Unsendable; Refs[i] is MUR i's Ref.
	MURIDs     []string
	Of         []int32
	Refs       []uint64
	Unsendable []Unsendable
	CreatedAt  time.Time
}

// PlannedBatch is a batch of a plan: Records[From:To].
type PlannedBatch struct {
	ID       string
	From, To int
}

// Selection names failed records to send again.
type Selection struct {
	Client string
	// BatchID limits it to one batch's failed records.
	BatchID string
	// Failure limits it to records of batches that failed as a whole
	// for this reason ("" for every failed record).
	Failure Failure
}

// Resendable is a failed record that can be sent again.
type Resendable struct {
	ID      string // the aggregated record, its client_record_id
	BatchID string // the batch that last carried it
	MURs    int
}

// Resend is a plan of records sent again: new batches for records that
// keep their ids.
type Resend struct {
	Client    string
	JobID     string
	Batches   []ResendBatch
	CreatedAt time.Time
}

// ResendBatch is one new batch of a resend.
type ResendBatch struct {
	ID       string
	ResendOf string // the old batch, when all its records come from one
	Records  []Resendable
}

// Progress is how far a job's batches are.
type Progress struct {
	Job      Job
	Open     int // batches without an answer yet
	Failures []BatchFailure
}

// BatchFailure is a batch that failed as a whole.
type BatchFailure struct {
	BatchID string  `json:"batch_id"`
	Failure Failure `json:"failure"`
	Code    int64   `json:"error_code,omitempty"`
	Message string  `json:"error_msg"`
	Records int     `json:"records"`
}

// OpsStore is what the operations service needs from storage.
type OpsStore interface {
	// Lock takes the client's cycle lock, held until unlock is called or
	// the process ends. With wait false it returns ErrBusy at once when
	// another holds it; with wait true it waits (ctx bounds the wait).
	Lock(ctx context.Context, client string, wait bool) (unlock func(), err error)
	// StartJob records a new running job; jobs of the client still
	// recorded as running (their process ended) are ended as failed.
	StartJob(ctx context.Context, j Job) error
	// FinishJob records a job's status, end and error.
	FinishJob(ctx context.Context, j Job) error
	// Unsynced returns up to limit of the client's unsynced MURs in
	// order of usage time and id, after the cursor (from the first when
	// it is zero).
	Unsynced(ctx context.Context, client string, after Cursor, limit int) ([]MUR, error)
	// SavePlan commits a plan, while the cycle lock is held: records
	// (with their MURs), batches (ready) and the MURs that cannot be sent
	// (failed); or nothing (ErrConcurrentChange when a MUR is no longer
	// unsynced). The other MURs stay as they are until their batch's
	// answer, or HandOver, marks them.
	SavePlan(ctx context.Context, p Plan) error
	// HandOver marks batched, with their record and batch, the MURs of
	// the client's batches without an answer whose MURs are not marked
	// yet; it returns how many.
	HandOver(ctx context.Context, client string) (int64, error)
	// Resendable returns the failed records the selection names, in
	// their batches' order.
	Resendable(ctx context.Context, sel Selection) ([]Resendable, error)
	// SaveResend commits a resend: new ready batches, the records moved
	// to them (pending again), their MURs batched again; or nothing
	// (ErrConcurrentChange when a record is no longer failed).
	SaveResend(ctx context.Context, r Resend) error
	// ReadyBatches returns the client's batches not yet on the topic,
	// with their records.
	ReadyBatches(ctx context.Context, client string) ([]BatchMessage, error)
	// MarkPublished records batches as on the topic and sent by jobID.
	MarkPublished(ctx context.Context, jobID string, batchIDs []string) error
	// Progress reads a job's counts and its batches' state.
	Progress(ctx context.Context, jobID string) (Progress, error)
	// Clients lists the clients with work: unsynced MURs, batches not
	// yet published, or records of batches that found the core
	// unavailable.
	Clients(ctx context.Context) ([]string, error)
}

// Outcome is what a batch's answer means, applied in one transaction.
type Outcome struct {
	BatchID  string
	Status   BatchStatus // Done or Failed
	Attempts int
	// Failed whole: the reason.
	Call *CallError
	// Done: the records the core refused, by id; every other record of
	// the batch is synced.
	Refused map[string]RecordError
	At      time.Time
}

// BatchInfo is a batch as the sync service finds it.
type BatchInfo struct {
	BatchID string
	Client  string
	JobID   string
	Status  BatchStatus // before this attempt
	Records int
	MURs    int64
}

// SendStore is what the sync service needs from storage.
type SendStore interface {
	// BeginSend counts an attempt to send the batch and marks it
	// sending, unless it has its answer already; it returns the batch as
	// it was (ErrUnknownBatch when there is none).
	BeginSend(ctx context.Context, batchID string) (BatchInfo, error)
	// Answer applies an outcome: the batch, its records, their MURs and
	// its job's counts in one transaction; ErrAnswered (and nothing
	// changed) when the batch had its answer already.
	Answer(ctx context.Context, o Outcome) (Result, error)
	// Result reads a batch's stored answer.
	Result(ctx context.Context, batchID string) (Result, error)
	// BatchRecords reads the records a batch carries, for a message
	// that left them out.
	BatchRecords(ctx context.Context, batchID string) ([]Record, error)
}
