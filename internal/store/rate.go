package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrConcurrentRecord means another transaction stored a MUR for one of
// the batch's record ids after the batch looked; the batch must be rated
// again from the start (it will then see the record as a duplicate).
var ErrConcurrentRecord = errors.New("a record of the batch was stored concurrently")

// SourceKey identifies a record across replays.
type SourceKey struct {
	Client string
	FileID string
	Line   int64
	Part   int
}

// RecordKey is the exactly-once key of a MUR.
type RecordKey struct {
	Client   string
	RecordID string
}

// CounterKey addresses a cumulative usage counter.
type CounterKey struct {
	Client    string
	AccountID string
	UsageType string
	Month     int32
}

// AllowanceKey addresses a free-unit allowance's use.
type AllowanceKey struct {
	Client     string
	AccountID  string
	DiscountID string
	Month      int32
}

// RateTx is one rating transaction: everything a batch of records changes
// commits together — MURs, counters, allowances, exceptions, file counts —
// or nothing does.
type RateTx struct {
	tx     pgx.Tx
	deltas map[string]*fileDelta
}

// Rate runs fn in a rating transaction and commits it. It retries from
// the start when the database reports a serialisation failure, a deadlock
// or ErrConcurrentRecord, so fn must be repeatable: it gets a fresh view
// each time.
func (s *Store) Rate(ctx context.Context, fn func(*RateTx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rt := &RateTx{tx: tx, deltas: map[string]*fileDelta{}}
			if err := fn(rt); err != nil {
				return err
			}
			return applyFileDeltas(ctx, tx, rt.deltas)
		})
		if !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return err
}

func retryable(err error) bool {
	if errors.Is(err, ErrConcurrentRecord) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// ExistingMURs returns, for the record keys that already have a MUR, the
// source that MUR came from.
func (t *RateTx) ExistingMURs(ctx context.Context, keys []RecordKey) (map[RecordKey]SourceKey, error) {
	out := map[RecordKey]SourceKey{}
	if len(keys) == 0 {
		return out, nil
	}
	clients := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		clients[i], ids[i] = k.Client, k.RecordID
	}
	rows, err := t.tx.Query(ctx, `SELECT m.client, m.record_id, m.file_id::text, m.line, m.part
		FROM murs m JOIN unnest($1::text[], $2::text[]) AS k(client, record_id)
			ON m.client = k.client AND m.record_id = k.record_id`, clients, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var rk RecordKey
		var sk SourceKey
		if err := rows.Scan(&rk.Client, &rk.RecordID, &sk.FileID, &sk.Line, &sk.Part); err != nil {
			return nil, err
		}
		sk.Client = rk.Client
		out[rk] = sk
	}
	return out, rows.Err()
}

// LoadCounters locks and returns the counters of keys, creating missing
// ones at zero so that they can be locked too. Locks are taken in key order, so batches that share counters
// queue rather than deadlock.
func (t *RateTx) LoadCounters(ctx context.Context, keys []CounterKey) (map[CounterKey]string, error) {
	out := map[CounterKey]string{}
	if len(keys) == 0 {
		return out, nil
	}
	sortCounterKeys(keys)
	c, a, u, m := splitCounterKeys(keys)
	// A counter that does not exist yet cannot be locked, so two batches
	// would both read zero: create the missing ones first. A concurrent
	// creator's row makes this wait until that transaction ends.
	if _, err := t.tx.Exec(ctx, `INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
		SELECT k.*, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k
		ON CONFLICT DO NOTHING`, c, a, u, m); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `SELECT u.client, u.account_id, u.usage_type, u.month, u.quantity::text
		FROM usage_counters u JOIN unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k(client, account_id, usage_type, month)
			USING (client, account_id, usage_type, month)
		ORDER BY u.client, u.account_id, u.usage_type, u.month
		FOR UPDATE OF u`, c, a, u, m)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k CounterKey
		var q string
		if err := rows.Scan(&k.Client, &k.AccountID, &k.UsageType, &k.Month, &q); err != nil {
			return nil, err
		}
		out[k] = q
	}
	return out, rows.Err()
}

// SaveCounters writes counters' new values.
func (t *RateTx) SaveCounters(ctx context.Context, values map[CounterKey]string) error {
	if len(values) == 0 {
		return nil
	}
	keys := make([]CounterKey, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sortCounterKeys(keys)
	c, a, u, m := splitCounterKeys(keys)
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = values[k]
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::numeric[])
		ON CONFLICT (client, account_id, usage_type, month) DO UPDATE SET quantity = excluded.quantity`, c, a, u, m, q)
	return err
}

// LoadAllowances locks and returns the use of the given allowances,
// creating missing ones at zero so that they can be locked too.
func (t *RateTx) LoadAllowances(ctx context.Context, keys []AllowanceKey) (map[AllowanceKey]string, error) {
	out := map[AllowanceKey]string{}
	if len(keys) == 0 {
		return out, nil
	}
	sortAllowanceKeys(keys)
	c, a, d, m := splitAllowanceKeys(keys)
	if _, err := t.tx.Exec(ctx, `INSERT INTO allowance_usage (client, account_id, discount_id, month, used)
		SELECT k.*, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k
		ON CONFLICT DO NOTHING`, c, a, d, m); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `SELECT u.client, u.account_id, u.discount_id, u.month, u.used::text
		FROM allowance_usage u JOIN unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k(client, account_id, discount_id, month)
			USING (client, account_id, discount_id, month)
		ORDER BY u.client, u.account_id, u.discount_id, u.month
		FOR UPDATE OF u`, c, a, d, m)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k AllowanceKey
		var v string
		if err := rows.Scan(&k.Client, &k.AccountID, &k.DiscountID, &k.Month, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// SaveAllowances writes allowance use.
func (t *RateTx) SaveAllowances(ctx context.Context, values map[AllowanceKey]string) error {
	if len(values) == 0 {
		return nil
	}
	keys := make([]AllowanceKey, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sortAllowanceKeys(keys)
	c, a, d, m := splitAllowanceKeys(keys)
	v := make([]string, len(keys))
	for i, k := range keys {
		v[i] = values[k]
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO allowance_usage (client, account_id, discount_id, month, used)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::numeric[])
		ON CONFLICT (client, account_id, discount_id, month) DO UPDATE SET used = excluded.used`, c, a, d, m, v)
	return err
}

