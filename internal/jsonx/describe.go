package jsonx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"
)

// Describe says in the terms of the JSON what encoding/json found wrong
// with a document, rather than in Go's ("cannot unmarshal array into Go
// value of type …"): what the document holds where, and what was
// expected there. want names what the whole document should be ("an
// event object"). Errors it does not know are returned as they are.
func Describe(err error, want string) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%s: a JSON %s where %s was expected", te.Field, te.Value, kind(te.Type))
	case errors.As(err, &te):
		return fmt.Errorf("a JSON %s where %s was expected", te.Value, want)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
		return fmt.Errorf("the JSON ends before %s is complete (a line cut short?)", want)
	case errors.As(err, &se):
		return fmt.Errorf("not JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &pe):
		return fmt.Errorf("%q is not an RFC 3339 timestamp (e.g. 2026-03-01T00:00:00Z)", pe.Value)
	}
	return err
}

// kind says what a Go type takes in JSON.
func kind(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another value"
}
