package bulkapi

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels matched with errors.Is, one per kind of failed Send.
var (
	// ErrRefused: the core refused the whole call (*RefusedError).
	ErrRefused = errors.New("core refused the call")
	// ErrUnavailable: no usable answer after every attempt (*UnavailableError).
	ErrUnavailable = errors.New("core unavailable")
	// ErrBadAnswer: the answer is not a bulk usage answer (*BadAnswerError).
	ErrBadAnswer = errors.New("core answer not understood")
	// ErrInvalidBatch: the batch was not sent (*InvalidBatchError).
	ErrInvalidBatch = errors.New("invalid batch")
)

// RefusedError is a whole-call refusal: the answer's error_code was not 0
// (and is not one the client was told to retry). The core recorded none of
// the batch's records.
type RefusedError struct {
	Code    Code
	Message string
	// Records are the answer's error_records, if it had any.
	Records  []ErrorRecord
	Attempts int
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: error_code %s: %s", ErrRefused, e.Code, e.Message)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// UnavailableError is a call that got no usable answer in Attempts
// attempts: timeouts, connection errors, answers cut off, HTTP 5xx (and
// 408, 429), or a core error code the client was told to retry. Whether
// the core recorded the batch is not known; sending it again is safe.
type UnavailableError struct {
	Attempts int
	// StatusCode is the last answer's HTTP status, 0 when there was none.
	StatusCode int
	// Last is the last attempt's error.
	Last error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s after %d attempt(s): %v", ErrUnavailable, e.Attempts, e.Last)
}

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap gives the last attempt's error.
func (e *UnavailableError) Unwrap() error { return e.Last }

// BadAnswerError is an answer that cannot be taken: an HTTP status other
// than 2xx that is not retried (404, 401, …), a body that is not a bulk
// usage answer, or error_records naming a client_record_id the batch does
// not hold (or none). It is not retried: the batch fails whole.
type BadAnswerError struct {
	StatusCode int
	Reason     string
	// Body is the start of the answer, for the operator.
	Body     string
	Attempts int
}

func (e *BadAnswerError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d: %s", ErrBadAnswer, e.StatusCode, e.Reason)
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Is makes errors.Is(err, ErrBadAnswer) hold.
func (e *BadAnswerError) Is(target error) bool { return target == ErrBadAnswer }

// InvalidBatchError lists why a batch was not sent.
type InvalidBatchError struct {
	Problems []error
}

func (e *InvalidBatchError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return ErrInvalidBatch.Error() + ": " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalidBatch) hold.
func (e *InvalidBatchError) Is(target error) bool { return target == ErrInvalidBatch }

// Unwrap gives the problems.
func (e *InvalidBatchError) Unwrap() []error { return e.Problems }

// Class is the kind of outcome of a Send.
type Class int

// The classes of outcome.
const (
	// ClassAccepted: Send returned a Result (some records may be refused).
	ClassAccepted Class = iota
	// ClassRefused: the whole call was refused.
	ClassRefused
	// ClassUnavailable: no usable answer after the retries.
	ClassUnavailable
	// ClassBadAnswer: an answer that cannot be taken.
	ClassBadAnswer
	// ClassInvalid: the batch was not sent.
	ClassInvalid
	// ClassCanceled: the caller's context ended.
	ClassCanceled
)

var classNames = [...]string{"accepted", "refused", "unavailable", "bad_answer", "invalid", "canceled"}

// String is the class's stable name (for metrics and logs).
func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Classify tells the class of Send's error (nil is ClassAccepted). An
// error of none of this package's kinds counts as ClassCanceled only when
// it is a context error, else as ClassUnavailable.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ClassAccepted
	case errors.Is(err, ErrRefused):
		return ClassRefused
	case errors.Is(err, ErrInvalidBatch):
		return ClassInvalid
	case errors.Is(err, ErrBadAnswer):
		return ClassBadAnswer
	case errors.Is(err, ErrUnavailable):
		return ClassUnavailable
	case isContextErr(err):
		return ClassCanceled
	default:
		return ClassUnavailable
	}
}
