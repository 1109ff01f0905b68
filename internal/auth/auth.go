// Package auth is Vivace's access control: API tokens, the roles they
// carry (viewer < operator < admin), the clients each is scoped to, and
// the Principal a request acts as once its token is checked. Every HTTP
// surface (the REST API, GraphQL, TMF635) asks the same questions of a
// Principal: has it role R, may it see or change client C, which clients
// does a list answer with.
//
// Tokens look like vivace_<id>_<secret>: the id is public (token list,
// token revoke, the audit log name it), the secret is 256 random bits.
// Only a SHA-256 hash of the whole token is stored; that is the right
// hash for random secrets of this length, which cannot be guessed or
// looked up in a dictionary.
package auth

import (
	"errors"
	"fmt"
	"slices"

	"vivace.dev/vivace/internal/ingest"
)

// Role is what a token may do. Each role may do everything the ones below
// it may.
type Role int8

// The roles, lowest first. The zero Role is none.
const (
	// Viewer reads: files, MURs, exceptions, feed events.
	Viewer Role = iota + 1
	// Operator also acts on its clients' data: uploads usage, edits and
	// reprocesses, discards, retries syncs.
	Operator
	// Admin also manages tokens and system settings and sees the
	// process's internals.
	Admin
)

var roleNames = [...]string{Viewer: "viewer", Operator: "operator", Admin: "admin"}

func (r Role) String() string {
	if r < Viewer || r > Admin {
		return fmt.Sprintf("role(%d)", int8(r))
	}
	return roleNames[r]
}

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r >= Viewer && r <= Admin }

// AtLeast reports whether r may do what want may.
func (r Role) AtLeast(want Role) bool { return r.Valid() && r >= want }

// ParseRole reads viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Admin; r++ {
		if s == roleNames[r] {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: use viewer, operator or admin", s)
}

// AllClients in a token's client list scopes it to every client; it
// stands alone.
const AllClients = "*"

// ValidateClients checks a token's client list: AllClients alone, or one
// or more client names, each once.
func ValidateClients(clients []string) error {
	if len(clients) == 0 {
		return errors.New("clients: name at least one client, or * for all")
	}
	var errs []error
	for i, c := range clients {
		switch {
		case c == AllClients && len(clients) > 1:
			errs = append(errs, errors.New("clients: * means every client and stands alone"))
		case c == AllClients:
		case ingest.ValidClient(c) != nil:
			errs = append(errs, fmt.Errorf("clients: %w", ingest.ValidClient(c)))
		case slices.Contains(clients[:i], c):
			errs = append(errs, fmt.Errorf("clients: %q named twice", c))
		}
	}
	return errors.Join(errs...)
}

// Code is the stable code of an access control error.
type Code string

// The codes.
const (
	// Unauthenticated: no token, or one that is unknown, expired or
	// revoked (HTTP 401).
	Unauthenticated Code = "UNAUTHENTICATED"
	// Forbidden: a good token without the role or the client the request
	// needs (HTTP 403).
	Forbidden Code = "FORBIDDEN"
)

// Error is a refusal with its code and a reason for the caller. Reasons
// say what is missing, never anything of another client's data.
type Error struct {
	Code   Code
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Is matches ErrUnauthenticated and ErrForbidden by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == "" && t.Code == e.Code
}

// ErrUnauthenticated and ErrForbidden match every Error of their code
// (errors.Is).
var (
	ErrUnauthenticated = &Error{Code: Unauthenticated}
	ErrForbidden       = &Error{Code: Forbidden}
)

func unauthenticated(format string, args ...any) error {
	return &Error{Code: Unauthenticated, Reason: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &Error{Code: Forbidden, Reason: fmt.Sprintf(format, args...)}
}
