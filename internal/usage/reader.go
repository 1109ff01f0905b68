package usage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"vivace.dev/vivace/internal/codes"
)

// Format is a usage file format.
type Format string

// Supported formats.
const (
	FormatCSV   Format = "csv"
	FormatJSONL Format = "jsonl"
)

// MaxLineBytes bounds one JSON line or CSV record; longer ones are
// malformed records, not a reason to exhaust memory.
const MaxLineBytes = 16 << 20

// ReaderOptions configure how a client's files are read.
type ReaderOptions struct {
	// Format forces a format; empty means detect from name and content.
	Format Format
	// Delimiter separates CSV fields; 0 means a comma.
	Delimiter rune
	// Columns maps the client's column names to Vivace's field names.
	Columns map[string]string
	// AnyColumns: the client's mediation (a plugin, or rules that rename
	// fields) makes Vivace's fields, so CheckFields does not require the
	// file to have any of them.
	AnyColumns bool
}

// FileError is a problem with a whole file: it cannot be read as usage at
// all. Nothing of such a file is processed.
type FileError struct {
	Name string
	Msg  string
}

func (e *FileError) Error() string { return fmt.Sprintf("%s: %s", e.Name, e.Msg) }

// Reader streams records out of a usage file. It holds one record in
// memory at a time, whatever the file's size.
type Reader struct {
	name    string
	format  Format
	cols    []string // mapped header, CSV only
	header  []string // the header as written, CSV only
	head    []byte   // JSON Lines: the start of the file, for CheckFields
	anyCols bool
	csv     *csv.Reader
	lines   *bufio.Reader
	line    int64 // JSONL: last physical line read
	columns map[string]string
	closer  io.Closer
	// compressed: the file is gzip, whose read errors say so
	compressed bool
}

var gzipMagic = []byte{0x1f, 0x8b}

// NewReader opens a usage file for reading: it undoes gzip compression,
// detects the format and reads the CSV header. A *FileError means the file
// is not usable at all.
func NewReader(r io.Reader, name string, opts ReaderOptions) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	rd := &Reader{name: name, columns: opts.Columns, anyCols: opts.AnyColumns}
	if head, _ := br.Peek(2); bytes.Equal(head, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &FileError{name, gzipProblem(err)}
		}
		rd.closer = zr
		rd.compressed = true
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, &FileError{name, "cannot be read: " + readProblem(err, rd.compressed).Error()}
	}
	if err := checkText(head, err == nil || errors.Is(err, bufio.ErrBufferFull)); err != nil {
		return nil, &FileError{name, err.Error()}
	}
	if bytes.HasPrefix(head, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		head = head[3:]
	}
	rd.format = opts.Format
	if rd.format == "" {
		rd.format = DetectFormat(name, head)
	}
	switch rd.format {
	case FormatCSV:
		return rd, rd.openCSV(br, opts.Delimiter)
	case FormatJSONL:
		rd.lines = br
		if len(bytes.TrimSpace(head)) == 0 {
			return nil, &FileError{name, "the file is empty"}
		}
		rd.head = head
		return rd, nil
	default:
		return nil, &FileError{name, fmt.Sprintf("unknown format %q (use csv or jsonl)", rd.format)}
	}
}

// Format is the format being read.
func (r *Reader) Format() Format { return r.format }

// Close releases the decompressor, if any; it does not close the source.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// DetectFormat picks the format from the file name, then from content.
func DetectFormat(name string, head []byte) Format {
	n := strings.TrimSuffix(strings.ToLower(name), ".gz")
	switch {
	case strings.HasSuffix(n, ".jsonl"), strings.HasSuffix(n, ".ndjson"), strings.HasSuffix(n, ".json"):
		return FormatJSONL
	case strings.HasSuffix(n, ".csv"), strings.HasSuffix(n, ".tsv"), strings.HasSuffix(n, ".txt"):
		return FormatCSV
	}
	if t := bytes.TrimLeft(head, " \t\r\n\xef\xbb\xbf"); len(t) > 0 && t[0] == '{' {
		return FormatJSONL
	}
	return FormatCSV
}

// checkText refuses content that is plainly not text: NUL bytes, UTF-16,
// or bytes that are not UTF-8. complete is false when head is the whole
// file, true when it may end inside a character.
func checkText(head []byte, truncated bool) error {
	if bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0xfe, 0xff}) {
		return errors.New("the file is UTF-16 encoded; usage files must be UTF-8")
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return fmt.Errorf("binary content (a NUL byte at offset %d, line %d): not a CSV or JSON Lines file", i, lineAt(head, i))
	}
	for i := 0; i < len(head); {
		r, size := utf8.DecodeRune(head[i:])
		if r == utf8.RuneError && size <= 1 {
			if truncated && len(head)-i < utf8.UTFMax {
				break
			}
			return fmt.Errorf("not UTF-8 text (invalid byte 0x%02x at offset %d, line %d); convert the file to UTF-8", head[i], i, lineAt(head, i))
		}
		i += size
	}
	return nil
}

func lineAt(b []byte, off int) int { return bytes.Count(b[:off], []byte{'\n'}) + 1 }

