package filestore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/files"
)

// Delta is how much one transaction moves a file's counts; Split is the
// extra records of lines first seen split in this transaction.
type Delta struct{ MURs, Exceptions, Filtered, Split int64 }

// Deltas are the count changes of one transaction, by file id. A writer of
// outcomes adds to them as it stores MURs, exceptions and filtered
// records, and applies them with ApplyDeltas before it commits.
type Deltas map[string]*Delta

// File returns the delta of a file, adding it.
func (d Deltas) File(id string) *Delta {
	x, ok := d[id]
	if !ok {
		x = &Delta{}
		d[id] = x
	}
	return x
}

// ApplyDeltas moves file counts inside tx, in file id order so that
// concurrent transactions lock rows in the same order, and finishes the
// files whose counts now add up. It returns the files it finished, for
// files.Observe once the transaction has committed.
func ApplyDeltas(ctx context.Context, tx pgx.Tx, deltas Deltas) ([]files.Finished, error) {
	if len(deltas) == 0 {
		return nil, nil
	}
	ids := slices.Sorted(maps.Keys(deltas))
	m := make([]int64, len(ids))
	e := make([]int64, len(ids))
	f := make([]int64, len(ids))
	x := make([]int64, len(ids))
	for i, id := range ids {
		d := deltas[id]
		m[i], e[i], f[i], x[i] = d.MURs, d.Exceptions, d.Filtered, d.Split
	}
	// Lock the rows in id order first: concurrent batches touching the same
	// files then queue instead of deadlocking.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM files WHERE file_id = ANY($1::uuid[]) ORDER BY file_id FOR UPDATE`, ids); err != nil {
		return nil, err
	}
	// finished_at is now() only for a file this statement finished: the
	// transaction's start time, earlier than any other transaction's.
	rows, err := tx.Query(ctx, `UPDATE files AS fl SET
			murs = fl.murs + d.m, exceptions = fl.exceptions + d.e, filtered = fl.filtered + d.f,
			split_extra = fl.split_extra + d.x,
			status = CASE WHEN fl.status = 'processing' AND fl.records IS NOT NULL
				AND fl.murs + d.m + fl.exceptions + d.e + fl.filtered + d.f >= fl.records + fl.split_extra + d.x
				THEN 'done' ELSE fl.status END,
			finished_at = CASE WHEN fl.status = 'processing' AND fl.records IS NOT NULL
				AND fl.murs + d.m + fl.exceptions + d.e + fl.filtered + d.f >= fl.records + fl.split_extra + d.x
				THEN now() ELSE fl.finished_at END,
			updated_at = now()
		FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(id, m, e, f, x)
		WHERE fl.file_id = d.id
		RETURNING fl.file_id::text, fl.client, fl.status = 'done' AND fl.finished_at = now(),
			(extract(epoch FROM coalesce(fl.finished_at, now()) - fl.received_at) * 1000000)::bigint`, ids, m, e, f, x)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var done []files.Finished
	for rows.Next() {
		var d files.Finished
		var finished bool
		var micros int64
		if err := rows.Scan(&d.FileID, &d.Client, &finished, &micros); err != nil {
			return nil, err
		}
		if finished {
			d.Took = time.Duration(micros) * time.Microsecond
			done = append(done, d)
		}
	}
	return done, rows.Err()
}

// SplitLine is a line that mediation split into Parts records.
type SplitLine struct {
	FileID string
	Line   int64
	Parts  int
}

// RegisterSplits records, once per line, the split lines among outcomes
// being stored, and adds their extra parts to their files' expected
// records. The first outcome stored for any part of a line registers it
// in the same transaction that counts that outcome, so a file can never
// look complete while parts of a split line are still on their way.
func RegisterSplits(ctx context.Context, tx pgx.Tx, lines []SplitLine, deltas Deltas) error {
	if len(lines) == 0 {
		return nil
	}
	ids, nums, parts := make([]string, 0, len(lines)), make([]int64, 0, len(lines)), make([]int32, 0, len(lines))
	type key struct {
		file string
		line int64
	}
	seen := make(map[key]bool, len(lines))
	for _, l := range lines {
		k := key{l.FileID, l.Line}
		if seen[k] {
			continue
		}
		seen[k] = true
		ids, nums, parts = append(ids, l.FileID), append(nums, l.Line), append(parts, int32(l.Parts))
	}
	rows, err := tx.Query(ctx, `INSERT INTO split_lines (file_id, line, parts)
		SELECT file_id, line, parts FROM unnest($1::uuid[], $2::bigint[], $3::int[]) AS t(file_id, line, parts)
		ORDER BY file_id, line
		ON CONFLICT DO NOTHING
		RETURNING file_id::text, parts`, ids, nums, parts)
	if err != nil {
		return fmt.Errorf("record split lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f string
		var n int64
		if err := rows.Scan(&f, &n); err != nil {
			return err
		}
		deltas.File(f).Split += n - 1
	}
	return rows.Err()
}
