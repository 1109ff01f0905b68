package usagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
)

// InsertExceptions stores exceptions and moves their files' counts in one
// transaction. A source position (client, file, line, part) is stored
// once: replays of the same record change nothing, and a record that fails
// again after a reprocess updates its existing row. It returns how many
// new exceptions were counted.
func (s *Store) InsertExceptions(ctx context.Context, exs []exceptions.Exception) (int, error) {
	if len(exs) == 0 {
		return 0, nil
	}
	var n int
	var done []files.Finished
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		deltas := filestore.Deltas{}
		var err error
		n, err = insertExceptions(ctx, tx, exs, deltas)
		if err != nil {
			return err
		}
		done, err = filestore.ApplyDeltas(ctx, tx, deltas)
		return err
	})
	if err == nil {
		files.Observe(ctx, done)
	}
	return n, err
}

// maxRawRecord is how much of an unreadable record its exception's
// record column shows; the raw column keeps all of it.
const maxRawRecord = 4096

// storableRecord returns what an exception's record and raw columns
// hold. A record that is not JSON, or that jsonb refuses (a NUL in a
// string), is shown as {"raw": its text, made valid and clipped} and kept
// byte for byte in raw, rather than failing the batch it came in.
func storableRecord(record json.RawMessage, raw []byte) (json.RawMessage, []byte) {
	rec := []byte(record)
	if len(rec) > 0 && json.Valid(rec) && !bytes.Contains(rec, []byte(`\u0000`)) {
		return rec, raw
	}
	if raw == nil && len(rec) > 0 {
		raw = rec
	}
	text := rec
	if len(text) > maxRawRecord {
		text = text[:maxRawRecord]
	}
	shown := strings.ReplaceAll(strings.ToValidUTF8(string(text), "\uFFFD"), "\x00", "\uFFFD")
	rec, _ = json.Marshal(map[string]string{"raw": shown})
	return rec, raw
}

