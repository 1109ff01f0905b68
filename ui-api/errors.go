package uiapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"

	gqlerrors "github.com/graph-gophers/graphql-go/errors"

	"vivace.dev/vivace/internal/auth"
)

// A resolver answers a problem of the request (a wrong argument, a
// refusal) with a publicError or an auth.Error, whose words reach the
// caller; any other error is the server's and is answered with a
// reference to the log line, never its text (it may hold SQL or another
// system's words).
type publicError struct {
	code string
	msg  string
	// field and exception, for an edited record that fails the stage's
	// checks: the field and the exception code it fails with.
	field, exception string
}

func (e *publicError) Error() string { return e.msg }

// Extensions gives the error its stable code in the answer, and for a
// record that fails its checks the field and exception code.
func (e *publicError) Extensions() map[string]any {
	x := map[string]any{"code": e.code}
	if e.field != "" {
		x["field"] = e.field
	}
	if e.exception != "" {
		x["exceptionCode"] = e.exception
	}
	return x
}

// The codes of publicError.
const (
	codeBadInput = "BAD_INPUT"
	codeNotFound = "NOT_FOUND"
	codeTooBig   = "TOO_COMPLEX"
	codeConflict = "CONFLICT"
)

func badInput(format string, args ...any) error {
	return &publicError{code: codeBadInput, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &publicError{code: codeNotFound, msg: fmt.Sprintf(format, args...)}
}

// clean makes one error of a response fit to send: public errors keep
// their words and code, refusals get theirs, every other resolver error
// is logged and replaced by a reference to the log line.
func (a *API) clean(e *gqlerrors.QueryError) {
	if e.ResolverError == nil {
		return // the query's own problems: syntax, validation, limits
	}
	var pub *publicError
	var denied *auth.Error
	switch {
	case errors.As(e.ResolverError, &pub):
		e.Message, e.Extensions = pub.msg, pub.Extensions()
	case errors.As(e.ResolverError, &denied):
		e.Message, e.Extensions = denied.Reason, map[string]any{"code": string(denied.Code)}
	default:
		ref := newRef()
		a.log().Error("graphql request failed", "path", fmt.Sprint(e.Path), "ref", ref, "err", e.ResolverError)
		e.Message = "internal error: see the server log (ref " + ref + ")"
		e.Extensions = map[string]any{"code": "INTERNAL"}
	}
}

func newRef() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// panicHandler answers a resolver's panic as an internal error: the
// panic's value and stack go to the log only.
type panicHandler struct{ a *API }

func (h panicHandler) MakePanicError(_ context.Context, value any) *gqlerrors.QueryError {
	ref := newRef()
	h.a.log().Error("graphql resolver panicked", "ref", ref, "panic", fmt.Sprint(value))
	return &gqlerrors.QueryError{Message: "internal error: see the server log (ref " + ref + ")",
		Extensions: map[string]any{"code": "INTERNAL"}}
}

// The request's cost so far (see MaxCost).
type costKey struct{}

func withCost(ctx context.Context) context.Context {
	return context.WithValue(ctx, costKey{}, new(atomic.Int64))
}

// charge adds n to the request's cost, refusing what goes over MaxCost.
func charge(ctx context.Context, n int) error {
	c, _ := ctx.Value(costKey{}).(*atomic.Int64)
	if c == nil {
		return nil
	}
	if total := c.Add(int64(n)); total > MaxCost {
		return &publicError{code: codeTooBig, msg: fmt.Sprintf("query too complex: it may read %d items, more than %d; ask for smaller pages (first:) or fewer lists", total, MaxCost)}
	}
	return nil
}

// first reads a list's page size: its default when not given, 1 to
// MaxFirst, charged to the request's cost.
func first(ctx context.Context, v *int32, def int) (int, error) {
	n := def
	if v != nil {
		n = int(*v)
	}
	if n < 1 || n > MaxFirst {
		return 0, badInput("first: %d is not from 1 to %d", n, MaxFirst)
	}
	return n, charge(ctx, n)
}
