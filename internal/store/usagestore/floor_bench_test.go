package usagestore

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/benchx"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
)

// BenchmarkRateTxPieces measures, each alone, the database work a rating
// transaction is made of, so that the rate stage's cost can be read
// against its parts: one operation is one committed transaction over a
// batch's rows (2,000 MURs, or the 300 exceptions such a batch of a file
// with 15% exceptions holds), in one session, on tables already holding
// 200,000 MURs and 30,000 exceptions. It reports the server's CPU per row
// (pg-cpu-µs/row, read from /proc, so PostgreSQL must run on this
// machine) and this process's (go-cpu-µs/row).
//
//   - copy-murs: the COPY of finished MUR rows into murs, its indexes and
//     the sync queue's trigger included; the shortest way to store them.
//   - duplicate-lookup: the exactly-once check of the batch's record ids,
//     none found.
//   - resolve-exceptions: the two probes that resolve an exception a new
//     MUR replaces (by source, by record id), none found.
//   - save-counters: the checked write-back of one usage counter per MUR
//     (the worst case of one record per account, usage type and month).
//   - insert-exceptions: exception rows, with the once-per-source rule.
func BenchmarkRateTxPieces(b *testing.B) {
	ctx := context.Background()
	st := pgtest.Store(b)
	client := "floor-" + ids.New()[24:]
	fileID := store.NewID()
	const batch = 2000
	var line int64
	nextMURs := func(n int) []murs.MUR {
		ms := make([]murs.MUR, n)
		for i := range ms {
			line++
			ms[i] = floorMUR(client, fileID, line)
		}
		return ms
	}
	inTx := func(fn func(*RateTx) error) {
		b.Helper()
		err := st.Tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, probesSQL); err != nil {
				return err
			}
			return fn(&RateTx{tx: tx, deltas: filestore.Deltas{}})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// The tables as a running system has them.
	for range 100 {
		ms := nextMURs(batch)
		inTx(func(t *RateTx) error { return t.copyMURRows(ctx, ms) })
	}
	for range 100 {
		exs := floorExceptions(client, fileID, &line, 300)
		inTx(func(t *RateTx) error { _, err := insertExceptions(ctx, t.tx, exs, t.deltas); return err })
	}
	counterKeys := make([]ratestage.CounterKey, batch)
	for i := range counterKeys {
		counterKeys[i] = ratestage.CounterKey{Client: client, AccountID: loadgen.AccountID(i), UsageType: "VOICE", Month: 202612}
	}
	counters := map[ratestage.CounterKey]string{}
	inTx(func(t *RateTx) error {
		var err error
		counters, err = t.LoadCounters(ctx, counterKeys)
		return err
	})

	run := func(name string, rows int, prepare func() any, op func(*RateTx, any) error) {
		b.Run(name, func(b *testing.B) {
			inputs := make([]any, b.N)
			for i := range inputs {
				inputs[i] = prepare()
			}
			b.ResetTimer()
			pgBefore := pgtest.ReadBackendCPU(ctx, st.Pool())
			goBefore := benchx.ProcessCPU()
			for i := range b.N {
				inTx(func(t *RateTx) error { return op(t, inputs[i]) })
			}
			n := float64(b.N * rows)
			b.ReportMetric(float64((benchx.ProcessCPU()-goBefore).Nanoseconds())/n/1000, "go-cpu-µs/row")
			if pg, ok := pgtest.ReadBackendCPU(ctx, st.Pool()).Since(pgBefore); ok {
				b.ReportMetric(float64(pg.Nanoseconds())/n/1000, "pg-cpu-µs/row")
			}
		})
	}
	run("copy-murs", batch, func() any { return nextMURs(batch) }, func(t *RateTx, in any) error {
		return t.copyMURRows(ctx, in.([]murs.MUR))
	})
	run("duplicate-lookup", batch, func() any {
		keys := make([]ratestage.RecordKey, batch)
		for i := range keys {
			line++
			keys[i] = ratestage.RecordKey{Client: client, RecordID: client + "-" + strconv.FormatInt(line, 10)}
		}
		return keys
	}, func(t *RateTx, in any) error {
		found, err := t.ExistingMURs(ctx, in.([]ratestage.RecordKey))
		if err == nil && len(found) != 0 {
			err = fmt.Errorf("%d of new record ids found", len(found))
		}
		return err
	})
	run("resolve-exceptions", batch, func() any { return nextMURs(batch) }, func(t *RateTx, in any) error {
		return t.resolveExceptions(ctx, in.([]murs.MUR))
	})
	round := 0
	run("save-counters", batch, func() any {
		round++
		next := make(map[ratestage.CounterKey]string, len(counters))
		for k := range counters {
			next[k] = strconv.Itoa(round)
		}
		return next
	}, func(t *RateTx, in any) error {
		next := in.(map[ratestage.CounterKey]string)
		if err := t.SaveCountersChecked(ctx, next, counters); err != nil {
			return err
		}
		counters = next
		return nil
	})
	run("insert-exceptions", 300, func() any { return floorExceptions(client, fileID, &line, 300) }, func(t *RateTx, in any) error {
		_, err := insertExceptions(ctx, t.tx, in.([]exceptions.Exception), t.deltas)
		return err
	})
}

// floorMUR is a MUR as the rate stage makes one from a generated file:
// the same columns and a rate detail of the usual size (about 420 bytes).
func floorMUR(client, fileID string, line int64) murs.MUR {
	acct := loadgen.AccountID(int(line*7919) % 10000)
	qty := strconv.FormatInt(line%5000, 10) + "." + strconv.FormatInt(10+line%90, 10)
	detail := `{"subscription_id":"SUB` + acct[3:] + `","plan_id":"PLAN003","schedule":{"usage_type":"SMS","currency":"USD",` +
		`"model":"per_unit","unit_price":"0.013","effective_from":"2020-01-01T00:00:00Z"},"month":"2026-12",` +
		`"cumulative_before":"3413.85","cumulative_after":"` + qty + `","discounts":[{"id":"PCT` + acct[3:] +
		`","kind":"percent","value":"12.5","priority":2,"amount":"3.88698375"}],"gross_exact":"31.09587","discount_exact":"3.88698375"}`
	return murs.MUR{
		MURID: ids.New(), Client: client, RecordID: client + "-" + strconv.FormatInt(line, 10),
		FileID: fileID, Line: line, AccountID: acct, UsageType: "SMS", Quantity: qty,
		UsageTime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(line) * time.Second),
		Currency:  "USD", GrossAmount: "31.09587", DiscountAmount: "3.88698375", NetAmount: "27.20888625",
		RateDetail: []byte(detail),
	}
}

// floorExceptions are n rate exceptions of the next lines of fileID, each
// with its record as the rate stage keeps it.
func floorExceptions(client, fileID string, line *int64, n int) []exceptions.Exception {
	exs := make([]exceptions.Exception, n)
	for i := range exs {
		*line++
		l := *line
		rid := client + "-" + strconv.FormatInt(l, 10)
		exs[i] = exceptions.Exception{
			Client: client, FileID: fileID, Line: l, RecordID: rid, Stage: ratestage.StageName,
			Code: codes.UnknownAccount, Field: "account_id", Message: "account NOACC0001234 is not in the catalog",
			Record: []byte(`{"client":"` + client + `","file_id":"` + fileID + `","line":` + strconv.FormatInt(l, 10) +
				`,"record_id":"` + rid + `","account_id":"NOACC0001234","usage_type":"VOICE","quantity":"12.5",` +
				`"usage_time":"2026-12-01T10:00:00Z"}`),
		}
	}
	return exs
}
