package syncstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"vivace.dev/vivace/internal/mursync"
)

func TestInUsageOrder(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ms := []mursync.MUR{
		{ID: "0190a000-0000-7000-8000-000000000003", UsageTime: at("2026-01-01T10:00:00.000002Z")},
		{ID: "0190a000-0000-7000-8000-000000000002", UsageTime: at("2026-01-01T10:00:00.000001Z")},
		{ID: "0190a000-0000-7000-8000-000000000001", UsageTime: at("2026-01-01T10:00:00.000001Z")},
		{ID: "0190a000-0000-7000-8000-000000000000", UsageTime: at("2025-12-31T23:59:59Z")},
	}
	got := inUsageOrder(ms)
	want := []string{"0190a000-0000-7000-8000-000000000000", "0190a000-0000-7000-8000-000000000001",
		"0190a000-0000-7000-8000-000000000002", "0190a000-0000-7000-8000-000000000003"}
	for i, m := range got {
		if m.ID != want[i] {
			t.Fatalf("MUR %d is %s, want %s (order by usage time, then id)", i, m.ID, want[i])
		}
	}
	// A shuffle of many: every cycle of the permutation is followed.
	rng := rand.New(rand.NewPCG(1, 2))
	base := at("2026-01-01T00:00:00Z")
	many := make([]mursync.MUR, 500)
	for i := range many {
		many[i] = mursync.MUR{ID: fmt.Sprintf("0190a000-0000-7000-8000-%012x", i), UsageTime: base.Add(time.Duration(i/3) * time.Millisecond)}
	}
	rng.Shuffle(len(many), func(i, j int) { many[i], many[j] = many[j], many[i] })
	for i, m := range inUsageOrder(many) {
		if want := fmt.Sprintf("0190a000-0000-7000-8000-%012x", i); m.ID != want {
			t.Fatalf("MUR %d of the shuffle is %s, want %s", i, m.ID, want)
		}
	}
}
