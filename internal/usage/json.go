package usage

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/jsonx"
)

// The records travel between stages as JSON, a million or more per file.
// These writers produce exactly the bytes encoding/json's Marshal produces
// for Raw and Record (same key order, same escaping), without reflection
// and into a buffer the caller reuses; the tests compare them with
// Marshal byte for byte.

// RawEncoder writes the raw records of one CSV file: the columns are known
// once, so their order in the JSON object (sorted, as Marshal sorts map
// keys) is worked out once.
type RawEncoder struct {
	names []string // the columns, sorted
	order []int    // order[i]: the position in a row of names[i]
}

// NewRawEncoder prepares an encoder for rows of the given columns, which
// must be distinct (a CSV header with a repeated column is refused).
func NewRawEncoder(columns []string) *RawEncoder {
	e := &RawEncoder{names: slices.Clone(columns), order: make([]int, len(columns))}
	for i := range e.order {
		e.order[i] = i
	}
	slices.SortFunc(e.order, func(a, b int) int {
		switch {
		case columns[a] < columns[b]:
			return -1
		case columns[a] > columns[b]:
			return 1
		}
		return 0
	})
	for i, j := range e.order {
		e.names[i] = columns[j]
	}
	return e
}

// Append appends the JSON of Raw{Source: src, Fields: the row's values by
// column} to dst.
func (e *RawEncoder) Append(dst []byte, src Source, row []string) []byte {
	dst = AppendSource(dst, src)
	dst = append(dst, `,"fields":{`...)
	for i, j := range e.order {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonx.AppendString(dst, e.names[i])
		dst = append(dst, ':')
		dst = jsonx.AppendString(dst, row[j])
	}
	return append(dst, "}}"...)
}

// AppendRaw appends the JSON of r to dst.
func AppendRaw(dst []byte, r Raw) []byte {
	dst = AppendSource(dst, r.Source)
	dst = append(dst, `,"fields":`...)
	dst = appendMap(dst, r.Fields)
	return append(dst, '}')
}

// AppendRecord appends the JSON of r to dst.
func AppendRecord(dst []byte, r Record) []byte {
	dst = AppendSource(dst, r.Source)
	dst = append(dst, `,"record_id":`...)
	dst = jsonx.AppendString(dst, r.RecordID)
	dst = append(dst, `,"account_id":`...)
	dst = jsonx.AppendString(dst, r.AccountID)
	dst = append(dst, `,"usage_type":`...)
	dst = jsonx.AppendString(dst, r.UsageType)
	dst = append(dst, `,"quantity":`...)
	dst = jsonx.AppendString(dst, r.Quantity)
	dst = append(dst, `,"usage_time":"`...)
	dst = r.UsageTime.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if len(r.Qualifiers) > 0 {
		dst = append(dst, `,"qualifiers":`...)
		dst = appendMap(dst, r.Qualifiers)
	}
	if len(r.Attributes) > 0 {
		dst = append(dst, `,"attributes":`...)
		dst = appendMap(dst, r.Attributes)
	}
	return append(dst, '}')
}

// AppendSource opens a record's JSON object with the source's fields, as
// encoding/json writes them; the caller writes the rest and the closing
// brace.
func AppendSource(dst []byte, s Source) []byte {
	dst = append(dst, `{"client":`...)
	dst = jsonx.AppendString(dst, s.Client)
	dst = append(dst, `,"file_id":`...)
	dst = jsonx.AppendString(dst, s.FileID)
	dst = append(dst, `,"line":`...)
	dst = strconv.AppendInt(dst, s.Line, 10)
	if s.Part != 0 {
		dst = append(dst, `,"part":`...)
		dst = strconv.AppendInt(dst, int64(s.Part), 10)
	}
	if s.Parts != 0 {
		dst = append(dst, `,"parts":`...)
		dst = strconv.AppendInt(dst, int64(s.Parts), 10)
	}
	return dst
}

func appendMap(dst []byte, m map[string]string) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonx.AppendString(dst, k)
		dst = append(dst, ':')
		dst = jsonx.AppendString(dst, m[k])
	}
	return append(dst, '}')
}

// DecodeRaw reads a raw record as json.Unmarshal into a Raw would. The
// common shape (the one AppendRaw writes) is read by a small scanner that
// takes all strings out of one copy of b; anything else it does not know
// for sure (unknown keys, nulls, surrogate escapes, invalid UTF-8, odd
// numbers) goes to json.Unmarshal, so the result is always Unmarshal's.
func DecodeRaw(b []byte) (Raw, error) {
	if r, ok := scanRaw(b); ok {
		return r, nil
	}
	var r Raw
	err := json.Unmarshal(b, &r)
	return r, err
}

// rawScanner reads one JSON document held in s.
type rawScanner struct {
	s string
	i int
}

func scanRaw(b []byte) (Raw, bool) {
	r := Raw{Fields: make(map[string]string, 8)}
	src, hasFields, ok := scanSource(string(b), func(k, v string) bool {
		r.Fields[k] = v
		return true
	})
	if !hasFields {
		r.Fields = nil // as encoding/json leaves it
	}
	r.Source = src
	return r, ok
}

