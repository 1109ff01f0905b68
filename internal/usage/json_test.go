package usage

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// awkward strings: every escape encoding/json makes, HTML characters,
// invalid UTF-8, line and paragraph separators, multi-byte text.
var awkward = []string{"", "plain", `quo"te`, `back\slash`, "tab\tnl\nret\rbs\bff\f", "ctl\x00\x01\x1f\x7f",
	"<a href='x'>&amp;</a>", "bad\xffutf8\xc3", "sep\u2028par\u2029", "été 東京 🎉", "/slash/"}

func TestRawEncoderMatchesMarshal(t *testing.T) {
	cols := []string{"usage_time", "account_id", "record_id", "quantity", "usage_type", "zz", "Aa", "a_b"}
	enc := NewRawEncoder(cols)
	for i, s := range awkward {
		row := make([]string, len(cols))
		for j := range row {
			row[j] = awkward[(i+j)%len(awkward)]
		}
		fields := map[string]string{}
		for j, c := range cols {
			fields[c] = row[j]
		}
		src := Source{Client: s, FileID: "f-" + s, Line: int64(i) * 1_000_003, Part: i % 3, Parts: i % 2 * 3}
		want, err := json.Marshal(Raw{Source: src, Fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		if got := enc.Append(nil, src, row); !bytes.Equal(got, want) {
			t.Errorf("RawEncoder:\n got %s\nwant %s", got, want)
		}
		if got := AppendRaw([]byte("prefix"), Raw{Source: src, Fields: fields}); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("AppendRaw:\n got %s\nwant prefix%s", got, want)
		}
	}
	for _, fields := range []map[string]string{nil, {}} {
		want, _ := json.Marshal(Raw{Fields: fields})
		if got := AppendRaw(nil, Raw{Fields: fields}); !bytes.Equal(got, want) {
			t.Errorf("AppendRaw(%#v) = %s, want %s", fields, got, want)
		}
	}
}

func TestAppendRecordMatchesMarshal(t *testing.T) {
	ts := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for i, s := range awkward {
		rec := Record{
			Source:   Source{Client: "c", FileID: s, Line: int64(i), Part: i % 2},
			RecordID: s, AccountID: "ACC" + s, UsageType: s, Quantity: "12.5", UsageTime: ts.Add(time.Duration(i) * time.Second),
		}
		if i%2 == 0 {
			rec.Qualifiers = map[string]string{"qualifier_2": s, "qualifier_1": "x"}
		}
		if i%3 == 0 {
			rec.Attributes = map[string]string{"region": s, "<b>": "&", "a": ""}
		}
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendRecord(nil, rec); !bytes.Equal(got, want) {
			t.Errorf("AppendRecord:\n got %s\nwant %s", got, want)
		}
	}
}

func TestDecodeRaw(t *testing.T) {
	for _, in := range []string{
		`{"client":"c","file_id":"f","line":3,"fields":{"a":"1","b":"x\"y\\u00e9\u00e9\n<"}}`,
		` { "client" : "c" , "line" : -0 , "part" : 2 , "parts" : 3 , "fields" : { } } `,
		`{"Client":"case-insensitive match goes to encoding/json","fields":{"a":"b"}}`,
		`{"client":"c","fields":null}`,
		`{"client":"c","fields":{"n":1}}`,
		`{"client":"c","line":1.0}`,
		`{"client":"c","line":99999999999999999999}`,
		`{"client":"\ud83c\udf89 pair"}`,
		`{"client":"bad \xff byte"}`,
		`{"client":"c","fields":{"a":"1"},"fields":{"b":"2"}}`,
		`{"client":"c","extra":[1,2,{"x":null}]}`,
		`{"client":"c"} trailing`,
		`{"client":"c",}`,
		`[]`, `null`, ``,
	} {
		got, gerr := DecodeRaw([]byte(in))
		var want Raw
		werr := json.Unmarshal([]byte(in), &want)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeRaw(%s) = %#v, %v; json.Unmarshal: %#v, %v", in, got, gerr, want, werr)
		}
	}
}

