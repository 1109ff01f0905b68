package rules

import (
	"context"
	"encoding/json"
	"time"
)

// CorrelationPart is one record held in a correlation group: its source
// position, the raw record as it arrived and its message metadata.
type CorrelationPart struct {
	Client    string
	FileID    string
	Line      int64
	Part      int
	Key       string // the group's key (set on input; filled in when read)
	Record    json.RawMessage
	Meta      map[string]string
	ArrivedAt time.Time
}

// CorrelationGroup is the records of one client, rule and key held
// together, in arrival order, as the store keeps them.
type CorrelationGroup struct {
	GroupID   int64
	Client    string
	Rule      string
	Key       string
	OpenedAt  time.Time
	Deadline  time.Time
	EmittedAt time.Time // zero while the group is open
	Outcome   Outcome   // set once emitted
	Emissions int       // how many times it was emitted
	Parts     []CorrelationPart
}

// Decider looks at a locked group and answers the outcome to emit it
// with, or OutcomeOpen to keep it open.
type Decider func(g *CorrelationGroup) (Outcome, error)

// CorrelateResult is what adding records to groups did.
type CorrelateResult struct {
	Held     int                // records stored in a group
	Replayed int                // records already held or already ended: nothing changed
	Emitted  []CorrelationGroup // groups decided closed, marked emitted
}

// SweepResult is what one sweep of a rule's groups did.
type SweepResult struct {
	TimedOut []CorrelationGroup // open groups past their deadline, now emitted
	Resent   []CorrelationGroup // emitted groups whose outcome is not recorded yet, emitted again
	Cleaned  int                // emitted groups whose every record has an outcome, deleted
}

// CorrelationStore keeps correlation groups where they survive a restart
// (internal/store/rulestore keeps them in PostgreSQL).
type CorrelationStore interface {
	// CorrelateParts adds records to the open groups of rule (opening a
	// group for a key that has none, with a deadline window after now),
	// then asks decide about every group that received a record, in one
	// transaction. Groups are locked while decide looks at them. A record
	// whose source position the rule already holds, or that already has
	// an outcome (a MUR, an exception, a filtered record), is a replay
	// and changes nothing. Groups decide closes are marked emitted and
	// returned.
	CorrelateParts(ctx context.Context, rule string, parts []CorrelationPart, window time.Duration,
		now time.Time, decide Decider) (CorrelateResult, error)
	// SweepCorrelation closes rule's open groups whose deadline has passed
	// (decide picks the outcome), emits again the groups emitted more
	// than resendAfter ago of which some record has no recorded outcome
	// yet, and deletes emitted groups whose records all have one; at most
	// limit groups of each kind.
	SweepCorrelation(ctx context.Context, rule string, now time.Time, resendAfter time.Duration,
		limit int, decide Decider) (SweepResult, error)
}
