package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"vivace.dev/vivace/internal/feed"
)

// Sources of an event's outcome.
const (
	SourceFeed  = "feed"  // as delivered on the feed topic
	SourceRetry = "retry" // a pending event tried again as entities arrived
)

// errEntityRace means another transaction wrote one of the batch's
// entities, or recorded one of its events, after the batch looked; the
// batch is applied again.
var errEntityRace = errors.New("a catalog entity or feed event was written by another transaction while the batch was applied")

// ApplyEvents applies core feed events in one transaction, in the order
// given, and returns each event's outcome:
//
//   - applied: its version is newer than the stored one (deletes too, as
//     soft deletes) and every entity it names exists;
//   - ignored: a version at least as new is stored, so replays and late
//     arrivals change nothing;
//   - pending: it names an entity the catalog does not hold yet; it is
//     tried again by RetryPending and fails by ExpirePending;
//   - failed: invalid (the caller passes the validation error in
//     failures[i]).
//
// An event id seen before keeps its first outcome, so a redelivered event
// is neither applied twice nor reported differently. The work is
// set-based: one read of the stored versions, one write of the entities
// and one of the events, whatever the batch's size.
func (s *Store) ApplyEvents(ctx context.Context, events []feed.Event, failures []error) ([]feed.Outcome, error) {
	return s.applyEvents(ctx, events, failures, SourceFeed, false)
}

