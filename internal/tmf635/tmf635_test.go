package tmf635

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/msgcheck"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/usage"
)

const fileID = "01a23448-b101-7794-9610-a79243c63965"

func schema(t *testing.T, def string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../../tests/testdata/tmf635/tmf635-v4.0.0.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.AssertFormat()
	if err := c.AddResource("tmf635.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("tmf635.json#/definitions/" + def)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func valid(t *testing.T, s *jsonschema.Schema, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc); err != nil {
		t.Errorf("%s: %v", b, err)
	}
}

func TestIDs(t *testing.T) {
	for _, c := range []struct {
		line int64
		part int
	}{{1, 0}, {2, 0}, {99999, 3}} {
		id := ID(fileID, c.line, c.part)
		f, l, p, ok := ParseID(id)
		if !ok || f != fileID || l != c.line || p != c.part {
			t.Errorf("ParseID(%q) = %q %d %d %v", id, f, l, p, ok)
		}
	}
	for _, bad := range []string{"", "x", fileID, fileID + ".", fileID + ".0", fileID + ".01", fileID + ".1.0",
		fileID + ".1.x", fileID + ".-1", "01a23448-b101-7794-9610-a79243c6396g.1", fileID + ".1.2.3"} {
		if _, _, _, ok := ParseID(bad); ok {
			t.Errorf("ParseID(%q) took it", bad)
		}
	}
	if c, code, ok := ParseSpecID("acme:VOICE:X"); !ok || c != "acme" || code != "VOICE:X" {
		t.Errorf("ParseSpecID: %q %q %v", c, code, ok)
	}
}

func TestStatusAndBuild(t *testing.T) {
	at := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	mur := func(s murs.SyncStatus) *murs.MUR {
		return &murs.MUR{Client: "acme", RecordID: "r1", FileID: fileID, Line: 2, AccountID: "A1", UsageType: "VOICE",
			Quantity: "12.5", UsageTime: at, Currency: "JPY", NetAmount: "1234.5000", RatedAt: at.Add(time.Minute),
			SyncStatus: s, Qualifiers: map[string]string{"qualifier_1": "x"}, Attributes: map[string]string{"cell": "C1"}}
	}
	exc := func(s exceptions.Status) *exceptions.Exception {
		return &exceptions.Exception{ExceptionID: "e1", Client: "acme", FileID: fileID, Line: 2, Stage: "mediate",
			Code: "BAD_QUANTITY", Field: "quantity", Message: "quantity \"abc\" is not a decimal number", Status: s,
			Record: json.RawMessage(`{"record_id":"r1","account_id":"A1","usage_type":"VOICE","quantity":"abc","usage_time":"2026-10-01T08:00:00Z"}`)}
	}
	posted := &Posted{Fields: map[string]string{"usage_type": "DATA", "usage_time": "2026-10-01T08:00:00Z", "account_id": "A2",
		"quantity": "3", "record_id": fileID + ".2"}, Body: json.RawMessage(`{"description":"from the switch"}`)}
	sch := schema(t, "Usage")
	for _, c := range []struct {
		rec  Record
		want Status
		desc string
	}{
		{Record{MUR: mur(murs.Unsynced)}, Rated, ""},
		{Record{MUR: mur(murs.Batched)}, Rated, ""},
		{Record{MUR: mur(murs.SyncFailed)}, Rated, ""},
		{Record{MUR: mur(murs.Synced)}, Billed, ""},
		{Record{MUR: mur(murs.Unsynced), Posted: posted}, Rated, "from the switch"},
		{Record{Exc: exc(exceptions.Open)}, Rejected, "BAD_QUANTITY at mediate: quantity \"abc\" is not a decimal number"},
		{Record{Exc: exc(exceptions.Discarded)}, Rejected, "BAD_QUANTITY"},
		{Record{Exc: exc(exceptions.Open), ExcEdited: json.RawMessage(`{"usage_type":"VOICE","usage_time":"yesterday","account_id":"A1"}`)}, Rejected, "BAD_QUANTITY"},
		{Record{Exc: exc(exceptions.Reprocessing), Posted: posted}, Recycled, "BAD_QUANTITY"},
		{Record{Posted: posted}, Received, "from the switch"},
	} {
		c.rec.Client, c.rec.FileID, c.rec.Line = "acme", fileID, 2
		if got := StatusOf(&c.rec); got != c.want {
			t.Errorf("StatusOf(%+v) = %s, want %s", c.rec, got, c.want)
		}
		u := Build(&c.rec, "http://h"+BasePath)
		valid(t, sch, u)
		if u.ID != fileID+".2" || u.Href != "http://h"+BasePath+"/usage/"+fileID+".2" || u.Status != c.want || !strings.HasPrefix(u.Description, c.desc) {
			t.Errorf("Build: %+v", u)
		}
		if (c.want == Rated || c.want == Billed) != (len(u.RatedProductUsage) == 1) {
			t.Errorf("%s with ratedProductUsage %+v", c.want, u.RatedProductUsage)
		}
		if c.rec.MUR != nil {
			r := u.RatedProductUsage[0]
			if r.TaxExcludedRatingAmount != (Money{Unit: "JPY", Value: "1234.5000"}) || r.IsBilled != (c.want == Billed) {
				t.Errorf("rated: %+v", r)
			}
		}
		if c.rec.Exc != nil {
			found := false
			for _, ch := range u.UsageCharacteristic {
				found = found || ch.Name == "exception_code" && ch.Value == "BAD_QUANTITY"
			}
			if !found || u.UsageType != "VOICE" || u.RelatedParty[0].ID != "A1" {
				t.Errorf("exception usage: %+v", u)
			}
		}
	}
	b, _ := json.Marshal(Build(&Record{Client: "acme", FileID: fileID, Line: 2, MUR: mur(murs.Unsynced)}, "http://h"))
	if !bytes.Contains(b, []byte(`"taxExcludedRatingAmount":{"unit":"JPY","value":1234.5000}`)) {
		t.Errorf("Money value is not a JSON number: %s", b)
	}
}

