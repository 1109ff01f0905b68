package exceptionstore_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/exceptionstore"
)

// benchRows is how many exceptions the list benchmark stores
// (VIVACE_BENCH_EXCEPTIONS, default 1,000,000).
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("VIVACE_BENCH_EXCEPTIONS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var (
	listFiles []string
	listBase  time.Time
)

// fillList stores benchRows exceptions over four clients (the first with
// 70% of them), 40 files, the stages and codes in realistic shares, 80%
// open, 5,000 accounts, recorded over 30 days, with time-ordered ids as
// the stages give them; nothing is analysed (autovacuum is not assumed).
func fillList(b *testing.B) *store.Store {
	{
		ctx := context.Background()
		st := pgtest.Store(b)
		n := benchRows()
		listBase = time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Second)
		listFiles = nil
		for range 40 {
			listFiles = append(listFiles, ids.New())
		}
		start := time.Now()
		// Chunks of 100,000 rows, each its own statement.
		for lo := 0; lo < n; lo += 100_000 {
			hi := min(lo+100_000, n)
			_, err := st.Pool().Exec(ctx, `INSERT INTO exceptions (exception_id, client, file_id, line, part, record_id, stage, code,
					field, message, record, status, created_at, updated_at)
				SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::bigint), 12, '0') || '7' || substr(md5(i::text), 1, 3) || '8'
						|| substr(md5(i::text), 4, 15))::uuid,
					CASE WHEN i % 100 < 70 THEN 'big' ELSE 'small-' || (i % 3) END,
					($4::uuid[])[1 + (i % 40)], i, 0, 'r-' || i,
					c.stage, c.code, 'quantity', 'a message naming the value',
					jsonb_build_object('record_id', 'r-' || i, 'account_id', 'A' || (i % 5000), 'quantity', 'x'),
					CASE WHEN i % 20 < 16 THEN 'open' WHEN i % 20 < 19 THEN 'resolved' ELSE 'discarded' END,
					t.at, t.at
				FROM generate_series($1::int, $2::int - 1) AS i
				CROSS JOIN LATERAL (SELECT $3::timestamptz + (i * $5::bigint * interval '1 microsecond') AS at) t
				CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 < 3 THEN 'mediate' WHEN i % 10 < 9 THEN 'rate' ELSE 'ingest' END AS stage,
					CASE WHEN i % 10 < 3 THEN 'BAD_QUANTITY' WHEN i % 10 < 7 THEN 'UNKNOWN_ACCOUNT' WHEN i % 10 < 9 THEN 'NO_RATE'
						ELSE 'MALFORMED_RECORD' END AS code) c`, lo, hi, listBase, listFiles, (30*24*time.Hour).Microseconds()/int64(n))
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("stored %d exceptions in %v", n, time.Since(start))
		return st
	}
}

