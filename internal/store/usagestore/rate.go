// Package usagestore is where rating writes in PostgreSQL, and where
// what it wrote is read back: the rating transaction (MURs, tier
// counters, free-unit allowances, exceptions, file counts, all in one),
// exceptions and filtered records from the other stages, and the MUR and
// exception exports.
package usagestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/rating"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
)

// Store is the usage records' storage over a database.
type Store struct{ db *store.Store }

// New returns the usage records' storage of db.
func New(db *store.Store) *Store { return &Store{db: db} }

// ErrConcurrentRecord is what InsertMURs returns when a record id of the
// batch already has a MUR: ratestage.ErrRecordStored, under the name this
// package gave it first.
var ErrConcurrentRecord = ratestage.ErrRecordStored

// RateTx is one rating transaction: everything a batch of records changes
// commits together — MURs, counters, allowances, exceptions, file counts —
// or nothing does. It implements ratestage.Tx.
type RateTx struct {
	tx     pgx.Tx
	deltas filestore.Deltas
}

// Rate runs fn in a rating transaction and commits it. It retries from
// the start when the database reports a serialisation failure, a deadlock,
// ratestage.ErrRecordStored or ratestage.ErrStaleLedger, so fn must be repeatable: it gets a fresh view
// each time. The files the transaction finished are told to the
// files.Observe observer of ctx once it has committed.
func (s *Store) Rate(ctx context.Context, fn func(ratestage.Tx) error) error {
	var done []files.Finished
	again := func(err error) bool {
		return errors.Is(err, ratestage.ErrRecordStored) || errors.Is(err, ratestage.ErrStaleLedger)
	}
	err := s.db.RetryTx(ctx, again, func(tx pgx.Tx) error {
		rt := &RateTx{tx: tx, deltas: filestore.Deltas{}}
		if _, err := tx.Exec(ctx, probesSQL); err != nil {
			return fmt.Errorf("rating transaction: %w", err)
		}
		if err := fn(rt); err != nil {
			return err
		}
		var err error
		done, err = filestore.ApplyDeltas(ctx, tx, rt.deltas)
		return err
	})
	if err == nil {
		files.Observe(ctx, done)
	}
	return err
}

// probesSQL makes every statement of a rating transaction join its list
// of keys to a table one index probe per key. Without statistics
// (autovacuum is not assumed) the planner guesses how many rows a
// condition leaves; a low guess makes it scan a table for every key, or
// hash a whole table to touch a batch's rows. With these off, the probe
// is the only plan that is not priced out, and each statement's
// conditions leave it one index to probe (TestRatePlansProbe). jit is
// off as well: a statement priced with a disabled node would otherwise be
// compiled, which costs far more than the batch's probes.
const probesSQL = `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
	SET LOCAL enable_material = off; SET LOCAL enable_seqscan = off; SET LOCAL jit = off`

// ExistingMURs returns, for the record keys that already have a MUR, the
// source that MUR came from.
func (t *RateTx) ExistingMURs(ctx context.Context, keys []ratestage.RecordKey) (map[ratestage.RecordKey]ratestage.SourceKey, error) {
	out := map[ratestage.RecordKey]ratestage.SourceKey{}
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
		var rk ratestage.RecordKey
		var sk ratestage.SourceKey
		if err := rows.Scan(&rk.Client, &rk.RecordID, &sk.FileID, &sk.Line, &sk.Part); err != nil {
			return nil, err
		}
		sk.Client = rk.Client
		out[rk] = sk
	}
	return out, rows.Err()
}

// ledgerKey is the shape both cumulative tables share: a counter's usage
// type or an allowance's discount id is Item.
type ledgerKey struct {
	Client, AccountID, Item string
	Month                   int32
}

func compareLedgerKeys(a, b ledgerKey) int {
	return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.AccountID, b.AccountID),
		cmp.Compare(a.Item, b.Item), cmp.Compare(a.Month, b.Month))
}

// ledgerTable holds the statements for one cumulative table.
type ledgerTable struct {
	what                 string
	lock, create, update string
}

