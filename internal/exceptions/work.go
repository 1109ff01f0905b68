package exceptions

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

// Resolution says how an exception stopped being open.
type Resolution string

// Resolutions.
const (
	Rated      Resolution = "rated"      // its record became a MUR
	Superseded Resolution = "superseded" // another copy of its record id became a MUR
	Dropped    Resolution = "discarded"  // a person discarded it, with a reason
)

// Position is where a record came from: a file, a line and a part.
type Position struct {
	FileID string `json:"file_id"`
	Line   int64  `json:"line"`
	Part   int    `json:"part"`
}

// Work is what people did to an exception: the record as edited, how it
// was resolved and why.
type Work struct {
	// Arrived is the record as it first arrived when a reprocess failed
	// again (Exception.Record is then the record as that stage saw it);
	// nil when Exception.Record is as it arrived.
	Arrived json.RawMessage
	// Edited is the record as a person last edited it (a JSON object of
	// fields); nil when it was never edited. Exception.Record keeps the
	// record as it arrived.
	Edited   json.RawMessage
	EditedBy string
	EditedAt *time.Time
	// Resolution and Reason: how it was resolved and why (a discard's
	// reason, or which source superseded it).
	Resolution Resolution
	Reason     string
	// SupersededBy is the source whose MUR took the record id.
	SupersededBy *Position
}

// Detail is one exception with what was done to it and its history.
type Detail struct {
	Exception
	Work
	// History is the audit log of the exception, oldest first.
	History []auth.AuditEntry
}