// InsertMURs stores MURs, moves their files' counts and resolves any open
// exception of the same source (a reprocessed record, or a replay that
// now rates). It returns ErrConcurrentRecord when a record id was taken
// since ExistingMURs looked.
func (t *RateTx) InsertMURs(ctx context.Context, murs []MUR) error {
	if len(murs) == 0 {
		return nil
	}
	n := len(murs)
	var (
		ids, clients, recIDs, files, accounts, types, qty, curr, gross, disc, net = mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		lines                                                                     = make([]int64, n)
		parts                                                                     = make([]int32, n)
		times                                                                     = make([]time.Time, n)
		details, quals, attrs                                                     = make([][]byte, n), make([][]byte, n), make([][]byte, n)
	)
	for i, m := range murs {
		if m.MURID == "" {
			m.MURID = NewID()
		}
		ids[i], clients[i], recIDs[i], files[i] = m.MURID, m.Client, m.RecordID, m.FileID
		lines[i], parts[i] = m.Line, int32(m.Part)
		accounts[i], types[i], qty[i], times[i], curr[i] = m.AccountID, m.UsageType, m.Quantity, m.UsageTime, m.Currency
		gross[i], disc[i], net[i] = m.GrossAmount, m.DiscountAmount, m.NetAmount
		details[i] = m.RateDetail
		quals[i] = jsonMap(m.Qualifiers)
		attrs[i] = jsonMap(m.Attributes)
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO murs (mur_id, client, record_id, file_id, line, part, account_id, usage_type,
			quantity, usage_time, currency, gross_amount, discount_amount, net_amount, rate_detail, qualifiers, attributes)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::bigint[], $6::int[], $7::text[], $8::text[],
			$9::numeric[], $10::timestamptz[], $11::text[], $12::numeric[], $13::numeric[], $14::numeric[], $15::jsonb[],
			$16::jsonb[], $17::jsonb[])
		ON CONFLICT (client, record_id) DO NOTHING`,
		ids, clients, recIDs, files, lines, parts, accounts, types, qty, times, curr, gross, disc, net, details, quals, attrs)
	if err != nil {
		return fmt.Errorf("insert MURs: %w", err)
	}
	if int(tag.RowsAffected()) != n {
		return ErrConcurrentRecord
	}
	for _, f := range files {
		delta(t.deltas, f).murs++
	}
	rows, err := t.tx.Query(ctx, `UPDATE exceptions x SET status = 'resolved', updated_at = now()
		FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::int[]) AS k(client, file_id, line, part)
		WHERE x.client = k.client AND x.file_id = k.file_id AND x.line = k.line AND x.part = k.part
			AND x.status IN ('open', 'reprocessing')
		RETURNING x.file_id::text`, clients, files, lines, parts)
	if err != nil {
		return fmt.Errorf("resolve exceptions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return err
		}
		delta(t.deltas, f).exceptions--
	}
	return rows.Err()
}

// InsertExceptions stores exceptions within the rating transaction, with
// the same once-per-source rule as Store.InsertExceptions.
func (t *RateTx) InsertExceptions(ctx context.Context, exs []Exception) error {
	_, err := insertExceptions(ctx, t.tx, exs, t.deltas)
	return err
}

func mk(n int) []string { return make([]string, n) }

func jsonMap(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte(`{}`)
	}
	b, _ := json.Marshal(m)
	return b
}

func sortCounterKeys(keys []CounterKey) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		if a.AccountID != b.AccountID {
			return a.AccountID < b.AccountID
		}
		if a.UsageType != b.UsageType {
			return a.UsageType < b.UsageType
		}
		return a.Month < b.Month
	})
}

func splitCounterKeys(keys []CounterKey) (c, a, u []string, m []int32) {
	for _, k := range keys {
		c, a, u, m = append(c, k.Client), append(a, k.AccountID), append(u, k.UsageType), append(m, k.Month)
	}
	return
}

func sortAllowanceKeys(keys []AllowanceKey) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		if a.AccountID != b.AccountID {
			return a.AccountID < b.AccountID
		}
		if a.DiscountID != b.DiscountID {
			return a.DiscountID < b.DiscountID
		}
		return a.Month < b.Month
	})
}

func splitAllowanceKeys(keys []AllowanceKey) (c, a, d []string, m []int32) {
	for _, k := range keys {
		c, a, d, m = append(c, k.Client), append(a, k.AccountID), append(d, k.DiscountID), append(m, k.Month)
	}
	return
}
