package usage

import (
	"encoding/json"
	"reflect"
	"testing"
)

var rawScanCases = []string{
	`{"client":"acme","file_id":"f1","line":2,"fields":{"a":"1","b":"x y"}}`,
	` { "client" : "acme" , "file_id":"f1", "line" : -3 , "part":1,"parts":2, "fields" : { } } `,
	`{}`,
	`{"fields":{"ü":"ÿ€"}}`,
	`{"client":"a\"b","line":2}`,              // escape
	`{"Client":"acme"}`,                       // encoding/json matches keys ignoring case
	`{"client":"acme","other":1}`,             // unknown key
	`{"fields":{"a":"1","a":"2"}}`,            // repeated field
	`{"fields":{"a":"1"},"fields":{"b":"2"}}`, // repeated fields object
	`{"fields":{"a":null}}`,
	`{"fields":null}`,
	`{"line":2.0}`,
	`{"line":1e3}`,
	`{"line":007}`,
	`{"line":"2"}`,
	`{"line":1234567890123456789012}`,
	`{"client":"acme"} x`,
	`{"client":"acme",}`,
	`{"fields":{"a":"1",}}`,
	`{"fields":{"a":"\xff"}}`,
	`{"fields":{"a":"tab	in"}}`,
	`[]`,
	``,
	`{"client":"acme"`,
}

// Whatever ScanRaw accepts, encoding/json reads to the same record.
func TestScanRawAgreesWithEncodingJSON(t *testing.T) {
	accepted := 0
	for _, c := range rawScanCases {
		if checkScanRaw(t, c) {
			accepted++
		}
	}
	if accepted < 4 {
		t.Errorf("only %d of the plain documents were scanned", accepted)
	}
}

func FuzzScanRaw(f *testing.F) {
	for _, c := range rawScanCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) { checkScanRaw(t, s) })
}

func checkScanRaw(t *testing.T, s string) bool {
	t.Helper()
	src, kv, ok := ScanRaw(s, []string{"keep", "me"})
	if len(kv) < 2 || kv[0] != "keep" || kv[1] != "me" {
		t.Fatalf("%q: pairs before the record changed: %q", s, kv)
	}
	if !ok {
		if len(kv) != 2 {
			t.Errorf("%q: refused but left pairs %q", s, kv[2:])
		}
		return false
	}
	var want Raw
	if err := json.Unmarshal([]byte(s), &want); err != nil {
		t.Fatalf("%q: scanned, but encoding/json says %v", s, err)
	}
	got := Raw{Source: src}
	if kv := kv[2:]; len(kv) > 0 || want.Fields != nil {
		got.Fields = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			got.Fields[kv[i]] = kv[i+1]
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q: scanned %+v, encoding/json %+v", s, got, want)
	}
	return true
}