// BenchmarkExceptionsList answers the list's queries over a million
// never-analysed exceptions and reports each one's p95.
func BenchmarkExceptionsList(b *testing.B) {
	st := fillList(b)
	xs := exceptionstore.New(st)
	ctx := context.Background()
	day := listBase.Add(14 * 24 * time.Hour)
	dayEnd := day.Add(24 * time.Hour)
	mid, err := xs.Exceptions(ctx, exceptions.Query{Filter: exceptions.Filter{Client: "big", To: &day}, Limit: 1})
	if err != nil || len(mid.Items) == 0 {
		b.Fatalf("a cursor half-way: %v", err)
	}
	cases := []struct {
		name string
		q    exceptions.Query
	}{
		{"client", exceptions.Query{Filter: exceptions.Filter{Client: "big"}}},
		{"client_open", exceptions.Query{Filter: exceptions.Filter{Client: "big", Status: exceptions.Open}}},
		{"client_code", exceptions.Query{Filter: exceptions.Filter{Client: "big", Code: codes.NoRate}}},
		{"client_code_open", exceptions.Query{Filter: exceptions.Filter{Client: "big", Code: codes.BadQuantity, Status: exceptions.Open}}},
		{"client_stage", exceptions.Query{Filter: exceptions.Filter{Client: "big", Stage: "rate"}}},
		{"client_account", exceptions.Query{Filter: exceptions.Filter{Client: "big", AccountID: "A42"}}},
		{"client_day", exceptions.Query{Filter: exceptions.Filter{Client: "big", From: &day, To: &dayEnd}}},
		{"client_deep_page", exceptions.Query{Filter: exceptions.Filter{Client: "big"}, After: mid.Items[0].ExceptionID}},
		{"file", exceptions.Query{Filter: exceptions.Filter{FileID: listFiles[3]}}},
		{"file_code", exceptions.Query{Filter: exceptions.Filter{FileID: listFiles[3], Code: codes.UnknownAccount}}},
		{"two_clients_open", exceptions.Query{Filter: exceptions.Filter{Clients: []string{"small-0", "small-1"}, Status: exceptions.Open}}},
		{"every_client_open", exceptions.Query{Filter: exceptions.Filter{Status: exceptions.Open}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			c.q.Limit = exceptions.DefaultLimit
			took := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				page, err := xs.Exceptions(ctx, c.q)
				took = append(took, time.Since(t0))
				if err != nil || len(page.Items) == 0 {
					b.Fatalf("%s: %d rows, %v", c.name, len(page.Items), err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
	// The plans, as docs/benchmarks.md shows them: the statements the
	// store writes for a client's open exceptions and for a page deep in
	// a client's list, in the list's transaction settings.
	for _, q := range []string{
		`SELECT x.exception_id FROM exceptions x WHERE x.client = 'big' AND x.status = 'open' ORDER BY x.exception_id DESC LIMIT 51`,
		`SELECT x.exception_id FROM exceptions x WHERE x.client = 'big' AND x.stage = 'ingest' AND x.exception_id < '` +
			mid.Items[0].ExceptionID + `'::uuid ORDER BY x.exception_id DESC LIMIT 51`,
	} {
		var plan []string
		err := st.ReadTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;
				SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL jit = off`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+q)
			if err != nil {
				return err
			}
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s\n%s", q, strings.Join(plan, "\n"))
	}
	b.Run("counts_client", func(b *testing.B) {
		for b.Loop() {
			if _, err := xs.CountExceptions(ctx, exceptions.Filter{Client: "small-1", Status: exceptions.Open}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReprocessByFilter reprocesses 100,000 open exceptions of one
// file by filter, as a job, to an in-process broker, and reports
// records/s.
func BenchmarkReprocessByFilter(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	st := pgtest.Store(b)
	file := ids.New()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO exceptions (exception_id, client, file_id, line, part, record_id, stage, code, message, record)
		SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint + i), 12, '0') || '7' || substr(md5(i::text), 1, 3) || '8'
				|| substr(md5(i::text), 4, 15))::uuid,
			'rep', $1::uuid, i, 0, 'r-' || i, 'mediate', 'BAD_QUANTITY', 'bad',
			jsonb_build_object('record_id', 'r-' || i, 'account_id', 'A' || (i % 5000), 'usage_type', 'CALL',
				'quantity', 'x', 'usage_time', '2026-03-01T00:00:00Z')
		FROM generate_series(1, $2::int) AS i`, file, n); err != nil {
		b.Fatal(err)
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, kafkax.TopicUsageRaw, kafkax.TopicUsageMediated))
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	prod, err := kgo.NewClient(append(kafkax.SyncProducerOpts(), kgo.SeedBrokers(broker.ListenAddrs()...))...)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	svc := &exceptions.Service{Store: exceptionstore.New(st), Publisher: &kafkax.Reprocess{Client: prod}}
	op := auth.NewPrincipal("t", "bench", auth.Operator, []string{"rep"})
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := st.Pool().Exec(ctx, `UPDATE exceptions SET status = 'open' WHERE file_id = $1`, file); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		_, job, err := svc.Reprocess(ctx, op, exceptions.Selection{Filter: exceptions.Filter{FileID: file}})
		if err != nil {
			b.Fatal(err)
		}
		svc.Wait()
		total += time.Since(t0)
		j, err := svc.Job(ctx, op, job.ID)
		if err != nil || j.Status != exceptions.JobDone || j.Done != n {
			b.Fatalf("job: %+v %v", j, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "records/s")
}