// The statements name each table's columns in full rather than being
// assembled from fragments, so that each reads as what it runs.
var (
	counterTable = ledgerTable{
		what: "usage counters",
		lock: `SELECT u.client, u.account_id, u.usage_type, u.month, u.quantity::text
			FROM usage_counters u JOIN unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k(client, account_id, usage_type, month)
				USING (client, account_id, usage_type, month)
			ORDER BY u.client, u.account_id, u.usage_type, u.month
			FOR UPDATE OF u`,
		create: `INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
			SELECT k.*, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k
			ON CONFLICT DO NOTHING`,
		update: `UPDATE usage_counters u SET quantity = k.v
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::numeric[], $6::numeric[]) AS k(client, account_id, usage_type, month, v, assumed)
			WHERE u.client = k.client AND u.account_id = k.account_id AND u.usage_type = k.usage_type AND u.month = k.month
				AND (k.assumed IS NULL OR u.quantity = k.assumed)`,
	}
	allowanceTable = ledgerTable{
		what: "allowance use",
		lock: `SELECT u.client, u.account_id, u.discount_id, u.month, u.used::text
			FROM allowance_usage u JOIN unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k(client, account_id, discount_id, month)
				USING (client, account_id, discount_id, month)
			ORDER BY u.client, u.account_id, u.discount_id, u.month
			FOR UPDATE OF u`,
		create: `INSERT INTO allowance_usage (client, account_id, discount_id, month, used)
			SELECT k.*, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k
			ON CONFLICT DO NOTHING`,
		update: `UPDATE allowance_usage u SET used = k.v
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::numeric[], $6::numeric[]) AS k(client, account_id, discount_id, month, v, assumed)
			WHERE u.client = k.client AND u.account_id = k.account_id AND u.discount_id = k.discount_id AND u.month = k.month
				AND (k.assumed IS NULL OR u.used = k.assumed)`,
	}
)

// load locks and returns the rows of keys, creating missing ones at zero
// so that they can be locked too (a row that does not exist cannot be
// locked, and two batches would both read zero). Existing rows, the usual
// case, take one statement; locks are taken in key order, so batches that
// share rows queue rather than deadlock.
func (t *RateTx) load(ctx context.Context, tbl *ledgerTable, keys []ledgerKey) (map[ledgerKey]string, error) {
	out := make(map[ledgerKey]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	slices.SortFunc(keys, compareLedgerKeys)
	if err := t.lockRows(ctx, tbl, keys, out); err != nil {
		return nil, err
	}
	if len(out) == len(keys) {
		return out, nil
	}
	var missing []ledgerKey
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			missing = append(missing, k)
		}
	}
	// A concurrent creator's row makes the insert wait until that
	// transaction ends; either way the row then exists.
	c, a, i, m := splitLedgerKeys(missing)
	if _, err := t.tx.Exec(ctx, tbl.create, c, a, i, m); err != nil {
		return nil, fmt.Errorf("create %s: %w", tbl.what, err)
	}
	if err := t.lockRows(ctx, tbl, missing, out); err != nil {
		return nil, err
	}
	if len(out) != len(keys) {
		return nil, fmt.Errorf("lock %s: %d of %d rows found after creating them", tbl.what, len(out), len(keys))
	}
	return out, nil
}

func (t *RateTx) lockRows(ctx context.Context, tbl *ledgerTable, keys []ledgerKey, out map[ledgerKey]string) error {
	c, a, i, m := splitLedgerKeys(keys)
	rows, err := t.tx.Query(ctx, tbl.lock, c, a, i, m)
	if err != nil {
		return fmt.Errorf("lock %s: %w", tbl.what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k ledgerKey
		var v string
		if err := rows.Scan(&k.Client, &k.AccountID, &k.Item, &k.Month, &v); err != nil {
			return err
		}
		out[k] = v
	}
	return rows.Err()
}

// save writes new values to rows load locked, and to rows whose value
// the caller assumed (a non-nil was), each only if it still holds that
// value: the update locks the row and compares in one step. A row that
// holds another value is not written and save returns
// ratestage.ErrStaleLedger. The rows go in key order.
func (t *RateTx) save(ctx context.Context, tbl *ledgerTable, rows []ledgerWrite, checked bool) error {
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(x, y ledgerWrite) int { return compareLedgerKeys(x.key, y.key) })
	n := len(rows)
	keys, v, was := make([]ledgerKey, n), make([]string, n), make([]*string, n)
	for j := range rows {
		keys[j], v[j], was[j] = rows[j].key, rows[j].value, rows[j].was
	}
	c, a, i, m := splitLedgerKeys(keys)
	tag, err := t.tx.Exec(ctx, tbl.update, c, a, i, m, v, was)
	if err != nil {
		return fmt.Errorf("save %s: %w", tbl.what, err)
	}
	if got := int(tag.RowsAffected()); got != n {
		if checked {
			return fmt.Errorf("save %s: %d of %d rows held the values rated with: %w", tbl.what, got, n, ratestage.ErrStaleLedger)
		}
		return fmt.Errorf("save %s: %d of %d rows updated; save only what load locked", tbl.what, got, n)
	}
	return nil
}