// FuzzDecodeRaw: whatever the scanner accepts, json.Unmarshal reads the
// same way; and what AppendRaw writes reads back as it was.
func FuzzDecodeRaw(f *testing.F) {
	for _, s := range awkward {
		f.Add([]byte(AppendRaw(nil, Raw{Source: Source{Client: s, FileID: "f", Line: 7}, Fields: map[string]string{s: s, "k": "v"}})))
	}
	f.Add([]byte(`{"client":"a\u0041\/","line":-12,"part":1,"fields":{"x":"\t"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, ok := scanRaw(b); ok {
			var want Raw
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("scanner accepted %q, json.Unmarshal: %v", b, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("scanner read %q as %#v, json.Unmarshal as %#v", b, got, want)
			}
		}
		if s := string(b); strings.ContainsRune(s, 0) {
			return
		}
		raw := Raw{Source: Source{Client: string(b), FileID: "f"}, Fields: map[string]string{string(b): string(b)}}
		enc := AppendRaw(nil, raw)
		want, _ := json.Marshal(raw)
		if !bytes.Equal(enc, want) {
			t.Fatalf("AppendRaw(%q) = %s, json.Marshal: %s", b, enc, want)
		}
	})
}

const testFileID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

func TestReadMessages(t *testing.T) {
	good := `{"client":"c","file_id":"` + testFileID + `","line":3,"fields":{"record_id":"r"}}`
	cases := []struct {
		body              string
		rawErr, sourceErr string // "": read
	}{
		{good, "", ""},
		{`{"client":"c","file_id":"` + testFileID + `","line":3,"part":2,"record_id":"r","fields":{}}`, "", ""},
		{`{"client":"c","file_id":"` + testFileID + `","line":3}`, "no fields", ""},
		{`{"client":"c","file_id":"f1","line":3,"fields":{}}`, "", `file_id "f1" is not a file id`},
		{`{"file_id":"` + testFileID + `","line":3,"fields":{}}`, "no client or file_id", "no client or file_id"},
		{`{"client":"c","file_id":"` + testFileID + `","line":-1,"fields":{}}`, "may be negative", "may be negative"},
		{`{"client":"c","file_id":"` + testFileID + `","line":1.5,"fields":{}}`, "line", "line 1.5 is not a line number"},
		{`{"client":"c","file_id":"` + testFileID + `","line":3,"fields":{"q":1}}`, "field q is a number, not a string", ""},
		{"not json \x00", "invalid character", "invalid character"},
		{`[1,2]`, "array", "array"},
	}
	for _, c := range cases {
		_, err := ReadRaw([]byte(c.body))
		checkErr(t, "ReadRaw", c.body, err, c.rawErr)
		_, err = ReadSource([]byte(c.body))
		checkErr(t, "ReadSource", c.body, err, c.sourceErr)
	}
	if _, err := ReadRecord([]byte(`{"client":"c","file_id":"` + testFileID + `","line":3,"usage_time":"2026-01-01T00:00:00Z"}`)); err == nil ||
		!strings.Contains(err.Error(), "record_id is missing") {
		t.Errorf("ReadRecord without a record id: %v", err)
	}
	if _, err := ReadRecord([]byte(`{"client":"c","file_id":"` + testFileID + `","line":3,"record_id":"r","usage_time":"yesterday"}`)); err == nil {
		t.Error("ReadRecord with a bad usage_time: no error")
	}
}

func checkErr(t *testing.T, what, body string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s(%s): %v, want it read", what, body, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s(%s): %v, want an error saying %q", what, body, err, want)
	}
}

// FuzzReadRaw: whatever ReadRaw reads names a file, reads again the same
// once written back, and ReadSource finds the same source in it: every
// stage attributes a message to the same file.
func FuzzReadRaw(f *testing.F) {
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","line":3,"fields":{"record_id":"r"}}`))
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","line":3,"part":1,"parts":2,"fields":{"a":"\u00e9\ud83d\ude00"}}`))
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","line":"3","fields":{}}`))
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","line":1e3,"fields":{}}`))
	f.Add([]byte(`{"client":"","file_id":null,"fields":null}`))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadRaw(b)
		src, serr := ReadSource(b)
		if err != nil {
			return
		}
		if checkSource(r.Source, false) != nil || r.Fields == nil {
			t.Fatalf("ReadRaw(%q) = %+v without a file or fields", b, r)
		}
		if serr != nil {
			if ValidFileID(r.FileID) != nil {
				return // a file id not of the registry: no file to count it
			}
			t.Fatalf("ReadRaw read %q, ReadSource refused it: %v", b, serr)
		}
		if src.Client != r.Client || src.FileID != r.FileID || src.Line != r.Line || src.Part != r.Part {
			t.Fatalf("%q: ReadRaw's source %+v, ReadSource's %+v", b, r.Source, src)
		}
		again, err := ReadRaw(AppendRaw(nil, r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("%q: written back and read again: %+v, %v; want %+v", b, again, err, r)
		}
	})
}

