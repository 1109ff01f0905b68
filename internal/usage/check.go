package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// checkRecords is how many records of a JSON Lines file CheckFields looks
// at.
const checkRecords = 10

// CheckFields refuses a file that is not usage at all: a CSV file whose
// header, after the client's column mapping, names none of the required
// fields, or a JSON Lines file none of whose first records (up to 10,
// within the first 64 KiB) is an object with one of them. The message
// lists what the file has and points at the column mapping. A file with
// some but not all of the required fields passes: its records then fail
// one by one with MISSING_FIELD, and the file's counts add up. With
// ReaderOptions.AnyColumns nothing is required. A JSON Lines file that is
// one JSON array ("[" first) is refused either way. It reads nothing more
// of the file: call it before Next.
func (r *Reader) CheckFields() error {
	if r.format == FormatJSONL {
		if t := bytes.TrimLeft(r.head, " \t\r\n"); len(t) > 0 && t[0] == '[' {
			return &FileError{r.name, "the file starts with [: it is one JSON array, not JSON Lines; write one JSON object (a record) per line, without the enclosing [ ] and the commas between records"}
		}
	}
	if r.anyCols {
		return nil
	}
	if r.format == FormatCSV {
		return r.checkHeader()
	}
	return r.checkFirstRecords()
}

func (r *Reader) checkHeader() error {
	if slices.ContainsFunc(r.cols, isRequired) {
		return nil
	}
	msg := fmt.Sprintf("the header names none of the fields a usage record needs (%s); its columns are %s",
		strings.Join(RequiredFields, ", "), quoteSome(r.header))
	if len(r.header) == 1 {
		for _, d := range []string{";", "\t", "|"} {
			if strings.Contains(r.header[0], d) {
				msg += fmt.Sprintf(". If %s separates the columns, set delimiter: %q in the client's settings", strconv.Quote(d), d)
				break
			}
		}
	}
	return &FileError{r.name, msg + ". " + mappingHint}
}

func (r *Reader) checkFirstRecords() error {
	lines := bytes.Split(r.head, []byte("\n"))
	if len(r.head) == 64<<10 && len(lines) > 1 {
		lines = lines[:len(lines)-1] // the last may be cut off
	}
	var keys []string
	seen := map[string]bool{}
	objects, looked := 0, 0
	firstProblem := ""
	for i, l := range lines {
		if looked == checkRecords {
			break
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		looked++
		var v any
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.UseNumber()
		err := dec.Decode(&v)
		obj, ok := v.(map[string]any)
		if err != nil || !ok {
			if firstProblem == "" {
				if err != nil {
					firstProblem = fmt.Sprintf("line %d: %s", i+1, jsonProblem(err))
				} else {
					firstProblem = fmt.Sprintf("line %d holds %s", i+1, jsonKind(v))
				}
			}
			continue
		}
		objects++
		for k := range obj {
			if isRequired(r.mapColumn(k)) {
				return nil
			}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	switch {
	case looked == 0:
		return nil // nothing complete to look at: the lines say the rest
	case objects == 0:
		return &FileError{r.name, fmt.Sprintf("not JSON Lines: none of the first %d lines is a JSON object (%s); each line must be one JSON object, a record with the fields %s",
			looked, firstProblem, strings.Join(RequiredFields, ", "))}
	}
	slices.Sort(keys)
	return &FileError{r.name, fmt.Sprintf("none of the first %d records has any of the fields a usage record needs (%s); their fields are %s. %s",
		objects, strings.Join(RequiredFields, ", "), quoteSome(keys), mappingHint)}
}

const mappingHint = "If these are the client's own names for them, map them to Vivace's under columns: in the client's settings (docs/ingestion.md, \"Adding a client\")"

func isRequired(f string) bool { return slices.Contains(RequiredFields, f) }

// quoteSome quotes the first names of a list, each clipped, and says how
// many more there are.
func quoteSome(names []string) string {
	const most = 8
	if len(names) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, n := range names {
		if i == most {
			fmt.Fprintf(&b, " and %d more", len(names)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if len(n) > 40 {
			n = n[:40] + "…"
		}
		b.WriteString(strconv.Quote(n))
	}
	return b.String()
}
