// Package msgcheck finds, in tests, words of Go and its libraries in
// messages that users read: an error about a file, a line, a setting or a
// request body says what it holds and what was expected, in the file's
// terms, never "cannot unmarshal array into Go value of type
// map[string]interface {}".
package msgcheck

import (
	"regexp"
	"strings"
)

// internals are fragments that only Go's types and its libraries' own
// messages contain.
var internals = []string{
	"Go value", "Go struct", "interface {}", "interface{}", "unmarshal", "Unmarshal",
	"map[string]", "[]string", "[]interface", "parse error on line", "record on line",
	"!!seq", "!!map", "!!str", "!!int", "!!bool", "non-quoted-field", "quoted-field",
	"reflect", "<nil>", "goroutine", "runtime error", "pgx", "SQLSTATE", "ERROR: ",
}

// library is a Go library's prefix on its own messages ("json: cannot
// …", "yaml: line 3: …"), not a file's name ("clients.yaml: line 3"), or
// a formatting mistake ("%!s(MISSING)").
var library = regexp.MustCompile(`(^|[^.\w])(json|yaml|gzip|flate|csv|strconv|time|pgx|x509|tls): |strconv\.|%!\w?\(`)

// Internals returns the first fragment of Go's words in msg, or "" when
// there is none.
func Internals(msg string) string {
	for _, f := range internals {
		if strings.Contains(msg, f) {
			return f
		}
	}
	return library.FindString(msg)
}
