package ratestage_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/benchx"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/usage"
)

// BenchmarkRateStage measures the rate stage with its PostgreSQL writer,
// as the rate pipeline runs it: batches of 2,000 records, four in flight,
// each from its own partition (so over its own accounts), against a
// generated catalog with every pricing model and discount kind. One
// iteration is one round of four batches; records/s is the figure to
// read.
func BenchmarkRateStage(b *testing.B) {
	const (
		batch    = 2000
		inFlight = 4
		accounts = 10000
	)
	ctx := context.Background()
	st := pgtest.Store(b)
	client := unique("bench")
	applyAll(b, st, generated(b, client, accounts, 10))
	file := newFile(b, st, client)
	stage := newStage(st)
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	types := []string{"VOICE", "DATA", "SMS", "API"}
	var line int64
	next := func(part int) []ratestage.Item {
		items := make([]ratestage.Item, batch)
		for i := range items {
			line++
			acct := loadgen.AccountID((int(line)*7919)%(accounts/inFlight)*inFlight + part)
			items[i] = ratestage.Item{Record: usage.Record{
				Source:    usage.Source{Client: client, FileID: file, Line: line},
				RecordID:  client + "-" + strconv.FormatInt(line, 10),
				AccountID: acct, UsageType: types[line%4],
				Quantity:  strconv.FormatInt(line%5000, 10) + "." + strconv.FormatInt(10+line%90, 10),
				UsageTime: at,
			}}
		}
		return items
	}
	// Warm the catalog cache and the counters' rows.
	if _, err := stage.Rate(ctx, next(0)); err != nil {
		b.Fatal(err)
	}
	rounds := make([][][]ratestage.Item, b.N)
	for i := range rounds {
		rounds[i] = make([][]ratestage.Item, inFlight)
		for p := range inFlight {
			rounds[i][p] = next(p)
		}
	}
	b.ResetTimer()
	pgBefore := pgtest.ReadBackendCPU(ctx, st.Pool())
	goBefore := benchx.ProcessCPU()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		errs := make([]error, inFlight)
		for p := range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sum, err := stage.Rate(ctx, rounds[i][p])
				if err == nil && sum.MURs != batch {
					err = fmt.Errorf("%d MURs of %d records", sum.MURs, batch)
				}
				errs[p] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	goCPU := benchx.ProcessCPU() - goBefore
	records := float64(b.N * batch * inFlight)
	b.ReportMetric(records/elapsed.Seconds(), "records/s")
	// Where the CPU goes: this process (rating, encoding, the driver) and
	// the database's server processes for this database (parsing rows,
	// indexes, WAL). Under load from other work the rate swings; the CPU
	// per record does much less.
	b.ReportMetric(float64(goCPU.Nanoseconds())/records/1000, "go-cpu-µs/record")
	if pgCPU, ok := pgtest.ReadBackendCPU(ctx, st.Pool()).Since(pgBefore); ok {
		b.ReportMetric(float64(pgCPU.Nanoseconds())/records/1000, "pg-cpu-µs/record")
	}
}
