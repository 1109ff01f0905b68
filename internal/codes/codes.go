// Package codes holds the stable exception codes that every stage uses and
// the typed error that carries one. The codes are part of the external
// contract: the console, the exceptions table and operators' runbooks show
// them, so they never change meaning.
package codes

import (
	"errors"
	"fmt"
)

// Code is a stable exception code.
type Code string

// The codes in the order they are checked: a record with several faults is
// given the first code in this order.
const (
	MalformedRecord  Code = "MALFORMED_RECORD"
	MediationFailed  Code = "MEDIATION_FAILED"
	PluginError      Code = "PLUGIN_ERROR"
	MissingField     Code = "MISSING_FIELD"
	BadQuantity      Code = "BAD_QUANTITY"
	BadTimestamp     Code = "BAD_TIMESTAMP"
	DuplicateRecord  Code = "DUPLICATE_RECORD"
	UnknownAccount   Code = "UNKNOWN_ACCOUNT"
	AccountClosed    Code = "ACCOUNT_CLOSED"
	UnknownUsageType Code = "UNKNOWN_USAGE_TYPE"
	NoSubscription   Code = "NO_SUBSCRIPTION"
	NoRate           Code = "NO_RATE"
)

// Filtered is not an exception: it marks a record a mediation rule dropped
// on purpose (test traffic, say). Such a record travels the exceptions
// route so that it is counted, and is stored as filtered, never as an
// exception.
const Filtered Code = "FILTERED"

// Ordered lists every code in checking order.
var Ordered = []Code{
	MalformedRecord, MediationFailed, PluginError, MissingField, BadQuantity,
	BadTimestamp, DuplicateRecord, UnknownAccount, AccountClosed,
	UnknownUsageType, NoSubscription, NoRate,
}

// Known reports whether c is one of the stable codes.
func Known(c Code) bool {
	for _, k := range Ordered {
		if k == c {
			return true
		}
	}
	return false
}

// Rank is the position of c in the checking order; unknown codes sort last.
func Rank(c Code) int {
	for i, k := range Ordered {
		if k == c {
			return i
		}
	}
	return len(Ordered)
}

// Error is a record-level failure with a stable code. Field names the
// record field at fault, when there is one.
type Error struct {
	Code    Code
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf builds an *Error.
func Errorf(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// As extracts the *Error from err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}
