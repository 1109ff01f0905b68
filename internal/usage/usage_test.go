package usage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/msgcheck"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func raw(kv ...string) Raw {
	m := map[string]string{
		"record_id": "r1", "account_id": "A1", "usage_type": "VOICE",
		"quantity": "1.5", "usage_time": "2026-03-01T10:00:00Z",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<del>" {
			delete(m, kv[i])
			continue
		}
		m[kv[i]] = kv[i+1]
	}
	return Raw{Source: Source{Client: "c", FileID: "f", Line: 2}, Fields: m}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name  string
		raw   Raw
		code  codes.Code
		field string
		qty   string
	}{
		{name: "ok", raw: raw(), qty: "1.5"},
		{name: "trailing zeros kept exact", raw: raw("quantity", "2.500"), qty: "2.5"},
		{name: "exponent written out", raw: raw("quantity", "1E+3"), qty: "1000"},
		{name: "zero", raw: raw("quantity", "0"), qty: "0"},
		{name: "negative zero", raw: raw("quantity", "-0"), qty: "0"},
		{name: "missing record id", raw: raw("record_id", "<del>"), code: codes.MissingField, field: "record_id"},
		{name: "blank account", raw: raw("account_id", "  "), code: codes.MissingField, field: "account_id"},
		{name: "several missing: first named", raw: raw("usage_type", "", "quantity", ""), code: codes.MissingField, field: "usage_type"},
		{name: "missing beats bad quantity", raw: raw("quantity", "x", "record_id", ""), code: codes.MissingField, field: "record_id"},
		{name: "non numeric", raw: raw("quantity", "ten"), code: codes.BadQuantity, field: "quantity"},
		{name: "negative", raw: raw("quantity", "-1"), code: codes.BadQuantity, field: "quantity"},
		{name: "NaN", raw: raw("quantity", "NaN"), code: codes.BadQuantity, field: "quantity"},
		{name: "infinity", raw: raw("quantity", "Inf"), code: codes.BadQuantity, field: "quantity"},
		{name: "huge exponent", raw: raw("quantity", "1E+999999"), code: codes.BadQuantity, field: "quantity"},
		{name: "bad quantity beats bad time", raw: raw("quantity", "x", "usage_time", "y"), code: codes.BadQuantity, field: "quantity"},
		{name: "unparseable time", raw: raw("usage_time", "01/03/2026"), code: codes.BadTimestamp, field: "usage_time"},
		{name: "too old", raw: raw("usage_time", "2025-11-01T00:00:00Z"), code: codes.BadTimestamp, field: "usage_time"},
		{name: "too far ahead", raw: raw("usage_time", "2026-03-10T12:16:00Z"), code: codes.BadTimestamp, field: "usage_time"},
		{name: "within skew", raw: raw("usage_time", "2026-03-10T12:14:00Z"), qty: "1.5"},
		{name: "offset time", raw: raw("usage_time", "2026-03-01T10:00:00+02:00"), qty: "1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Normalize(tt.raw, DefaultRules(), now)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if rec.Quantity != tt.qty {
					t.Fatalf("quantity = %q, want %q", rec.Quantity, tt.qty)
				}
				if rec.UsageTime.Location() != time.UTC {
					t.Fatalf("usage time not in UTC: %v", rec.UsageTime)
				}
				return
			}
			ce, ok := codes.As(err)
			if !ok {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			if ce.Code != tt.code || ce.Field != tt.field {
				t.Fatalf("got %s/%s (%v), want %s/%s", ce.Code, ce.Field, err, tt.code, tt.field)
			}
		})
	}
}

func TestNormalizeQualifiersAndAttributes(t *testing.T) {
	rec, err := Normalize(raw("qualifier_2", "roaming", "cell", "C42", "qualifier_1", ""), DefaultRules(), now)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Qualifiers["qualifier_2"] != "roaming" || len(rec.Qualifiers) != 1 {
		t.Fatalf("qualifiers = %v", rec.Qualifiers)
	}
	if rec.Attributes["cell"] != "C42" || len(rec.Attributes) != 1 {
		t.Fatalf("attributes = %v", rec.Attributes)
	}
}

func TestMaxQuantity(t *testing.T) {
	r := DefaultRules()
	r.MaxQuantity = "100"
	if _, err := Normalize(raw("quantity", "100.01"), r, now); err == nil {
		t.Fatal("quantity above the maximum accepted")
	}
	if _, err := Normalize(raw("quantity", "100"), r, now); err != nil {
		t.Fatal(err)
	}
}

type readResult struct {
	fields map[string]string
	line   int64
	err    error
}

