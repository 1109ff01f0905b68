package loadgen

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/usage"
)

func TestCatalogEventsAreValid(t *testing.T) {
	var buf bytes.Buffer
	if err := Catalog(&buf, CatalogOptions{Client: "gen", Accounts: 5, Plans: 2}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	ids := map[string]bool{}
	for sc.Scan() {
		e, err := feed.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(nil); err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
		if ids[e.EventID] {
			t.Fatalf("event id %s repeated", e.EventID)
		}
		ids[e.EventID] = true
		n++
	}
	if want := len(UsageTypes) + 2 + 5*2; n != want {
		t.Fatalf("%d events, want %d", n, want)
	}
	if scale("0.05", 1) != "0.055" || scale("2.50", 0) != "2.5" {
		t.Fatalf("scale: %s %s", scale("0.05", 1), scale("2.50", 0))
	}
}

func TestUsageFileReadsBack(t *testing.T) {
	var buf bytes.Buffer
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := Usage(&buf, UsageOptions{Client: "gen", Records: 1000, Accounts: 10, Seed: 7, Start: start, BadEvery: 100}); err != nil {
		t.Fatal(err)
	}
	r, err := usage.NewReader(&buf, "u.csv", usage.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, bad := 0, 0
	for {
		f, line, err := r.Next()
		if err != nil {
			break
		}
		if _, err := usage.Normalize(usage.Raw{Fields: f}, usage.Rules{MaxFuture: 48 * time.Hour}, start.Add(time.Hour)); err != nil {
			bad++
		} else {
			good++
		}
		if line < 2 {
			t.Fatalf("line %d", line)
		}
	}
	if good != 990 || bad != 10 {
		t.Fatalf("good %d bad %d", good, bad)
	}
}