// FuzzReadSource: any bytes are read or refused, never a panic, and a
// source read names a file of the registry.
func FuzzReadSource(f *testing.F) {
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","line":3,"code":"BAD_QUANTITY","record":{}}`))
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","line":99999999999999999999}`))
	f.Add([]byte(`{"client":"c","file_id":"` + testFileID + `","part":2147483648}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		src, err := ReadSource(b)
		if err == nil && checkSource(src, true) != nil {
			t.Fatalf("ReadSource(%q) = %+v, which names no file", b, src)
		}
	})
}

func TestDecodeRecord(t *testing.T) {
	for _, in := range []string{
		string(AppendRecord(nil, Record{Source: Source{Client: "c", FileID: "f", Line: 3, Part: 1, Parts: 2}, RecordID: "r\"1",
			AccountID: "A\u00e9", UsageType: "VOICE", Quantity: "1.5", UsageTime: time.Date(2026, 10, 1, 8, 0, 0, 5, time.UTC),
			Qualifiers: map[string]string{"zone": "eu"}, Attributes: map[string]string{"a": "\n"}})),
		`{"client":"c","file_id":"f","line":1,"record_id":"r","usage_time":"2026-10-01T08:00:00+02:00"}`,
		` { "client" : "c" , "qualifiers" : { } , "attributes" : {"a":"1"}, "attributes" : {"b":"2"} } `,
		`{"Record_ID":"case-insensitive match goes to encoding/json"}`,
		`{"client":"c","usage_time":"2026-10-01"}`,
		`{"client":"c","usage_time":"2026-10-01T08:00:00Z","usage_time":null}`,
		`{"client":"c","usage_time":"2026-10-01T08:00:00\u005a"}`,
		`{"client":"c","qualifiers":{"n":1}}`,
		`{"client":"c","qualifiers":null}`,
		`{"client":"c","quantity":1.5}`,
		`{"client":"c","line":1e3}`,
		`{"client":"c","extra":true}`,
		`{"client":"c"} trailing`,
		`{"client":"c",}`,
		`[]`, `null`, ``, `{}`,
	} {
		got, gerr := DecodeRecord([]byte(in))
		var want Record
		werr := json.Unmarshal([]byte(in), &want)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeRecord(%s) = %#v, %v; json.Unmarshal: %#v, %v", in, got, gerr, want, werr)
		}
	}
}

// FuzzDecodeRecord: whatever the scanner accepts, json.Unmarshal reads the
// same way.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range awkward {
		f.Add(AppendRecord(nil, Record{Source: Source{Client: s, FileID: "f", Line: 7}, RecordID: s, Quantity: "2",
			UsageTime: time.Unix(1790000000, 123).UTC(), Attributes: map[string]string{s: s}}))
	}
	f.Add([]byte(`{"client":"a\u0041\/","line":-12,"part":1,"usage_time":"2026-10-01T08:00:00.5-07:00","qualifiers":{"x":"\t"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := scanRecord(string(b))
		if !ok {
			return
		}
		var want Record
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("scanner accepted %q, json.Unmarshal: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scanner read %q as %#v, json.Unmarshal as %#v", b, got, want)
		}
	})
}