func readAll(t *testing.T, name, content string, opts ReaderOptions) []readResult {
	t.Helper()
	r, err := NewReader(strings.NewReader(content), name, opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	var out []readResult
	for {
		f, line, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		var re *RecordError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("fatal read error: %v", err)
		}
		out = append(out, readResult{f, line, err})
	}
}

func TestCSVReader(t *testing.T) {
	content := "\xef\xbb\xbfrecord_id, account_id ,usage_type,quantity,usage_time\n" +
		"r1,A1,VOICE,1,2026-03-01T10:00:00Z\n" +
		"r2,A1,VOICE\n" + // too few fields
		"\"r3\",\"A,2\",SMS,2,2026-03-01T10:00:00Z\n" +
		"\"r4\nstill r4\",A3,SMS,2,2026-03-01T10:00:00Z\n" +
		"r5,A\"1,SMS,1,2026-03-01T10:00:00Z\n" + // bare quote
		"r6,A1,SMS,1,2026-03-01T10:00:00Z\n"
	got := readAll(t, "u.csv", content, ReaderOptions{})
	if len(got) != 6 {
		t.Fatalf("got %d records, want 6: %+v", len(got), got)
	}
	wantLines := []int64{2, 3, 4, 5, 7, 8}
	for i, g := range got {
		if g.line != wantLines[i] {
			t.Errorf("record %d line = %d, want %d", i, g.line, wantLines[i])
		}
	}
	if got[0].err != nil || got[0].fields["account_id"] != "A1" {
		t.Fatalf("record 1 = %+v", got[0])
	}
	var re *RecordError
	if !errors.As(got[1].err, &re) || re.Err.Code != codes.MalformedRecord || !strings.Contains(re.Error(), "line 3") {
		t.Fatalf("record 2 error = %v", got[1].err)
	}
	if got[2].fields["account_id"] != "A,2" {
		t.Fatalf("quoted comma lost: %+v", got[2])
	}
	if got[3].fields["record_id"] != "r4\nstill r4" {
		t.Fatalf("multi-line field: %+v", got[3])
	}
	if !errors.As(got[4].err, &re) || re.Err.Code != codes.MalformedRecord {
		t.Fatalf("bare quote not malformed: %+v", got[4])
	}
	if got[5].err != nil || got[5].fields["record_id"] != "r6" {
		t.Fatalf("reader did not go on after a bad line: %+v", got[5])
	}
}

func TestColumnMappingAndDelimiter(t *testing.T) {
	content := "CallID;Subscriber;Service;Seconds;Start\nc1;S1;VOICE;60;2026-03-01T10:00:00Z\n"
	got := readAll(t, "calls.csv", content, ReaderOptions{Delimiter: ';', Columns: map[string]string{
		"CallID": "record_id", "Subscriber": "account_id", "Service": "usage_type", "Seconds": "quantity", "Start": "usage_time",
	}})
	if len(got) != 1 || got[0].fields["record_id"] != "c1" || got[0].fields["quantity"] != "60" {
		t.Fatalf("got %+v", got)
	}
}

func TestJSONLReader(t *testing.T) {
	content := `{"record_id":"r1","account_id":"A1","usage_type":"VOICE","quantity":1.25,"usage_time":"2026-03-01T10:00:00Z","roaming":true}

not json
{"record_id":"r3","nested":{"a":1},"gone":null}
[1,2]
{"record_id":"r5"}{"record_id":"r6"}
{"record_id":"r7"}`
	got := readAll(t, "u.jsonl", content, ReaderOptions{})
	if len(got) != 6 {
		t.Fatalf("got %d records, want 6: %+v", len(got), got)
	}
	if got[0].fields["quantity"] != "1.25" || got[0].fields["roaming"] != "true" || got[0].line != 1 {
		t.Fatalf("record 1 = %+v", got[0])
	}
	if got[1].err == nil || got[1].line != 3 {
		t.Fatalf("line 3 = %+v", got[1])
	}
	if got[2].fields["nested"] != `{"a":1}` || len(got[2].fields) != 2 {
		t.Fatalf("line 4 = %+v", got[2])
	}
	if got[3].err == nil || got[4].err == nil {
		t.Fatalf("array or two objects accepted: %+v %+v", got[3], got[4])
	}
	if got[5].fields["record_id"] != "r7" || got[5].line != 7 {
		t.Fatalf("last line without newline = %+v", got[5])
	}
}

