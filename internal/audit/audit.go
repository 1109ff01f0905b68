// Package audit is the record of what people do: every change made by
// hand (a system setting, a resend of MURs to the core billing system,
// and, as they arrive, edits of exceptions and tokens) is one Entry that
// says who did what to what, the state before and after, and when. The
// entries are only ever added; storage adapters write them in the same
// transaction as the change they describe, so there is no change without
// its entry.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Actions recorded so far. New features add theirs here, so that the
// list of what can appear in the log is in one place.
const (
	SettingSet   = "setting.set"   // a system setting given a value
	SettingReset = "setting.reset" // a system setting back to its default
	SyncRun      = "sync.run"      // a MUR sync cycle asked for by hand
	SyncRetry    = "sync.retry"    // failed aggregated records sent again
)

// System is the actor of changes Vivace makes on its own account.
const System = "system"

// Operator is the actor name of a person known by name.
func Operator(name string) string {
	if name == "" {
		name = "unknown"
	}
	return "operator:" + name
}

// Entry is one recorded action.
type Entry struct {
	ID     string          `json:"audit_id"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Client string          `json:"client,omitempty"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// Target names a thing acted on: kind and id, "setting:mur_sync.interval".
func Target(kind, id string) string { return kind + ":" + id }

// Validate reports every problem of an entry about to be recorded.
func (e Entry) Validate() error {
	var errs []error
	if strings.TrimSpace(e.Actor) == "" {
		errs = append(errs, errors.New("audit entry: actor is required"))
	}
	if strings.TrimSpace(e.Action) == "" {
		errs = append(errs, errors.New("audit entry: action is required"))
	}
	if strings.TrimSpace(e.Target) == "" {
		errs = append(errs, errors.New("audit entry: target is required"))
	}
	for name, v := range map[string]json.RawMessage{"before": e.Before, "after": e.After} {
		if len(v) > 0 && !json.Valid(v) {
			errs = append(errs, fmt.Errorf("audit entry: %s is not JSON", name))
		}
	}
	return errors.Join(errs...)
}

// Filter selects entries; zero fields select everything.
type Filter struct {
	Client string
	Target string
	Action string
	Actor  string
	Since  time.Time
	// Limit bounds the number of entries, newest first; 0 means 100.
	Limit int
}

// Log reads the recorded entries, newest first.
type Log interface {
	List(ctx context.Context, f Filter) ([]Entry, error)
}

// JSON encodes v for Before or After; nil stays nil (no state).
func JSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only values made by Vivace itself are encoded here.
		panic(fmt.Sprintf("audit: encode %T: %v", v, err))
	}
	return b
}
