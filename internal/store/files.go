package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// File statuses.
const (
	FileReceived   = "received"
	FileProcessing = "processing"
	FileDone       = "done"
	FileFailed     = "failed"
	FileRejected   = "rejected"
)

// File is a row of the file registry. Records is what the file's lines
// became: the records read, plus the extra records of lines that
// mediation split (Split); it is nil until the whole file has been read.
// A done file has Records = MURs + Exceptions + Filtered.
type File struct {
	FileID     string     `json:"file_id"`
	Client     string     `json:"client"`
	Name       string     `json:"name"`
	Source     string     `json:"source"`
	Location   string     `json:"location,omitempty"`
	Format     string     `json:"format"`
	SizeBytes  int64      `json:"size_bytes"`
	SHA256     string     `json:"sha256"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	Records    *int64     `json:"records"`
	Split      int64      `json:"split,omitempty"`
	MURs       int64      `json:"murs"`
	Exceptions int64      `json:"exceptions"`
	Filtered   int64      `json:"filtered"`
	ReceivedAt time.Time  `json:"received_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	ReadAt     *time.Time `json:"read_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Final reports whether the file will not change any more.
func (f File) Final() bool {
	return f.Status == FileDone || f.Status == FileFailed || f.Status == FileRejected
}

// ErrDuplicateFile is returned by RegisterFile when the client already sent
// a file with the same content.
var ErrDuplicateFile = errors.New("duplicate file")

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

const fileColumns = `file_id, client, name, source, location, format, size_bytes, sha256, status,
	coalesce(reason, ''), records + split_extra, split_extra, murs, exceptions, filtered, received_at, started_at, read_at, finished_at`

func scanFile(row pgx.Row) (File, error) {
	var f File
	err := row.Scan(&f.FileID, &f.Client, &f.Name, &f.Source, &f.Location, &f.Format, &f.SizeBytes,
		&f.SHA256, &f.Status, &f.Reason, &f.Records, &f.Split, &f.MURs, &f.Exceptions, &f.Filtered,
		&f.ReceivedAt, &f.StartedAt, &f.ReadAt, &f.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, ErrNotFound
	}
	return f, err
}

// RegisterFile records a received file. When the client already has a
// file with the same SHA-256 that was not rejected, the new one is stored
// as rejected with a reason naming the earlier file, and ErrDuplicateFile
// is returned with that row.
func (s *Store) RegisterFile(ctx context.Context, f File) (File, error) {
	if f.Status == "" {
		f.Status = FileReceived
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256, status, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''))
		RETURNING `+fileColumns,
		f.FileID, f.Client, f.Name, f.Source, f.Location, f.Format, f.SizeBytes, f.SHA256, f.Status, f.Reason)
	got, err := scanFile(row)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "files_client_sha256" {
		prev, perr := s.fileBySHA(ctx, f.Client, f.SHA256)
		if perr != nil {
			return File{}, perr
		}
		f.Status = FileRejected
		f.Reason = fmt.Sprintf("duplicate file: the same content was received as %q (file %s) at %s",
			prev.Name, prev.FileID, prev.ReceivedAt.UTC().Format(time.RFC3339))
		rej, err := s.RegisterFile(ctx, f)
		if err != nil {
			return File{}, err
		}
		return rej, ErrDuplicateFile
	}
	if err != nil {
		return File{}, fmt.Errorf("register file %s: %w", f.Name, err)
	}
	return got, nil
}

func (s *Store) fileBySHA(ctx context.Context, client, sha string) (File, error) {
	return scanFile(s.pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM files
		WHERE client = $1 AND sha256 = $2 AND status <> 'rejected'`, client, sha))
}

