package main

import (
	"context"
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"vivace.dev/vivace/plugins/mediation"
)

const testConfig = `{"services":{"object-storage-egress":"STORAGE_EGRESS_GB","cdn":"CDN_GB"},"free_services":["internal-backup"]}`

func configured(t testing.TB) *cloud {
	t.Helper()
	p := newCloud()
	if err := p.Configure(context.Background(), "nimbus", json.RawMessage(testConfig)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMediate(t *testing.T) {
	p := configured(t)
	row := func(kv ...string) mediation.RawRecord {
		f := map[string]string{"event_id": "e1", "account": "A1", "service": "cdn", "bytes": "2500000000",
			"timestamp": "2026-10-01T08:00:00Z", "region": "eu-west"}
		for i := 0; i < len(kv); i += 2 {
			f[kv[i]] = kv[i+1]
		}
		return mediation.RawRecord{Client: "nimbus", FileID: "f", Line: 2, Fields: f}
	}
	want := func(kv ...string) mediation.Result {
		m := map[string]string{"record_id": "e1", "account_id": "A1", "usage_type": "CDN_GB", "quantity": "2.500",
			"usage_time": "2026-10-01T08:00:00Z", "service": "cdn", "bytes": "2500000000", "qualifier_1": "eu-west"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return mediation.Mediated(m)
	}
	tests := []struct {
		name string
		in   mediation.RawRecord
		want mediation.Result
	}{
		{"mapped service", row(), want()},
		{"other service", row("service", "object-storage-egress"), want("service", "object-storage-egress", "usage_type", "STORAGE_EGRESS_GB")},
		{"unix seconds", row("timestamp", "1790841600"), want("usage_time", "2026-10-01T08:00:00Z")},
		{"resource id as qualifier_2", row("resource_id", "bucket-7"), want("qualifier_2", "bucket-7")},
		{"account_id mapped by the client wins", row("account_id", "ACC-1"), want("account_id", "ACC-1")},
		{"free service filtered", row("service", "internal-backup"), mediation.Filter("free service internal-backup")},
		{"unknown service fails", row("service", "gpu"), mediation.Fail("service", `service "gpu" is not in the plugin's service table`)},
		{"missing account", row("account", ""), mediation.Result{Error: &mediation.RecordError{Code: "MISSING_FIELD", Field: "account",
			Message: "required column account is missing or empty"}}},
		{"bad bytes", row("bytes", "1.5"), mediation.Result{Error: &mediation.RecordError{Code: "BAD_QUANTITY", Field: "bytes",
			Message: `bytes "1.5" is not a whole non-negative number below 2^64`}}},
		{"bad timestamp", row("timestamp", "yesterday"), mediation.Result{Error: &mediation.RecordError{Code: "BAD_TIMESTAMP", Field: "timestamp",
			Message: `timestamp "yesterday" is neither RFC 3339 nor Unix seconds`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Mediate(context.Background(), []mediation.RawRecord{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBytesToGB(t *testing.T) {
	for in, want := range map[string]string{"0": "0.000", "1": "0.001", "999999": "0.001", "1000000": "0.001",
		"1000001": "0.002", "999999999": "1.000", "1000000000": "1.000", "2500000000": "2.500",
		"18446744073709551615": "18446744073.710"} {
		got, err := bytesToGB(in)
		if err != nil || got != want {
			t.Errorf("bytesToGB(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.0", "1e9", "18446744073709551616"} {
		if _, err := bytesToGB(bad); err == nil {
			t.Errorf("bytesToGB(%q) accepted", bad)
		}
	}
}

// FuzzBytesToGB checks the rounding against exact rational arithmetic:
// the result is the smallest multiple of 0.001 GB not below the bytes.
func FuzzBytesToGB(f *testing.F) {
	for _, s := range []string{"0", "1", "1000001", "18446744073709551615", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := bytesToGB(s)
		if err != nil {
			return
		}
		n, ok := new(big.Int).SetString(strings.TrimSpace(s), 10)
		if !ok {
			t.Fatalf("%q accepted but is not an integer", s)
		}
		q, ok := new(big.Rat).SetString(got)
		if !ok {
			t.Fatalf("%q gave %q", s, got)
		}
		exact := new(big.Rat).SetFrac(n, big.NewInt(1_000_000_000))
		step := big.NewRat(1, 1000)
		if q.Cmp(exact) < 0 || new(big.Rat).Sub(q, step).Cmp(exact) >= 0 {
			t.Fatalf("%q bytes: %s GB is not the started MB above %s", s, got, exact.FloatString(9))
		}
	})
}

func TestConfigureRejects(t *testing.T) {
	for _, cfg := range []string{`{}`, `{"services":{"cdn":""}}`, `{"services":{"cdn":"X"},"free_services":["cdn"]}`, `{"nope":1}`} {
		err := newCloud().Configure(context.Background(), "nimbus", json.RawMessage(cfg))
		if err == nil || !strings.Contains(err.Error(), "client nimbus") {
			t.Errorf("Configure(%s) = %v, want an error naming the client", cfg, err)
		}
	}
}

func TestMediateBeforeConfigure(t *testing.T) {
	if _, err := newCloud().Mediate(context.Background(), []mediation.RawRecord{{Line: 2}}); err == nil {
		t.Fatal("an unconfigured plugin answered")
	}
}
