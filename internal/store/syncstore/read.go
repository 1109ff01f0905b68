package syncstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/mursync"
)

func limit(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Jobs lists jobs, newest first.
func (s *Store) Jobs(ctx context.Context, f mursync.JobFilter) ([]mursync.Job, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+jobColumns+` FROM sync_jobs
		WHERE ($1::text[] IS NULL OR client = ANY($1)) ORDER BY started_at DESC, job_id DESC LIMIT $2`, f.Clients, limit(f.Limit, 100))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (mursync.Job, error) { return scanJob(r) })
}

const batchColumns = `batch_id::text, client, job_id::text, status, records, murs, synced, failed, attempts,
	coalesce(failure, ''), coalesce(error_code, 0), coalesce(error_msg, ''), coalesce(resend_of::text, ''),
	created_at, published_at, answered_at`

func scanBatch(r pgx.Row) (mursync.BatchView, error) {
	var b mursync.BatchView
	var status, failure string
	err := r.Scan(&b.BatchID, &b.Client, &b.JobID, &status, &b.Records, &b.MURs, &b.Synced, &b.Failed, &b.Attempts,
		&failure, &b.Code, &b.Message, &b.ResendOf, &b.CreatedAt, &b.PublishedAt, &b.AnsweredAt)
	b.Status, b.Failure, b.CreatedAt = mursync.BatchStatus(status), mursync.Failure(failure), b.CreatedAt.UTC()
	for _, t := range []**time.Time{&b.PublishedAt, &b.AnsweredAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return b, err
}

// Batches lists batches, newest first.
func (s *Store) Batches(ctx context.Context, f mursync.BatchFilter) ([]mursync.BatchView, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+batchColumns+` FROM sync_batches
		WHERE ($1::text[] IS NULL OR client = ANY($1)) AND ($2 = '' OR status = $2) AND ($3 = '' OR job_id = nullif($3, '')::uuid)
		ORDER BY created_at DESC, batch_id DESC LIMIT $4`, f.Clients, string(f.Status), f.JobID, limit(f.Limit, 100))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (mursync.BatchView, error) { return scanBatch(r) })
}

// Batch reads one batch.
func (s *Store) Batch(ctx context.Context, id string) (mursync.BatchView, error) {
	b, err := scanBatch(s.pool.QueryRow(ctx, `SELECT `+batchColumns+` FROM sync_batches WHERE batch_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("%w: %s", mursync.ErrUnknownBatch, id)
	}
	return b, err
}

// Records lists aggregated records: a batch's in its order, otherwise the
// most recently changed first.
func (s *Store) Records(ctx context.Context, f mursync.RecordFilter) ([]mursync.RecordView, error) {
	rows, err := s.pool.Query(ctx, `SELECT aggregate_id::text, client, account_id, usage_type, currency,
			usage_day::timestamp, usage_date, units::text, amount::text, murs, status, batch_id::text,
			coalesce(error_code, 0), coalesce(error_msg, ''), updated_at
		FROM sync_aggregates
		WHERE ($1::text[] IS NULL OR client = ANY($1)) AND ($2 = '' OR batch_id = nullif($2, '')::uuid) AND ($3 = '' OR status = $3)
		ORDER BY CASE WHEN $2 = '' THEN updated_at END DESC, account_id, usage_type, usage_day, aggregate_id
		LIMIT $4`, f.Clients, f.BatchID, string(f.Status), limit(f.Limit, 1000))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (mursync.RecordView, error) {
		var x mursync.RecordView
		var st string
		err := r.Scan(&x.ID, &x.Client, &x.AccountID, &x.UsageType, &x.Currency, &x.Day, &x.UsageDate, &x.Units, &x.Amount,
			&x.MURs, &st, &x.BatchID, &x.Code, &x.Message, &x.UpdatedAt)
		x.Status, x.Day, x.UsageDate, x.UpdatedAt = mursync.RecordStatus(st), x.Day.UTC(), x.UsageDate.UTC(), x.UpdatedAt.UTC()
		return x, err
	})
}

// Backlog is how far a client's sync is behind.
type Backlog struct {
	Client string
	// OldestRatedAt is when the oldest MUR of a record not yet synced
	// (pending or failed) was rated; zero when there is none.
	OldestRatedAt time.Time
	// Unsynced is whether the client has MURs not yet in any record.
	Unsynced bool
}

// Backlogs reports every client's backlog that is not empty.
func (s *Store) Backlogs(ctx context.Context) ([]Backlog, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE c(client) AS (
			SELECT min(client) FROM mur_sync_queue
			UNION ALL
			SELECT (SELECT min(q.client) FROM mur_sync_queue q WHERE q.client > c.client)
			FROM c WHERE c.client IS NOT NULL),
		u AS (SELECT client FROM c WHERE client IS NOT NULL),
		a AS (SELECT client, min(oldest_rated_at) AS oldest FROM sync_aggregates WHERE status <> 'synced' GROUP BY client)
		SELECT coalesce(a.client, u.client), a.oldest, u.client IS NOT NULL
		FROM a FULL JOIN u ON u.client = a.client ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backlog, error) {
		var b Backlog
		var oldest *time.Time
		err := r.Scan(&b.Client, &oldest, &b.Unsynced)
		if oldest != nil {
			b.OldestRatedAt = oldest.UTC()
		}
		return b, err
	})
}

// Totals sums the client's MURs per account, usage type and currency,
// exactly: all of them and the synced ones (what the core should hold).
func (s *Store) Totals(ctx context.Context, client string) ([]mursync.Total, error) {
	rows, err := s.pool.Query(ctx, `SELECT account_id, usage_type, currency, count(*), sum(quantity)::text, sum(net_amount)::text,
			count(*) FILTER (WHERE sync_status = 'synced'),
			coalesce(sum(quantity) FILTER (WHERE sync_status = 'synced'), 0)::text,
			coalesce(sum(net_amount) FILTER (WHERE sync_status = 'synced'), 0)::text
		FROM murs WHERE client = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, client)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (mursync.Total, error) {
		var t mursync.Total
		err := r.Scan(&t.AccountID, &t.UsageType, &t.Currency, &t.MURs, &t.Units, &t.Amount, &t.SyncedMURs, &t.SyncedUnits, &t.SyncedAmount)
		return t, err
	})
}