func TestParseCreate(t *testing.T) {
	only := func(c string) func(string) (string, error) {
		return func(named string) (string, error) {
			if named != "" && named != c {
				return "", errors.New("not yours")
			}
			return c, nil
		}
	}
	s, err := ParseCreate([]byte(`{"usageType":"VOICE","usageDate":"2026-10-01T10:00:00+02:00","description":"d",
		"relatedParty":[{"id":"cust","role":"customer","@referredType":"Individual"},{"id":"BA1","@referredType":"BillingAccount"}],
		"usageCharacteristic":[{"name":"quantity","value":12.50},{"name":"qualifier_1","value":"peak"},{"name":"roaming","value":true},
			{"name":"client","value":"acme"}]}`), only("acme"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"usage_type": "VOICE", "usage_time": "2026-10-01T08:00:00Z", "account_id": "BA1",
		"quantity": "12.50", "qualifier_1": "peak", "roaming": "true"}
	if s.Client != "acme" || !s.OwnRecordID || len(s.Fields) != len(want) {
		t.Fatalf("%+v", s)
	}
	for k, v := range want {
		if s.Fields[k] != v {
			t.Errorf("%s = %q, want %q", k, s.Fields[k], v)
		}
	}
	s.Complete(fileID, 7)
	if s.Fields["record_id"] != fileID+".7" {
		t.Errorf("record_id %q", s.Fields["record_id"])
	}
	// A client whose files write epoch seconds gets its usage time so,
	// and the received usage still shows its usageDate.
	epoch, _ := usage.NewTimeFormat("epoch_seconds", "")
	s.WriteTime(epoch)
	if s.Fields["usage_time"] != "1790841600" {
		t.Errorf("usage_time in epoch seconds: %q", s.Fields["usage_time"])
	}
	u := Build(&Record{Client: "acme", FileID: fileID, Line: 7, Posted: &Posted{Fields: s.Fields, Body: s.Body}}, "http://h")
	if u.UsageDate != "2026-10-01T08:00:00Z" {
		t.Errorf("received usage's usageDate %q", u.UsageDate)
	}
	for _, c := range u.UsageCharacteristic {
		if c.Name == "usage_time" {
			t.Errorf("usage_time shown as a characteristic too: %v", c.Value)
		}
	}
	valid(t, schema(t, "Usage"), u)
	s, err = ParseCreate([]byte(`{"relatedParty":[{"id":"C9","role":"customer","@referredType":"Individual"}],
		"usageCharacteristic":[{"name":"record_id","value":"r-9"}]}`), only("acme"))
	if err != nil || s.OwnRecordID || s.Fields["record_id"] != "r-9" || s.Fields["account_id"] != "C9" {
		t.Errorf("customer party, own record_id: %+v %v", s, err)
	}
	for body, want := range map[string]string{
		``:                                       "empty",
		`[]`:                                     "Usage_Create",
		`{} {}`:                                  "more than one",
		`{"usageDate":"yesterday"}`:              "usageDate",
		`{"status":"rated"}`:                     "status",
		`{"ratedProductUsage":[{}]}`:             "ratedProductUsage",
		`{"usageCharacteristic":[{"value":1}]}`:  "name is missing",
		`{"usageCharacteristic":[{"name":"x"}]}`: "value is missing",
		`{"usageCharacteristic":[{"name":"x","value":{"a":1}}]}`:                  "object",
		`{"usageCharacteristic":[{"name":"account_id","value":"A"}]}`:             "relatedParty",
		`{"usageCharacteristic":[{"name":"q","value":1},{"name":"q","value":2}]}`: "twice",
		`{"usageCharacteristic":[{"name":"client","value":"beta"}]}`:              "not yours",
	} {
		_, err := ParseCreate([]byte(body), only("acme"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter(url.Values{"status": {"rated,billed"}, "usageType": {"VOICE", "DATA"}, "offset": {"5"}, "limit": {"7"},
		"usageDate.gte": {"2026-10-01T00:00:00Z"}, "usageDate.lt": {"2026-10-02T00:00:00Z"}, "relatedParty.id": {"A1"}, "fields": {"status"}})
	if err != nil || len(f.Statuses) != 2 || len(f.UsageTypes) != 2 || f.Offset != 5 || f.Limit != 7 || f.From == nil || f.To == nil ||
		len(f.Accounts) != 1 || len(f.Fields) != 1 {
		t.Fatalf("%+v %v", f, err)
	}
	u := Usage{Status: Rated, UsageType: "VOICE", UsageDate: "2026-10-01T10:00:00Z", RelatedParty: []RelatedParty{{ID: "A1"}}}
	if !f.Matches(&u) {
		t.Error("does not match")
	}
	u.UsageDate = "2026-10-02T00:00:00Z"
	if f.Matches(&u) {
		t.Error("usageDate.lt is not exclusive")
	}
	for _, q := range []string{"status=lost", "limit=0", "limit=1001", "offset=-1", "colour=red", "usageDate.gte=monday", "fields=colour"} {
		v, _ := url.ParseQuery(q)
		if _, err := ParseFilter(v); err == nil {
			t.Errorf("%s: taken", q)
		}
	}
	if f, _ := ParseFilter(url.Values{}); f.Limit != DefaultLimit || f.Offset != 0 {
		t.Errorf("defaults %+v", f)
	}
}

func TestHubQuery(t *testing.T) {
	h, err := ParseHubQuery("eventType=UsageStateChangeEvent&usage.status=billed")
	if err != nil {
		t.Fatal(err)
	}
	billed, rated := Usage{Status: Billed}, Usage{Status: Rated}
	if !h.Wants(StateChangeEvent, &billed) || h.Wants(CreateEvent, &billed) || h.Wants(StateChangeEvent, &rated) {
		t.Error("Wants")
	}
	if h, _ := ParseHubQuery(""); !h.Wants(CreateEvent, &rated) {
		t.Error("an empty query wants everything")
	}
	for _, q := range []string{"eventType=UsageDeleteEvent", "colour=red", "status=lost", "%zz"} {
		if _, err := ParseHubQuery(q); err == nil {
			t.Errorf("%s: taken", q)
		}
	}
	if ListenerPath(CreateEvent) != "/listener/usageCreateEvent" || ListenerPath(StateChangeEvent) != "/listener/usageStateChangeEvent" {
		t.Error("listener paths")
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := Build(&Record{Client: "acme", FileID: fileID, Line: 2, MUR: &murs.MUR{UsageType: "VOICE", Currency: "USD", NetAmount: "1",
		Quantity: "1", UsageTime: at, RatedAt: at, SyncStatus: murs.Synced}}, "http://h")
	for typ, st := range map[string]Status{CreateEvent: Received, StateChangeEvent: Rated} {
		e := NewEvent("e1", typ, u, st, at, at)
		valid(t, schema(t, typ), e)
		if e.Event.Usage.Status != st || (st == Received) != (e.Event.Usage.RatedProductUsage == nil) {
			t.Errorf("%s: %+v", typ, e.Event.Usage)
		}
		if st == Rated && e.Event.Usage.RatedProductUsage[0].IsBilled {
			t.Error("a rated event says billed")
		}
	}
}

func TestBackoff(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 20; n++ {
		d := Backoff(n)
		base := min(time.Second<<(n-1), 5*time.Minute)
		if n > 12 {
			base = 5 * time.Minute
		}
		if d < base || d > base+base/5 || d < prev/2 {
			t.Errorf("Backoff(%d) = %v, want %v..%v", n, d, base, base+base/5)
		}
		prev = d
	}
}

// FuzzParseCreate: whatever a client posts, ParseCreate and ApplyUpdate
// answer a usage or a 400 whose reason is in the body's terms, never Go's.
func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{`{}`, `{"usageType":"VOICE","usageDate":"2026-10-01T10:00:00Z","relatedParty":[{"id":"A","@referredType":"BillingAccount"}],"usageCharacteristic":[{"name":"quantity","value":1}]}`,
		`[]`, `{"usageCharacteristic":[{"name":"x","value":{}}]}`, `{"usageDate":5}`, `{"relatedParty":"x"}`, `nul`, ``} {
		f.Add([]byte(s))
	}
	pick := func(string) (string, error) { return "acme", nil }
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, err := range []error{
			func() error { _, err := ParseCreate(body, pick); return err }(),
			func() error { _, err := ApplyUpdate(map[string]string{"quantity": "1"}, body); return err }(),
		} {
			if err == nil {
				continue
			}
			p := AsProblem(err)
			if p == nil || p.Status != 400 {
				t.Fatalf("%q: %v is not a 400", body, err)
			}
			if bad := msgcheck.Internals(p.Reason); bad != "" {
				t.Fatalf("%q: reason %q says %q", body, p.Reason, bad)
			}
		}
	})
}