func TestJSONLLongLine(t *testing.T) {
	long := `{"record_id":"` + strings.Repeat("x", MaxLineBytes) + `"}`
	got := readAll(t, "u.jsonl", long+"\n"+`{"record_id":"ok"}`+"\n", ReaderOptions{})
	if len(got) != 2 || got[0].err == nil || got[1].fields["record_id"] != "ok" || got[1].line != 2 {
		t.Fatalf("got %d records: first err %v", len(got), got[0].err)
	}
}

func TestGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte("record_id,account_id\nr1,A1\n"))
	_ = zw.Close()
	got := readAll(t, "u.csv.gz", buf.String(), ReaderOptions{})
	if len(got) != 1 || got[0].fields["record_id"] != "r1" {
		t.Fatalf("got %+v", got)
	}
	// A truncated archive fails the read, it does not end quietly.
	trunc := buf.Bytes()[:buf.Len()-10]
	r, err := NewReader(bytes.NewReader(trunc), "u.csv.gz", ReaderOptions{})
	if err != nil {
		return // refused up front: fine too
	}
	for {
		_, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("truncated gzip read to a clean end")
		}
		var re *RecordError
		if err != nil && !errors.As(err, &re) {
			return
		}
	}
}

func TestFileErrors(t *testing.T) {
	tests := map[string]struct {
		name, content, want string
	}{
		"binary":       {"u.csv", "PK\x03\x04\x00\x00garbage", "binary content"},
		"latin1":       {"u.csv", "record_id,account\nr1,caf\xe9\n", "not UTF-8"},
		"utf16":        {"u.csv", "\xff\xfer\x00e\x00", "UTF-16"},
		"empty csv":    {"u.csv", "", "empty"},
		"empty jsonl":  {"u.jsonl", "\n\n", "empty"},
		"dup header":   {"u.csv", "record_id,quantity,record_id\n", "both \"record_id\""},
		"blank header": {"u.csv", "record_id,,quantity\n", "column 2 has no name"},
		"bad gzip":     {"u.csv.gz", "\x1f\x8bnot gzip", "gzip"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tt.content), tt.name, ReaderOptions{})
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a file error containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.name+": ") {
				t.Fatalf("error does not name the file: %v", err)
			}
		})
	}
}

func TestHeaderOnly(t *testing.T) {
	if got := readAll(t, "u.csv", "record_id,quantity\n", ReaderOptions{}); len(got) != 0 {
		t.Fatalf("got %d records from a header-only file", len(got))
	}
}

func FuzzCSVReader(f *testing.F) {
	f.Add("record_id,quantity\nr1,1\n")
	f.Add("a,b\n\"x\ny\",2\n")
	f.Add("a\n\"unterminated\n")
	f.Fuzz(func(t *testing.T, s string) { drain(t, s, "f.csv") })
}

func FuzzJSONLReader(f *testing.F) {
	f.Add(`{"record_id":"r1","quantity":1}` + "\n")
	f.Add("{\"a\":[1,{\"b\":null}]}\n\n{")
	f.Add("[1]\n\"x\"\n12\ntrue\nnull\n{\"a\":1}{\n")
	f.Fuzz(func(t *testing.T, s string) { drain(t, s, "f.jsonl") })
}

// FuzzGzipReader: a gzip file cut or damaged anywhere fails with words
// about the file, not the decompressor's.
func FuzzGzipReader(f *testing.F) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte("record_id,account_id,usage_type,quantity,usage_time\nr1,A1,V,1,2026-03-01T10:00:00Z\n"))
	_ = zw.Close()
	whole := buf.Bytes()
	f.Add(whole, uint16(len(whole)-4), uint16(0), byte(0))
	f.Add(whole, uint16(len(whole)), uint16(20), byte(0xff))
	f.Add(whole, uint16(5), uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, gz []byte, cut, at uint16, flip byte) {
		b := append([]byte(nil), gz...)
		if int(cut) < len(b) {
			b = b[:cut]
		}
		if int(at) < len(b) {
			b[at] ^= flip
		}
		drain(t, string(b), "f.csv.gz")
	})
}

func noInternals(t *testing.T, err error) {
	t.Helper()
	if f := msgcheck.Internals(err.Error()); f != "" {
		t.Fatalf("message speaks of Go (%q): %v", f, err)
	}
}

