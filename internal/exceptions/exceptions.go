// Package exceptions is the model of a record that could not become a
// MUR: where it came from, which check it failed (a stable code), and
// where a person is in working it.
package exceptions

import (
	"encoding/json"
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
	CreatedAt   time.Time
	UpdatedAt   time.Time
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

	// Clients, when not empty, keeps to these clients (a token's scope).
	Clients []string
}