// Query selects a page of exceptions.
type Query struct {
	Filter
	// IDs, when not empty, keeps to these exceptions.
	IDs []string
	// After is the cursor of the last page (Page.Next); empty for the
	// first page.
	After string
	// Limit bounds the page; 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Page is one page of a list, newest first; Next is the cursor of the
// next page, empty after the last one.
type Page struct {
	Items []Listed
	Next  string
}

// Listed is an exception in a list, with what was done to it.
type Listed struct {
	Exception
	Work
}

// Count is how many exceptions a filter selects with one code at one
// stage.
type Count struct {
	Code  codes.Code
	Stage string
	N     int64
}

// Selection is what a bulk action works on: the listed exceptions, or
// every exception a filter selects (All must be set to act on a filter
// with nothing in it, so that a forgotten flag never works every
// exception).
type Selection struct {
	IDs    []string `json:"ids,omitempty"`
	Filter Filter   `json:"filter"`
	All    bool     `json:"all,omitempty"`
}

// Validate refuses a selection that names nothing, or a filter without
// a condition unless All says so.
func (s Selection) Validate() error {
	if len(s.IDs) > 0 {
		if len(s.IDs) > MaxLimit {
			return &Refused{Reason: fmt.Sprintf("ids: %d exceptions listed; at most %d, or select them by a filter", len(s.IDs), MaxLimit)}
		}
		for _, id := range s.IDs {
			if strings.TrimSpace(id) == "" {
				return &Refused{Reason: "ids: an empty exception id"}
			}
		}
		return nil
	}
	if err := s.Filter.Validate(); err != nil {
		return err
	}
	if !s.All && s.Filter.empty() {
		return &Refused{Reason: "nothing selected: name exceptions, a filter (client, file, code, stage, status, account, time), or all"}
	}
	return nil
}

func (f Filter) empty() bool {
	return f.Client == "" && f.FileID == "" && f.Stage == "" && f.Code == "" && f.Status == "" &&
		f.AccountID == "" && f.From == nil && f.To == nil
}

// Validate refuses a filter with a value no exception can have.
func (f Filter) Validate() error {
	switch {
	case f.Status != "" && !f.Status.Valid():
		return &Refused{Reason: fmt.Sprintf("status: %q is not an exception status (%s)", f.Status, joinStatuses())}
	case f.Stage != "" && !slices.Contains(Stages, f.Stage):
		return &Refused{Reason: fmt.Sprintf("stage: %q is not a stage (%s)", f.Stage, strings.Join(Stages, ", "))}
	case f.Code != "" && !codes.Known(f.Code):
		return &Refused{Reason: fmt.Sprintf("code: %q is not an exception code (docs/exceptions.md)", f.Code)}
	case f.From != nil && f.To != nil && !f.From.Before(*f.To):
		return &Refused{Reason: "from must be before to"}
	}
	return nil
}

func joinStatuses() string {
	s := make([]string, len(Statuses))
	for i, x := range Statuses {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// Refused is a request that cannot be carried out as asked: a record
// that does not pass the checks, an exception in a state that does not
// allow the action, a selection that names nothing. Its reason is for the
// person who asked.
type Refused struct {
	// Code, Field: the exception code and field of an edited record that
	// fails the stage's checks; empty otherwise.
	Code   codes.Code
	Field  string
	Reason string
}

func (e *Refused) Error() string { return e.Reason }

// ErrNotFound is an exception or job that does not exist (or that the
// caller may not see).
var ErrNotFound = errors.New("not found")

// Fields returns the record of e as a flat object of fields, the form an
// edit takes: the record as edited if it was, else as it arrived. A
// record the rate stage failed is in normal form and is flattened
// (usage_time in RFC 3339, qualifiers and attributes as fields); a line
// that could not be read is {"raw": "…"}.
func Fields(e *Exception, w *Work) (map[string]string, error) {
	if w != nil && len(w.Edited) > 0 {
		return decodeFields(w.Edited)
	}
	if e.Stage == "rate" {
		r, err := decodeNormal(e.Record)
		if err != nil {
			return nil, err
		}
		return normalFields(r), nil
	}
	return decodeFields(e.Record)
}

func decodeNormal(b []byte) (usage.Record, error) {
	var r usage.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("the stored record is not in normal form: %v", err)
	}
	return r, nil
}

func normalFields(r usage.Record) map[string]string {
	m := map[string]string{
		usage.FieldRecordID:  r.RecordID,
		usage.FieldAccountID: r.AccountID,
		usage.FieldUsageType: r.UsageType,
		usage.FieldQuantity:  r.Quantity,
		usage.FieldUsageTime: r.UsageTime.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range r.Qualifiers {
		m[k] = v
	}
	for k, v := range r.Attributes {
		m[k] = v
	}
	return m
}

// decodeFields reads a JSON object of string fields; the error names the
// field at fault.
func decodeFields(b []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return nil, &Refused{Reason: "the record must be a JSON object of fields, each a string"}
	}
	out := make(map[string]string, len(raw))
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		var s string
		if err := json.Unmarshal(raw[k], &s); err != nil {
			return nil, &Refused{Field: k, Reason: fmt.Sprintf("field %s: %s is not a string", k, clip(string(raw[k]), 40))}
		}
		if strings.TrimSpace(k) == "" {
			return nil, &Refused{Reason: "a field without a name"}
		}
		out[k] = s
	}
	return out, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ruleSet are the checks an edited record must pass: the client's
// normal-form rules, with RFC 3339 timestamps for a record the rate
// stage failed (its usage_time is already in normal form).
func ruleSet(e *Exception, rules usage.Rules) usage.Rules {
	if e.Stage == "rate" {
		rules.Time = usage.TimeFormat{}
	}
	return rules
}

// CheckEdit checks an edited record of e as the pipeline would before
// accepting it: a flat object of string fields that passes the
// normal-form checks (MISSING_FIELD, BAD_QUANTITY, BAD_TIMESTAMP, in that
// order) with the client's rules. It returns the fields as they will be
// stored, re-encoded.
func CheckEdit(e *Exception, edited []byte, rules usage.Rules, now time.Time) (json.RawMessage, error) {
	fields, err := decodeFields(edited)
	if err != nil {
		return nil, err
	}
	if _, ok := fields["raw"]; ok && len(fields) == 1 {
		return nil, &Refused{Field: "raw", Reason: "the record is still the unread line: give its fields (record_id, account_id, usage_type, quantity, usage_time, …)"}
	}
	raw := usage.Raw{Source: usage.Source{Client: e.Client, FileID: e.FileID, Line: e.Line, Part: e.Part}, Fields: fields}
	if _, err := usage.Normalize(raw, ruleSet(e, rules), now); err != nil {
		var ce *codes.Error
		if errors.As(err, &ce) {
			return nil, &Refused{Code: ce.Code, Field: ce.Field, Reason: fmt.Sprintf("%s: %s", ce.Code, ce.Message)}
		}
		return nil, &Refused{Reason: err.Error()}
	}
	b, err := json.Marshal(fields)
	return b, err
}

// Topic is which of the pipeline's topics a reprocessed record goes to.
type Topic int8

// Topics a record can be sent again to.
const (
	// Raw is usage.raw, read by the mediate stage: records an ingest or
	// mediate check failed.
	Raw Topic = iota + 1
	// Mediated is usage.mediated, read by the rate stage.
	Mediated
)

// Message is a record sent again through the pipeline.
type Message struct {
	Topic Topic
	Key   []byte
	Value []byte
}

// ReprocessMessage is what goes back through the pipeline for e: the
// record (as edited if it was) to the topic of the stage that failed it,
// with its source unchanged so that the stage stores its outcome over the
// exception. A line the ingest stage could not read goes to the mediate
// stage once it is edited into fields; unedited it cannot be sent again.
func ReprocessMessage(e *Exception, w *Work, rules usage.Rules, now time.Time) (Message, error) {
	src := usage.Source{Client: e.Client, FileID: e.FileID, Line: e.Line, Part: e.Part}
	edited := w != nil && len(w.Edited) > 0
	if e.Stage == "rate" {
		var rec usage.Record
		if edited {
			fields, err := decodeFields(w.Edited)
			if err != nil {
				return Message{}, err
			}
			rec, err = usage.Normalize(usage.Raw{Source: src, Fields: fields}, ruleSet(e, rules), now)
			if err != nil {
				return Message{}, &Refused{Reason: fmt.Sprintf("the edited record no longer passes the checks: %v", err)}
			}
		} else {
			var err error
			if rec, err = decodeNormal(e.Record); err != nil {
				return Message{}, &Refused{Reason: err.Error()}
			}
		}
		rec.Source = src
		return Message{Topic: Mediated, Key: []byte(rec.AccountID), Value: usage.AppendRecord(nil, rec)}, nil
	}
	fields, err := Fields(e, w)
	if err != nil {
		return Message{}, err
	}
	if _, ok := fields["raw"]; ok && len(fields) == 1 {
		return Message{}, &Refused{Reason: "the line could not be read: edit it into fields before reprocessing it"}
	}
	return Message{Topic: Raw, Key: []byte(fields[usage.FieldAccountID]), Value: usage.AppendRaw(nil, usage.Raw{Source: src, Fields: fields})}, nil
}

// MayWork reports whether an exception in status s can be edited,
// reprocessed or discarded: only an open one (a reprocessing one is on its
// way; a resolved or discarded one is finished).
func MayWork(s Status) error {
	if s != Open {
		return &Refused{Reason: fmt.Sprintf("the exception is %s: only open exceptions can be worked", s)}
	}
	return nil
}

// SupersededReason is the reason of an exception resolved because its
// record id became a MUR from another source.
func SupersededReason(p Position) string {
	return fmt.Sprintf("superseded: record id became a MUR from file %s line %d part %d", p.FileID, p.Line, p.Part)
}