// ledgerWrite is one row save writes: its key, its new value, and the
// value it must still hold (nil: a row load locked).
type ledgerWrite struct {
	key   ledgerKey
	value string
	was   *string
}

func splitLedgerKeys(keys []ledgerKey) (c, a, i []string, m []int32) {
	c, a, i, m = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys)), make([]int32, len(keys))
	for j, k := range keys {
		c[j], a[j], i[j], m[j] = k.Client, k.AccountID, k.Item, k.Month
	}
	return
}

// LoadCounters locks and returns the usage counters of keys (missing ones
// are created at zero).
func (t *RateTx) LoadCounters(ctx context.Context, keys []ratestage.CounterKey) (map[ratestage.CounterKey]string, error) {
	return loadKeyed(ctx, t, &counterTable, keys, counterLedger, counterKey)
}

// SaveCounters writes new values of counters LoadCounters locked.
func (t *RateTx) SaveCounters(ctx context.Context, values map[ratestage.CounterKey]string) error {
	return saveKeyed(ctx, t, &counterTable, values, nil, counterLedger)
}

// SaveCountersChecked writes new values of counters LoadCounters locked,
// and of those whose assumed value the row still holds (ratestage.Tx).
func (t *RateTx) SaveCountersChecked(ctx context.Context, values, assumed map[ratestage.CounterKey]string) error {
	return saveKeyed(ctx, t, &counterTable, values, assumed, counterLedger)
}

// LoadAllowances locks and returns the use of free-unit allowances
// (missing ones are created at zero).
func (t *RateTx) LoadAllowances(ctx context.Context, keys []ratestage.AllowanceKey) (map[ratestage.AllowanceKey]string, error) {
	return loadKeyed(ctx, t, &allowanceTable, keys, allowanceLedger, allowanceKey)
}

// SaveAllowances writes new use of allowances LoadAllowances locked.
func (t *RateTx) SaveAllowances(ctx context.Context, values map[ratestage.AllowanceKey]string) error {
	return saveKeyed(ctx, t, &allowanceTable, values, nil, allowanceLedger)
}

// SaveAllowancesChecked writes new use of allowances as
// SaveCountersChecked writes counters.
func (t *RateTx) SaveAllowancesChecked(ctx context.Context, values, assumed map[ratestage.AllowanceKey]string) error {
	return saveKeyed(ctx, t, &allowanceTable, values, assumed, allowanceLedger)
}

// A counter's or an allowance's key as the table's, and back: distinct
// types for callers, one shape for the tables.
func counterLedger(k ratestage.CounterKey) ledgerKey {
	return ledgerKey{k.Client, k.AccountID, k.UsageType, int32(k.Month)}
}
func counterKey(k ledgerKey) ratestage.CounterKey {
	return ratestage.CounterKey{Client: k.Client, AccountID: k.AccountID, UsageType: k.Item, Month: rating.Month(k.Month)}
}
func allowanceLedger(k ratestage.AllowanceKey) ledgerKey {
	return ledgerKey{k.Client, k.AccountID, k.DiscountID, int32(k.Month)}
}
func allowanceKey(k ledgerKey) ratestage.AllowanceKey {
	return ratestage.AllowanceKey{Client: k.Client, AccountID: k.AccountID, DiscountID: k.Item, Month: rating.Month(k.Month)}
}

