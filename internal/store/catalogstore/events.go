// Package catalogstore is the catalog in PostgreSQL: the feed events on
// record and their outcomes (it is the feed.Store the feed.Applier runs
// its decisions through), the catalog entities and their clients' change
// counters with the notification of each change, and what the reader of
// the core system's native Data Feed keeps between events.
package catalogstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/store"
)

// Store is the catalog over a database. It implements feed.Store.
type Store struct{ db *store.Store }

// New returns the catalog of db.
func New(db *store.Store) *Store { return &Store{db: db} }

// errEntityRace means another transaction wrote one of the batch's
// entities, or recorded one of its events, after the batch looked; the
// batch is applied again.
var errEntityRace = errors.New("a catalog entity or feed event was written by another transaction while the batch was applied")

// Update runs fn in one transaction, again from the start when another
// transaction wrote the same entities or events meanwhile (or on a
// serialisation failure or deadlock).
func (s *Store) Update(ctx context.Context, fn func(feed.Tx) error) error {
	return s.db.RetryTx(ctx, func(err error) bool { return errors.Is(err, errEntityRace) }, func(tx pgx.Tx) error {
		return fn(eventsTx{tx})
	})
}

// eventsTx is one transaction applying a batch of events.
type eventsTx struct{ tx pgx.Tx }

// Outcomes returns the outcomes on record of ids, locked with lock.
func (t eventsTx) Outcomes(ctx context.Context, ids []string, lock bool) (map[string]feed.Outcome, error) {
	q := `SELECT ` + outcomeColumns + ` FROM catalog_events WHERE event_id = ANY($1)`
	if lock {
		q += ` FOR UPDATE`
	}
	rows, err := t.tx.Query(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	return scanOutcomes(rows, len(ids))
}

// outcomeColumns are the columns scanOutcomes reads.
const outcomeColumns = `event_id, outcome, coalesce(code, ''), coalesce(message, ''), warnings`

// scanOutcomes reads outcomeColumns rows by event id.
func scanOutcomes(rows pgx.Rows, n int) (map[string]feed.Outcome, error) {
	defer rows.Close()
	out := make(map[string]feed.Outcome, n)
	for rows.Next() {
		var o feed.Outcome
		if err := rows.Scan(&o.EventID, &o.Outcome, &o.Code, &o.Message, &o.Warnings); err != nil {
			return nil, err
		}
		out[o.EventID] = o
	}
	return out, rows.Err()
}

// Failed returns, for those of keys whose latest event on record (ignored
// ones aside) failed, that event's outcome.
func (t eventsTx) Failed(ctx context.Context, keys []feed.EntityKey) (map[feed.EntityKey]feed.Outcome, error) {
	out := map[feed.EntityKey]feed.Outcome{}
	if len(keys) == 0 {
		return out, nil
	}
	c, e, id := splitKeys(keys)
	rows, err := t.tx.Query(ctx, `SELECT DISTINCT ON (x.client, x.entity, x.entity_id) x.client, x.entity, x.entity_id,
			x.event_id, x.outcome, coalesce(x.code, ''), coalesce(x.message, '')
		FROM catalog_events x JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(client, entity, entity_id)
			USING (client, entity, entity_id)
		WHERE x.outcome <> 'ignored'
		ORDER BY x.client, x.entity, x.entity_id, x.received_at DESC, x.event_id DESC`, c, e, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k feed.EntityKey
		var o feed.Outcome
		if err := rows.Scan(&k.Client, &k.Entity, &k.ID, &o.EventID, &o.Outcome, &o.Code, &o.Message); err != nil {
			return nil, err
		}
		if o.Outcome == feed.Failed {
			out[k] = o
		}
	}
	return out, rows.Err()
}

// States returns the stored version and liveness of keys.
func (t eventsTx) States(ctx context.Context, keys []feed.EntityKey) (map[feed.EntityKey]feed.EntityState, error) {
	state := make(map[feed.EntityKey]feed.EntityState, len(keys))
	if len(keys) == 0 {
		return state, nil
	}
	c, e, id := splitKeys(keys)
	rows, err := t.tx.Query(ctx, `SELECT c.client, c.entity, c.entity_id, c.version, NOT c.deleted
		FROM catalog_entities c JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(client, entity, entity_id)
			USING (client, entity, entity_id)`, c, e, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k feed.EntityKey
		var st feed.EntityState
		if err := rows.Scan(&k.Client, &k.Entity, &k.ID, &st.Version, &st.Live); err != nil {
			return nil, err
		}
		state[k] = st
	}
	return state, rows.Err()
}

// Write records the decision's outcomes, then moves the clients' catalog
// versions and writes the entities. The versions move first and stamp
// the entity rows written after, so a reader at version v finds what
// changed since by change_version > v. The version row stays locked until
// commit, so concurrent batches of one client take versions in commit
// order.
func (t eventsTx) Write(ctx context.Context, b *feed.Batch, d *feed.Decision) error {
	if err := t.writeEvents(ctx, b, d); err != nil {
		return err
	}
	versions, err := bumpCatalogVersions(ctx, t.tx, d.Writes)
	if err != nil {
		return err
	}
	return writeEntities(ctx, t.tx, d.Writes, versions)
}

// splitKeys returns the clients, entities and ids of keys, for unnest.
func splitKeys(keys []feed.EntityKey) (c, e, id []string) {
	c, e, id = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		c[i], e[i], id[i] = k.Client, k.Entity, k.ID
	}
	return c, e, id
}

