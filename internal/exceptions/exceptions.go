// Package exceptions is the model of a record that could not become a
// MUR: where it came from, which check it failed (a stable code), and
// where a person is in working it.
package exceptions

import (
	"encoding/json"
	"slices"
	"time"

	"vivace.dev/vivace/internal/codes"
)

// Status is where an exception is in being worked.
type Status string

// Exception statuses.
const (
	Open         Status = "open"
	Reprocessing Status = "reprocessing" // sent through the pipeline again
	Resolved     Status = "resolved"     // the record became a MUR
	Discarded    Status = "discarded"    // a person decided it is not to be billed
)

// Exception is a record that could not become a MUR. (Client, FileID,
// Line, Part) is its source position, stored once.
type Exception struct {
	ExceptionID string
	Client      string
	FileID      string
	Line        int64
	Part        int
	Parts       int // the line's number of parts when mediation split it
	RecordID    string
	Stage       string
	Code        codes.Code
	Field       string
	Message     string
	Status      Status
	Attempts    int
	Record      json.RawMessage // the record as it arrived
	// Raw, when set, is the message byte for byte as the stage received
	// it: one that could not be read as a record (Record then holds what
	// could be read of it), or one too large for the topics.
	Raw       []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Unreadable is a message a stage could not read at all, not even the
// client and file it came from, so that no file's counts can take it as an
// exception: it is kept as it arrived, with where it sat on its topic.
type Unreadable struct {
	Stage     string
	Topic     string
	Partition int32 // -1 when it came from no topic
	Offset    int64
	Reason    string
	Raw       []byte
	CreatedAt time.Time
}

// Filtered reports whether the record was dropped on purpose by a
// mediation rule: it travels the exceptions route but is a filtered
// record of its file, not an exception.
func (e *Exception) Filtered() bool { return e.Code == codes.Filtered }

// Filter selects exceptions; empty fields match all.
type Filter struct {
	Client string
	FileID string
	Stage  string
	Code   codes.Code
	Status Status
	// AccountID matches the account_id of the record as it failed.
	AccountID string
	// From and To bound when the exception was recorded (created_at):
	// From ≤ created_at < To.
	From, To *time.Time

	// Clients, when not empty, keeps to these clients (a token's scope).
	Clients []string
}

// Statuses lists the exception statuses.
var Statuses = []Status{Open, Reprocessing, Resolved, Discarded}

// Valid reports whether s is an exception status.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// Stages lists the stages an exception is recorded at: "exceptions" is
// the exceptions stage, for a message on its topic that is not an
// exception (docs/exceptions.md, "Messages a stage cannot read").
var Stages = []string{"ingest", "mediate", "rate", "exceptions"}
