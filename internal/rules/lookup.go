package rules

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// LookupCSV reads a lookup table file: a header line, then one entry per
// line. The first column is the key, the others are the values, named by
// the header. It reads one entry at a time, so a large file need not fit
// in memory, and stops at the first bad line with an error naming the
// file and the line.
type LookupCSV struct {
	name    string
	r       *csv.Reader
	columns []string
	seen    map[string]int // key → line it was first on
	key     string
	values  map[string]string
	line    int
	err     error
}

// NewLookupCSV reads the header of a lookup table file; name is how
// errors name the file.
func NewLookupCSV(name string, r io.Reader) (*LookupCSV, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file; a lookup table needs a header line (key column first, then the value columns)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, csvError(err))
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("%s line 1: the header names %d column(s); a lookup table needs a key column and at least one value column", name, len(header))
	}
	cols := make([]string, len(header))
	at := map[string]int{}
	var errs []error
	for i, h := range header {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			errs = append(errs, fmt.Errorf("%s line 1: column %d has no name", name, i+1))
		case !utf8.ValidString(h) || strings.ContainsRune(h, 0):
			errs = append(errs, fmt.Errorf("%s line 1: the name of column %d is not UTF-8 text", name, i+1))
		case at[h] > 0:
			errs = append(errs, fmt.Errorf("%s line 1: column %q appears twice (columns %d and %d)", name, h, at[h], i+1))
		default:
			at[h] = i + 1
		}
		cols[i] = h
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &LookupCSV{name: name, r: cr, columns: cols, seen: map[string]int{}}, nil
}

// Columns returns the header: the key column, then the value columns.
func (l *LookupCSV) Columns() []string { return l.columns }

// Next reads the next entry; false at the end of the file or at the first
// bad line (Err tells which).
func (l *LookupCSV) Next() bool {
	if l.err != nil {
		return false
	}
	rec, err := l.r.Read()
	if err == io.EOF {
		return false
	}
	if errors.Is(err, csv.ErrFieldCount) && rec != nil {
		var pe *csv.ParseError
		errors.As(err, &pe)
		l.err = fmt.Errorf("%s line %d: %d fields, the header has %d", l.name, pe.StartLine, len(rec), len(l.columns))
		return false
	}
	if err != nil {
		l.err = fmt.Errorf("%s: %w", l.name, csvError(err))
		return false
	}
	line, _ := l.r.FieldPos(0)
	for i, f := range rec {
		if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
			l.err = fmt.Errorf("%s line %d: column %q is not UTF-8 text (or holds a NUL byte)", l.name, line, l.columns[i])
			return false
		}
	}
	key := strings.TrimSpace(rec[0])
	if key == "" {
		l.err = fmt.Errorf("%s line %d: the key (column %q) is empty", l.name, line, l.columns[0])
		return false
	}
	if first, ok := l.seen[key]; ok {
		l.err = fmt.Errorf("%s line %d: key %q appears again (first on line %d); a key has one entry", l.name, line, key, first)
		return false
	}
	l.seen[key] = line
	vals := make(map[string]string, len(rec)-1)
	for i, v := range rec[1:] {
		vals[l.columns[i+1]] = v
	}
	l.key, l.values, l.line = key, vals, line
	return true
}

// Entry returns the entry Next read: its key and its values by column.
func (l *LookupCSV) Entry() (key string, values map[string]string) { return l.key, l.values }

// Line is the line of the entry Next read.
func (l *LookupCSV) Line() int { return l.line }

// Err is the first bad line's error, if any.
func (l *LookupCSV) Err() error { return l.err }

// Len is how many entries have been read.
func (l *LookupCSV) Len() int { return len(l.seen) }

// csvError rewrites the CSV package's parse errors as "line N: ...".
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d, column %d: %v", pe.StartLine, pe.Column, pe.Err)
	}
	return err
}
