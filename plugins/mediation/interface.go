package mediation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// RawRecord is one input record: its client, file and line, and its
// fields as the ingest stage mapped them.
type RawRecord struct {
	Client string
	FileID string
	Line   int64
	Fields map[string]string
}

// Result is what became of one input record. Exactly one of Records (one
// or more), Error and Filtered is set; Mediated, Fail and Filter build
// each kind.
type Result struct {
	// Records are the mediated records in normal form; more than one
	// splits the input record.
	Records []map[string]string
	// Error says why the record cannot be mediated.
	Error *RecordError
	// Filtered, when not empty, is why the record was dropped on purpose.
	Filtered string
}

// RecordError is a record-level failure. Code is a stable exception code
// (empty: MEDIATION_FAILED); Field names the input field at fault.
type RecordError struct {
	Code    string
	Field   string
	Message string
}

func (e *RecordError) Error() string {
	code := e.Code
	if code == "" {
		code = CodeMediationFailed
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", code, e.Message)
}

// CodeMediationFailed is the code of a RecordError that names none.
const CodeMediationFailed = "MEDIATION_FAILED"

// Mediated is a Result with records in normal form.
func Mediated(records ...map[string]string) Result { return Result{Records: records} }

// Fail is a Result for a record that cannot be mediated, with code
// MEDIATION_FAILED and the field at fault (empty when none).
func Fail(field, format string, args ...any) Result {
	return Result{Error: &RecordError{Code: CodeMediationFailed, Field: field, Message: fmt.Sprintf(format, args...)}}
}

// Filter is a Result for a record dropped on purpose.
func Filter(reason string) Result { return Result{Filtered: reason} }

// Info describes a plugin.
type Info struct {
	Name        string
	Version     string
	Description string
}

// Mediator is what a mediation plugin implements. The host calls Describe
// and then Configure once after each start, then Mediate for every batch,
// possibly from several goroutines at once.
type Mediator interface {
	Describe(ctx context.Context) (Info, error)
	// Configure gets the client's plugin.config block as a JSON object.
	Configure(ctx context.Context, client string, config json.RawMessage) error
	// Mediate returns one Result per record, in order. An error fails the
	// whole batch: the host retries it, and marks every record failed
	// with PLUGIN_ERROR when the retries run out.
	Mediate(ctx context.Context, records []RawRecord) ([]Result, error)
}

// Field is one field of a record.
type Field struct{ Name, Value string }

// Fields are a record's fields in the order they came; a name appears at
// most once. The host works with records in this form so that no map is
// built for a record on its side of the wire.
type Fields []Field

// Get returns the value of field name, or "" when the record has none.
func (f Fields) Get(name string) string {
	for _, x := range f {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// Map returns the fields as a map.
func (f Fields) Map() map[string]string {
	m := make(map[string]string, len(f))
	for _, x := range f {
		m[x.Name] = x.Value
	}
	return m
}

// Reply is the host's view of what became of one input record: a Result
// whose mediated records are Fields.
type Reply struct {
	Records  []Fields
	Error    *RecordError
	Filtered string
}

// Caller is the host's side of a running plugin, whatever protocol version
// it speaks: the plugin dispensed by PluginMap or VersionedPlugins is one.
type Caller interface {
	Describe(ctx context.Context) (Info, error)
	Configure(ctx context.Context, client string, config json.RawMessage) error
	// MediateBatch returns one Reply per record of b, in order, or fewer
	// or more when the plugin broke the contract; the host checks.
	MediateBatch(ctx context.Context, b *Batch) ([]Reply, error)
}

// ErrMalformed marks a request or answer that breaks the wire contract:
// field name positions past the names sent, lists of unequal length, a
// name twice in one record.
var ErrMalformed = errors.New("malformed message")
