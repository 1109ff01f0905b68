package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"vivace.dev/vivace/plugins/mediation"
)

func configured(t *testing.T, cfg string) *telco {
	t.Helper()
	p := newTelco()
	if err := p.Configure(context.Background(), "acme", json.RawMessage(cfg)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMediate(t *testing.T) {
	p := configured(t, `{"test_msisdn_prefixes":["4479000"],"roaming_usage_type":"ROAM"}`)
	cdr := func(kv ...string) mediation.RawRecord {
		f := map[string]string{"call_id": "c1", "msisdn": "447700900123", "duration_sec": "61",
			"start_time": "2026-10-01 08:00:00", "roaming": "false"}
		for i := 0; i < len(kv); i += 2 {
			f[kv[i]] = kv[i+1]
		}
		return mediation.RawRecord{Client: "acme", FileID: "f", Line: 2, Fields: f}
	}
	airtime := map[string]string{"record_id": "c1", "account_id": "447700900123", "usage_type": "VOICE",
		"quantity": "2", "usage_time": "2026-10-01T08:00:00Z", "qualifier_1": "airtime",
		"msisdn": "447700900123", "duration_sec": "61"}
	with := func(m map[string]string, kv ...string) map[string]string {
		c := map[string]string{}
		for k, v := range m {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i]] = kv[i+1]
		}
		return c
	}
	tests := []struct {
		name string
		in   mediation.RawRecord
		want mediation.Result
	}{
		{"home call, started minutes rounded up", cdr(), mediation.Mediated(airtime)},
		{"exactly one minute", cdr("duration_sec", "60"), mediation.Mediated(with(airtime, "quantity", "1", "duration_sec", "60"))},
		{"zero seconds", cdr("duration_sec", "0"), mediation.Mediated(with(airtime, "quantity", "0", "duration_sec", "0"))},
		{"fraction past a whole minute", cdr("duration_sec", "120.2"), mediation.Mediated(with(airtime, "quantity", "3", "duration_sec", "120.2"))},
		{"RFC 3339 start kept in UTC offset form", cdr("start_time", "2026-10-01T10:00:00+02:00"),
			mediation.Mediated(with(airtime, "usage_time", "2026-10-01T10:00:00+02:00"))},
		{"account mapped by the client wins over msisdn", cdr("account_id", "ACC-9"), mediation.Mediated(with(airtime, "account_id", "ACC-9"))},
		{"destination as qualifier_2", cdr("destination", "FR"), mediation.Mediated(with(airtime, "qualifier_2", "FR"))},
		{"an incomplete correlated call stays marked", cdr("correlation", "incomplete", "record_type", "START"),
			mediation.Mediated(with(airtime, "correlation", "incomplete"))},
		{"roaming call split in two", cdr("roaming", "Y", "roaming_country", "ES"), mediation.Mediated(
			airtime,
			with(airtime, "record_id", "c1-roaming", "usage_type", "ROAM", "qualifier_1", "roaming", "qualifier_3", "ES"))},
		{"test call filtered", cdr("msisdn", "4479000555"), mediation.Filter("test call: msisdn 4479000555 has test prefix 4479000")},
		{"missing msisdn", cdr("msisdn", " "), mediation.Result{Error: &mediation.RecordError{Code: "MISSING_FIELD", Field: "msisdn",
			Message: "required CDR column msisdn is missing or empty"}}},
		{"negative duration", cdr("duration_sec", "-5"), mediation.Result{Error: &mediation.RecordError{Code: "BAD_QUANTITY", Field: "duration_sec",
			Message: `duration "-5" is not a non-negative number of seconds`}}},
		{"bad start time", cdr("start_time", "01/10/2026"), mediation.Result{Error: &mediation.RecordError{Code: "BAD_TIMESTAMP", Field: "start_time",
			Message: `start time "01/10/2026" is neither RFC 3339 nor yyyy-mm-dd hh:mm:ss (UTC)`}}},
		{"bad roaming flag", cdr("roaming", "maybe"), mediation.Fail("roaming", `roaming flag "maybe" is not one of true/false, yes/no, y/n, 1/0`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Mediate(context.Background(), []mediation.RawRecord{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
				if len(got) == 1 && got[0].Error != nil {
					t.Logf("error: %v", got[0].Error)
				}
			}
		})
	}
}

func TestStartedMinutes(t *testing.T) {
	for sec, want := range map[string]int64{"0": 0, "0.0": 0, "0.001": 1, "1": 1, "59": 1, "60": 1, "60.0": 1,
		"60.5": 2, "61": 2, "119": 2, "120": 2, "121": 3, " 3600 ": 60, "007": 1} {
		got, err := startedMinutes(sec)
		if err != nil || got != want {
			t.Errorf("startedMinutes(%q) = %d, %v; want %d", sec, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.", ".5", "1e3", "abc", "1.2.3", "99999999999999999999"} {
		if _, err := startedMinutes(bad); err == nil {
			t.Errorf("startedMinutes(%q) accepted", bad)
		}
	}
}

// FuzzStartedMinutes checks the rounding against a count of started
// minutes done the slow way, and that no input panics.
func FuzzStartedMinutes(f *testing.F) {
	for _, s := range []string{"0", "60", "61", "60.5", "1e3", "-1", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := startedMinutes(s)
		if err != nil {
			return
		}
		whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
		w, _ := strconv.ParseInt(whole, 10, 64)
		exact := strings.Trim(frac, "0") == ""
		// got minutes must cover the call, and got-1 must not.
		if exact && (got*60 < w || (got > 0 && (got-1)*60 >= w)) {
			t.Fatalf("%q: %d minutes", s, got)
		}
		if !exact && (got*60 <= w || (got-1)*60 > w) {
			t.Fatalf("%q: %d minutes", s, got)
		}
	})
}

func TestConfigureRejects(t *testing.T) {
	for _, cfg := range []string{`{"airtime_usage_type":""}`, `{"test_msisdn_prefixes":[""]}`, `{"unknown":1}`, `[]`} {
		err := newTelco().Configure(context.Background(), "acme", json.RawMessage(cfg))
		if err == nil || !strings.Contains(err.Error(), "client acme") {
			t.Errorf("Configure(%s) = %v, want an error naming the client", cfg, err)
		}
	}
}
