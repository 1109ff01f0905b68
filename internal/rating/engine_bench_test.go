package rating_test

import (
	"fmt"
	"testing"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/rating"
)

// benchCatalog has 1,000 accounts on plan P, whose schedule for U is rs.
func benchCatalog(b *testing.B, rs catalog.RateSchedule, ds ...catalog.Discount) *catalog.Snapshot {
	const n = 1000
	rs.UsageType, rs.Currency = "U", "USD"
	accts := make([]catalog.Account, n)
	subs := make([]catalog.Subscription, n)
	for i := range n {
		accts[i] = catalog.Account{ID: fmt.Sprintf("A%04d", i), Currency: "USD", Status: catalog.StatusActive}
		subs[i] = catalog.Subscription{ID: fmt.Sprintf("S%04d", i), AccountID: accts[i].ID, PlanID: "P"}
	}
	s := catalog.NewSnapshot("c", accts, []catalog.UsageType{{Code: "U"}},
		[]catalog.Plan{{ID: "P", Rates: []catalog.RateSchedule{rs}}}, subs, ds)
	if p := s.Problems(); len(p) > 0 {
		b.Fatal(p)
	}
	return s
}

func benchRate(b *testing.B, snap *catalog.Snapshot) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("A%04d", i)
	}
	var e rating.Engine
	var r rating.Result
	led := rating.NewMemLedger()
	in := rating.Input{UsageType: "U", Quantity: dec("3.25"), UsageTime: march}
	// Warm the ledger, as a batch's loaded counters are.
	for _, id := range ids {
		in.AccountID = id
		if err := e.Rate(snap, led, &in, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		in.AccountID = ids[i%len(ids)]
		if err := e.Rate(snap, led, &in, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkRatePerUnit(b *testing.B) {
	benchRate(b, benchCatalog(b, catalog.RateSchedule{Model: catalog.PerUnit, UnitPrice: catalog.Dec("0.05")}))
}

func BenchmarkRateGraduatedDiscounts(b *testing.B) {
	rs := catalog.RateSchedule{Model: catalog.Graduated, Tiers: tiers("100", "1.00", "5", "1000", "0.50", "", "", "0.25", "")}
	benchRate(b, benchCatalog(b, rs,
		catalog.Discount{ID: "free", PlanID: "P", Kind: catalog.FreeUnits, Value: catalog.Dec("50")},
		catalog.Discount{ID: "pct", PlanID: "P", Kind: catalog.Percent, Value: catalog.Dec("10")},
		catalog.Discount{ID: "apu", PlanID: "P", Kind: catalog.AmountPerUnit, Value: catalog.Dec("0.01")},
	))
}