func (s *Store) applyEvents(ctx context.Context, events []feed.Event, failures []error, source string, again bool) ([]feed.Outcome, error) {
	var out []feed.Outcome
	var applied []string
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var e error
			out, applied, e = applyBatch(ctx, tx, events, failures, source, again)
			return e
		})
		if !errors.Is(err, errEntityRace) && !retryable(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("apply feed events: %w", err)
	}
	// An event that went pending while another transaction was applying
	// what it names is missed by that transaction's wake-up below, which
	// ran before this one committed; looking again now that both have
	// committed closes the gap.
	// The caller is told the outcome they end with.
	var pending []string
	for _, o := range out {
		if o.Outcome == feed.Pending {
			pending = append(pending, o.EventID)
		}
	}
	if len(pending) > 0 {
		now, err := s.retryReady(ctx, nil, pending)
		if err != nil {
			return nil, fmt.Errorf("retry events left pending: %w", err)
		}
		for i := range out {
			if o, ok := now[out[i].EventID]; ok && out[i].Outcome == feed.Pending {
				out[i] = o
			}
		}
	}
	// What arrived may be what pending events wait for; they apply now,
	// and what they apply in turn frees the next (usage type, plan,
	// subscription).
	if len(applied) > 0 {
		waiting, err := s.loadEvents(ctx, `SELECT payload FROM catalog_events
			WHERE outcome = 'pending' AND waits_for && $1::text[] ORDER BY received_at, event_id`, applied)
		if err != nil {
			return nil, fmt.Errorf("find events waiting for applied entities: %w", err)
		}
		if len(waiting) > 0 {
			if _, err := s.applyEvents(ctx, waiting, make([]error, len(waiting)), SourceRetry, true); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// waitKey is how waits_for names an entity.
func waitKey(client, entity, id string) string { return client + "\x1f" + entity + "\x1f" + id }

type entityKey struct{ Client, Entity, ID string }

type entityState struct {
	version int64
	live    bool
}

// entityWrite is the last applied event of an entity in a batch.
type entityWrite struct {
	event *feed.Event
	data  json.RawMessage // for a delete: the batch's last applied upsert's data, if any
}

func applyBatch(ctx context.Context, tx pgx.Tx, events []feed.Event, failures []error, source string, again bool) ([]feed.Outcome, []string, error) {
	out := make([]feed.Outcome, len(events))
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].EventID
	}
	// Outcomes on record. Delivered events keep theirs; events applied
	// again (retries, reprocessing) only replace failed or pending ones,
	// locked so that two operators cannot reprocess one event twice.
	q := `SELECT event_id, outcome, coalesce(code, ''), coalesce(message, '') FROM catalog_events WHERE event_id = ANY($1)`
	if again {
		q += ` FOR UPDATE`
	}
	known := map[string]feed.Outcome{}
	rows, err := tx.Query(ctx, q, ids)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var o feed.Outcome
		if err := rows.Scan(&o.EventID, &o.Outcome, &o.Code, &o.Message); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if !again || (o.Outcome != feed.Failed && o.Outcome != feed.Pending) {
			known[o.EventID] = o
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}

	// The stored state of every entity the batch writes or names. Each
	// event's references are decoded from its data once, here.
	keys := map[entityKey]bool{}
	refs := make([][]feed.Ref, len(events))
	for i := range events {
		e := &events[i]
		if failures[i] != nil {
			continue
		}
		keys[entityKey{e.Client, e.Entity, e.EntityID}] = true
		refs[i] = e.References()
		for _, r := range refs[i] {
			keys[entityKey{e.Client, r.Entity, r.ID}] = true
		}
	}
	state, err := loadEntityStates(ctx, tx, keys)
	if err != nil {
		return nil, nil, err
	}

	// Decide each event in order, as if applied one by one.
	writes := map[entityKey]*entityWrite{}
	var order []entityKey
	lastData := map[entityKey]json.RawMessage{}
	first := map[string]int{}
	var record []int // events whose outcome is written
	for i := range events {
		e := &events[i]
		if o, ok := known[e.EventID]; ok {
			out[i] = o
			continue
		}
		if j, ok := first[e.EventID]; ok {
			out[i] = out[j] // the same event twice in one batch
			out[i].EventID = e.EventID
			continue
		}
		first[e.EventID] = i
		record = append(record, i)
		out[i] = decide(e, refs[i], failures[i], state)
		if out[i].Outcome != feed.Applied {
			continue
		}
		k := entityKey{e.Client, e.Entity, e.EntityID}
		state[k] = entityState{version: e.Version, live: e.Op == feed.OpUpsert}
		w := writes[k]
		if w == nil {
			w = &entityWrite{}
			writes[k] = w
			order = append(order, k)
		}
		w.event, w.data = e, e.Data
		if e.Op == feed.OpUpsert {
			lastData[k] = e.Data
		} else {
			w.data = lastData[k]
		}
	}

	applied := make([]string, len(order))
	for i, k := range order {
		applied[i] = waitKey(k.Client, k.Entity, k.ID)
	}
	if err := writeEvents(ctx, tx, events, refs, out, record, source, again); err != nil {
		return nil, nil, err
	}
	// The clients' catalog versions move first and stamp the entity rows
	// written after, so a reader at version v finds what changed since by
	// change_version > v. The version row stays locked until commit, so
	// concurrent batches of one client take versions in commit order.
	versions, err := bumpCatalogVersions(ctx, tx, order)
	if err != nil {
		return nil, nil, err
	}
	if err := writeEntities(ctx, tx, writes, order, versions); err != nil {
		return nil, nil, err
	}
	return out, applied, nil
}

