package checkstore_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"vivace.dev/vivace/internal/books"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/checkstore"
)

// BenchmarkCheck runs the whole check over a generated history of
// CHECK_BENCH_MURS MURs (default 1,000,000) of one client: 1,000 done
// files, 10,000 accounts over three months, a free-unit discount on a
// third of the MURs, half of them synced in daily aggregated records,
// every count, counter and allowance as the pipelines leave them
// (CHECK_BENCH_DATABASE_URL: see below). It
// reports MURs checked per second: a nightly check of 100 million MURs
// takes 100,000,000 / that many seconds.
func BenchmarkCheck(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("CHECK_BENCH_MURS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("CHECK_BENCH_MURS=%q: want a number of MURs, at least 1000", s)
		}
		n = v
	}
	// CHECK_BENCH_DATABASE_URL keeps the generated history in a database
	// of its own (migrated first) across runs; else the package's test
	// database holds it until the test ends.
	st := pgtest.Store(b)
	if dsn := os.Getenv("CHECK_BENCH_DATABASE_URL"); dsn != "" {
		var err error
		if st, err = store.Open(context.Background(), dsn); err != nil {
			b.Fatal(err)
		}
		defer st.Close()
	}
	client := "bench-" + strconv.Itoa(n)
	generate(b, st, client, n)
	l := checkstore.New(st)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rep, err := books.Check(context.Background(), l, books.Options{Client: client})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Clean() {
			var txt = &stringsBuilder{}
			_ = rep.WriteText(txt)
			b.Fatalf("generated books have findings:\n%s", txt)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "murs/s")
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }

// generate writes the history in set-based statements (a few seconds per
// million MURs), unless this client has it already.
func generate(b *testing.B, st *store.Store, client string, n int) {
	ctx := context.Background()
	var have int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM files WHERE client = $1`, client).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have > 0 {
		return
	}
	stmts := []string{
		`INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256, status, records, murs)
			SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(f), 12, '0'))::uuid, $1, 'f' || f || '.csv', 'inbox', 'a', 'csv', 1,
				'sha' || f, 'done', $2::bigint / 1000, $2::bigint / 1000
			FROM generate_series(0, 999) AS f`,
		`INSERT INTO murs (mur_id, client, record_id, file_id, line, part, account_id, usage_type, quantity, usage_time,
				currency, gross_amount, discount_amount, net_amount, rate_detail)
			SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, $1, 'r' || i,
				('00000000-0000-7000-8000-' || lpad(to_hex(i % 1000), 12, '0'))::uuid, i / 1000 + 1, 0,
				'A' || (i % 10000), 'V' || (i % 3), (i % 97) / 4.0, timestamptz '2026-01-01' + (i % 7776000) * interval '1 second',
				'USD', 1.25, CASE WHEN i % 3 = 0 THEN 1.25 ELSE 0 END, CASE WHEN i % 3 = 0 THEN 0 ELSE 1.25 END,
				CASE WHEN i % 3 = 0 THEN
					jsonb_build_object('subscription_id', 'S' || (i % 10000), 'plan_id', 'P1',
						'schedule', jsonb_build_object('usage_type', 'V' || (i % 3), 'currency', 'USD', 'model', 'tiered'),
						'month', '2026-01', 'cumulative_before', '10', 'cumulative_after', '12',
						'tiers', jsonb_build_array(jsonb_build_object('tier', 1, 'units', '2', 'unit_price', '0.5', 'amount', '1.25')),
						'discounts', jsonb_build_array(jsonb_build_object('id', 'd-free', 'kind', 'free_units', 'value', '100',
							'priority', 1, 'units', ((i % 97) / 4.0)::text, 'amount', '1.25')),
						'gross_exact', '1.25', 'discount_exact', '1.25')
				ELSE
					jsonb_build_object('subscription_id', 'S' || (i % 10000), 'plan_id', 'P1',
						'schedule', jsonb_build_object('usage_type', 'V' || (i % 3), 'currency', 'USD', 'model', 'tiered'),
						'month', '2026-01', 'cumulative_before', '10', 'cumulative_after', '12',
						'tiers', jsonb_build_array(jsonb_build_object('tier', 1, 'units', '2', 'unit_price', '0.5', 'amount', '1.25')),
						'gross_exact', '1.25', 'discount_exact', '0')
				END
			FROM generate_series(0, $2::bigint - 1) AS i`,
		`INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
			SELECT client, account_id, usage_type,
				extract(year FROM usage_time AT TIME ZONE 'UTC')::int * 12 + extract(month FROM usage_time AT TIME ZONE 'UTC')::int - 1,
				sum(quantity)
			FROM murs WHERE client = $1 AND $2::bigint > 0 GROUP BY 1, 2, 3, 4`,
		`INSERT INTO allowance_usage (client, account_id, discount_id, month, used)
			SELECT client, account_id, 'd-free',
				extract(year FROM usage_time AT TIME ZONE 'UTC')::int * 12 + extract(month FROM usage_time AT TIME ZONE 'UTC')::int - 1,
				sum(quantity)
			FROM murs WHERE client = $1 AND $2::bigint > 0 AND discount_amount > 0 GROUP BY 1, 2, 3, 4`,
		`INSERT INTO sync_jobs (job_id, client, trigger, owner, status, started_at)
			SELECT '00000000-0000-7000-a000-000000000000', $1, 'manual', 'bench', 'done', now() WHERE $2::bigint > 0`,
		`INSERT INTO sync_batches (batch_id, client, job_id, status, records, murs, stamped)
			SELECT '00000000-0000-7000-a000-000000000001', $1, '00000000-0000-7000-a000-000000000000', 'done', 0, 0, true
			WHERE $2::bigint > 0`,
		// Half of the MURs (the even ones) synced, one aggregated record
		// per account, usage type and day.
		`INSERT INTO sync_aggregates (aggregate_id, client, account_id, usage_type, usage_day, usage_date, currency, units, amount,
				murs, oldest_rated_at, mur_ids, status, batch_id)
			SELECT gen_random_uuid(), client, account_id, usage_type, (usage_time AT TIME ZONE 'UTC')::date,
				(usage_time AT TIME ZONE 'UTC')::date, currency, sum(quantity), sum(net_amount), count(*), now(), array_agg(mur_id),
				'synced', '00000000-0000-7000-a000-000000000001'
			FROM murs WHERE client = $1 AND $2::bigint > 0 AND right(record_id, 1) IN ('0', '2', '4', '6', '8')
			GROUP BY client, account_id, usage_type, (usage_time AT TIME ZONE 'UTC')::date, currency`,
		`UPDATE murs m SET sync_status = 'synced', aggregate_id = a.aggregate_id,
				sync_batch_id = '00000000-0000-7000-a000-000000000001'
			FROM (SELECT aggregate_id, unnest(mur_ids) AS mur_id FROM sync_aggregates WHERE client = $1 AND $2::bigint > 0) AS a
			WHERE m.mur_id = a.mur_id`,
	}
	start := time.Now()
	for i, s := range stmts {
		if _, err := st.Pool().Exec(ctx, s, client, n); err != nil {
			b.Fatalf("generate, statement %d: %v", i, err)
		}
	}
	b.Logf("generated %d MURs in %s", n, time.Since(start).Round(time.Millisecond))
}
