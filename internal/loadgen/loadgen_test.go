package loadgen

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/usage"
)

func TestCatalogEventsAreValid(t *testing.T) {
	var buf bytes.Buffer
	if err := Catalog(&buf, CatalogOptions{Client: "gen", Accounts: 6, Plans: 2, Currencies: []string{"USD", "JPY"}}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	ids := map[string]bool{}
	var b catalog.Builder
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
		if err := b.Add(e.Entity, e.EntityID, e.Data); err != nil {
			t.Fatalf("event %s: %v", e.EventID, err)
		}
		n++
	}
	// usage types, plans, a free-units discount per plan, an amount off
	// on the odd plan, accounts with subscriptions, a percent discount on
	// every third account.
	if want := len(UsageTypes) + 2 + 2 + 1 + 6*2 + 2; n != want {
		t.Fatalf("%d events, want %d", n, want)
	}
	snap := b.Snapshot("gen")
	if p := snap.Problems(); len(p) > 0 {
		t.Fatalf("catalog problems: %v", p)
	}
	models := map[catalog.Model]bool{}
	for _, p := range []string{"PLAN000", "PLAN001"} {
		for _, r := range snap.Plan(p).Rates {
			models[r.Model] = true
		}
	}
	if len(models) != len(Models) {
		t.Fatalf("models used: %v, want all of %v", models, Models)
	}
	kinds := map[catalog.DiscountKind]bool{}
	for _, id := range []string{"FREEDATA000", "VOICEOFF001", "PCT0000002", "PCT0000005"} {
		d := snap.Discount(id)
		if d == nil {
			t.Fatalf("discount %s missing", id)
		}
		kinds[d.Kind] = true
	}
	if len(kinds) != 3 {
		t.Fatalf("discount kinds: %v", kinds)
	}
	if snap.Account(AccountID(1)).Currency != "JPY" {
		t.Fatalf("account 1 currency %s", snap.Account(AccountID(1)).Currency)
	}
	if scale("0.05", 1) != "0.055" || scale("2.50", 0) != "2.5" {
		t.Fatalf("scale: %s %s", scale("0.05", 1), scale("2.50", 0))
	}
}

func TestCatalogRefusesUnknownNames(t *testing.T) {
	var buf bytes.Buffer
	if err := Catalog(&buf, CatalogOptions{Accounts: 1, Plans: 1, Models: []string{"flat"}}); err == nil || !strings.Contains(err.Error(), `"flat"`) {
		t.Fatalf("unknown model: %v", err)
	}
	if err := Catalog(&buf, CatalogOptions{Accounts: 1, Plans: 1, Currencies: []string{"XYZ"}}); err == nil || !strings.Contains(err.Error(), `"XYZ"`) {
		t.Fatalf("unknown currency: %v", err)
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

// TestTroubleTally checks the expected outcomes a troubled catalog
// announces against the file itself: every line is counted, the lines the
// sync must refuse are exactly those that do not parse or validate, and
// the repeats and stale versions are exactly those not newer than an
// event already seen for their entity.
func TestTroubleTally(t *testing.T) {
	var buf bytes.Buffer
	var tally Tally
	if err := Catalog(&buf, CatalogOptions{Client: "gen", Accounts: 40, Plans: 3, TroubleEvery: 4, Tally: &tally}); err != nil {
		t.Fatal(err)
	}
	var got Tally
	newest := map[string]int64{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		got.Events++
		e, err := feed.Parse(sc.Bytes())
		if err == nil {
			err = e.Validate(catalog.ValidateData)
		}
		if err != nil {
			got.Failed++
			continue
		}
		k := e.Entity + "/" + e.EntityID
		if v, ok := newest[k]; ok && e.Version <= v {
			got.Ignored++
			continue
		}
		newest[k] = e.Version
		got.Applied++
	}
	if got != tally || tally.Failed == 0 || tally.Ignored == 0 {
		t.Fatalf("file holds %+v, tally says %+v", got, tally)
	}
}

// TestUsageSkewAndUnknownAccounts: HotPercent of the records go to the
// HotAccounts first accounts (plus their share of the rest), every
// UnknownEvery-th record names an account the catalog lacks unless
// BadEvery made it bad.
func TestUsageSkewAndUnknownAccounts(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	o := UsageOptions{Client: "gen", Records: 20000, Accounts: 1000, Seed: 3, Start: start,
		BadEvery: 20, UnknownEvery: 10, HotAccounts: 5, HotPercent: 40}
	var buf bytes.Buffer
	if err := Usage(&buf, o); err != nil {
		t.Fatal(err)
	}
	r, err := usage.NewReader(&buf, "u.csv", usage.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hot, unknown, n := 0, 0, 0
	for {
		f, _, err := r.Next()
		if err != nil {
			break
		}
		n++
		switch a := f["account_id"]; {
		case strings.HasPrefix(a, "NOACC"):
			unknown++
		case a < AccountID(5):
			hot++
		}
	}
	// Lines 10, 30, 50, …: every 10th except the 20th ones, which are bad.
	if n != 20000 || unknown != 1000 {
		t.Fatalf("%d records, %d with unknown accounts; want 20000 and 1000", n, unknown)
	}
	// 40% of the known ones, and 0.5% of the other 60%: about 7,260 of 19,000.
	if hot < 6800 || hot > 7700 {
		t.Errorf("%d records on the 5 hot accounts, want about 7,260", hot)
	}
	if err := Usage(&bytes.Buffer{}, UsageOptions{Client: "gen", Records: 1, Accounts: 10, HotAccounts: 5}); err == nil {
		t.Error("hot accounts without hot percent accepted")
	}

}