// scanSource reads a raw record held in s: its source, and each field
// handed to field in document order (false stops the scan); hasFields
// says whether s has a fields object. ok is false for anything the
// scanner does not know for sure.
func scanSource(s string, field func(k, v string) bool) (src Source, hasFields, ok bool) {
	sc := rawScanner{s: s}
	ok = sc.members(func(key string) bool {
		if known, ok := sc.sourceKey(key, &src); known {
			return ok
		}
		if key != "fields" {
			return false
		}
		hasFields = true
		return sc.stringMembers(field)
	})
	return src, hasFields, ok && sc.end()
}

// members reads an object: the key of each member, then value reads the
// member's value (false: the scanner does not know it for sure, and the
// object is not read).
func (sc *rawScanner) members(value func(key string) bool) bool {
	if !sc.byte('{') {
		return false
	}
	if sc.byte('}') {
		return true
	}
	for {
		key, ok := sc.str()
		if !ok || !sc.byte(':') || !value(key) {
			return false
		}
		if !sc.byte(',') {
			return sc.byte('}')
		}
	}
}

// stringMembers reads an object of strings, handing each member to each
// in document order (false stops the scan).
func (sc *rawScanner) stringMembers(each func(k, v string) bool) bool {
	return sc.members(func(k string) bool {
		v, ok := sc.str()
		return ok && each(k, v)
	})
}

// sourceKey reads the value of key into src if key is one of a source's
// (known); ok is false if the value is not what the scanner knows for
// sure.
func (sc *rawScanner) sourceKey(key string, src *Source) (known, ok bool) {
	switch key {
	case "client":
		src.Client, ok = sc.str()
	case "file_id":
		src.FileID, ok = sc.str()
	case "line":
		src.Line, ok = sc.int()
	case "part", "parts":
		var n int64
		if n, ok = sc.int(); !ok || n != int64(int(n)) {
			return true, false
		}
		if key == "part" {
			src.Part = int(n)
		} else {
			src.Parts = int(n)
		}
	default:
		return false, false
	}
	return true, ok
}

// DecodeRecord reads a record in normal form (AppendRecord's output) as
// json.Unmarshal does, without reflection for the documents AppendRecord
// writes; anything else (unknown or differently cased keys, nulls,
// numbers the scanner does not know for sure) goes to json.Unmarshal, so
// the result is always Unmarshal's.
func DecodeRecord(b []byte) (Record, error) {
	if r, ok := scanRecord(string(b)); ok {
		return r, nil
	}
	var r Record
	err := json.Unmarshal(b, &r)
	return r, err
}

func scanRecord(s string) (r Record, ok bool) {
	sc := rawScanner{s: s}
	ok = sc.members(func(key string) bool {
		if known, ok := sc.sourceKey(key, &r.Source); known {
			return ok
		}
		var ok bool
		switch key {
		case "record_id":
			r.RecordID, ok = sc.str()
		case "account_id":
			r.AccountID, ok = sc.str()
		case "usage_type":
			r.UsageType, ok = sc.str()
		case "quantity":
			r.Quantity, ok = sc.str()
		case "usage_time":
			// time.Time reads the token as written, quotes included.
			sc.space()
			start := sc.i
			if _, ok = sc.str(); ok {
				ok = r.UsageTime.UnmarshalJSON([]byte(sc.s[start:sc.i])) == nil
			}
		case "qualifiers":
			ok = sc.strings(&r.Qualifiers)
		case "attributes":
			ok = sc.strings(&r.Attributes)
		}
		return ok
	})
	return r, ok && sc.end()
}

// strings reads an object of strings into *m, made if nil and added to
// if not, as json.Unmarshal does.
func (sc *rawScanner) strings(m *map[string]string) bool {
	if *m == nil {
		*m = make(map[string]string, 4)
	}
	return sc.stringMembers(func(k, v string) bool {
		(*m)[k] = v
		return true
	})
}