// loadKeyed is load for a public key type; to and back turn its keys
// into the table's and back.
func loadKeyed[K comparable](ctx context.Context, t *RateTx, tbl *ledgerTable, keys []K, to func(K) ledgerKey, back func(ledgerKey) K) (map[K]string, error) {
	lk := make([]ledgerKey, len(keys))
	for i, k := range keys {
		lk[i] = to(k)
	}
	got, err := t.load(ctx, tbl, lk)
	out := make(map[K]string, len(got))
	for k, v := range got {
		out[back(k)] = v
	}
	return out, err
}

// saveKeyed is save for a public key type.
func saveKeyed[K comparable](ctx context.Context, t *RateTx, tbl *ledgerTable, values, assumed map[K]string, to func(K) ledgerKey) error {
	rows := make([]ledgerWrite, 0, len(values))
	for k, v := range values {
		w := ledgerWrite{key: to(k), value: v}
		if old, ok := assumed[k]; ok {
			w.was = &old
		}
		rows = append(rows, w)
	}
	return t.save(ctx, tbl, rows, len(assumed) > 0)
}

// InsertMURs stores MURs, moves their files' counts and resolves any open
// exception of the same source (a reprocessed record, or a replay that
// now rates). The rows go in with COPY, the cheapest way into the table;
// when a record id was taken since ExistingMURs looked (or when the
// caller did not look), the unique constraint stops the COPY and
// InsertMURs returns ratestage.ErrRecordStored: the transaction is then void
// and Store.Rate runs it again.
func (t *RateTx) InsertMURs(ctx context.Context, ms []murs.MUR) error {
	if len(ms) == 0 {
		return nil
	}
	if err := t.copyMURRows(ctx, ms); err != nil {
		return err
	}
	var splits []filestore.SplitLine
	for i := range ms {
		m := &ms[i]
		if m.Parts > 1 {
			splits = append(splits, filestore.SplitLine{FileID: m.FileID, Line: m.Line, Parts: m.Parts})
		}
		t.deltas.File(m.FileID).MURs++
	}
	if err := filestore.RegisterSplits(ctx, t.tx, splits, t.deltas); err != nil {
		return err
	}
	return t.resolveExceptions(ctx, ms)
}

// copyMURRows writes ms with one COPY. A record id that already has a MUR
// stops it with ratestage.ErrRecordStored.
func (t *RateTx) copyMURRows(ctx context.Context, ms []murs.MUR) error {
	buf := store.NewCopyBuffer()
	defer store.ReleaseCopyBuffer(buf)
	for i := range ms {
		appendMURRow(buf, &ms[i])
	}
	n, err := store.CopyFrom(ctx, t.tx, buf, copyMURs)
	if store.UniqueViolation(err, "murs_client_record") {
		return ratestage.ErrRecordStored
	}
	if err != nil {
		return fmt.Errorf("insert MURs: %w", err)
	}
	if int(n) != len(ms) {
		return fmt.Errorf("insert MURs: %d of %d rows written", n, len(ms))
	}
	return nil
}

// resolveExceptions resolves the open exceptions the new MURs ms replace:
// the one of each MUR's own source (rated; its file counts one exception
// less) and the others of its record id (superseded).
func (t *RateTx) resolveExceptions(ctx context.Context, ms []murs.MUR) error {
	k := len(ms)
	clients, recIDs, fileIDs, lines, parts := make([]string, k), make([]string, k), make([]string, k), make([]int64, k), make([]int32, k)
	for i := range ms {
		m := &ms[i]
		clients[i], recIDs[i], fileIDs[i], lines[i], parts[i] = m.Client, m.RecordID, m.FileID, m.Line, int32(m.Part)
	}
	rows, err := t.tx.Query(ctx, resolveSQL, clients, fileIDs, lines, parts)
	if err != nil {
		return fmt.Errorf("resolve exceptions: %w", err)
	}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return err
		}
		t.deltas.File(f).Exceptions--
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("resolve exceptions: %w", err)
	}
	if _, err := t.tx.Exec(ctx, supersedeSQL, clients, recIDs, fileIDs, lines, parts); err != nil {
		return fmt.Errorf("resolve superseded exceptions: %w", err)
	}
	return nil
}

