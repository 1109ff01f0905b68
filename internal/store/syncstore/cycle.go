package syncstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/usage"
)

// Unsynced reads up to limit of the client's MURs in no aggregated
// record yet, in order of usage time and id, after the cursor: the first
// of the client's rows of mur_sync_queue in that order (narrow rows,
// sorted without touching murs), joined to their MURs in id order (which
// walks murs' primary key forward: the ids grow with time, and the join
// takes half the time it takes in usage-time order), then put in usage
// time order here.
func (s *Store) Unsynced(ctx context.Context, client string, after mursync.Cursor, limit int) ([]mursync.MUR, error) {
	const cols = `SELECT m.mur_id::text, m.record_id, m.account_id, m.usage_type, m.usage_time, m.currency,
			m.quantity::text, m.net_amount::text, m.qualifiers::text, m.rated_at, q.ctid
		FROM (SELECT * FROM (SELECT ctid, usage_time, mur_id FROM mur_sync_queue WHERE client = $1 %s
		                     ORDER BY usage_time, mur_id LIMIT $2) AS first ORDER BY mur_id) AS q
		JOIN murs m ON m.mur_id = q.mur_id
		WHERE m.aggregate_id IS NULL AND m.sync_status = 'unsynced'`
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := nestedLoops(ctx, tx); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	if after.ID == "" {
		rows, err = tx.Query(ctx, fmt.Sprintf(cols, ""), client, limit)
	} else {
		rows, err = tx.Query(ctx, fmt.Sprintf(cols, `AND usage_time >= $3 AND (usage_time, mur_id) > ($3, $4::uuid)`),
			client, limit, after.UsageTime, after.ID)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]mursync.MUR, 0, min(limit, 4096))
	var quals []byte
	var tid pgtype.TID
	for rows.Next() {
		var m mursync.MUR
		if err := rows.Scan(&m.ID, &m.RecordID, &m.AccountID, &m.UsageType, &m.UsageTime, &m.Currency,
			&m.Quantity, &m.NetAmount, &quals, &m.RatedAt, &tid); err != nil {
			return nil, err
		}
		m.Ref = tidRef(tid)
		// Most MURs have no qualifier: their '{}' needs no decoding.
		if len(quals) > 2 {
			var q map[string]string
			if err := json.Unmarshal(quals, &q); err != nil {
				return nil, fmt.Errorf("MUR %s: qualifiers: %w", m.ID, err)
			}
			for i, k := range usage.QualifierFields {
				m.Qualifiers[i] = q[k]
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return inUsageOrder(out), nil
}

// inUsageOrder sorts MURs by usage time and id (canonical UUID text sorts
// as PostgreSQL sorts uuids), in place, sorting small keys and then moving
// each MUR once.
func inUsageOrder(ms []mursync.MUR) []mursync.MUR {
	type key struct {
		sec     int64
		nsec, i int32
		id      string
	}
	keys := make([]key, len(ms))
	sorted := true
	for i := range ms {
		t := ms[i].UsageTime
		keys[i] = key{sec: t.Unix(), nsec: int32(t.Nanosecond()), i: int32(i), id: ms[i].ID}
	}
	order := func(a, b key) int {
		return cmp.Or(cmp.Compare(a.sec, b.sec), cmp.Compare(a.nsec, b.nsec), strings.Compare(a.id, b.id))
	}
	for i := 1; i < len(keys) && sorted; i++ {
		sorted = order(keys[i-1], keys[i]) <= 0
	}
	if sorted {
		return ms
	}
	slices.SortFunc(keys, order)
	// Place j takes the MUR keys[j].i: follow each cycle of the
	// permutation, in place (a chunk of MURs is tens of megabytes).
	for start := range keys {
		if keys[start].i < 0 || int(keys[start].i) == start {
			continue
		}
		held, j := ms[start], start
		for {
			k := int(keys[j].i)
			keys[j].i = -1
			if k == start {
				ms[j] = held
				break
			}
			ms[j], j = ms[k], k
		}
	}
	return ms
}

func qualifiersJSON(q [4]string) string {
	m := map[string]string{}
	for i, v := range q {
		if v != "" {
			m[fmt.Sprintf("qualifier_%d", i+1)] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// SavePlan commits an aggregation pass in one transaction on the cycle
// lock's connection: the batches (ready), the aggregated records
// (pending, each with its MURs' ids), and the MURs that cannot be sent
// (failed), and every MUR of the plan taken off mur_sync_queue. The
// other MURs are not written: their batch's answer marks them synced or
// failed, with their record and batch, in one update (or HandOver marks
// them batched first, when the answer does not come within the cycle).
// A MUR no longer on the queue (or no longer unsynced) voids it all.
func (s *Store) SavePlan(ctx context.Context, p mursync.Plan) error {
	nb, nr := len(p.Batches), len(p.Records)
	batchOf := make([]string, nr)
	bIDs, bRecords, bMURs := make([]string, nb), make([]int32, nb), make([]int64, nb)
	for i, b := range p.Batches {
		bIDs[i], bRecords[i] = b.ID, int32(b.To-b.From)
		for r := b.From; r < b.To; r++ {
			batchOf[r] = b.ID
			bMURs[i] += int64(p.Records[r].MURs)
		}
	}
	var (
		ids, accounts, types, currencies, units, amounts, quals, comments = mk(nr), mk(nr), mk(nr), mk(nr), mk(nr), mk(nr), mk(nr), mk(nr)
		days, dates, oldest                                               = make([]time.Time, nr), make([]time.Time, nr), make([]time.Time, nr)
		murCounts                                                         = make([]int32, nr)
	)
	var sendable int64
	for i := range p.Records {
		r := &p.Records[i]
		ids[i], accounts[i], types[i], currencies[i] = r.ID, r.AccountID, r.UsageType, r.Currency
		units[i], amounts[i], quals[i], comments[i] = r.Units, r.Amount, qualifiersJSON(r.Qualifiers), r.Comments
		days[i], dates[i], oldest[i], murCounts[i] = r.Day, r.UsageDate, r.OldestRatedAt, int32(r.MURs)
		sendable += int64(r.MURs)
		if batchOf[i] == "" {
			return fmt.Errorf("plan: record %d is in no batch", i)
		}
	}
	members := make([][]byte, nr) // each record's MURs as a uuid[] literal
	var sendableIDs int64
	var badIDs, badWhy []string
	for i, id := range p.MURIDs {
		if r := p.Of[i]; r >= 0 {
			sendableIDs++
			if members[r] == nil {
				members[r] = make([]byte, 0, 1+37*p.Records[r].MURs)
				members[r] = append(members[r], '{')
			} else {
				members[r] = append(members[r], ',')
			}
			members[r] = append(members[r], id...)
		}
	}
	memberText := make([]string, nr)
	for r := range members {
		memberText[r] = string(append(members[r], '}'))
	}
	for _, u := range p.Unsendable {
		badIDs, badWhy = append(badIDs, p.MURIDs[u.Index]), append(badWhy, "cannot be sent to the core: "+u.Reason)
	}
	if sendableIDs != sendable {
		return fmt.Errorf("plan: %d MURs for records that hold %d", sendableIDs, sendable)
	}
	if len(p.Refs) != len(p.MURIDs) {
		return fmt.Errorf("plan: %d refs for %d MURs", len(p.Refs), len(p.MURIDs))
	}
	tids := make([]pgtype.TID, len(p.MURIDs))
	for i := range tids {
		tids[i] = refTID(p.Refs[i])
	}
	return s.lockedTx(ctx, p.Client, func(tx pgx.Tx) error {
		if err := nestedLoops(ctx, tx); err != nil {
			return err
		}
		// The plan's MURs leave the queue: no later read finds them. Each
		// must still be there, or another cycle took it and this plan is
		// void. The rows are found where the read found them (a queue row
		// is never updated, so it stays there while it lives; the MUR id
		// is checked all the same), and among the client's queue rows if
		// that missed any (the table was rewritten meanwhile).
		tag, err := tx.Exec(ctx, `DELETE FROM mur_sync_queue q USING unnest($2::tid[], $3::uuid[]) AS u(t, id)
			WHERE q.ctid = u.t AND q.mur_id = u.id AND q.client = $1`, p.Client, tids, p.MURIDs)
		if err != nil {
			return fmt.Errorf("take the MURs off the queue: %w", err)
		}
		taken := tag.RowsAffected()
		if taken < int64(len(p.MURIDs)) {
			tag, err := tx.Exec(ctx, `DELETE FROM mur_sync_queue WHERE client = $1 AND mur_id = ANY($2::uuid[])`, p.Client, p.MURIDs)
			if err != nil {
				return fmt.Errorf("take the MURs off the queue: %w", err)
			}
			taken += tag.RowsAffected()
		}
		if taken != int64(len(p.MURIDs)) {
			return fmt.Errorf("%w: %d of %d MURs were still waiting for a record", mursync.ErrConcurrentChange, taken, len(p.MURIDs))
		}
		if nb > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO sync_batches (batch_id, client, job_id, status, records, murs, created_at)
				SELECT b, $1, $2, 'ready', r, m, $3 FROM unnest($4::uuid[], $5::int4[], $6::int8[]) AS t(b, r, m)`,
				p.Client, p.JobID, p.CreatedAt, bIDs, bRecords, bMURs); err != nil {
				return fmt.Errorf("insert batches: %w", err)
			}
		}
		if nr > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO sync_aggregates (aggregate_id, client, account_id, usage_type, usage_day,
					usage_date, currency, units, amount, murs, oldest_rated_at, qualifiers, comments, status, batch_id,
					mur_ids, created_at, updated_at)
				SELECT id, $1, a, t, d::date, ud, c, u::numeric, am::numeric, n, o, q::jsonb, cm, 'pending', b, mi::uuid[], $2, $2
				FROM unnest($3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[],
					$9::text[], $10::text[], $11::int4[], $12::timestamptz[], $13::text[], $14::text[], $15::uuid[], $16::text[])
					AS x(id, a, t, d, ud, c, u, am, n, o, q, cm, b, mi)`,
				p.Client, p.CreatedAt, ids, accounts, types, days, dates, currencies, units, amounts, murCounts, oldest,
				quals, comments, batchOf, memberText); err != nil {
				return fmt.Errorf("insert aggregated records: %w", err)
			}
		}
		if len(badIDs) > 0 {
			tag, err := tx.Exec(ctx, `UPDATE murs m SET sync_status = 'failed', sync_error = u.why
				FROM unnest($2::uuid[], $3::text[]) AS u(id, why)
				WHERE m.mur_id = u.id AND m.client = $1 AND m.aggregate_id IS NULL AND m.sync_status = 'unsynced'`, p.Client, badIDs, badWhy)
			if err != nil {
				return fmt.Errorf("mark unsendable MURs: %w", err)
			}
			if tag.RowsAffected() != int64(len(badIDs)) {
				return fmt.Errorf("%w: %d of %d unsendable MURs were still unsynced", mursync.ErrConcurrentChange, tag.RowsAffected(), len(badIDs))
			}
		}
		return nil
	})
}

func mk(n int) []string { return make([]string, n) }

// Resendable returns the failed records sel names, in batch order.
func (s *Store) Resendable(ctx context.Context, sel mursync.Selection) ([]mursync.Resendable, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.aggregate_id::text, a.batch_id::text, a.murs
		FROM sync_aggregates a JOIN sync_batches b ON b.batch_id = a.batch_id
		WHERE a.client = $1 AND a.status = 'failed'
		  AND ($2 = '' OR a.batch_id = nullif($2, '')::uuid) AND ($3 = '' OR b.failure = $3)
		ORDER BY b.created_at, a.batch_id, a.account_id, a.usage_type, a.usage_day, a.aggregate_id`,
		sel.Client, sel.BatchID, string(sel.Failure))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (mursync.Resendable, error) {
		var x mursync.Resendable
		err := r.Scan(&x.ID, &x.BatchID, &x.MURs)
		return x, err
	})
}

// SaveResend commits a resend in one transaction on the cycle lock's
// connection: the new batches (ready), their records moved to them and
// pending again (ids kept), and those records' MURs batched again. A
// record that is no longer failed voids it all.
func (s *Store) SaveResend(ctx context.Context, r mursync.Resend) error {
	var bIDs, bOf []string
	var bRecords []int32
	var bMURs []int64
	var recIDs, recBatch []string
	var murs int64
	for _, b := range r.Batches {
		var n int64
		for _, x := range b.Records {
			recIDs, recBatch = append(recIDs, x.ID), append(recBatch, b.ID)
			n += int64(x.MURs)
		}
		bIDs, bOf, bRecords, bMURs = append(bIDs, b.ID), append(bOf, b.ResendOf), append(bRecords, int32(len(b.Records))), append(bMURs, n)
		murs += n
	}
	return s.lockedTx(ctx, r.Client, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sync_batches (batch_id, client, job_id, status, records, murs, resend_of, stamped, created_at)
			SELECT b, $1, $2, 'ready', r, m, nullif(o, '')::uuid, true, $3 FROM unnest($4::uuid[], $5::int4[], $6::int8[], $7::text[]) AS t(b, r, m, o)`,
			r.Client, r.JobID, r.CreatedAt, bIDs, bRecords, bMURs, bOf); err != nil {
			return fmt.Errorf("insert batches: %w", err)
		}
		if err := nestedLoops(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE sync_aggregates a SET status = 'pending', batch_id = u.b, error_code = NULL,
				error_msg = NULL, updated_at = $2
			FROM unnest($3::uuid[], $4::uuid[]) AS u(id, b)
			WHERE a.aggregate_id = u.id AND a.client = $1 AND a.status = 'failed'`, r.Client, r.CreatedAt, recIDs, recBatch)
		if err != nil {
			return fmt.Errorf("move records: %w", err)
		}
		if tag.RowsAffected() != int64(len(recIDs)) {
			return fmt.Errorf("%w: %d of %d records were still failed", mursync.ErrConcurrentChange, tag.RowsAffected(), len(recIDs))
		}
		var moved int64
		for _, b := range r.Batches {
			recs := make([]string, len(b.Records))
			for i, x := range b.Records {
				recs[i] = x.ID
			}
			mids, err := memberIDs(ctx, tx, recs)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE murs SET sync_status = 'batched', sync_batch_id = $2, sync_error = NULL
				WHERE mur_id = ANY($1::uuid[]) AND sync_status = 'failed'`, mids, b.ID)
			if err != nil {
				return fmt.Errorf("move MURs: %w", err)
			}
			moved += tag.RowsAffected()
		}
		if moved != murs {
			return fmt.Errorf("%w: %d of %d MURs were still failed", mursync.ErrConcurrentChange, moved, murs)
		}
		return nil
	})
}