// GetFile returns one file.
func (s *Store) GetFile(ctx context.Context, id string) (File, error) {
	return scanFile(s.pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE file_id = $1`, id))
}

// ListFiles returns the newest files of a client (all clients when empty).
func (s *Store) ListFiles(ctx context.Context, client string, limit int) ([]File, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+fileColumns+` FROM files
		WHERE ($1 = '' OR client = $1) ORDER BY received_at DESC LIMIT $2`, client, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// ClaimFile takes the oldest file waiting to be read, or one whose reader
// stopped renewing its lease, and leases it to owner. It returns
// ErrNotFound when there is nothing to read.
func (s *Store) ClaimFile(ctx context.Context, owner string, lease time.Duration) (File, error) {
	return scanFile(s.pool.QueryRow(ctx, `UPDATE files SET status = 'processing', lease_owner = $1,
			lease_until = now() + $2::interval, started_at = coalesce(started_at, now()), updated_at = now()
		WHERE file_id = (
			SELECT file_id FROM files
			WHERE (status = 'received') OR (status = 'processing' AND read_at IS NULL AND lease_until < now())
			ORDER BY received_at
			FOR UPDATE SKIP LOCKED LIMIT 1)
		RETURNING `+fileColumns, owner, fmt.Sprintf("%d milliseconds", lease.Milliseconds())))
}

// RenewLease extends owner's lease on a file being read. It returns
// ErrNotFound when the lease was lost to another reader.
func (s *Store) RenewLease(ctx context.Context, id, owner string, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE files SET lease_until = now() + $3::interval
		WHERE file_id = $1 AND lease_owner = $2 AND read_at IS NULL`,
		id, owner, fmt.Sprintf("%d milliseconds", lease.Milliseconds()))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// FileRead records that every record of the file has been handed to the
// next stage; the file is done at once if the counts already add up.
func (s *Store) FileRead(ctx context.Context, id string, records int64) (File, error) {
	return scanFile(s.pool.QueryRow(ctx, `UPDATE files SET records = $2, read_at = now(), lease_until = NULL,
			status = CASE WHEN murs + exceptions + filtered >= $2 + split_extra THEN 'done' ELSE status END,
			finished_at = CASE WHEN murs + exceptions + filtered >= $2 + split_extra THEN now() ELSE finished_at END,
			updated_at = now()
		WHERE file_id = $1 AND status = 'processing'
		RETURNING `+fileColumns, id, records))
}

// FailFile marks a file failed with a reason.
func (s *Store) FailFile(ctx context.Context, id, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE files SET status = 'failed', reason = $2, finished_at = now(),
		lease_until = NULL, updated_at = now() WHERE file_id = $1 AND status IN ('received', 'processing')`, id, reason)
	return err
}

// fileDelta is how much one transaction moves a file's counts; split is
// the extra records of lines first seen split in this transaction.
type fileDelta struct{ murs, exceptions, filtered, split int64 }

// FinishedFile is a file that a transaction finished: its counts added up.
type FinishedFile struct {
	FileID string
	Client string
	// Took is the time from receiving the file to its last record ending
	// somewhere.
	Took time.Duration
}

type fileObserverKey struct{}

// WithFileObserver returns a context under which Store.Rate and
// Store.InsertExceptions call fn, after their transaction committed, for
// each file the transaction finished.
func WithFileObserver(ctx context.Context, fn func(FinishedFile)) context.Context {
	return context.WithValue(ctx, fileObserverKey{}, fn)
}

func observeFiles(ctx context.Context, done []FinishedFile) {
	if fn, ok := ctx.Value(fileObserverKey{}).(func(FinishedFile)); ok {
		for _, f := range done {
			fn(f)
		}
	}
}

// applyFileDeltas moves file counts inside tx, in file id order so that
// concurrent transactions lock rows in the same order, and finishes the
// files whose counts now add up. It returns the files it finished.
func applyFileDeltas(ctx context.Context, tx pgx.Tx, deltas map[string]*fileDelta) ([]FinishedFile, error) {
	if len(deltas) == 0 {
		return nil, nil
	}
	ids := sortedKeys(deltas)
	m := make([]int64, len(ids))
	e := make([]int64, len(ids))
	f := make([]int64, len(ids))
	x := make([]int64, len(ids))
	for i, id := range ids {
		d := deltas[id]
		m[i], e[i], f[i], x[i] = d.murs, d.exceptions, d.filtered, d.split
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
	var done []FinishedFile
	for rows.Next() {
		var d FinishedFile
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

// ReleaseLease gives a file back before its lease runs out (on shutdown),
// so the next reader can take it over at once.
func (s *Store) ReleaseLease(ctx context.Context, id, owner string) error {
	_, err := s.pool.Exec(ctx, `UPDATE files SET lease_until = now()
		WHERE file_id = $1 AND lease_owner = $2 AND read_at IS NULL`, id, owner)
	return err
}

// splitLine is a line that mediation split into parts records.
type splitLine struct {
	file  string
	line  int64
	parts int
}

// registerSplits records, once per line, the split lines among outcomes
// being stored, and adds their extra parts to their files' expected
// records. The first outcome stored for any part of a line registers it
// in the same transaction that counts that outcome, so a file can never
// look complete while parts of a split line are still on their way.
func registerSplits(ctx context.Context, tx pgx.Tx, lines []splitLine, deltas map[string]*fileDelta) error {
	if len(lines) == 0 {
		return nil
	}
	files, nums, parts := make([]string, 0, len(lines)), make([]int64, 0, len(lines)), make([]int32, 0, len(lines))
	seen := make(map[splitLine]bool, len(lines))
	for _, l := range lines {
		k := splitLine{l.file, l.line, 0}
		if seen[k] {
			continue
		}
		seen[k] = true
		files, nums, parts = append(files, l.file), append(nums, l.line), append(parts, int32(l.parts))
	}
	rows, err := tx.Query(ctx, `INSERT INTO split_lines (file_id, line, parts)
		SELECT file_id, line, parts FROM unnest($1::uuid[], $2::bigint[], $3::int[]) AS t(file_id, line, parts)
		ORDER BY file_id, line
		ON CONFLICT DO NOTHING
		RETURNING file_id::text, parts`, files, nums, parts)
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
		delta(deltas, f).split += n - 1
	}
	return rows.Err()
}
