package checkstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/books"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/checkstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// world is one client's books as the pipelines leave them: a done file
// of seven lines, one of them split in two parts, ending as four MURs (one
// of them a reprocessed exception, resolved), an open exception, a
// discarded one, one superseded by a MUR of another line, and a filtered
// record; a file still being read; counters over two months and one
// created at zero by a batch whose records failed; a free-unit allowance;
// two MURs synced in one acknowledged aggregated record.
type world struct {
	client, file, reading string
	murs                  []string // line 1, line 2 part 0, line 2 part 1, line 3
	aggregate, batch      string
}

func seed(t *testing.T, st *store.Store, name string) world {
	t.Helper()
	ctx := context.Background()
	w := world{client: name + "-" + ids.New()[24:], file: ids.New(), reading: ids.New(), aggregate: ids.New(), batch: ids.New()}
	for range 4 {
		w.murs = append(w.murs, ids.New())
	}
	detail := func(discounts string) string {
		return `{"subscription_id":"S1","plan_id":"P1","month":"2026-03","discounts":[` + discounts + `]}`
	}
	free := func(units string) string {
		return `{"id":"d-free","kind":"free_units","value":"100","priority":1,"units":"` + units + `","amount":"0"}`
	}
	pct := `{"id":"d-pct","kind":"percentage","value":"10","priority":2,"amount":"0.1"}`
	job := ids.New()
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256, status, records, split_extra,
				murs, exceptions, filtered)
			VALUES ($1::uuid, $2, 'usage.csv', 'inbox', 'archive/usage.csv', 'csv', 100, $1::text, 'done', 7, 1, 4, 3, 1),
			       ($3::uuid, $2, 'reading.csv', 'inbox', 'archive/reading.csv', 'csv', 100, $3::text, 'processing', NULL, 0, 0, 0, 0)`,
			[]any{w.file, w.client, w.reading}},
		{`INSERT INTO split_lines (file_id, line, parts) VALUES ($1, 2, 2)`, []any{w.file}},
		{`INSERT INTO murs (mur_id, client, record_id, file_id, line, part, account_id, usage_type, quantity, usage_time,
				currency, gross_amount, discount_amount, net_amount, rate_detail)
			VALUES ($1, $5, 'r1', $6, 1, 0, 'A1', 'V', 10, '2026-03-01T00:00:00Z', 'USD', 1.00, 1.00, 0.00, $7),
			       ($2, $5, 'r2a', $6, 2, 0, 'A1', 'V', 2.5, '2026-03-31T23:59:59Z', 'USD', 1.25, 0.25, 1.00, $8),
			       ($3, $5, 'r2b', $6, 2, 1, 'A1', 'V', 2.50, '2026-03-15T12:00:00+05:00', 'USD', 0.50, 0, 0.50, $9),
			       ($4, $5, 'r3', $6, 3, 0, 'A1', 'V', 5, '2026-04-01T00:00:00Z', 'USD', 2.00, 0, 2.00, '{"month":"2026-04"}')`,
			[]any{w.murs[0], w.murs[1], w.murs[2], w.murs[3], w.client, w.file,
				detail(free("10")), detail(free("2.5") + "," + pct), detail("")}},
		{`INSERT INTO exceptions (exception_id, client, file_id, line, part, record_id, stage, code, message, record, status)
			VALUES ($1, $3, $4, 3, 0, 'r3', 'rate', 'NO_RATE', 'no rate', '{}', 'resolved'),
			       ($2, $3, $4, 4, 0, 'r4', 'rate', 'UNKNOWN_ACCOUNT', 'unknown', '{}', 'open'),
			       ($5, $3, $4, 6, 0, 'r6', 'rate', 'UNKNOWN_ACCOUNT', 'unknown', '{}', 'discarded')`,
			[]any{ids.New(), ids.New(), w.client, w.file, ids.New()}},
		// Line 7 failed, and its record id became a MUR from line 2 later:
		// superseded, and still its file's exception.
		{`INSERT INTO exceptions (exception_id, client, file_id, line, part, record_id, stage, code, message, record, status,
				resolution, superseded_file, superseded_line, superseded_part)
			VALUES ($1, $2, $3, 7, 0, 'r2a', 'rate', 'NO_RATE', 'no rate', '{}', 'resolved', 'superseded', $3, 2, 0)`,
			[]any{ids.New(), w.client, w.file}},
		{`INSERT INTO filtered_records (client, file_id, line, part, record_id, stage, reason, record)
			VALUES ($1, $2, 5, 0, 'r5', 'mediate', 'test traffic', '{}')`, []any{w.client, w.file}},
		// 2026-03 is month 2026*12+2, 2026-04 the next.
		{`INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
			VALUES ($1, 'A1', 'V', 24314, 15.0), ($1, 'A1', 'V', 24315, 5), ($1, 'A2', 'V', 24314, 0)`, []any{w.client}},
		{`INSERT INTO allowance_usage (client, account_id, discount_id, month, used)
			VALUES ($1, 'A1', 'd-free', 24314, 12.5), ($1, 'A2', 'd-free', 24314, 0)`, []any{w.client}},
		{`INSERT INTO sync_jobs (job_id, client, trigger, owner, status, started_at) VALUES ($1, $2, 'manual', 'test', 'done', now())`,
			[]any{job, w.client}},
		{`INSERT INTO sync_batches (batch_id, client, job_id, status, records, murs, synced, stamped)
			VALUES ($1, $2, $3, 'done', 1, 2, 1, true)`, []any{w.batch, w.client, job}},
		{`INSERT INTO sync_aggregates (aggregate_id, client, account_id, usage_type, usage_day, usage_date, currency, units, amount,
				murs, oldest_rated_at, mur_ids, status, batch_id)
			VALUES ($1, $2, 'A1', 'V', '2026-03-01', '2026-03-01', 'USD', 12.5, 1.00, 2, now(), ARRAY[$3, $4]::uuid[], 'synced', $5)`,
			[]any{w.aggregate, w.client, w.murs[0], w.murs[1], w.batch}},
		{`UPDATE murs SET sync_status = 'synced', aggregate_id = $1, sync_batch_id = $2 WHERE mur_id = ANY($3::uuid[])`,
			[]any{w.aggregate, w.batch, []string{w.murs[0], w.murs[1]}}},
	}
	for i, s := range stmts {
		if _, err := st.Pool().Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("seed statement %d: %v", i, err)
		}
	}
	return w
}

func check(t *testing.T, st *store.Store, client string) books.Report {
	t.Helper()
	rep, err := books.Check(context.Background(), checkstore.New(st), books.Options{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func exec(t *testing.T, st *store.Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// findings returns each invariant's number of findings, without the
// zeros.
func findings(rep books.Report) map[books.Invariant]int64 {
	out := map[books.Invariant]int64{}
	for _, r := range rep.Results {
		if r.Findings > 0 {
			out[r.Invariant] = r.Findings
		}
	}
	return out
}

func report(rep books.Report) string {
	var b strings.Builder
	_ = rep.WriteText(&b)
	return b.String()
}

func TestBalancedBooksAreClean(t *testing.T) {
	st := pgtest.Store(t)
	w := seed(t, st, "clean")
	rep := check(t, st, w.client)
	if !rep.Clean() {
		t.Fatalf("balanced books have findings:\n%s", report(rep))
	}
	want := books.Scope{Files: 2, MURs: 4, Counters: 3, Allowances: 2, Aggregates: 1}
	if rep.Scope != want {
		t.Errorf("scope = %+v, want %+v", rep.Scope, want)
	}
	if txt := report(rep); !strings.Contains(txt, "the books balance") {
		t.Errorf("report of clean books:\n%s", txt)
	}
}

// TestEachCorruptionIsFound breaks one invariant at a time, each on a
// client of its own, and wants exactly that invariant's findings, with a
// subject that names what broke.
func TestEachCorruptionIsFound(t *testing.T) {
	st := pgtest.Store(t)
	cases := []struct {
		name    string
		corrupt func(t *testing.T, w world)
		want    map[books.Invariant]int64
		subject string
	}{
		{"done file short of its records", func(t *testing.T, w world) {
			exec(t, st, `UPDATE files SET records = 8 WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileBalance: 1}, "file " + w0},
		{"done file without its number of records", func(t *testing.T, w world) {
			exec(t, st, `UPDATE files SET records = NULL WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileBalance: 1}, "done without one"},
		{"counts moved without their rows", func(t *testing.T, w world) {
			exec(t, st, `UPDATE files SET murs = murs + 1, exceptions = exceptions - 1 WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileRows: 2}, "5 MURs stored"},
		{"a MUR lost with its counts", func(t *testing.T, w world) {
			exec(t, st, `DELETE FROM murs WHERE mur_id = $1`, w.murs[3])
			exec(t, st, `UPDATE files SET murs = murs - 1 WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileBalance: 1, books.Counters: 1}, "month 2026-04"},
		{"a filtered record counted twice", func(t *testing.T, w world) {
			exec(t, st, `UPDATE files SET filtered = 2, records = 8 WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileRows: 1}, "filtered records"},
		{"split parts not recorded", func(t *testing.T, w world) {
			exec(t, st, `DELETE FROM split_lines WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileRows: 1}, "split parts"},
		{"a superseded exception taken off its file's count", func(t *testing.T, w world) {
			exec(t, st, `UPDATE files SET exceptions = exceptions - 1, records = records - 1 WHERE file_id = $1`, w.file)
		}, map[books.Invariant]int64{books.FileRows: 1}, "2 exceptions stored, as its count says"},
		{"an exception of a file that does not exist", func(t *testing.T, w world) {
			exec(t, st, `INSERT INTO exceptions (exception_id, client, file_id, line, part, stage, code, message, record)
				VALUES ($1, $2, $3, 1, 0, 'ingest', 'MALFORMED_RECORD', 'bad', '{}')`, ids.New(), w.client, ids.New())
		}, map[books.Invariant]int64{books.FileRows: 1}, "none, but 0 MURs, 1 exceptions"},
		{"a counter that drifted", func(t *testing.T, w world) {
			exec(t, st, `UPDATE usage_counters SET quantity = quantity + 0.001 WHERE client = $1 AND month = 24314 AND account_id = 'A1'`, w.client)
		}, map[books.Invariant]int64{books.Counters: 1}, "counter of account A1, usage type V, month 2026-03"},
		{"a counter that is missing", func(t *testing.T, w world) {
			exec(t, st, `DELETE FROM usage_counters WHERE client = $1 AND month = 24315`, w.client)
		}, map[books.Invariant]int64{books.Counters: 1}, "no row"},
		{"a counter without MURs", func(t *testing.T, w world) {
			exec(t, st, `UPDATE usage_counters SET quantity = 3 WHERE client = $1 AND account_id = 'A2'`, w.client)
		}, map[books.Invariant]int64{books.Counters: 1}, "0 (no MUR)"},
		{"an allowance that forgot units", func(t *testing.T, w world) {
			exec(t, st, `UPDATE allowance_usage SET used = 10 WHERE client = $1 AND account_id = 'A1'`, w.client)
		}, map[books.Invariant]int64{books.Allowances: 1}, "allowance of account A1, discount d-free, month 2026-03"},
		{"free units without an allowance", func(t *testing.T, w world) {
			exec(t, st, `DELETE FROM allowance_usage WHERE client = $1 AND account_id = 'A1'`, w.client)
		}, map[books.Invariant]int64{books.Allowances: 1}, "12.5 (the sum of its MURs)"},
		{"synced MURs whose record the core refused", func(t *testing.T, w world) {
			// One finding for the record's MURs together: the check groups
			// them in one pass.
			exec(t, st, `UPDATE sync_aggregates SET status = 'failed' WHERE aggregate_id = $1`, w.aggregate)
		}, map[books.Invariant]int64{books.Synced: 1}, "2 synced MURs ("},
		{"a MUR marked synced without a record", func(t *testing.T, w world) {
			exec(t, st, `UPDATE murs SET sync_status = 'synced' WHERE mur_id = $1`, w.murs[3])
		}, map[books.Invariant]int64{books.Synced: 1}, "1 synced MUR (<mur3> among them): want an aggregated record the core acknowledged, got synced without an aggregated record"},
		{"synced in a batch still sending", func(t *testing.T, w world) {
			exec(t, st, `UPDATE sync_batches SET status = 'sending' WHERE batch_id = $1`, w.batch)
		}, map[books.Invariant]int64{books.Synced: 1}, "batch is sending"},
		{"an acknowledged record that lost a MUR", func(t *testing.T, w world) {
			exec(t, st, `UPDATE murs SET sync_status = 'failed' WHERE mur_id = $1`, w.murs[1])
		}, map[books.Invariant]int64{books.Synced: 3}, "2 synced MURs, as the core was told"},
		{"an acknowledged record no MUR names", func(t *testing.T, w world) {
			exec(t, st, `UPDATE murs SET sync_status = 'unsynced', aggregate_id = NULL WHERE aggregate_id = $1`, w.aggregate)
		}, map[books.Invariant]int64{books.Synced: 3}, "got 0"},
		{"synced in another client's record", func(t *testing.T, w world) {
			other := seed(t, st, "owner")
			exec(t, st, `UPDATE murs SET aggregate_id = $1 WHERE mur_id = $2`, other.aggregate, w.murs[0])
		}, map[books.Invariant]int64{books.Synced: 3}, "of client owner-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := seed(t, st, "corrupt")
			c.corrupt(t, w)
			rep := check(t, st, w.client)
			got := findings(rep)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("findings = %v, want %v:\n%s", got, c.want, report(rep))
			}
			subject := strings.NewReplacer(w0, w.file, "<mur3>", w.murs[3]).Replace(c.subject)
			if txt := report(rep); !strings.Contains(txt, subject) || !strings.Contains(txt, "do not balance") {
				t.Errorf("the report does not say %q:\n%s", subject, txt)
			}
			// The other clients' books are not this one's concern.
			other := seed(t, st, "bystander")
			if rep := check(t, st, other.client); !rep.Clean() {
				t.Errorf("another client's clean books have findings:\n%s", report(rep))
			}
		})
	}
}

// w0 stands for the seeded file's id in a case's subject.
const w0 = "<file>"

// TestDuplicateRecordIDs drops the unique key that normally makes a
// second MUR of a record id impossible, as a corrupted index would let
// one in, and wants the check to find it by itself.
func TestDuplicateRecordIDs(t *testing.T) {
	st := pgtest.Store(t)
	w := seed(t, st, "dup")
	exec(t, st, `ALTER TABLE murs DROP CONSTRAINT murs_client_record`)
	second := ids.New()
	t.Cleanup(func() {
		exec(t, st, `DELETE FROM murs WHERE mur_id = $1`, second)
		exec(t, st, `ALTER TABLE murs ADD CONSTRAINT murs_client_record UNIQUE (client, record_id)`)
	})
	exec(t, st, `INSERT INTO murs (mur_id, client, record_id, file_id, line, part, account_id, usage_type, quantity, usage_time,
			currency, gross_amount, discount_amount, net_amount, rate_detail)
		SELECT $1, client, record_id, file_id, 6, part, account_id, usage_type, quantity, usage_time,
			currency, gross_amount, discount_amount, net_amount, rate_detail FROM murs WHERE mur_id = $2`, second, w.murs[3])
	// Counted as the pipelines would have: the file and the counter moved.
	exec(t, st, `UPDATE files SET murs = murs + 1, records = records + 1 WHERE file_id = $1`, w.file)
	exec(t, st, `UPDATE usage_counters SET quantity = quantity + 5 WHERE client = $1 AND month = 24315`, w.client)
	rep := check(t, st, w.client)
	if got := findings(rep); fmt.Sprint(got) != fmt.Sprint(map[books.Invariant]int64{books.OneMURPerRecord: 1}) {
		t.Fatalf("findings = %v, want one duplicate:\n%s", got, report(rep))
	}
	if txt := report(rep); !strings.Contains(txt, `record "r3": want 1 MUR, got 2 MURs from files `+w.file) {
		t.Errorf("the report does not name the record and its file:\n%s", txt)
	}
}

// TestEveryClient checks without --client: one client's fault is found
// among clean ones, and named by its client.
func TestEveryClient(t *testing.T) {
	st := pgtest.Store(t)
	bad := seed(t, st, "every")
	seed(t, st, "every")
	exec(t, st, `UPDATE usage_counters SET quantity = 99 WHERE client = $1 AND month = 24315`, bad.client)
	rep := check(t, st, "")
	var counters books.Result
	for _, r := range rep.Results {
		if r.Invariant == books.Counters {
			counters = r
		}
	}
	found := false
	for _, f := range counters.Samples {
		found = found || f.Client == bad.client && f.Got == "99"
	}
	if !found {
		t.Fatalf("the bad client's counter is not among the findings:\n%s", report(rep))
	}
	if rep.Scope.Files < 4 {
		t.Errorf("scope %+v: not every client's files", rep.Scope)
	}
}