// waitKey is how waits_for names an entity.
func waitKey(k feed.EntityKey) string { return k.Client + "\x1f" + k.Entity + "\x1f" + k.ID }

func waitKeys(keys []feed.EntityKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = waitKey(k)
	}
	return out
}

// bumpCatalogVersions advances the change counter of each client written,
// announces the change on the vivace_catalog channel (delivered when the
// transaction commits) and returns the new versions.
func bumpCatalogVersions(ctx context.Context, tx pgx.Tx, writes []feed.Write) (map[string]int64, error) {
	var changed []string
	for _, w := range writes {
		if !slices.Contains(changed, w.Key.Client) {
			changed = append(changed, w.Key.Client)
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	slices.Sort(changed) // one lock order for every transaction
	rows, err := tx.Query(ctx, `INSERT INTO catalog_versions (client, version) SELECT c, 1 FROM unnest($1::text[]) AS c
		ON CONFLICT (client) DO UPDATE SET version = catalog_versions.version + 1 RETURNING client, version`, changed)
	if err != nil {
		return nil, err
	}
	versions := make(map[string]int64, len(changed))
	for rows.Next() {
		var c string
		var v int64
		if err := rows.Scan(&c, &v); err != nil {
			rows.Close()
			return nil, err
		}
		versions[c] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, CatalogChannel, strings.Join(changed, ",")); err != nil {
		return nil, err
	}
	return versions, nil
}

// writeEntities stores each entity's last applied event. The version
// guard makes a concurrent writer's newer version win; the batch then
// runs again.
func writeEntities(ctx context.Context, tx pgx.Tx, writes []feed.Write, versions map[string]int64) error {
	if len(writes) == 0 {
		return nil
	}
	n := len(writes)
	c, ent, id, evID := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ver, change := make([]int64, n), make([]int64, n)
	del := make([]bool, n)
	data := make([][]byte, n)
	at := make([]time.Time, n)
	for i, w := range writes {
		c[i], ent[i], id[i], evID[i] = w.Key.Client, w.Key.Entity, w.Key.ID, w.Event.EventID
		ver[i], del[i], at[i], change[i] = w.Event.Version, w.Event.Op == feed.OpDelete, w.Event.OccurredAt, versions[w.Key.Client]
		data[i] = w.Data
		if data[i] == nil {
			data[i] = []byte(`{}`) // a delete keeps the stored data
		}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO catalog_entities AS c
			(client, entity, entity_id, version, deleted, data, event_id, occurred_at, change_version)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::jsonb[], $7::text[], $8::timestamptz[], $9::bigint[])
		ON CONFLICT (client, entity, entity_id) DO UPDATE SET
			version = excluded.version, deleted = excluded.deleted,
			data = CASE WHEN excluded.deleted AND excluded.data = '{}'::jsonb THEN c.data ELSE excluded.data END,
			event_id = excluded.event_id, occurred_at = excluded.occurred_at, updated_at = now(),
			change_version = excluded.change_version
		WHERE c.version < excluded.version`, c, ent, id, ver, del, data, evID, at, change)
	if err != nil {
		return err
	}
	if int(tag.RowsAffected()) != n {
		return errEntityRace
	}
	return nil
}

// writeEvents records the outcome of each event the decision records. An
// outcome on record changes only from failed or pending.
func (t eventsTx) writeEvents(ctx context.Context, b *feed.Batch, d *feed.Decision) error {
	if len(d.Record) == 0 {
		return nil
	}
	if !b.Again {
		return copyNewEvents(ctx, t.tx, b, d)
	}
	n := len(d.Record)
	id, c, ent, eid, op, outcome, code, msg, waits := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ver := make([]int64, n)
	at := make([]*time.Time, n)
	payload, warnings := make([][]byte, n), make([][]byte, n)
	for j, i := range d.Record {
		e, o := &b.Events[i], &d.Outcomes[i]
		id[j], c[j], ent[j], eid[j], op[j], ver[j] = e.EventID, e.Client, e.Entity, e.EntityID, e.Op, e.Version
		if !e.OccurredAt.IsZero() {
			t := e.OccurredAt
			at[j] = &t
		}
		outcome[j], code[j], msg[j] = string(o.Outcome), string(o.Code), o.Message
		waits[j] = strings.Join(waitKeys(d.Waits[i]), "\n")
		p, err := json.Marshal(e)
		if err != nil {
			return err
		}
		payload[j] = p
		if warnings[j], err = warningsJSON(o.Warnings); err != nil {
			return err
		}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO catalog_events AS x
			(event_id, client, entity, entity_id, version, op, occurred_at, payload, outcome, code, message, source, applied_at, waits_for, warnings)
		SELECT k.event_id, k.client, k.entity, k.entity_id, k.version, k.op, k.occurred_at, k.payload, k.outcome,
			nullif(k.code, ''), nullif(k.message, ''), $12, CASE WHEN k.outcome = 'applied' THEN now() END,
			CASE WHEN k.waits <> '' THEN string_to_array(k.waits, E'\n') END, k.warnings
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[], $8::jsonb[],
			$9::text[], $10::text[], $11::text[], $13::text[], $14::jsonb[])
			AS k(event_id, client, entity, entity_id, version, op, occurred_at, payload, outcome, code, message, waits, warnings)
		ON CONFLICT (event_id) DO UPDATE SET
			client = excluded.client, entity = excluded.entity, entity_id = excluded.entity_id, version = excluded.version,
			op = excluded.op, occurred_at = excluded.occurred_at, payload = excluded.payload, outcome = excluded.outcome,
			code = excluded.code, message = excluded.message, source = excluded.source, applied_at = excluded.applied_at,
			waits_for = excluded.waits_for, warnings = excluded.warnings, attempts = x.attempts + 1, updated_at = now()
		WHERE x.outcome IN ('failed', 'pending')`,
		id, c, ent, eid, ver, op, at, payload, outcome, code, msg, string(b.Source), waits, warnings)
	return err
}

const copyFeedEvents = `COPY catalog_events (event_id, client, entity, entity_id, version, op, occurred_at, payload,
	outcome, code, message, source, applied_at, waits_for, received_at, warnings) FROM STDIN`

// copyNewEvents writes the outcomes of delivered events, none of which is
// on record (the batch looked), with COPY: it costs PostgreSQL about half
// of an INSERT from array parameters. An id recorded meanwhile by another
// transaction voids the batch, which is then applied again and finds it.
func copyNewEvents(ctx context.Context, tx pgx.Tx, b *feed.Batch, d *feed.Decision) error {
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return err
	}
	var ts [40]byte
	stamp := now.UTC().AppendFormat(ts[:0], time.RFC3339Nano)
	buf := store.NewCopyBuffer()
	defer store.ReleaseCopyBuffer(buf)
	var num [24]byte
	for _, i := range d.Record {
		e, o := &b.Events[i], &d.Outcomes[i]
		store.CopyTexts(buf, e.EventID, e.Client, e.Entity, e.EntityID)
		buf.WriteByte('\t')
		buf.Write(strconv.AppendInt(num[:0], e.Version, 10))
		buf.WriteByte('\t')
		store.CopyText(buf, e.Op)
		buf.WriteByte('\t')
		if e.OccurredAt.IsZero() {
			store.CopyNull(buf)
		} else {
			buf.Write(e.OccurredAt.UTC().AppendFormat(num[:0], time.RFC3339Nano))
		}
		buf.WriteByte('\t')
		p, err := json.Marshal(e)
		if err != nil {
			return err
		}
		store.CopyBytes(buf, p)
		buf.WriteByte('\t')
		store.CopyText(buf, string(o.Outcome))
		for _, v := range [...]string{string(o.Code), o.Message} {
			buf.WriteByte('\t')
			if v == "" {
				store.CopyNull(buf)
			} else {
				store.CopyText(buf, v)
			}
		}
		buf.WriteByte('\t')
		store.CopyText(buf, string(b.Source))
		buf.WriteByte('\t')
		if o.Outcome == feed.Applied {
			buf.Write(stamp)
		} else {
			store.CopyNull(buf)
		}
		buf.WriteByte('\t')
		if len(d.Waits[i]) > 0 {
			store.CopyTextArray(buf, waitKeys(d.Waits[i]))
		} else {
			store.CopyNull(buf)
		}
		buf.WriteByte('\t')
		buf.Write(stamp)
		buf.WriteByte('\t')
		if w, err := warningsJSON(o.Warnings); err != nil {
			return err
		} else if w == nil {
			store.CopyNull(buf)
		} else {
			store.CopyBytes(buf, w)
		}
		buf.WriteByte('\n')
	}
	n, err := store.CopyFrom(ctx, tx, buf, copyFeedEvents)
	if store.UniqueViolation(err, "") {
		return errEntityRace
	}
	if err != nil {
		return fmt.Errorf("record feed events: %w", err)
	}
	if int(n) != len(d.Record) {
		return fmt.Errorf("record feed events: %d of %d rows written", n, len(d.Record))
	}
	return nil
}

