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