func (sc *rawScanner) space() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// byte consumes c (after white space) if it comes next.
func (sc *rawScanner) byte(c byte) bool {
	sc.space()
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

func (sc *rawScanner) end() bool {
	sc.space()
	return sc.i == len(sc.s)
}

// str reads a string. Without escapes it is a slice of the one copy; with
// simple escapes it is rebuilt.
func (sc *rawScanner) str() (string, bool) {
	if !sc.byte('"') {
		return "", false
	}
	start := sc.i
	for j := start; j < len(sc.s); j++ {
		switch c := sc.s[j]; {
		case c == '"':
			sc.i = j + 1
			return sc.s[start:j], true
		case c == '\\':
			return sc.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(sc.s[j:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			j += size - 1
		}
	}
	return "", false
}

func (sc *rawScanner) escaped(start int) (string, bool) {
	buf := make([]byte, 0, 64)
	for j := start; j < len(sc.s); {
		c := sc.s[j]
		switch {
		case c == '"':
			sc.i = j + 1
			return string(buf), true
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(sc.s[j:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			buf = append(buf, sc.s[j:j+size]...)
			j += size
			continue
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(sc.s) {
			return "", false
		}
		switch e := sc.s[j+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if j+6 > len(sc.s) {
				return "", false
			}
			n, err := strconv.ParseUint(sc.s[j+2:j+6], 16, 16)
			if err != nil || utf16.IsSurrogate(rune(n)) {
				return "", false
			}
			buf = utf8.AppendRune(buf, rune(n))
			j += 6
			continue
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// int reads an integer written plainly (no fraction, no exponent).
func (sc *rawScanner) int() (int64, bool) {
	sc.space()
	start := sc.i
	if sc.i < len(sc.s) && sc.s[sc.i] == '-' {
		sc.i++
	}
	digits := sc.i
	for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
		sc.i++
	}
	if sc.i == digits || (sc.s[digits] == '0' && sc.i-digits > 1) {
		return 0, false
	}
	if sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	n, err := strconv.ParseInt(sc.s[start:sc.i], 10, 64)
	return n, err == nil
}

// The readers of the messages the stages pass each other. Every stage
// reads what it takes from a topic with one of them, so that a message
// one stage cannot read is refused by every stage for the same reason.

// ReadRaw reads a message of usage.raw: a raw record (DecodeRaw) that
// says where it came from (a client, a file id, a line and part that are
// not negative) and has its fields, each a string. The stages that store
// records by their file check as well that the file id is one of the
// registry's (ValidFileID); mediation alone does not need it.
func ReadRaw(b []byte) (Raw, error) {
	r, err := DecodeRaw(b)
	if err != nil {
		if k, what := nonStringField(b); k != "" {
			return r, fmt.Errorf("field %s is %s, not a string", clip(k), what)
		}
		return r, jsonx.Describe(err, "a raw usage record (client, file_id, line, fields)")
	}
	if err := checkSource(r.Source, false); err != nil {
		return r, err
	}
	if r.Fields == nil {
		return r, errors.New("no fields")
	}
	return r, nil
}

// ReadRecord reads a message of usage.mediated: a record in normal form
// with its source and record id.
func ReadRecord(b []byte) (Record, error) {
	r, err := DecodeRecord(b)
	if err != nil {
		return r, jsonx.Describe(err, "a usage record in normal form")
	}
	if err := checkSource(r.Source, true); err != nil {
		return r, err
	}
	if r.RecordID == "" {
		return r, errors.New("record_id is missing")
	}
	return r, nil
}

// ReadSource reads where a message of any stage came from (a raw record,
// a record in normal form, an exception), whatever else it holds or
// lacks, so that a message a stage cannot read still becomes an exception
// of its file. An error says the message names no file.
func ReadSource(b []byte) (Source, error) {
	var v struct {
		Source
		Line json.Number `json:"line"`
		Part json.Number `json:"part"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Source{}, jsonx.Describe(err, "a record with its client, file_id and line")
	}
	src := Source{Client: v.Client, FileID: v.FileID}
	var ok bool
	if src.Line, ok = wholeNumber(v.Line); !ok {
		return Source{}, fmt.Errorf("line %s is not a line number", clip(string(v.Line)))
	}
	part, ok := wholeNumber(v.Part)
	if !ok || part > math.MaxInt32 {
		return Source{}, fmt.Errorf("part %s is not a part number", clip(string(v.Part)))
	}
	src.Part = int(part)
	return src, checkSource(src, true)
}

// ValidFileID reports whether a record's file id is one of the
// registry's (a UUID) and says why not: one that is not would fail the
// whole batch's transaction where records are stored by file, not just
// its record.
func ValidFileID(id string) error {
	if !ids.Valid(id) {
		return fmt.Errorf("file_id %q is not a file id of the registry", clip(id))
	}
	return nil
}

// nonStringField names the first field (in name order) of a raw record
// whose value is not a string, and what it is instead; "" when there is
// none or b is not such a record.
func nonStringField(b []byte) (string, string) {
	var v struct {
		Fields map[string]any `json:"fields"`
	}
	if json.Unmarshal(b, &v) != nil {
		return "", ""
	}
	for _, k := range slices.Sorted(maps.Keys(v.Fields)) {
		switch v.Fields[k].(type) {
		case string:
		case nil:
			return k, "null"
		case float64:
			return k, "a number"
		case bool:
			return k, "a boolean"
		case []any:
			return k, "an array"
		default:
			return k, "an object"
		}
	}
	return "", ""
}

// wholeNumber reads a JSON integer (none: 0).
func wholeNumber(n json.Number) (int64, bool) {
	if n == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	return v, err == nil
}

func checkSource(s Source, registryID bool) error {
	switch {
	case s.Client == "" || s.FileID == "":
		return errors.New("no client or file_id")
	case registryID && ValidFileID(s.FileID) != nil:
		return ValidFileID(s.FileID)
	case s.Line < 0 || s.Part < 0:
		return fmt.Errorf("line %d, part %d: neither may be negative", s.Line, s.Part)
	}
	return nil
}
