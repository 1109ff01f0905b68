package fakecore

import (
	"fmt"
	"testing"
)

// BenchmarkCall1000 is one bulk call of 1,000 records through the fake
// core's checks and store (the sync benchmark's far end); a record is a
// resend after the first round.
func BenchmarkCall1000(b *testing.B) {
	core, err := New(Config{Credentials: []Credential{{clientNo, key}}})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]string, 1000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("agg-%06d", i), fmt.Sprintf("ACC-%d", i%50), "VOICE", "12.345", "1.23")
	}
	payload := []byte(body(recs...))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if a := core.process(1, payload, nil); a.ErrorCode != 0 || len(a.ErrorRecords) != 0 {
			b.Fatal(a)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
}