// warningsJSON is how the warnings column holds an outcome's warnings:
// a JSON array, NULL for none.
func warningsJSON(w []string) ([]byte, error) {
	if len(w) == 0 {
		return nil, nil
	}
	return json.Marshal(w)
}

// waiting selects the events that wait for entities: pending ones and
// those failed because an entity they name failed (the waits_for index
// covers both).
const waiting = `(outcome = 'pending' OR outcome = 'failed' AND code = 'REFERENCE_FAILED')`

// Waiting returns the events that wait for any of keys: pending ones, and
// with failedToo those failed with REFERENCE_FAILED.
func (s *Store) Waiting(ctx context.Context, keys []feed.EntityKey, failedToo bool) ([]feed.Event, error) {
	which := `outcome = 'pending'`
	if failedToo {
		which = waiting
	}
	return s.loadEvents(ctx, `SELECT payload FROM catalog_events
		WHERE `+which+` AND waits_for && $1::text[] ORDER BY received_at, event_id`, waitKeys(keys))
}

// Ready returns waiting events whose entities have all arrived: with the
// given ids, or when ids is nil, of the given clients (all when none).
func (s *Store) Ready(ctx context.Context, clients, ids []string) ([]feed.Event, error) {
	// Two statements rather than one with optional filters, so that the
	// planner finds given ids by the primary key instead of checking every
	// pending event.
	ready := `AND NOT EXISTS (SELECT 1 FROM unnest(e.waits_for) AS w(k) WHERE NOT EXISTS (
				SELECT 1 FROM catalog_entities c
				WHERE c.client = split_part(w.k, E'\x1f', 1) AND c.entity = split_part(w.k, E'\x1f', 2)
					AND c.entity_id = split_part(w.k, E'\x1f', 3) AND NOT c.deleted))
		ORDER BY e.received_at, e.event_id LIMIT 10000`
	if ids != nil {
		return s.loadEvents(ctx, `SELECT e.payload FROM catalog_events e
			WHERE e.event_id = ANY($1) AND `+waiting+` `+ready, ids)
	}
	return s.loadEvents(ctx, `SELECT e.payload FROM catalog_events e
		WHERE `+waiting+` AND (coalesce(cardinality($1::text[]), 0) = 0 OR e.client = ANY($1)) `+ready, clients)
}