func insertExceptions(ctx context.Context, tx pgx.Tx, exs []exceptions.Exception, deltas filestore.Deltas) (int, error) {
	// One row per source position: a batch can hold the same record twice
	// (a stage replayed after a crash writes its exceptions again), and
	// one INSERT ... ON CONFLICT DO UPDATE may not touch a row twice. The
	// last copy stands.
	type position struct {
		client, file string
		line         int64
		part         int
	}
	last := make(map[position]int, len(exs))
	for i, e := range exs {
		last[position{e.Client, e.FileID, e.Line, e.Part}] = i
	}
	var filtered []exceptions.Exception
	kept := exs[:0:0]
	var splits []filestore.SplitLine
	for i, e := range exs {
		if last[position{e.Client, e.FileID, e.Line, e.Part}] != i {
			continue
		}
		if e.Parts > 1 {
			splits = append(splits, filestore.SplitLine{FileID: e.FileID, Line: e.Line, Parts: e.Parts})
		}
		if e.Filtered() { // dropped on purpose: not an exception
			filtered = append(filtered, e)
		} else {
			kept = append(kept, e)
		}
	}
	if err := filestore.RegisterSplits(ctx, tx, splits, deltas); err != nil {
		return 0, err
	}
	if err := insertFiltered(ctx, tx, filtered, deltas); err != nil {
		return 0, err
	}
	exs = kept
	if len(exs) == 0 {
		return 0, nil
	}
	var (
		ids, clients, fileIDs, recIDs, stages, codes, fields, msgs []string
		lines                                                      []int64
		parts                                                      []int32
		records, raws                                              [][]byte
	)
	for _, e := range exs {
		id := e.ExceptionID
		if id == "" {
			id = store.NewID()
		}
		rec, raw := storableRecord(e.Record, e.Raw)
		ids = append(ids, id)
		clients = append(clients, e.Client)
		fileIDs = append(fileIDs, e.FileID)
		lines = append(lines, e.Line)
		parts = append(parts, int32(e.Part))
		recIDs = append(recIDs, e.RecordID)
		stages = append(stages, e.Stage)
		codes = append(codes, string(e.Code))
		fields = append(fields, e.Field)
		msgs = append(msgs, e.Message)
		records = append(records, rec)
		raws = append(raws, raw)
	}
	rows, err := tx.Query(ctx, insertExceptionsSQL,
		ids, clients, fileIDs, lines, parts, recIDs, stages, codes, fields, msgs, records, raws)
	if err != nil {
		return 0, fmt.Errorf("insert exceptions: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var fileID string
		var inserted bool
		if err := rows.Scan(&fileID, &inserted); err != nil {
			return 0, err
		}
		if inserted {
			n++
			deltas.File(fileID).Exceptions++
		}
	}
	return n, rows.Err()
}

// insertExceptionsSQL stores exceptions once per source position; a
// record that fails again after a reprocess (its row is reprocessing)
// takes the new failure and is open again (the reprocess counted the
// attempt). record becomes the record as the stage saw it this time (an
// edit included, so the edit is cleared), and arrived keeps the record as
// it first arrived.
const insertExceptionsSQL = `INSERT INTO exceptions AS x
			(exception_id, client, file_id, line, part, record_id, stage, code, field, message, record, raw)
		SELECT id, client, file_id, line, part, nullif(record_id, ''), stage, code, nullif(field, ''), message, record, raw
		FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::int[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::jsonb[], $12::bytea[])
			AS t(id, client, file_id, line, part, record_id, stage, code, field, message, record, raw)
		ORDER BY client, file_id, line, part
		ON CONFLICT (client, file_id, line, part) DO UPDATE SET
			stage = excluded.stage, code = excluded.code, field = excluded.field, message = excluded.message,
			record = excluded.record, raw = excluded.raw, record_id = excluded.record_id, status = 'open', updated_at = now(),
			arrived = coalesce(x.arrived, x.record), edited = NULL
		WHERE x.status = 'reprocessing'
		RETURNING file_id::text, (xmax = 0) AS inserted`

// insertFiltered stores records dropped on purpose, once per source
// position, and counts them as their files' filtered records.
func insertFiltered(ctx context.Context, tx pgx.Tx, recs []exceptions.Exception, deltas filestore.Deltas) error {
	if len(recs) == 0 {
		return nil
	}
	n := len(recs)
	clients, fileIDs, recIDs, stages, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	lines, parts, records := make([]int64, n), make([]int32, n), make([][]byte, n)
	for i, e := range recs {
		clients[i], fileIDs[i], recIDs[i], stages[i], reasons[i] = e.Client, e.FileID, e.RecordID, e.Stage, e.Message
		lines[i], parts[i] = e.Line, int32(e.Part)
		records[i] = []byte(e.Record)
		if len(records[i]) == 0 || !json.Valid(records[i]) {
			records[i], _ = json.Marshal(map[string]string{"raw": string(e.Record)})
		}
	}
	rows, err := tx.Query(ctx, `INSERT INTO filtered_records (client, file_id, line, part, record_id, stage, reason, record)
		SELECT client, file_id, line, part, nullif(record_id, ''), stage, reason, record
		FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
			AS t(client, file_id, line, part, record_id, stage, reason, record)
		ORDER BY client, file_id, line, part
		ON CONFLICT DO NOTHING
		RETURNING file_id::text`, clients, fileIDs, lines, parts, recIDs, stages, reasons, records)
	if err != nil {
		return fmt.Errorf("insert filtered records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return err
		}
		deltas.File(f).Filtered++
	}
	return rows.Err()
}

// ExportExceptions calls fn for each exception matching the filter in
// source order (file, line, part), streaming rows rather than loading
// them all.
func (s *Store) ExportExceptions(ctx context.Context, f exceptions.Filter, fn func(exceptions.Exception) error) error {
	rows, err := s.db.Pool().Query(ctx, `SELECT exception_id, client, file_id, line, part, coalesce(record_id, ''),
			stage, code, coalesce(field, ''), message, status, attempts, record, created_at, updated_at
		FROM exceptions
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR file_id::text = $2) AND ($3 = '' OR stage = $3)
			AND ($4 = '' OR code = $4) AND ($5 = '' OR status = $5)
			AND (coalesce(cardinality($6::text[]), 0) = 0 OR client = ANY($6))
			AND ($7 = '' OR record->>'account_id' = $7)
			AND ($8::timestamptz IS NULL OR created_at >= $8) AND ($9::timestamptz IS NULL OR created_at < $9)
		ORDER BY file_id, line, part`, f.Client, f.FileID, f.Stage, f.Code, f.Status, f.Clients, f.AccountID, f.From, f.To)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e exceptions.Exception
		if err := rows.Scan(&e.ExceptionID, &e.Client, &e.FileID, &e.Line, &e.Part, &e.RecordID, &e.Stage,
			&e.Code, &e.Field, &e.Message, &e.Status, &e.Attempts, &e.Record, &e.CreatedAt, &e.UpdatedAt); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// InsertUnreadable keeps messages a stage could not read at all, byte for
// byte; a message stored before (the same stage and topic position) is
// not stored again. It returns how many were new.
func (s *Store) InsertUnreadable(ctx context.Context, msgs []exceptions.Unreadable) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	var (
		ids, stages, topics, reasons []string
		parts                        []int32
		offsets                      []int64
		raws                         [][]byte
	)
	for _, m := range msgs {
		ids = append(ids, store.NewID())
		stages = append(stages, m.Stage)
		topics = append(topics, m.Topic)
		parts = append(parts, m.Partition)
		offsets = append(offsets, m.Offset)
		reasons = append(reasons, strings.ToValidUTF8(strings.ReplaceAll(m.Reason, "\x00", ""), "\uFFFD"))
		raw := m.Raw
		if raw == nil {
			raw = []byte{}
		}
		raws = append(raws, raw)
	}
	tag, err := s.db.Pool().Exec(ctx, `INSERT INTO unreadable_messages
			(message_id, stage, topic, kafka_partition, kafka_offset, reason, raw)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[], $7::bytea[])
		ON CONFLICT (stage, topic, kafka_partition, kafka_offset) DO NOTHING`,
		ids, stages, topics, parts, offsets, reasons, raws)
	if err != nil {
		return 0, fmt.Errorf("insert unreadable messages: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Unreadable returns the unreadable messages kept, oldest first, at most
// limit of them.
func (s *Store) Unreadable(ctx context.Context, limit int) ([]exceptions.Unreadable, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT stage, topic, kafka_partition, kafka_offset, reason, raw, created_at
		FROM unreadable_messages ORDER BY created_at, message_id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (exceptions.Unreadable, error) {
		var m exceptions.Unreadable
		err := r.Scan(&m.Stage, &m.Topic, &m.Partition, &m.Offset, &m.Reason, &m.Raw, &m.CreatedAt)
		return m, err
	})
}
