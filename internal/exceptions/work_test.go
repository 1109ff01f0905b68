package exceptions

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestCheckEdit(t *testing.T) {
	mediate := &Exception{Client: "c", FileID: "f", Line: 2, Stage: "mediate"}
	good := `{"record_id":"r","account_id":"A","usage_type":"U","quantity":"1.5","usage_time":"2026-03-10T11:00:00Z"}`
	for _, c := range []struct {
		name, edited string
		code         codes.Code
		field, want  string
	}{
		{"good", good, "", "", ""},
		{"not an object", `[1]`, "", "", "a JSON object of fields"},
		{"a number", `{"quantity": 3}`, "", "quantity", "is not a string"},
		{"still unread", `{"raw": "a,b"}`, "", "raw", "still the unread line"},
		{"missing first", `{"quantity":"x"}`, codes.MissingField, "record_id", "MISSING_FIELD"},
		{"bad quantity", strings.Replace(good, `"1.5"`, `"-1"`, 1), codes.BadQuantity, "quantity", "BAD_QUANTITY"},
		{"bad time", strings.Replace(good, "2026-03-10T11:00:00Z", "yesterday", 1), codes.BadTimestamp, "usage_time", "BAD_TIMESTAMP"},
	} {
		got, err := CheckEdit(mediate, []byte(c.edited), usage.DefaultRules(), now)
		if c.want == "" {
			if err != nil || !json.Valid(got) {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var r *Refused
		if !errors.As(err, &r) || r.Code != c.code || r.Field != c.field || !strings.Contains(r.Reason, c.want) {
			t.Errorf("%s: %#v, want code %q field %q reason with %q", c.name, err, c.code, c.field, c.want)
		}
	}
}

func TestReprocessMessage(t *testing.T) {
	at := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	normal := usage.AppendRecord(nil, usage.Record{Source: usage.Source{Client: "c", FileID: "f", Line: 3}, RecordID: "r3",
		AccountID: "A", UsageType: "U", Quantity: "2", UsageTime: at, Qualifiers: map[string]string{"qualifier_1": "q"}})
	rate := &Exception{Client: "c", FileID: "f", Line: 3, Stage: "rate", Record: normal}
	m, err := ReprocessMessage(rate, nil, usage.DefaultRules(), now)
	if err != nil || m.Topic != Mediated || string(m.Key) != "A" {
		t.Fatalf("rate, unedited: %+v %v", m, err)
	}
	// Edited from its fields, as Fields shows them.
	fields, err := Fields(rate, nil)
	if err != nil || fields["usage_time"] != "2026-03-10T11:00:00Z" || fields["qualifier_1"] != "q" {
		t.Fatalf("fields of a rate exception: %v %v", fields, err)
	}
	fields["account_id"] = "B"
	edited, _ := json.Marshal(fields)
	m, err = ReprocessMessage(rate, &Work{Edited: edited}, usage.DefaultRules(), now)
	var rec usage.Record
	if err != nil || m.Topic != Mediated || json.Unmarshal(m.Value, &rec) != nil || rec.AccountID != "B" || rec.Line != 3 ||
		rec.Qualifiers["qualifier_1"] != "q" {
		t.Fatalf("rate, edited: %s %v", m.Value, err)
	}
	mediate := &Exception{Client: "c", FileID: "f", Line: 2, Stage: "mediate", Record: json.RawMessage(`{"account_id":"A","quantity":"x"}`)}
	m, err = ReprocessMessage(mediate, nil, usage.DefaultRules(), now)
	raw, derr := usage.DecodeRaw(m.Value)
	if err != nil || derr != nil || m.Topic != Raw || raw.Fields["quantity"] != "x" || raw.Line != 2 || string(m.Key) != "A" {
		t.Fatalf("mediate: %s %v %v", m.Value, err, derr)
	}
	unread := &Exception{Client: "c", FileID: "f", Line: 4, Stage: "ingest", Record: json.RawMessage(`{"raw":"a,\"b"}`)}
	if _, err := ReprocessMessage(unread, nil, usage.DefaultRules(), now); err == nil {
		t.Fatal("an unread line was sent")
	}
}

func TestSelectionValidate(t *testing.T) {
	for _, c := range []struct {
		sel Selection
		ok  bool
	}{
		{Selection{}, false},
		{Selection{All: true}, true},
		{Selection{IDs: []string{"a"}}, true},
		{Selection{IDs: []string{""}}, false},
		{Selection{IDs: make([]string, MaxLimit+1)}, false},
		{Selection{Filter: Filter{Code: codes.BadQuantity}}, true},
		{Selection{Filter: Filter{Code: "NOPE"}}, false},
		{Selection{Filter: Filter{Stage: "nowhere"}}, false},
		{Selection{Filter: Filter{Status: "gone"}}, false},
	} {
		if err := c.sel.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok=%v", c.sel, err, c.ok)
		}
	}
}
