package usage

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkReadRecord: the rate stage's reading of a usage.mediated
// message, against json.Unmarshal of the same bytes.
func BenchmarkReadRecord(b *testing.B) {
	msg := AppendRecord(nil, Record{Source: Source{Client: "bench", FileID: "01a234fe-7ef5-7f61-b828-918b58ea8123", Line: 123456},
		RecordID: "bench-123456", AccountID: "ACC-004711", UsageType: "VOICE", Quantity: "187.25",
		UsageTime: time.Date(2026, 11, 30, 23, 59, 1, 0, time.UTC), Attributes: map[string]string{"cell": "A12"}})
	b.Run("ReadRecord", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadRecord(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r Record
			if err := json.Unmarshal(msg, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
