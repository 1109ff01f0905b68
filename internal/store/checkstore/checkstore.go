// Package checkstore is the SQL of `vivace check`: set-based statements
// that recompute, from the MURs, exceptions and filtered records, what
// the files' counts and the cumulative tables should hold, and return the
// rows where they may disagree. It implements books.Ledger; the decisions
// and the report are internal/books'.
//
// Each statement is one pass over its tables (sequential scans and hash
// aggregates, parallel where the server allows), so a check costs a few
// reads of the MURs table however long the history; none depends on
// fresh planner statistics.
package checkstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"vivace.dev/vivace/internal/books"
	"vivace.dev/vivace/internal/rating"
	"vivace.dev/vivace/internal/store"
)

// querier is what the statements run on: the pool, or the snapshot's
// transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Store is the check's view of a database.
type Store struct {
	db *store.Store
	q  querier
}

// New returns the check's view of db.
func New(db *store.Store) *Store { return &Store{db: db, q: db.Pool()} }

// WorkMem is the memory each sort or hash of the check may use before it
// spills to disk (PostgreSQL's work_mem, for the check's transaction
// only): grouping a hundred million MURs by record id is the largest.
const WorkMem = "256MB"

// Snapshot runs fn with a Store whose statements run in one read-only,
// repeatable-read transaction: every invariant is checked against the
// same moment, while the pipelines go on writing.
func (s *Store) Snapshot(ctx context.Context, fn func(books.Ledger) error) error {
	return s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '"+WorkMem+"'"); err != nil {
			return err
		}
		return fn(&Store{db: s.db, q: tx})
	})
}