// ReadyBatches returns the client's batches not yet on the topic, oldest
// first, with their records.
func (s *Store) ReadyBatches(ctx context.Context, client string) ([]mursync.BatchMessage, error) {
	return s.batchMessages(ctx, `b.client = $1 AND b.status = 'ready'`, client)
}

// BatchRecords reads the records a batch carries.
func (s *Store) BatchRecords(ctx context.Context, batchID string) ([]mursync.Record, error) {
	b, err := s.batchMessages(ctx, `b.batch_id = $1`, batchID)
	if err != nil || len(b) == 0 {
		return nil, err
	}
	return b[0].Records, nil
}

func (s *Store) batchMessages(ctx context.Context, where string, arg any) ([]mursync.BatchMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT b.batch_id::text, b.client, b.job_id::text, b.created_at, a.aggregate_id::text, a.account_id,
			a.usage_type, a.currency, a.usage_day::timestamp, a.usage_date, a.units::text, a.amount::text, a.murs,
			coalesce(a.qualifiers->>'qualifier_1', ''), coalesce(a.qualifiers->>'qualifier_2', ''),
			coalesce(a.qualifiers->>'qualifier_3', ''), coalesce(a.qualifiers->>'qualifier_4', ''), a.comments, a.oldest_rated_at
		FROM sync_batches b JOIN sync_aggregates a ON a.batch_id = b.batch_id
		WHERE `+where+`
		ORDER BY b.created_at, b.batch_id, a.account_id, a.usage_type, a.usage_day, a.usage_date, a.aggregate_id`, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []mursync.BatchMessage
	for rows.Next() {
		var bid, client, jid string
		var created time.Time
		var r mursync.Record
		if err := rows.Scan(&bid, &client, &jid, &created, &r.ID, &r.AccountID, &r.UsageType, &r.Currency, &r.Day, &r.UsageDate,
			&r.Units, &r.Amount, &r.MURs, &r.Qualifiers[0], &r.Qualifiers[1], &r.Qualifiers[2], &r.Qualifiers[3],
			&r.Comments, &r.OldestRatedAt); err != nil {
			return nil, err
		}
		r.Day, r.UsageDate = r.Day.UTC(), r.UsageDate.UTC()
		if n := len(out); n == 0 || out[n-1].BatchID != bid {
			out = append(out, mursync.BatchMessage{BatchID: bid, Client: client, JobID: jid, CreatedAt: created.UTC()})
		}
		b := &out[len(out)-1]
		b.Records = append(b.Records, r)
	}
	return out, rows.Err()
}

// MarkPublished records batches as on the topic and sent by the job,
// adding them to its counts once: a batch the sync service took before
// this (it can be that quick) is counted all the same, and one published
// again after a crash is not counted twice.
func (s *Store) MarkPublished(ctx context.Context, jobID string, batchIDs []string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var batches int
		var records, murs int64
		err := tx.QueryRow(ctx, `WITH p AS (
				UPDATE sync_batches SET status = CASE WHEN status = 'ready' THEN 'published' ELSE status END,
					published_at = now(), job_id = $1
				WHERE batch_id = ANY($2::uuid[]) AND published_at IS NULL RETURNING records, murs)
			SELECT count(*), coalesce(sum(records), 0), coalesce(sum(murs), 0) FROM p`, jobID, batchIDs).Scan(&batches, &records, &murs)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sync_jobs SET batches = batches + $2, aggregates = aggregates + $3, murs = murs + $4
			WHERE job_id = $1`, jobID, batches, records, murs)
		return err
	})
}

