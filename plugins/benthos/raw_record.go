package benthos

import (
	"encoding/json"
	"errors"
	"fmt"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

// rawRecord reads a message parsed as structured (v, or the parse error
// err) as a raw usage record and returns its source; a message that is
// not one fails with MALFORMED_RECORD saying why.
func rawRecord(v any, err error) (usage.Source, error) {
	var src usage.Source
	if err == nil {
		src, err = rawSource(v)
	}
	if err != nil {
		return src, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err)
	}
	return src, nil
}

// rawSource checks that a parsed message is a raw usage record (client,
// file_id, line, fields of strings) and returns its source.
func rawSource(v any) (usage.Source, error) {
	var src usage.Source
	root, ok := v.(map[string]any)
	if !ok {
		return src, fmt.Errorf("a %T, not an object", v)
	}
	src.Client, _ = root["client"].(string)
	src.FileID, _ = root["file_id"].(string)
	if src.Client == "" || src.FileID == "" {
		return src, errors.New("no client or file_id")
	}
	if !isUUID(src.FileID) {
		// The registry's file ids are UUIDs; one that is not would fail
		// the whole batch's transaction, not just this record.
		return src, fmt.Errorf("file_id %q is not a file id of the registry", clip(src.FileID, 64))
	}
	var err error
	if src.Line, err = intOf(root["line"]); err != nil {
		return src, fmt.Errorf("line: %w", err)
	}
	part, err := intOf(root["part"])
	if err != nil {
		return src, fmt.Errorf("part: %w", err)
	}
	src.Part = int(part)
	fields, ok := root["fields"].(map[string]any)
	if !ok {
		return src, errors.New("no fields")
	}
	for k, x := range fields {
		if _, ok := x.(string); !ok {
			return src, fmt.Errorf("field %s is a %T, not a string", k, x)
		}
	}
	return src, nil
}

// isUUID reports whether s is a UUID in its canonical text form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// intOf reads a JSON integer as Benthos parsed it; a missing one is 0.
func intOf(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		return x.Int64()
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}
