package ratestage_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/usage"
)

// applyChecked applies events as the catalog stage does, data checked,
// and returns how many outcomes carry warnings; every event must apply.
func applyChecked(tb testing.TB, st *store.Store, evs []feed.Event) int {
	tb.Helper()
	out, err := feed.NewApplier(catalogstore.New(st), catalog.ValidateData).Apply(context.Background(), evs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	warned := 0
	for _, o := range out {
		if o.Outcome != feed.Applied {
			tb.Fatalf("event %s: %s %s %s", o.EventID, o.Outcome, o.Code, o.Message)
		}
		if len(o.Warnings) > 0 {
			warned++
		}
	}
	return warned
}

// catalogRows renders a client's stored catalog rows for comparison.
func catalogRows(tb testing.TB, st *store.Store, client string) []string {
	tb.Helper()
	rows, _, err := catalogstore.New(st).LoadCatalog(context.Background(), client)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%s %s v%d deleted=%v %s", r.Entity, r.EntityID, r.Version, r.Deleted, r.Data)
	}
	return out
}

// TestExtraFieldsChangeNothing: a catalog whose events carry fields
// Vivace does not use at every level — envelope extras, names and
// descriptions, unit prices on stairstep tiers, random fields with random
// values in the data, its rate schedules and tiers — applies completely,
// to exactly the same catalog rows, and rates the same records to exactly
// the same MURs as its narrow twin, for every entity kind and pricing
// model the generator writes.
func TestExtraFieldsChangeNothing(t *testing.T) {
	st := pgtest.Store(t)
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			narrow, wide := unique(fmt.Sprint("narrow", seed)), unique(fmt.Sprint("wide", seed))
			const accounts, plans = 30, 6
			gen := func(client string, extras bool) []feed.Event {
				return generatedWith(t, loadgen.CatalogOptions{Client: client, Accounts: accounts, Plans: plans,
					Currencies: []string{"USD", "JPY"}, Extras: extras, Seed: seed})
			}
			nEvents, wEvents := gen(narrow, false), gen(wide, true)
			kinds := map[string]bool{}
			for _, e := range wEvents {
				kinds[e.Entity] = true
				if len(e.Extra) == 0 || !bytes.Contains(e.Data, []byte(`"ext_`)) {
					t.Fatalf("event %s has no extra fields: %s", e.EventID, e.Data)
				}
			}
			if len(kinds) != 5 {
				t.Fatalf("the generated catalog has %d entity kinds", len(kinds))
			}
			if w := applyChecked(t, st, nEvents); w != 0 {
				t.Fatalf("%d narrow events warned", w)
			}
			if w := applyChecked(t, st, wEvents); w != len(wEvents) {
				t.Fatalf("%d of %d wide events warned; each has random fields", w, len(wEvents))
			}
			nRows, wRows := catalogRows(t, st, narrow), catalogRows(t, st, wide)
			if !slices.Equal(nRows, wRows) {
				for i := range min(len(nRows), len(wRows)) {
					if nRows[i] != wRows[i] {
						t.Fatalf("catalog rows differ (%d and %d rows); first:\n narrow %s\n   wide %s", len(nRows), len(wRows), nRows[i], wRows[i])
					}
				}
				t.Fatalf("catalog rows differ: %d and %d rows", len(nRows), len(wRows))
			}
			// The events are on record as received, extras included.
			recs, err := catalogstore.New(st).ListFeedEvents(context.Background(), feed.EventFilter{Client: wide, Entity: "plan", Limit: 1})
			if err != nil || len(recs) != 1 || !bytes.Contains(recs[0].Payload, []byte(`"trace_id"`)) ||
				!bytes.Contains(recs[0].Payload, []byte(`"from_unit"`)) || len(recs[0].Warnings) == 0 {
				t.Fatalf("plan on record: %+v %v", recs, err)
			}

			// The same records, rated for both clients.
			stage := newStage(st)
			nFile, wFile := newFile(t, st, narrow), newFile(t, st, wide)
			at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
			var nItems, wItems []ratestage.Item
			for i := range 400 {
				r := usage.Record{RecordID: "r" + strconv.Itoa(i), AccountID: loadgen.AccountID(i * 7 % accounts),
					UsageType: loadgen.UsageTypes[i%len(loadgen.UsageTypes)].Code, Quantity: strconv.Itoa(i*37%9000) + ".5",
					UsageTime: at.Add(time.Duration(i) * time.Minute)}
				r.Source = usage.Source{Client: narrow, FileID: nFile, Line: int64(i + 2)}
				nItems = append(nItems, ratestage.Item{Record: r})
				r.Source = usage.Source{Client: wide, FileID: wFile, Line: int64(i + 2)}
				wItems = append(wItems, ratestage.Item{Record: r})
			}
			for _, items := range [][]ratestage.Item{nItems, wItems} {
				if sum, err := stage.Rate(context.Background(), items); err != nil || sum.MURs != len(items) {
					t.Fatalf("rated %+v, %v", sum, err)
				}
			}
			nMURs, wMURs := murRows(t, st, narrow), murRows(t, st, wide)
			if !maps.Equal(nMURs, wMURs) {
				for id, m := range nMURs {
					if wMURs[id] != m {
						t.Fatalf("MUR %s: narrow %+v, wide %+v", id, m, wMURs[id])
					}
				}
				t.Fatalf("%d and %d MURs", len(nMURs), len(wMURs))
			}
		})
	}
}