// Clients lists the clients with work: MURs in no record yet (found with
// a skip scan of mur_sync_queue), batches not yet on the topic, or
// records of batches that found the core unavailable.
func (s *Store) Clients(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE c(client) AS (
			SELECT min(client) FROM mur_sync_queue
			UNION ALL
			SELECT (SELECT min(q.client) FROM mur_sync_queue q WHERE q.client > c.client)
			FROM c WHERE c.client IS NOT NULL)
		SELECT client FROM c WHERE client IS NOT NULL
		UNION
		SELECT client FROM sync_batches WHERE status = 'ready'
		UNION
		SELECT a.client FROM sync_aggregates a JOIN sync_batches b ON b.batch_id = a.batch_id
		WHERE a.status = 'failed' AND b.failure = 'unavailable'
		ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// HandOver marks batched, with their record and batch, the MURs of the
// client's batches that have no answer yet and whose MURs are not marked:
// a cycle does so when it ends without their answers, and at its start
// for the batches of a cycle that ended without doing so (its process
// died). It returns the number of MURs marked.
func (s *Store) HandOver(ctx context.Context, client string) (int64, error) {
	var marked int64
	err := s.lockedTx(ctx, client, func(tx pgx.Tx) error {
		marked = 0
		rows, err := tx.Query(ctx, `SELECT batch_id::text, murs FROM sync_batches
			WHERE client = $1 AND status IN ('ready', 'published', 'sending') AND NOT stamped
			ORDER BY batch_id FOR UPDATE`, client)
		if err != nil {
			return err
		}
		var batches []string
		var want int64
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return err
			}
			batches, want = append(batches, id), want+n
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(batches) == 0 {
			return err
		}
		if err := nestedLoops(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE murs m SET sync_status = 'batched', aggregate_id = x.aggregate_id, sync_batch_id = x.batch_id
			FROM (SELECT a.aggregate_id, a.batch_id, unnest(a.mur_ids) AS mur FROM sync_aggregates a
			      WHERE a.batch_id = ANY($1::uuid[]) AND a.status = 'pending') AS x
			WHERE m.mur_id = x.mur AND m.aggregate_id IS NULL AND m.sync_status = 'unsynced'`, batches)
		if err != nil {
			return fmt.Errorf("mark MURs batched: %w", err)
		}
		if marked = tag.RowsAffected(); marked != want {
			return fmt.Errorf("%w: %d of the %d MURs of batches without an answer were still unsynced", mursync.ErrConcurrentChange, marked, want)
		}
		_, err = tx.Exec(ctx, `UPDATE sync_batches SET stamped = true WHERE batch_id = ANY($1::uuid[])`, batches)
		return err
	})
	return marked, err
}

// nestedLoops makes the rest of the transaction join rows to the list
// that names them (MUR ids, record ids) one probe of the primary key per
// name. Without statistics (autovacuum is not assumed) the planner guesses
// how many rows the conditions on a table leave, and a low guess makes it
// scan the table for every name (a nested loop over a materialised scan),
// or hash a client's whole backlog to update a few thousand rows; both
// are quadratic or worse in practice. With these off the probe is the
// only plan that is not priced out.
func nestedLoops(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
		SET LOCAL enable_material = off; SET LOCAL enable_seqscan = off`)
	return err
}

// memberIDs returns the MURs of aggregated records, as text.
func memberIDs(ctx context.Context, tx pgx.Tx, records []string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT unnest(mur_ids)::text FROM sync_aggregates WHERE aggregate_id = ANY($1::uuid[])`, records)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// tidRef packs a row's place (block, line) into a Ref; 0 is no place
// (line numbers start at 1).
func tidRef(t pgtype.TID) uint64 {
	if !t.Valid {
		return 0
	}
	return uint64(t.BlockNumber)<<16 | uint64(t.OffsetNumber)
}

// refTID unpacks tidRef; a Ref of 0 is a place no row has.
func refTID(r uint64) pgtype.TID {
	return pgtype.TID{BlockNumber: uint32(r >> 16), OffsetNumber: uint16(r), Valid: true}
}