// Events returns the events on record with the given ids, oldest first.
func (s *Store) Events(ctx context.Context, ids []string) ([]feed.Event, error) {
	return s.loadEvents(ctx, `SELECT payload FROM catalog_events WHERE event_id = ANY($1) ORDER BY received_at, event_id`, ids)
}

// Replace puts e in place of a failed or pending event, keeping the
// content first received.
func (s *Store) Replace(ctx context.Context, id string, e feed.Event) (bool, feed.Result, error) {
	payload, err := json.Marshal(e)
	if err != nil {
		return false, "", err
	}
	var outcome feed.Result
	err = s.db.Pool().QueryRow(ctx, `UPDATE catalog_events SET original_payload = coalesce(original_payload, payload),
			payload = $2, updated_at = now()
		WHERE event_id = $1 AND outcome IN ('failed', 'pending')
		RETURNING outcome`, id, payload).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := s.db.Pool().QueryRow(ctx, `SELECT outcome FROM catalog_events WHERE event_id = $1`, id).Scan(&outcome); err != nil {
			return false, "", fmt.Errorf("feed event %q: %w", id, feed.ErrNotFound)
		}
		return false, outcome, nil
	}
	if err != nil {
		return false, "", err
	}
	return true, outcome, nil
}

// ExpirePending fails the events that have been pending longer than wait
// (code MISSING_REFERENCE, with what they waited for), and returns the
// entities of the events it failed.
func (s *Store) ExpirePending(ctx context.Context, wait time.Duration) ([]feed.EntityKey, error) {
	rows, err := s.db.Pool().Query(ctx, `UPDATE catalog_events
		SET outcome = 'failed', updated_at = now(),
			message = coalesce(message, '') || '; gave up after waiting ' || $1::text
		WHERE outcome = 'pending' AND received_at < now() - $2::interval
		RETURNING client, entity, entity_id`, wait.String(), fmt.Sprintf("%d milliseconds", wait.Milliseconds()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []feed.EntityKey
	for rows.Next() {
		var k feed.EntityKey
		if err := rows.Scan(&k.Client, &k.Entity, &k.ID); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

func (s *Store) loadEvents(ctx context.Context, query string, args ...any) ([]feed.Event, error) {
	rows, err := s.db.Pool().Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []feed.Event
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var e feed.Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("stored event: %w", err)
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

const feedEventColumns = `event_id, client, entity, entity_id, version, op, occurred_at, outcome, coalesce(code, ''),
	coalesce(message, ''), source, attempts, received_at, applied_at, updated_at, payload, original_payload, warnings`

func scanFeedEvents(rows pgx.Rows) ([]feed.EventRecord, error) {
	defer rows.Close()
	var out []feed.EventRecord
	for rows.Next() {
		var e feed.EventRecord
		if err := rows.Scan(&e.EventID, &e.Client, &e.Entity, &e.EntityID, &e.Version, &e.Op, &e.OccurredAt, &e.Outcome,
			&e.Code, &e.Message, &e.Source, &e.Attempts, &e.ReceivedAt, &e.AppliedAt, &e.UpdatedAt, &e.Payload, &e.OriginalPayload,
			&e.Warnings); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListFeedEvents returns events on record, oldest first.
func (s *Store) ListFeedEvents(ctx context.Context, f feed.EventFilter) ([]feed.EventRecord, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT `+feedEventColumns+` FROM catalog_events
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR outcome = $2) AND ($3 = '' OR code = $3)
			AND ($4 = '' OR entity = $4) AND ($5 = '' OR entity_id = $5) AND (NOT $7 OR warnings IS NOT NULL)
			AND (coalesce(cardinality($8::text[]), 0) = 0 OR client = ANY($8))
			AND (coalesce(cardinality($9::text[]), 0) = 0 OR event_id = ANY($9))
		ORDER BY received_at, event_id LIMIT $6`, f.Client, string(f.Outcome), string(f.Code), f.Entity, f.EntityID, f.Limit,
		f.Warned, f.Clients, f.EventIDs)
	if err != nil {
		return nil, err
	}
	return scanFeedEvents(rows)
}

// CountOpenFeedEvents counts the failed and the pending events on record,
// of the given clients (every client when empty). Both are read from the
// index of those two outcomes alone, so the count costs what needs a
// person, not the whole history of the feed.
func (s *Store) CountOpenFeedEvents(ctx context.Context, clients []string) (failed, pending int, err error) {
	err = s.db.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE outcome = 'failed'), count(*) FILTER (WHERE outcome = 'pending')
		FROM catalog_events
		WHERE outcome IN ('failed', 'pending') AND (coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1))`,
		clients).Scan(&failed, &pending)
	return failed, pending, err
}

// EntityHistory returns the applied events of one entity in version
// order: what it looked like after each change, when and by whom.
func (s *Store) EntityHistory(ctx context.Context, client, entity, id string) ([]feed.EventRecord, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT `+feedEventColumns+` FROM catalog_events
		WHERE client = $1 AND entity = $2 AND entity_id = $3 AND outcome = 'applied'
		ORDER BY version`, client, entity, id)
	if err != nil {
		return nil, err
	}
	return scanFeedEvents(rows)
}

// EventOutcomes returns the recorded outcome of each event id (missing
// ids are absent from the map).
func (s *Store) EventOutcomes(ctx context.Context, ids []string) (map[string]feed.Outcome, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT `+outcomeColumns+` FROM catalog_events WHERE event_id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	return scanOutcomes(rows, len(ids))
}

// EventClients returns the client of each event id on record (missing
// ids are absent from the map).
func (s *Store) EventClients(ctx context.Context, ids []string) (map[string]string, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT event_id, client FROM catalog_events WHERE event_id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]string, len(ids))
	for rows.Next() {
		var id, client string
		if err := rows.Scan(&id, &client); err != nil {
			return nil, err
		}
		out[id] = client
	}
	return out, rows.Err()
}

var _ feed.Store = (*Store)(nil)
