package ratestage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store/catalogstore"
)

// BenchmarkCatalogRefresh measures how long a committed catalog change
// takes to reach a process's cache through the background refresh (the
// notification, the read of the changed rows, the new snapshot), on a
// generated catalog of 116,695 entities (50,000 accounts). Each iteration
// commits one feed batch changing `changed` accounts and waits until the
// cache holds it. Reported: p50 and p99 of commit-to-cached latency.
func BenchmarkCatalogRefresh(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := pgtest.Store(b)
	client := unique("refresh-bench")
	evs := generated(b, client, 50000, 10)
	for start := 0; start < len(evs); start += 5000 {
		applyAll(b, st, evs[start:min(start+5000, len(evs))])
	}
	cats := &ratestage.Catalogs{Store: catalogstore.New(st)}
	if _, err := cats.Get(ctx, client); err != nil {
		b.Fatal(err)
	}
	ready := make(chan struct{})
	go cats.Watch(ctx, func() { close(ready) })
	<-ready
	version := int64(1000)
	for _, changed := range []int{1, 500} {
		b.Run(fmt.Sprintf("changed=%d", changed), func(b *testing.B) {
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				version++
				batch := make([]feed.Event, changed)
				for j := range batch {
					acct := loadgen.AccountID((i*changed + j) % 50000)
					batch[j] = feed.Event{EventID: fmt.Sprintf("%s-%d-%s", client, version, acct), Client: client,
						Entity: "account", EntityID: acct, Version: version, OccurredAt: time.Now(), Op: feed.OpUpsert,
						Data: json.RawMessage(fmt.Sprintf(`{"currency":"USD","status":"active","name":"v%d"}`, version))}
				}
				applyAll(b, st, batch)
				committed := time.Now()
				want, err := catalogstore.New(st).CatalogVersion(ctx, client)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if v, _ := cats.Version(client); v >= want {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
				lat = append(lat, time.Since(committed))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}