// bumpCatalogVersions advances the change counter of each client in keys,
// announces the change on the vivace_catalog channel (delivered when the
// transaction commits) and returns the new versions.
func bumpCatalogVersions(ctx context.Context, tx pgx.Tx, keys []entityKey) (map[string]int64, error) {
	var changed []string
	for _, k := range keys {
		if !slices.Contains(changed, k.Client) {
			changed = append(changed, k.Client)
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

// decide gives one event's outcome against the state so far.
func decide(e *feed.Event, refs []feed.Ref, invalid error, state map[entityKey]entityState) feed.Outcome {
	o := feed.Outcome{EventID: e.EventID}
	if invalid != nil {
		o.Outcome, o.Code, o.Message = feed.Failed, feed.CodeInvalidEvent, invalid.Error()
		return o
	}
	if st, ok := state[entityKey{e.Client, e.Entity, e.EntityID}]; ok && e.Version <= st.version {
		o.Outcome, o.Message = feed.Ignored, fmt.Sprintf("version %d is not newer than the stored version %d", e.Version, st.version)
		return o
	}
	var missing []string
	for _, r := range refs {
		if !state[entityKey{e.Client, r.Entity, r.ID}].live {
			missing = append(missing, fmt.Sprintf("%s %q", r.Entity, r.ID))
		}
	}
	if len(missing) > 0 {
		o.Outcome, o.Code = feed.Pending, feed.CodeMissingReference
		o.Message = fmt.Sprintf("%s %q names %s, not in the catalog of client %q", e.Entity, e.EntityID,
			strings.Join(missing, " and "), e.Client)
		return o
	}
	o.Outcome = feed.Applied
	return o
}

func loadEntityStates(ctx context.Context, tx pgx.Tx, keys map[entityKey]bool) (map[entityKey]entityState, error) {
	state := make(map[entityKey]entityState, len(keys))
	if len(keys) == 0 {
		return state, nil
	}
	var c, e, id []string
	for k := range keys {
		c, e, id = append(c, k.Client), append(e, k.Entity), append(id, k.ID)
	}
	rows, err := tx.Query(ctx, `SELECT c.client, c.entity, c.entity_id, c.version, NOT c.deleted
		FROM catalog_entities c JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(client, entity, entity_id)
			USING (client, entity, entity_id)`, c, e, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k entityKey
		var st entityState
		if err := rows.Scan(&k.Client, &k.Entity, &k.ID, &st.version, &st.live); err != nil {
			return nil, err
		}
		state[k] = st
	}
	return state, rows.Err()
}

// writeEntities stores each entity's last applied event. The version
// guard makes a concurrent writer's newer version win; the batch then
// runs again.
func writeEntities(ctx context.Context, tx pgx.Tx, writes map[entityKey]*entityWrite, order []entityKey, versions map[string]int64) error {
	if len(order) == 0 {
		return nil
	}
	n := len(order)
	c, ent, id, evID := mk(n), mk(n), mk(n), mk(n)
	ver, change := make([]int64, n), make([]int64, n)
	del := make([]bool, n)
	data := make([][]byte, n)
	at := make([]time.Time, n)
	for i, k := range order {
		w := writes[k]
		c[i], ent[i], id[i], evID[i] = k.Client, k.Entity, k.ID, w.event.EventID
		ver[i], del[i], at[i], change[i] = w.event.Version, w.event.Op == feed.OpDelete, w.event.OccurredAt, versions[k.Client]
		data[i] = w.data
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

// writeEvents records the outcome of each event in record. An outcome on
// record changes only from failed or pending.
func writeEvents(ctx context.Context, tx pgx.Tx, events []feed.Event, refs [][]feed.Ref, out []feed.Outcome, record []int, source string, again bool) error {
	if len(record) == 0 {
		return nil
	}
	if !again {
		return copyNewEvents(ctx, tx, events, refs, out, record, source)
	}
	n := len(record)
	id, c, ent, eid, op, outcome, code, msg, waits := mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
	ver := make([]int64, n)
	at := make([]*time.Time, n)
	payload := make([][]byte, n)
	for j, i := range record {
		e := &events[i]
		id[j], c[j], ent[j], eid[j], op[j], ver[j] = e.EventID, e.Client, e.Entity, e.EntityID, e.Op, e.Version
		if !e.OccurredAt.IsZero() {
			t := e.OccurredAt
			at[j] = &t
		}
		outcome[j], code[j], msg[j] = out[i].Outcome, out[i].Code, out[i].Message
		if out[i].Outcome == feed.Pending {
			var w []string
			for _, r := range refs[i] {
				w = append(w, waitKey(e.Client, r.Entity, r.ID))
			}
			waits[j] = strings.Join(w, "\n")
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		payload[j] = b
	}
	_, err := tx.Exec(ctx, `INSERT INTO catalog_events AS x
			(event_id, client, entity, entity_id, version, op, occurred_at, payload, outcome, code, message, source, applied_at, waits_for)
		SELECT k.event_id, k.client, k.entity, k.entity_id, k.version, k.op, k.occurred_at, k.payload, k.outcome,
			nullif(k.code, ''), nullif(k.message, ''), $12, CASE WHEN k.outcome = 'applied' THEN now() END,
			CASE WHEN k.waits <> '' THEN string_to_array(k.waits, E'\n') END
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[], $8::jsonb[],
			$9::text[], $10::text[], $11::text[], $13::text[]) AS k(event_id, client, entity, entity_id, version, op, occurred_at, payload, outcome, code, message, waits)
		ON CONFLICT (event_id) DO UPDATE SET
			client = excluded.client, entity = excluded.entity, entity_id = excluded.entity_id, version = excluded.version,
			op = excluded.op, occurred_at = excluded.occurred_at, payload = excluded.payload, outcome = excluded.outcome,
			code = excluded.code, message = excluded.message, source = excluded.source, applied_at = excluded.applied_at,
			waits_for = excluded.waits_for, attempts = x.attempts + 1, updated_at = now()
		WHERE x.outcome IN ('failed', 'pending')`,
		id, c, ent, eid, ver, op, at, payload, outcome, code, msg, source, waits)
	return err
}

const copyFeedEvents = `COPY catalog_events (event_id, client, entity, entity_id, version, op, occurred_at, payload,
	outcome, code, message, source, applied_at, waits_for, received_at) FROM STDIN`

// copyNewEvents writes the outcomes of delivered events, none of which is
// on record (applyBatch looked), with COPY: it costs PostgreSQL about half
// of an INSERT from array parameters. An id recorded meanwhile by another
// transaction voids the batch, which is then applied again and finds it.
func copyNewEvents(ctx context.Context, tx pgx.Tx, events []feed.Event, refs [][]feed.Ref, out []feed.Outcome, record []int, source string) error {
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return err
	}
	var ts [40]byte
	stamp := now.UTC().AppendFormat(ts[:0], time.RFC3339Nano)
	buf := copyBufs.Get().(*bytes.Buffer)
	defer copyBufs.Put(buf)
	buf.Reset()
	var num [24]byte
	for _, i := range record {
		e, o := &events[i], &out[i]
		copyTexts(buf, e.EventID, e.Client, e.Entity, e.EntityID)
		buf.WriteByte('\t')
		buf.Write(strconv.AppendInt(num[:0], e.Version, 10))
		buf.WriteByte('\t')
		copyText(buf, e.Op)
		buf.WriteByte('\t')
		if e.OccurredAt.IsZero() {
			buf.WriteString(`\N`)
		} else {
			buf.Write(e.OccurredAt.UTC().AppendFormat(num[:0], time.RFC3339Nano))
		}
		buf.WriteByte('\t')
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		copyBytes(buf, b)
		buf.WriteByte('\t')
		copyText(buf, o.Outcome)
		for _, v := range [...]string{o.Code, o.Message} {
			buf.WriteByte('\t')
			if v == "" {
				buf.WriteString(`\N`)
			} else {
				copyText(buf, v)
			}
		}
		buf.WriteByte('\t')
		copyText(buf, source)
		buf.WriteByte('\t')
		if o.Outcome == feed.Applied {
			buf.Write(stamp)
		} else {
			buf.WriteString(`\N`)
		}
		buf.WriteByte('\t')
		if o.Outcome == feed.Pending && len(refs[i]) > 0 {
			var arr bytes.Buffer
			arr.WriteByte('{')
			for j, r := range refs[i] {
				if j > 0 {
					arr.WriteByte(',')
				}
				arr.WriteByte('"')
				for _, c := range []byte(waitKey(e.Client, r.Entity, r.ID)) {
					if c == '"' || c == '\\' {
						arr.WriteByte('\\')
					}
					arr.WriteByte(c)
				}
				arr.WriteByte('"')
			}
			arr.WriteByte('}')
			copyBytes(buf, arr.Bytes())
		} else {
			buf.WriteString(`\N`)
		}
		buf.WriteByte('\t')
		buf.Write(stamp)
		buf.WriteByte('\n')
	}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, buf, copyFeedEvents)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return errEntityRace
	}
	if err != nil {
		return fmt.Errorf("record feed events: %w", err)
	}
	if int(tag.RowsAffected()) != len(record) {
		return fmt.Errorf("record feed events: %d of %d rows written", tag.RowsAffected(), len(record))
	}
	return nil
}

// RetryPending applies again the pending events of the given clients (all
// clients when none are named) whose entities have all arrived. Applying
// events already frees the events waiting for them, and a batch that left
// events pending looks once more after it commits; this catches whatever
// still slips through. It returns how many were applied.
func (s *Store) RetryPending(ctx context.Context, clients ...string) (int, error) {
	out, err := s.retryReady(ctx, clients, nil)
	n := 0
	for _, o := range out {
		if o.Outcome == feed.Applied {
			n++
		}
	}
	return n, err
}

// retryReady applies the pending events, of the given clients and with the
// given ids (all when nil), whose entities have all arrived, and returns
// their outcomes by event id.
func (s *Store) retryReady(ctx context.Context, clients, ids []string) (map[string]feed.Outcome, error) {
	// Two statements rather than one with optional filters, so that the
	// planner finds given ids by the primary key instead of checking every
	// pending event.
	ready := `AND NOT EXISTS (SELECT 1 FROM unnest(e.waits_for) AS w(k) WHERE NOT EXISTS (
				SELECT 1 FROM catalog_entities c
				WHERE c.client = split_part(w.k, E'\x1f', 1) AND c.entity = split_part(w.k, E'\x1f', 2)
					AND c.entity_id = split_part(w.k, E'\x1f', 3) AND NOT c.deleted))
		ORDER BY e.received_at, e.event_id LIMIT 10000`
	var events []feed.Event
	var err error
	if ids != nil {
		events, err = s.loadEvents(ctx, `SELECT e.payload FROM catalog_events e
			WHERE e.event_id = ANY($1) AND e.outcome = 'pending' `+ready, ids)
	} else {
		events, err = s.loadEvents(ctx, `SELECT e.payload FROM catalog_events e
			WHERE e.outcome = 'pending' AND (coalesce(cardinality($1::text[]), 0) = 0 OR e.client = ANY($1)) `+ready, clients)
	}
	if err != nil || len(events) == 0 {
		return nil, err
	}
	out, err := s.applyEvents(ctx, events, make([]error, len(events)), SourceRetry, true)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]feed.Outcome, len(out))
	for _, o := range out {
		byID[o.EventID] = o
	}
	return byID, nil
}

// ExpirePending fails the events that have been pending longer than wait
// (code MISSING_REFERENCE, with what they waited for), and returns how
// many.
func (s *Store) ExpirePending(ctx context.Context, wait time.Duration) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE catalog_events
		SET outcome = 'failed', updated_at = now(),
			message = coalesce(message, '') || '; gave up after waiting ' || $1::text
		WHERE outcome = 'pending' AND received_at < now() - $2::interval`, wait.String(), fmt.Sprintf("%d milliseconds", wait.Milliseconds()))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) loadEvents(ctx context.Context, query string, args ...any) ([]feed.Event, error) {
	rows, err := s.pool.Query(ctx, query, args...)
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

// FeedEvent is an event on record with its outcome.
type FeedEvent struct {
	EventID         string          `json:"event_id"`
	Client          string          `json:"client"`
	Entity          string          `json:"entity"`
	EntityID        string          `json:"entity_id"`
	Version         int64           `json:"version"`
	Op              string          `json:"op"`
	OccurredAt      *time.Time      `json:"occurred_at"`
	Outcome         string          `json:"outcome"`
	Code            string          `json:"code,omitempty"`
	Message         string          `json:"message,omitempty"`
	Source          string          `json:"source"`
	Attempts        int             `json:"attempts"`
	ReceivedAt      time.Time       `json:"received_at"`
	AppliedAt       *time.Time      `json:"applied_at,omitempty"`
	UpdatedAt       time.Time       `json:"updated_at"`
	Payload         json.RawMessage `json:"payload"`
	OriginalPayload json.RawMessage `json:"original_payload,omitempty"`
}

// FeedEventFilter selects events on record. Empty fields match all.
type FeedEventFilter struct {
	Client   string
	Outcome  string // applied, ignored, failed, pending
	Code     string
	Entity   string
	EntityID string
	Limit    int // default 1000
}

const feedEventColumns = `event_id, client, entity, entity_id, version, op, occurred_at, outcome, coalesce(code, ''),
	coalesce(message, ''), source, attempts, received_at, applied_at, updated_at, payload, original_payload`

func scanFeedEvents(rows pgx.Rows) ([]FeedEvent, error) {
	defer rows.Close()
	var out []FeedEvent
	for rows.Next() {
		var e FeedEvent
		if err := rows.Scan(&e.EventID, &e.Client, &e.Entity, &e.EntityID, &e.Version, &e.Op, &e.OccurredAt, &e.Outcome,
			&e.Code, &e.Message, &e.Source, &e.Attempts, &e.ReceivedAt, &e.AppliedAt, &e.UpdatedAt, &e.Payload, &e.OriginalPayload); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListFeedEvents returns events on record, oldest first.
func (s *Store) ListFeedEvents(ctx context.Context, f FeedEventFilter) ([]FeedEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+feedEventColumns+` FROM catalog_events
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR outcome = $2) AND ($3 = '' OR code = $3)
			AND ($4 = '' OR entity = $4) AND ($5 = '' OR entity_id = $5)
		ORDER BY received_at, event_id LIMIT $6`, f.Client, f.Outcome, f.Code, f.Entity, f.EntityID, f.Limit)
	if err != nil {
		return nil, err
	}
	return scanFeedEvents(rows)
}

// ReprocessEvents applies failed or pending events again as they are on
// record (after an edit, as edited), checking each with validate, and
// returns their outcomes; by names who asked (recorded as the source
// "operator:<by>"). An event that is not failed or pending keeps its
// outcome; an unknown id is an error naming it.
func (s *Store) ReprocessEvents(ctx context.Context, ids []string, by string, validate feed.DataValidator) ([]feed.Outcome, error) {
	events, err := s.loadEvents(ctx, `SELECT payload FROM catalog_events WHERE event_id = ANY($1) ORDER BY received_at, event_id`, ids)
	if err != nil {
		return nil, err
	}
	if len(events) != len(ids) {
		found := map[string]bool{}
		for _, e := range events {
			found[e.EventID] = true
		}
		for _, id := range ids {
			if !found[id] {
				return nil, fmt.Errorf("feed event %q: %w", id, ErrNotFound)
			}
		}
	}
	failures := make([]error, len(events))
	for i := range events {
		failures[i] = events[i].Validate(validate)
	}
	return s.applyEvents(ctx, events, failures, "operator:"+by, true)
}

// EditEvent replaces a failed or pending event's content with edited (a
// whole event; its event_id must be the same or empty), keeps the content
// first received, and reprocesses it.
func (s *Store) EditEvent(ctx context.Context, id string, edited []byte, by string, validate feed.DataValidator) (feed.Outcome, error) {
	e, err := feed.Parse(edited)
	if err != nil {
		return feed.Outcome{}, err
	}
	if e.EventID == "" {
		e.EventID = id
	}
	if e.EventID != id {
		return feed.Outcome{}, fmt.Errorf("event_id: the edited event says %q; it must stay %q", e.EventID, id)
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return feed.Outcome{}, err
	}
	var outcome string
	err = s.pool.QueryRow(ctx, `UPDATE catalog_events SET original_payload = coalesce(original_payload, payload),
			payload = $2, updated_at = now()
		WHERE event_id = $1 AND outcome IN ('failed', 'pending')
		RETURNING outcome`, id, payload).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		var current string
		if err := s.pool.QueryRow(ctx, `SELECT outcome FROM catalog_events WHERE event_id = $1`, id).Scan(&current); err != nil {
			return feed.Outcome{}, fmt.Errorf("feed event %q: %w", id, ErrNotFound)
		}
		return feed.Outcome{}, fmt.Errorf("feed event %q was %s: only failed or pending events can be edited", id, current)
	}
	if err != nil {
		return feed.Outcome{}, err
	}
	out, err := s.ReprocessEvents(ctx, []string{id}, by, validate)
	if err != nil {
		return feed.Outcome{}, err
	}
	return out[0], nil
}

// EntityHistory returns the applied events of one entity in version
// order: what it looked like after each change, when and by whom.
func (s *Store) EntityHistory(ctx context.Context, client, entity, id string) ([]FeedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+feedEventColumns+` FROM catalog_events
		WHERE client = $1 AND entity = $2 AND entity_id = $3 AND outcome = 'applied'
		ORDER BY version`, client, entity, id)
	if err != nil {
		return nil, err
	}
	return scanFeedEvents(rows)
}