// resolveSQL resolves the open (or reprocessing) exception of each new
// MUR's source: a reprocessed record, or a replay that now rates. Each
// source is one probe of exceptions_position, the only index that leads
// with the file: the conditions inside the fence (OFFSET 0) are the
// position's alone, so no plan can read a client's exceptions instead,
// whatever the planner knows of the table (autovacuum is not assumed).
// The client and status are checked on the row found.
const resolveSQL = `UPDATE exceptions x SET status = 'resolved', resolution = 'rated', updated_at = now()
	FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::int[]) AS k(client, file_id, line, part)
	CROSS JOIN LATERAL (SELECT e.exception_id, e.client, e.status FROM exceptions e
		WHERE e.file_id = k.file_id AND e.line = k.line AND e.part = k.part OFFSET 0) p
	WHERE x.exception_id = p.exception_id AND p.client = k.client AND p.status IN ('open', 'reprocessing')
	RETURNING x.file_id::text`

// supersedeSQL resolves as superseded the client's other open exceptions
// of each new MUR's record id (an earlier copy that failed), naming the
// source that became the MUR. It runs after resolveSQL, so the MUR's own
// source is no longer open. One probe of the partial index
// exceptions_open_record per MUR, led by the record id for the same
// reason as above. Their files' counts stay: the record did not become a
// MUR from their file.
const supersedeSQL = `UPDATE exceptions x SET status = 'resolved', resolution = 'superseded',
		superseded_file = k.file_id, superseded_line = k.line, superseded_part = k.part,
		reason = 'superseded: record id became a MUR from file ' || k.file_id || ' line ' || k.line || ' part ' || k.part,
		updated_at = now()
	FROM unnest($1::text[], $2::text[], $3::uuid[], $4::bigint[], $5::int[]) AS k(client, record_id, file_id, line, part)
	CROSS JOIN LATERAL (SELECT e.exception_id, e.client, e.file_id, e.line, e.part FROM exceptions e
		WHERE e.record_id = k.record_id AND e.status IN ('open', 'reprocessing') OFFSET 0) p
	WHERE x.exception_id = p.exception_id AND p.client = k.client
		AND (p.file_id, p.line, p.part) <> (k.file_id, k.line, k.part)`

// InsertExceptions stores exceptions within the rating transaction, with
// the same once-per-source rule as Store.InsertExceptions.
func (t *RateTx) InsertExceptions(ctx context.Context, exs []exceptions.Exception) error {
	_, err := insertExceptions(ctx, t.tx, exs, t.deltas)
	return err
}

const copyMURs = `COPY murs (mur_id, client, record_id, file_id, line, part, account_id, usage_type,
	quantity, usage_time, currency, gross_amount, discount_amount, net_amount, rate_detail, qualifiers, attributes)
	FROM STDIN`

// appendMURRow writes m as one line of COPY's text format. Writing the
// format by hand costs a fraction of encoding each value through the
// driver's type system, which dominated the rate stage's own CPU time.
func appendMURRow(buf *bytes.Buffer, m *murs.MUR) {
	if m.MURID == "" {
		m.MURID = store.NewID()
	}
	var num [24]byte
	store.CopyTexts(buf, m.MURID, m.Client, m.RecordID, m.FileID)
	buf.WriteByte('\t')
	buf.Write(strconv.AppendInt(num[:0], m.Line, 10))
	buf.WriteByte('\t')
	buf.Write(strconv.AppendInt(num[:0], int64(m.Part), 10))
	for _, s := range [...]string{m.AccountID, m.UsageType, m.Quantity} {
		buf.WriteByte('\t')
		store.CopyText(buf, s)
	}
	buf.WriteByte('\t')
	buf.Write(m.UsageTime.UTC().AppendFormat(num[:0], time.RFC3339Nano))
	for _, s := range [...]string{m.Currency, m.GrossAmount, m.DiscountAmount, m.NetAmount} {
		buf.WriteByte('\t')
		store.CopyText(buf, s)
	}
	buf.WriteByte('\t')
	store.CopyBytes(buf, m.RateDetail)
	buf.WriteByte('\t')
	store.CopyBytes(buf, jsonMap(m.Qualifiers))
	buf.WriteByte('\t')
	store.CopyBytes(buf, jsonMap(m.Attributes))
	buf.WriteByte('\n')
}

func jsonMap(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte(`{}`)
	}
	b, _ := json.Marshal(m)
	return b
}

var _ ratestage.Store = (*Store)(nil)
