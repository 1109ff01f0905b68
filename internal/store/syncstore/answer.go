package syncstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/mursync"
)

// BeginSend counts an attempt and marks the batch sending, unless it has
// its answer already; it returns the batch as it was.
func (s *Store) BeginSend(ctx context.Context, batchID string) (mursync.BatchInfo, error) {
	b := mursync.BatchInfo{BatchID: batchID}
	var status string
	err := s.pool.QueryRow(ctx, `WITH before AS (SELECT batch_id, status FROM sync_batches WHERE batch_id = $1 FOR UPDATE),
			upd AS (UPDATE sync_batches s SET status = 'sending', attempts = attempts + 1
				FROM before WHERE s.batch_id = before.batch_id AND before.status IN ('ready', 'published', 'sending')
				RETURNING s.batch_id)
		SELECT s.client, s.job_id::text, before.status, s.records, s.murs
		FROM sync_batches s JOIN before ON before.batch_id = s.batch_id`, batchID).Scan(&b.Client, &b.JobID, &status, &b.Records, &b.MURs)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("%w: %s", mursync.ErrUnknownBatch, batchID)
	}
	b.Status = mursync.BatchStatus(status)
	return b, err
}

// Answer applies an outcome in one transaction: the batch gets its
// status and counts (only if it had no answer: ErrAnswered otherwise),
// its records theirs, and their MURs theirs, stamped with their record and
// batch in the same update, and its job's counts move. The MURs marked
// must be exactly those of the records, each unsynced (its batch's cycle
// still held them) or batched with this record, or nothing is.
func (s *Store) Answer(ctx context.Context, o mursync.Outcome) (mursync.Result, error) {
	var res mursync.Result
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = mursync.Result{BatchID: o.BatchID, Status: o.Status, AnsweredAt: o.At.UTC()}
		err := tx.QueryRow(ctx, `SELECT client, job_id::text, murs, attempts FROM sync_batches
			WHERE batch_id = $1 AND status IN ('ready', 'published', 'sending') FOR UPDATE`, o.BatchID).
			Scan(&res.Client, &res.JobID, &res.MURs, &res.Attempts)
		if errors.Is(err, pgx.ErrNoRows) {
			return mursync.ErrAnswered
		}
		if err != nil {
			return err
		}
		if err := nestedLoops(ctx, tx); err != nil {
			return err
		}
		m := marker{tx: tx, batch: o.BatchID}
		if o.Status == mursync.Failed {
			res.Failure, res.ErrorCode, res.ErrorMsg = o.Call.Failure, o.Call.Code, o.Call.Message
			recs, err := updateRecords(ctx, tx, `UPDATE sync_aggregates SET status = 'failed', error_code = nullif($2, 0),
					error_msg = $3, updated_at = $4
				WHERE batch_id = $1 AND status = 'pending' RETURNING aggregate_id, aggregate_id::text, murs, mur_ids`,
				o.BatchID, o.Call.Code, o.Call.Message, o.At)
			if err != nil {
				return err
			}
			for _, r := range recs {
				res.Records = append(res.Records, mursync.RecordResult{ClientRecordID: r.id, Status: mursync.Refused,
					Code: o.Call.Code, Message: o.Call.Message})
			}
			res.Failed = len(recs)
			if err := m.mark(ctx, recs, "failed", mursync.MURError(o, mursync.RecordError{})); err != nil {
				return err
			}
		} else {
			if len(o.Refused) > 0 {
				var fIDs, fMsgs []string
				var fCodes []int64
				for id, e := range o.Refused {
					fIDs, fCodes, fMsgs = append(fIDs, id), append(fCodes, e.Code), append(fMsgs, e.Message)
				}
				recs, err := updateRecords(ctx, tx, `UPDATE sync_aggregates a SET status = 'failed', error_code = u.c,
						error_msg = u.m, updated_at = $5
					FROM unnest($2::uuid[], $3::int8[], $4::text[]) AS u(id, c, m)
					WHERE a.aggregate_id = u.id AND a.batch_id = $1 AND a.status = 'pending'
					RETURNING a.aggregate_id, a.aggregate_id::text, a.murs, a.mur_ids`, o.BatchID, fIDs, fCodes, fMsgs, o.At)
				if err != nil {
					return err
				}
				// The refused records' MURs, grouped by the text they get.
				byError := map[string][]record{}
				for _, r := range recs {
					e := o.Refused[r.id]
					res.Records = append(res.Records, mursync.RecordResult{ClientRecordID: r.id, Status: mursync.Refused, Code: e.Code, Message: e.Message})
					text := mursync.MURError(o, e)
					byError[text] = append(byError[text], r)
				}
				res.Failed = len(recs)
				for text, rs := range byError {
					if err := m.mark(ctx, rs, "failed", text); err != nil {
						return err
					}
				}
			}
			recs, err := updateRecords(ctx, tx, `UPDATE sync_aggregates SET status = 'synced', error_code = NULL,
					error_msg = NULL, updated_at = $2
				WHERE batch_id = $1 AND status = 'pending' RETURNING aggregate_id, aggregate_id::text, murs, mur_ids`, o.BatchID, o.At)
			if err != nil {
				return err
			}
			for _, r := range recs {
				res.Records = append(res.Records, mursync.RecordResult{ClientRecordID: r.id, Status: mursync.Synced})
			}
			res.Synced = len(recs)
			if err := m.mark(ctx, recs, "synced", ""); err != nil {
				return err
			}
		}
		if m.marked != res.MURs {
			return fmt.Errorf("%w: the batch holds %d MURs, %d of them were unsynced or batched with their record",
				mursync.ErrConcurrentChange, res.MURs, m.marked)
		}
		if _, err := tx.Exec(ctx, `UPDATE sync_batches SET status = $2, synced = $3, failed = $4,
				failure = nullif($5, ''), error_code = nullif($6, 0), error_msg = nullif($7, ''), answered_at = $8, stamped = true
			WHERE batch_id = $1`, o.BatchID, string(o.Status), res.Synced, res.Failed,
			string(res.Failure), res.ErrorCode, res.ErrorMsg, o.At); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sync_jobs SET synced = synced + $2, failed = failed + $3 WHERE job_id = $1`,
			res.JobID, res.Synced, res.Failed)
		return err
	})
	return res, err
}

// record is an aggregated record an answer changed, with its MURs.
type record struct {
	id   string
	key  [16]byte
	murs int64
	ids  [][16]byte
}

// updateRecords runs an UPDATE of sync_aggregates that returns the id
// (as it is and as text), MUR count and MURs of each row it changed.
func updateRecords(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]record, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []record
	for rows.Next() {
		var r record
		if err := rows.Scan(&r.key, &r.id, &r.murs, &r.ids); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// marker marks MURs with an answer.
type marker struct {
	tx     pgx.Tx
	batch  string
	marked int64
}

// mark sets the MURs of recs to status with the error text (none when
// empty), each stamped with its record and the batch: MURs the batch's
// cycle still held (unsynced, no record yet) or that a hand-over marked
// batched with this record.
func (m *marker) mark(ctx context.Context, recs []record, status, errText string) error {
	type pair struct{ mur, agg [16]byte }
	var pairs []pair
	for _, r := range recs {
		for _, id := range r.ids {
			pairs = append(pairs, pair{id, r.key})
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	// In id order, which is about the order the MURs were stored in: the
	// update then walks the table and its primary key forward instead of
	// jumping about them.
	slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.mur[:], b.mur[:]) })
	murs, aggs := make([][16]byte, len(pairs)), make([][16]byte, len(pairs))
	for i, p := range pairs {
		murs[i], aggs[i] = p.mur, p.agg
	}
	tag, err := m.tx.Exec(ctx, `UPDATE murs m SET sync_status = $3, sync_error = nullif($4, ''), aggregate_id = u.agg, sync_batch_id = $5
		FROM unnest($1::uuid[], $2::uuid[]) AS u(mur, agg)
		WHERE m.mur_id = u.mur AND (m.aggregate_id IS NULL AND m.sync_status = 'unsynced'
		                            OR m.aggregate_id = u.agg AND m.sync_status = 'batched')`,
		murs, aggs, status, errText, m.batch)
	if err != nil {
		return fmt.Errorf("mark MURs %s: %w", status, err)
	}
	m.marked += tag.RowsAffected()
	return nil
}

// Result reads a batch's stored answer: its status and counts, and the
// records it still carries (records sent again since are in the later
// batch's result).
func (s *Store) Result(ctx context.Context, batchID string) (mursync.Result, error) {
	r := mursync.Result{BatchID: batchID}
	var status, failure string
	var answered *time.Time
	err := s.pool.QueryRow(ctx, `SELECT client, job_id::text, status, attempts, coalesce(failure, ''), coalesce(error_code, 0),
			coalesce(error_msg, ''), synced, failed, murs, answered_at
		FROM sync_batches WHERE batch_id = $1`, batchID).Scan(&r.Client, &r.JobID, &status, &r.Attempts, &failure,
		&r.ErrorCode, &r.ErrorMsg, &r.Synced, &r.Failed, &r.MURs, &answered)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("%w: %s", mursync.ErrUnknownBatch, batchID)
	}
	if err != nil {
		return r, err
	}
	r.Status, r.Failure = mursync.BatchStatus(status), mursync.Failure(failure)
	if answered != nil {
		r.AnsweredAt = answered.UTC()
	}
	rows, err := s.pool.Query(ctx, `SELECT aggregate_id::text, status, coalesce(error_code, 0), coalesce(error_msg, '')
		FROM sync_aggregates WHERE batch_id = $1 ORDER BY account_id, usage_type, usage_day, aggregate_id`, batchID)
	if err != nil {
		return r, err
	}
	r.Records, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mursync.RecordResult, error) {
		var x mursync.RecordResult
		var st string
		err := row.Scan(&x.ClientRecordID, &st, &x.Code, &x.Message)
		x.Status = mursync.RecordStatus(st)
		return x, err
	})
	return r, err
}