func (r *Reader) openCSV(br *bufio.Reader, delim rune) error {
	c := csv.NewReader(br)
	if delim != 0 {
		c.Comma = delim
	}
	c.ReuseRecord = true
	header, err := c.Read()
	if errors.Is(err, io.EOF) {
		return &FileError{r.name, "the file is empty (a CSV file needs a header row)"}
	}
	if err != nil {
		return &FileError{r.name, "the header row is not valid CSV: " + readProblem(CSVProblem(err), r.compressed).Error()}
	}
	seen := make(map[string]int, len(header))
	r.cols = make([]string, len(header))
	r.header = make([]string, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return &FileError{r.name, fmt.Sprintf("header column %d has no name", i+1)}
		}
		if strings.ContainsAny(h, "{}") && strings.Contains(h, "\"") {
			return &FileError{r.name, "the header row looks like JSON, not CSV column names"}
		}
		name := r.mapColumn(h)
		if j, dup := seen[name]; dup {
			return &FileError{r.name, fmt.Sprintf("header columns %d and %d are both %q", j+1, i+1, name)}
		}
		seen[name] = i
		r.cols[i] = name
		r.header[i] = h
	}
	c.FieldsPerRecord = len(header)
	r.csv = c
	return nil
}

func (r *Reader) mapColumn(h string) string {
	if m, ok := r.columns[h]; ok {
		return m
	}
	return h
}

// RecordError is a single record that cannot be read; the rest of the
// file goes on. Fields holds what could be read of it.
type RecordError struct {
	Line   int64
	Fields map[string]string
	Text   string
	Err    *codes.Error
}

func (e *RecordError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Err.Message) }

// Next returns the next record and the physical line it starts on. It
// returns io.EOF at the end, a *RecordError for a record that cannot be
// read (call Next again to go on), and any other error when the file
// cannot be read further.
func (r *Reader) Next() (map[string]string, int64, error) {
	if r.format == FormatCSV {
		return r.nextCSV()
	}
	return r.nextJSON()
}

func (r *Reader) nextCSV() (map[string]string, int64, error) {
	row, line, err := r.NextRow()
	if err != nil {
		return nil, line, err
	}
	return r.fieldMap(row), line, nil
}

// Columns are a CSV file's field names (the header with the client's
// mapping applied), in file order; nil for JSON Lines.
func (r *Reader) Columns() []string { return r.cols }

// NextRow is Next for CSV files without building a map: the record's
// values in the order of Columns, valid until the next call. Its errors
// are Next's. For JSON Lines it returns an error.
func (r *Reader) NextRow() ([]string, int64, error) {
	if r.csv == nil {
		return nil, 0, errors.New("NextRow reads CSV files only")
	}
	rec, err := r.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			fields := r.fieldMap(rec)
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				return nil, int64(pe.StartLine), &RecordError{Line: int64(pe.StartLine), Fields: fields,
					Err: codes.Errorf(codes.MalformedRecord, "", "line %d has %d fields, the header has %d", pe.StartLine, len(rec), len(r.cols))}
			}
			return nil, int64(pe.StartLine), &RecordError{Line: int64(pe.StartLine), Fields: fields,
				Err: codes.Errorf(codes.MalformedRecord, "", "%v", CSVProblem(err))}
		}
		return nil, 0, readProblem(err, r.compressed)
	}
	line, _ := r.csv.FieldPos(0)
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return nil, int64(line), &RecordError{Line: int64(line), Fields: r.fieldMap(rec),
				Err: codes.Errorf(codes.MalformedRecord, r.cols[i], "line %d, field %s is not UTF-8 text", line, r.cols[i])}
		}
	}
	return rec, int64(line), nil
}

func (r *Reader) fieldMap(rec []string) map[string]string {
	m := make(map[string]string, len(r.cols))
	for i, v := range rec {
		if i < len(r.cols) {
			m[r.cols[i]] = v
		}
	}
	return m
}

func (r *Reader) nextJSON() (map[string]string, int64, error) {
	for {
		text, tooLong, err := r.readLine()
		if errors.Is(err, io.EOF) {
			return nil, r.line, err
		}
		if err != nil {
			return nil, r.line, readProblem(err, r.compressed)
		}
		line := r.line
		if tooLong {
			return nil, line, &RecordError{Line: line,
				Err: codes.Errorf(codes.MalformedRecord, "", "line %d is longer than %d bytes", line, MaxLineBytes)}
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		fields, perr := r.parseJSONLine(text)
		if perr != nil {
			return nil, line, &RecordError{Line: line, Text: clip(string(text)),
				Err: codes.Errorf(codes.MalformedRecord, perr.field, "line %d: %s", line, perr.msg)}
		}
		return fields, line, nil
	}
}

// readLine returns the next physical line without its line ending. A line
// longer than MaxLineBytes is consumed but not kept.
func (r *Reader) readLine() (text []byte, tooLong bool, err error) {
	for {
		chunk, err := r.lines.ReadSlice('\n')
		if len(text)+len(chunk) > MaxLineBytes {
			tooLong, text = true, nil
		} else if !tooLong {
			text = append(text, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(text) == 0 && !tooLong {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		r.line++
		return bytes.TrimRight(text, "\r\n"), tooLong, nil
	}
}

type jsonLineError struct{ field, msg string }

func (r *Reader) parseJSONLine(text []byte) (map[string]string, *jsonLineError) {
	if !utf8.Valid(text) {
		return nil, &jsonLineError{"", "the line is not UTF-8 text"}
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &jsonLineError{"", jsonProblem(err) + "; each line must be one JSON object (a record)"}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &jsonLineError{"", "the line holds " + jsonKind(v) + " where a JSON object (a record) was expected"}
	}
	if dec.More() {
		return nil, &jsonLineError{"", "more than one JSON value on the line; each line must be one JSON object (a record)"}
	}
	fields := make(map[string]string, len(obj))
	for k, v := range obj {
		name := r.mapColumn(k)
		switch x := v.(type) {
		case nil:
			continue
		case string:
			fields[name] = x
		case json.Number:
			fields[name] = x.String()
		case bool:
			fields[name] = strconv.FormatBool(x)
		default:
			b, _ := json.Marshal(x)
			fields[name] = string(b)
		}
	}
	return fields, nil
}