// TestMessagesSayWhatTheLineHolds: every way a line or a file cannot be
// read gets a message in the file's terms: what is there, and what was
// expected.
func TestMessagesSayWhatTheLineHolds(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("record_id,account_id,usage_type,quantity,usage_time\n" + strings.Repeat("r1,A1,V,1,2026-03-01T10:00:00Z\n", 2000)))
	_ = zw.Close()
	cut := gz.String()[:gz.Len()/2]
	for _, c := range []struct {
		name, content, want string
	}{
		{"u.jsonl", "[1,2]\n", "line 1: the line holds a JSON array where a JSON object (a record) was expected"},
		{"u.jsonl", `"text"` + "\n", "line 1: the line holds a JSON string where a JSON object (a record) was expected"},
		{"u.jsonl", "12\n", "line 1: the line holds a JSON number where"},
		{"u.jsonl", "null\n", "line 1: the line holds null where"},
		{"u.jsonl", "{\"record_id\":\"r1\"\n", "line 1: the JSON ends before the JSON object is complete (a line cut short?)"},
		{"u.jsonl", "{\"record_id\":x}\n", "line 1: not JSON at byte 14: invalid character 'x' looking for beginning of value; each line must be one JSON object"},
		{"u.jsonl", "{\"a\":1} {\"b\":2}\n", "more than one JSON value on the line"},
		{"u.csv", "record_id,account_id\nr1,A\"1\n", `line 2, column 5: a quote (") inside a field that does not start with one`},
		{"u.csv", "record_id,account_id\nr1,\"A1\"x\n", "line 2, column 7: a quoted field whose closing quote is missing"},
		{"u.csv", "record_id,account_id\nr1\n", "line 2 has 1 fields, the header has 2"},
		{"u.csv.gz", cut, "the gzip data ends before the compressed file does: the file was cut short"},
		{"u.csv.gz", "\x1f\x8b", "ends inside the gzip header"},
		{"u.csv.gz", "\x1f\x8bnot gzip at all", "its gzip header is not valid"},
		{"u.csv", "a\"b,c\n", `the header row is not valid CSV: line 1, column 2: a quote (") inside a field`},
	} {
		var msgs []string
		r, err := NewReader(strings.NewReader(c.content), c.name, ReaderOptions{})
		if err != nil {
			msgs = append(msgs, err.Error())
		} else {
			for {
				_, _, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					msgs = append(msgs, err.Error())
					var re *RecordError
					if !errors.As(err, &re) {
						break
					}
				}
			}
		}
		all := strings.Join(msgs, "\n")
		if !strings.Contains(all, c.want) {
			t.Errorf("%s %q:\n got %s\nwant %s", c.name, clip(c.content), all, c.want)
		}
		if f := msgcheck.Internals(all); f != "" {
			t.Errorf("%s %q: speaks of Go (%q): %s", c.name, clip(c.content), f, all)
		}
	}
}

// drain reads everything and checks the reader's promises: it ends, line
// numbers never go backwards, errors are of the documented kinds, and
// none of their messages speaks of Go's types or libraries.
func drain(t *testing.T, s, name string) {
	r, err := NewReader(strings.NewReader(s), name, ReaderOptions{})
	if err != nil {
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Fatalf("NewReader returned %T: %v", err, err)
		}
		noInternals(t, err)
		return
	}
	if err := r.CheckFields(); err != nil {
		noInternals(t, err)
	}
	var last int64
	for i := 0; i <= len(s)+1; i++ {
		_, line, err := r.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			noInternals(t, err)
		}
		var re *RecordError
		if err != nil && !errors.As(err, &re) {
			return // a read failure ends the file
		}
		if line < last {
			t.Fatalf("line numbers went backwards: %d after %d", line, last)
		}
		last = line
	}
	t.Fatal("reader did not reach the end")
}

// TestPlainQuantityMatchesDecimalReading: the fast path for plain
// quantities gives exactly what the decimal library's reading gives, and
// leaves everything else to it.
func TestPlainQuantityMatchesDecimalReading(t *testing.T) {
	slow := func(s string) (string, error) { return ParseQuantity(s, "1e100") } // a maximum takes the full path
	check := func(s string) {
		t.Helper()
		want, werr := slow(s)
		got, gerr := ParseQuantity(s, "")
		if (werr == nil) != (gerr == nil) || got != want {
			t.Fatalf("ParseQuantity(%q) = %q, %v; the full reading gives %q, %v", s, got, gerr, want, werr)
		}
	}
	for _, s := range []string{"0", "00", "0.0", "1", "1000", "12.500", "0012.50", ".5", "5.", "1.2.3", "", " 7 ",
		"0.000000000000000000000000000001", "1" + strings.Repeat("0", 29), "1" + strings.Repeat("0", 30),
		"0." + strings.Repeat("0", 29) + "1", "0." + strings.Repeat("0", 30) + "1", strings.Repeat("9", 31),
		"1e3", "-0", "-1", "+1", "1_0", "٣"} {
		check(s)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const alphabet = "0000123456789..e-+ "
	for range 50000 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
}
