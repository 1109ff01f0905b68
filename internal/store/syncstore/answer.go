package syncstore

import (
	"context"
	"errors"
	"fmt"
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
// its records theirs, their MURs theirs, and its job's counts move. The
// MURs marked must be exactly those of the records, or nothing is.
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
		var marked int64
		if o.Status == mursync.Failed {
			res.Failure, res.ErrorCode, res.ErrorMsg = o.Call.Failure, o.Call.Code, o.Call.Message
			ids, mids, murs, err := setRecords(ctx, tx, `UPDATE sync_aggregates SET status = 'failed', error_code = nullif($2, 0),
					error_msg = $3, updated_at = $4
				WHERE batch_id = $1 AND status = 'pending' RETURNING aggregate_id::text, murs, mur_ids::text[]`,
				o.BatchID, o.Call.Code, o.Call.Message, o.At)
			if err != nil {
				return err
			}
			for _, id := range ids {
				res.Records = append(res.Records, mursync.RecordResult{ClientRecordID: id, Status: mursync.Refused,
					Code: o.Call.Code, Message: o.Call.Message})
			}
			res.Failed = len(ids)
			tag, err := tx.Exec(ctx, `UPDATE murs SET sync_status = 'failed', sync_error = $2
				WHERE mur_id = ANY($1::uuid[]) AND sync_status = 'batched'`, mids, mursync.MURError(o, mursync.RecordError{}))
			if err != nil {
				return err
			}
			if marked = tag.RowsAffected(); marked != murs {
				return fmt.Errorf("%w: the batch's records hold %d MURs, %d of them batched", mursync.ErrConcurrentChange, murs, marked)
			}
		} else {
			var fIDs, fMsgs []string
			var fCodes []int64
			for id, e := range o.Refused {
				fIDs, fCodes, fMsgs = append(fIDs, id), append(fCodes, e.Code), append(fMsgs, e.Message)
			}
			var failedMURs int64
			if len(fIDs) > 0 {
				rows, err := tx.Query(ctx, `UPDATE sync_aggregates a SET status = 'failed', error_code = u.c,
						error_msg = u.m, updated_at = $5
					FROM unnest($2::uuid[], $3::int8[], $4::text[]) AS u(id, c, m)
					WHERE a.aggregate_id = u.id AND a.batch_id = $1 AND a.status = 'pending'
					RETURNING a.aggregate_id::text, a.murs, a.mur_ids::text[]`, o.BatchID, fIDs, fCodes, fMsgs, o.At)
				if err != nil {
					return err
				}
				// The MURs of the refused records, by the text they get.
				byError := map[string][]string{}
				for rows.Next() {
					var id string
					var n int64
					var mids []string
					if err := rows.Scan(&id, &n, &mids); err != nil {
						rows.Close()
						return err
					}
					e := o.Refused[id]
					res.Records = append(res.Records, mursync.RecordResult{ClientRecordID: id, Status: mursync.Refused, Code: e.Code, Message: e.Message})
					res.Failed++
					failedMURs += n
					text := mursync.MURError(o, e)
					byError[text] = append(byError[text], mids...)
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return err
				}
				for text, mids := range byError {
					tag, err := tx.Exec(ctx, `UPDATE murs SET sync_status = 'failed', sync_error = $2
						WHERE mur_id = ANY($1::uuid[]) AND sync_status = 'batched'`, mids, text)
					if err != nil {
						return err
					}
					marked += tag.RowsAffected()
				}
			}
			ids, mids, murs, err := setRecords(ctx, tx, `UPDATE sync_aggregates SET status = 'synced', error_code = NULL,
					error_msg = NULL, updated_at = $2
				WHERE batch_id = $1 AND status = 'pending' RETURNING aggregate_id::text, murs, mur_ids::text[]`, o.BatchID, o.At)
			if err != nil {
				return err
			}
			for _, id := range ids {
				res.Records = append(res.Records, mursync.RecordResult{ClientRecordID: id, Status: mursync.Synced})
			}
			res.Synced = len(ids)
			tag, err := tx.Exec(ctx, `UPDATE murs SET sync_status = 'synced', sync_error = NULL
				WHERE mur_id = ANY($1::uuid[]) AND sync_status = 'batched'`, mids)
			if err != nil {
				return err
			}
			marked += tag.RowsAffected()
			if marked != murs+failedMURs {
				return fmt.Errorf("%w: the batch's records hold %d MURs, %d of them batched", mursync.ErrConcurrentChange, murs+failedMURs, marked)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE sync_batches SET status = $2, synced = $3, failed = $4,
				failure = nullif($5, ''), error_code = nullif($6, 0), error_msg = nullif($7, ''), answered_at = $8
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

// setRecords runs an UPDATE of sync_aggregates that returns the ids, MUR
// counts and MURs of the rows it changed.
func setRecords(ctx context.Context, tx pgx.Tx, sql string, args ...any) (ids, murIDs []string, murs int64, err error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int64
		var mids []string
		if err := rows.Scan(&id, &n, &mids); err != nil {
			return nil, nil, 0, err
		}
		ids, murIDs, murs = append(ids, id), append(murIDs, mids...), murs+n
	}
	return ids, murIDs, murs, rows.Err()
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
