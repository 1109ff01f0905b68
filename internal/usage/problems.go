package usage

import (
	"compress/flate"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"vivace.dev/vivace/internal/jsonx"
)

// The words of these messages are the file's and the user's: what a line
// holds and what was expected, never the Go types or library names that
// found the problem.

// CSVProblem says what is wrong with a CSV line in the file's terms:
// "line 3, column 7: a quote (") inside a field that is not quoted; …".
// An error that is not a CSV parse error is returned as it is.
func CSVProblem(err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	what := pe.Err.Error()
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		what = `a quote (") inside a field that does not start with one; put the whole field in quotes and double the quote inside ("12 ""A"" St")`
	case errors.Is(pe.Err, csv.ErrQuote):
		what = `a quoted field whose closing quote is missing or not followed by the delimiter (a quote inside quotes is written twice: "")`
	case errors.Is(pe.Err, csv.ErrFieldCount):
		what = "a different number of fields than the header"
	}
	if pe.Line != pe.StartLine && pe.Line > 0 {
		return fmt.Errorf("line %d (the record starting on line %d), column %d: %s", pe.Line, pe.StartLine, pe.Column, what)
	}
	return fmt.Errorf("line %d, column %d: %s", pe.StartLine, pe.Column, what)
}

// readProblem says why a file cannot be read further: gzip data cut short
// or damaged, in the file's terms. Other errors (the disk's) are kept.
func readProblem(err error, compressed bool) error {
	var ce flate.CorruptInputError
	switch {
	case !compressed:
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the gzip data ends before the compressed file does: the file was cut short (an upload or copy that did not finish?)")
	case errors.Is(err, gzip.ErrChecksum):
		return errors.New("the gzip checksum does not match the data: the file is damaged")
	case errors.Is(err, gzip.ErrHeader):
		return errors.New("the gzip data is followed by bytes that are not gzip: the file is damaged")
	case errors.As(err, &ce):
		return fmt.Errorf("the gzip data is damaged at byte %d of the compressed file", int64(ce))
	}
	return err
}

// gzipProblem says why a file that starts like gzip cannot be opened as
// one.
func gzipProblem(err error) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "it starts like a gzip file but ends inside the gzip header: the file was cut short"
	case errors.Is(err, gzip.ErrHeader):
		return "it starts like a gzip file (bytes 1f 8b) but its gzip header is not valid"
	}
	return "it starts like a gzip file but cannot be read as one: " + readProblem(err, true).Error()
}

// jsonKind names what a decoded JSON value is.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a JSON object"
	case []any:
		return "a JSON array"
	case string:
		return "a JSON string"
	case json.Number, float64:
		return "a JSON number"
	case bool:
		return "true or false"
	case nil:
		return "null"
	}
	return "a JSON value"
}

// jsonProblem says what is wrong with a line that does not decode as JSON.
func jsonProblem(err error) string {
	return jsonx.Describe(err, "the JSON object").Error()
}