// Scope counts what the check goes over: files, MURs (from the files'
// counts, which the check holds against the rows), counters, allowances
// and acknowledged aggregated records.
func (s *Store) Scope(ctx context.Context, client string) (books.Scope, error) {
	var sc books.Scope
	err := s.q.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM files WHERE $1 = '' OR client = $1),
			(SELECT coalesce(sum(murs), 0) FROM files WHERE $1 = '' OR client = $1),
			(SELECT count(*) FROM usage_counters WHERE $1 = '' OR client = $1),
			(SELECT count(*) FROM allowance_usage WHERE $1 = '' OR client = $1),
			(SELECT count(*) FROM sync_aggregates WHERE status = 'synced' AND ($1 = '' OR client = $1))`, client).
		Scan(&sc.Files, &sc.MURs, &sc.Counters, &sc.Allowances, &sc.Aggregates)
	return sc, err
}

// Files returns the files whose counts disagree with their rows, or that
// are done without adding up, and the file ids that rows name without a
// files row. An exception counts unless it was resolved by its record
// becoming a MUR (which counts instead): open, reprocessing, discarded
// and superseded ones (another copy of the record id became the MUR) do.
func (s *Store) Files(ctx context.Context, client string, fn func(books.FileTotals) error) error {
	rows, err := s.q.Query(ctx, `WITH
		m AS (SELECT file_id, count(*) AS n FROM murs WHERE $1 = '' OR client = $1 GROUP BY file_id),
		x AS (SELECT file_id, count(*) AS n FROM exceptions
			WHERE (status <> 'resolved' OR resolution = 'superseded') AND ($1 = '' OR client = $1) GROUP BY file_id),
		f AS (SELECT file_id, count(*) AS n FROM filtered_records WHERE $1 = '' OR client = $1 GROUP BY file_id),
		sp AS (SELECT file_id, sum(parts - 1) AS n FROM split_lines
			WHERE $1 = '' OR file_id IN (SELECT file_id FROM files WHERE client = $1) GROUP BY file_id),
		fl AS (SELECT * FROM files WHERE $1 = '' OR client = $1)
		SELECT file_id::text, coalesce(fl.client, ''), coalesce(fl.name, ''), coalesce(fl.status, ''), fl.file_id IS NOT NULL,
			fl.records, coalesce(fl.split_extra, 0), coalesce(fl.murs, 0), coalesce(fl.exceptions, 0), coalesce(fl.filtered, 0),
			coalesce(m.n, 0), coalesce(x.n, 0), coalesce(f.n, 0), coalesce(sp.n, 0)::bigint
		FROM fl FULL JOIN m USING (file_id) FULL JOIN x USING (file_id) FULL JOIN f USING (file_id) FULL JOIN sp USING (file_id)
		WHERE fl.file_id IS NULL
			OR fl.status = 'done' AND (fl.records IS NULL OR fl.records + fl.split_extra <> fl.murs + fl.exceptions + fl.filtered)
			OR fl.murs <> coalesce(m.n, 0) OR fl.exceptions <> coalesce(x.n, 0) OR fl.filtered <> coalesce(f.n, 0)
			OR fl.split_extra <> coalesce(sp.n, 0)
		ORDER BY 2, 1`, client)
	if err != nil {
		return fmt.Errorf("files against their rows: %w", err)
	}
	return each(rows, fn, func(r pgx.Rows, t *books.FileTotals) error {
		return r.Scan(&t.FileID, &t.Client, &t.Name, &t.Status, &t.Exists, &t.Records, &t.SplitExtra, &t.MURs,
			&t.Exceptions, &t.Filtered, &t.RowMURs, &t.RowExceptions, &t.RowFiltered, &t.RowSplitExtra)
	})
}

// Duplicates returns the record ids that more than one MUR holds. The
// unique key murs_client_record should make this empty; the check does
// not take the index's word for it (an index can be corrupted, by a
// collation change of the operating system say), it groups the table.
func (s *Store) Duplicates(ctx context.Context, client string, fn func(books.Duplicate) error) error {
	// Grouping needs no sort; the files of a duplicate are looked up by
	// the record id afterwards, for the first hundred only.
	rows, err := s.q.Query(ctx, `WITH d AS (SELECT client, record_id, count(*) AS n
			FROM murs WHERE $1 = '' OR client = $1
			GROUP BY client, record_id HAVING count(*) > 1),
		o AS (SELECT *, row_number() OVER (ORDER BY client, record_id) AS i FROM d)
		SELECT client, record_id, n, CASE WHEN i <= 100 THEN
				(SELECT (array_agg(DISTINCT m.file_id::text))[1:5] FROM murs m WHERE m.client = o.client AND m.record_id = o.record_id)
			END
		FROM o ORDER BY client, record_id`, client)
	if err != nil {
		return fmt.Errorf("record ids of MURs: %w", err)
	}
	return each(rows, fn, func(r pgx.Rows, d *books.Duplicate) error {
		return r.Scan(&d.Client, &d.RecordID, &d.MURs, &d.Files)
	})
}

// monthOf is rating.MonthOf in SQL: year×12 + month − 1 of the UTC time.
const monthOf = `(extract(year FROM usage_time AT TIME ZONE 'UTC')::int * 12 + extract(month FROM usage_time AT TIME ZONE 'UTC')::int - 1)`

// Counters returns the usage counters that differ from the sum of their
// MURs' quantities, and the sums that have no counter.
func (s *Store) Counters(ctx context.Context, client string, fn func(books.LedgerRow) error) error {
	rows, err := s.q.Query(ctx, `WITH
		s AS (SELECT client, account_id, usage_type, `+monthOf+` AS month, sum(quantity) AS q
			FROM murs WHERE $1 = '' OR client = $1 GROUP BY 1, 2, 3, 4),
		u AS (SELECT * FROM usage_counters WHERE $1 = '' OR client = $1)
		SELECT client, account_id, usage_type, month, coalesce(u.quantity::text, ''), coalesce(s.q::text, '')
		FROM u FULL JOIN s USING (client, account_id, usage_type, month)
		WHERE coalesce(u.quantity, 0) <> coalesce(s.q, 0)
		ORDER BY 1, 2, 3, 4`, client)
	if err != nil {
		return fmt.Errorf("usage counters against the MURs: %w", err)
	}
	return eachLedger(rows, fn)
}

// Allowances returns the allowances whose use differs from the free units
// their MURs' rate details took, and those units that no allowance holds.
func (s *Store) Allowances(ctx context.Context, client string, fn func(books.LedgerRow) error) error {
	rows, err := s.q.Query(ctx, `WITH
		s AS (SELECT m.client, m.account_id, d->>'id' AS discount_id, `+monthOf+` AS month,
				sum((d->>'units')::numeric) AS used
			FROM murs m CROSS JOIN LATERAL json_array_elements(m.rate_detail->'discounts') AS d
			WHERE ($1 = '' OR m.client = $1) AND json_typeof(m.rate_detail->'discounts') = 'array'
				AND d->>'kind' = 'free_units'
			GROUP BY 1, 2, 3, 4),
		u AS (SELECT * FROM allowance_usage WHERE $1 = '' OR client = $1)
		SELECT client, account_id, discount_id, month, coalesce(u.used::text, ''), coalesce(s.used::text, '')
		FROM u FULL JOIN s USING (client, account_id, discount_id, month)
		WHERE coalesce(u.used, 0) <> coalesce(s.used, 0)
		ORDER BY 1, 2, 3, 4`, client)
	if err != nil {
		return fmt.Errorf("allowances against the MURs: %w", err)
	}
	return eachLedger(rows, fn)
}

// Synced groups the MURs marked synced by client and aggregated record
// (one pass over the MURs, then a join with the aggregated records, which
// are few in comparison) and returns the groups whose record is missing,
// of another client, not synced or in a batch not done, or whose counts,
// units or amounts differ from the record's; and the acknowledged records
// no synced MUR names.
func (s *Store) Synced(ctx context.Context, client string, fn func(books.SyncedGroup) error) error {
	rows, err := s.q.Query(ctx, `WITH
		g AS (SELECT client, aggregate_id, count(*) AS n, sum(quantity) AS units, sum(net_amount) AS amount,
				min(mur_id::text) AS example
			FROM murs WHERE sync_status = 'synced' AND ($1 = '' OR client = $1)
			GROUP BY client, aggregate_id),
		a AS (SELECT a.aggregate_id, a.client, a.status, a.murs, a.units, a.amount, b.status AS batch_status
			FROM sync_aggregates a LEFT JOIN sync_batches b ON b.batch_id = a.batch_id
			WHERE a.status = 'synced' AND ($1 = '' OR a.client = $1)
				OR a.aggregate_id IN (SELECT aggregate_id FROM g WHERE aggregate_id IS NOT NULL))
		SELECT coalesce(g.client, a.client), coalesce(coalesce(g.aggregate_id, a.aggregate_id)::text, ''), coalesce(g.n, 0),
			coalesce(g.units, 0)::text, coalesce(g.amount, 0)::text, coalesce(g.example, ''),
			a.aggregate_id IS NOT NULL, coalesce(a.client, ''), coalesce(a.status, ''), coalesce(a.batch_status, ''),
			coalesce(a.murs, 0), coalesce(a.units, 0)::text, coalesce(a.amount, 0)::text
		FROM g FULL JOIN a ON a.aggregate_id = g.aggregate_id
		WHERE g.client IS NULL OR g.aggregate_id IS NULL OR a.aggregate_id IS NULL OR a.client <> g.client
			OR a.status <> 'synced' OR a.batch_status IS DISTINCT FROM 'done'
			OR a.murs <> g.n OR a.units <> g.units OR a.amount <> g.amount
		ORDER BY 1, 2`, client)
	if err != nil {
		return fmt.Errorf("synced MURs against their aggregated records: %w", err)
	}
	return each(rows, fn, func(r pgx.Rows, g *books.SyncedGroup) error {
		return r.Scan(&g.Client, &g.AggregateID, &g.MURs, &g.Units, &g.Amount, &g.ExampleMUR,
			&g.Exists, &g.AggregateClient, &g.Status, &g.BatchStatus, &g.SentMURs, &g.SentUnits, &g.SentAmount)
	})
}

func eachLedger(rows pgx.Rows, fn func(books.LedgerRow) error) error {
	return each(rows, fn, func(r pgx.Rows, l *books.LedgerRow) error {
		var month int32
		if err := r.Scan(&l.Client, &l.AccountID, &l.Item, &month, &l.Stored, &l.Summed); err != nil {
			return err
		}
		l.Month = rating.Month(month)
		return nil
	})
}

// each scans rows into T one at a time and hands each to fn.
func each[T any](rows pgx.Rows, fn func(T) error, scan func(pgx.Rows, *T) error) error {
	defer rows.Close()
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

var _ books.Ledger = (*Store)(nil)
