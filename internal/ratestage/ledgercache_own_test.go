package ratestage

import (
	"testing"
	"unsafe"
)

// TestRememberedKeysOwnTheirStrings: a key the stage remembers does not
// share the memory of the message it was read from (a record's strings
// are slices of one copy of its message), so the memory keeps only the
// key's own bytes alive.
func TestRememberedKeysOwnTheirStrings(t *testing.T) {
	msg := `{"client":"acme","account_id":"A1","usage_type":"VOICE","discount":"D1"}`
	k := CounterKey{Client: msg[11:15], AccountID: msg[31:33], UsageType: msg[49:54], Month: 202610}
	a := AllowanceKey{Client: msg[11:15], AccountID: msg[31:33], DiscountID: msg[68:70], Month: 202610}
	if k.Client != "acme" || k.AccountID != "A1" || k.UsageType != "VOICE" || a.DiscountID != "D1" {
		t.Fatalf("test keys %+v %+v", k, a)
	}
	var l ledgerMemory
	l.remember(map[CounterKey]string{k: "4"}, map[AllowanceKey]string{a: "1"})
	shares := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		start := uintptr(unsafe.Pointer(unsafe.StringData(msg)))
		return p >= start && p < start+uintptr(len(msg))
	}
	for got, v := range l.counters {
		if got != k || v != "4" || shares(got.Client) || shares(got.AccountID) || shares(got.UsageType) {
			t.Errorf("remembered counter %+v = %s shares the message's memory", got, v)
		}
	}
	for got := range l.allowances {
		if got != a || shares(got.Client) || shares(got.AccountID) || shares(got.DiscountID) {
			t.Errorf("remembered allowance %+v shares the message's memory", got)
		}
	}
	into := map[CounterKey]string{}
	if rest := l.recallCounters([]CounterKey{k}, into); len(rest) != 0 || into[k] != "4" {
		t.Fatalf("recall: %v %v", rest, into)
	}
}
