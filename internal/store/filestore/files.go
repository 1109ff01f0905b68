// Package filestore is the file registry in PostgreSQL: files, their
// leases and counts, the lines mediation split, and the objects bucket
// sources took. Rating and exception writers move a file's counts inside
// their own transactions through Deltas and ApplyDeltas.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/store"
)

// Store is the file registry over a database.
type Store struct{ db *store.Store }

// New returns the file registry of db.
func New(db *store.Store) *Store { return &Store{db: db} }

const fileColumns = `file_id, client, name, source, location, format, size_bytes, sha256, status,
	coalesce(reason, ''), records + split_extra, split_extra, murs, exceptions, filtered, received_at, started_at, read_at, finished_at`

func scanFile(row pgx.Row) (files.File, error) {
	var f files.File
	err := row.Scan(&f.FileID, &f.Client, &f.Name, &f.Source, &f.Location, &f.Format, &f.SizeBytes,
		&f.SHA256, &f.Status, &f.Reason, &f.Records, &f.Split, &f.MURs, &f.Exceptions, &f.Filtered,
		&f.ReceivedAt, &f.StartedAt, &f.ReadAt, &f.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, store.ErrNotFound
	}
	return f, err
}

// RegisterFile records a received file. When the client already has a
// file with the same SHA-256 that was not rejected, the new one is stored
// as rejected with a reason naming the earlier file, and files.ErrDuplicate
// is returned with that row.
func (s *Store) RegisterFile(ctx context.Context, f files.File) (files.File, error) {
	if f.Status == "" {
		f.Status = files.Received
	}
	row := s.db.Pool().QueryRow(ctx, `INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256, status, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''))
		RETURNING `+fileColumns,
		f.FileID, f.Client, f.Name, f.Source, f.Location, f.Format, f.SizeBytes, f.SHA256, f.Status, f.Reason)
	got, err := scanFile(row)
	if store.UniqueViolation(err, "files_client_sha256") {
		prev, perr := s.fileBySHA(ctx, f.Client, f.SHA256)
		if perr != nil {
			return files.File{}, perr
		}
		f.Status = files.Rejected
		f.Reason = fmt.Sprintf("duplicate file: the same content was received as %q (file %s) at %s",
			prev.Name, prev.FileID, prev.ReceivedAt.UTC().Format(time.RFC3339))
		rej, err := s.RegisterFile(ctx, f)
		if err != nil {
			return files.File{}, err
		}
		return rej, files.ErrDuplicate
	}
	if err != nil {
		return files.File{}, fmt.Errorf("register file %s: %w", f.Name, err)
	}
	return got, nil
}

func (s *Store) fileBySHA(ctx context.Context, client, sha string) (files.File, error) {
	return scanFile(s.db.Pool().QueryRow(ctx, `SELECT `+fileColumns+` FROM files
		WHERE client = $1 AND sha256 = $2 AND status <> 'rejected'`, client, sha))
}

// GetFile returns one file, or store.ErrNotFound.
func (s *Store) GetFile(ctx context.Context, id string) (files.File, error) {
	return scanFile(s.db.Pool().QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE file_id = $1`, id))
}

// ListFiles returns the newest files of the clients (all clients when
// none are named).
func (s *Store) ListFiles(ctx context.Context, clients []string, limit int) ([]files.File, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT `+fileColumns+` FROM files
		WHERE (coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1)) ORDER BY received_at DESC LIMIT $2`, clients, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []files.File
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
// store.ErrNotFound when there is nothing to read.
func (s *Store) ClaimFile(ctx context.Context, owner string, lease time.Duration) (files.File, error) {
	return scanFile(s.db.Pool().QueryRow(ctx, `UPDATE files SET status = 'processing', lease_owner = $1,
			lease_until = now() + $2::interval, started_at = coalesce(started_at, now()), updated_at = now()
		WHERE file_id = (
			SELECT file_id FROM files
			WHERE (status = 'received') OR (status = 'processing' AND read_at IS NULL AND lease_until < now())
			ORDER BY received_at
			FOR UPDATE SKIP LOCKED LIMIT 1)
		RETURNING `+fileColumns, owner, fmt.Sprintf("%d milliseconds", lease.Milliseconds())))
}

// RenewLease extends owner's lease on a file being read. It returns
// store.ErrNotFound when the lease was lost to another reader.
func (s *Store) RenewLease(ctx context.Context, id, owner string, lease time.Duration) error {
	tag, err := s.db.Pool().Exec(ctx, `UPDATE files SET lease_until = now() + $3::interval
		WHERE file_id = $1 AND lease_owner = $2 AND read_at IS NULL`,
		id, owner, fmt.Sprintf("%d milliseconds", lease.Milliseconds()))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ReleaseLease gives a file back before its lease runs out (on shutdown),
// so the next reader can take it over at once.
func (s *Store) ReleaseLease(ctx context.Context, id, owner string) error {
	_, err := s.db.Pool().Exec(ctx, `UPDATE files SET lease_until = now()
		WHERE file_id = $1 AND lease_owner = $2 AND read_at IS NULL`, id, owner)
	return err
}

// FileRead records that every record of the file has been handed to the
// next stage; the file is done at once if the counts already add up.
func (s *Store) FileRead(ctx context.Context, id string, records int64) (files.File, error) {
	return scanFile(s.db.Pool().QueryRow(ctx, `UPDATE files SET records = $2, read_at = now(), lease_until = NULL,
			status = CASE WHEN murs + exceptions + filtered >= $2 + split_extra THEN 'done' ELSE status END,
			finished_at = CASE WHEN murs + exceptions + filtered >= $2 + split_extra THEN now() ELSE finished_at END,
			updated_at = now()
		WHERE file_id = $1 AND status = 'processing'
		RETURNING `+fileColumns, id, records))
}

// FailFile marks a file failed with a reason.
func (s *Store) FailFile(ctx context.Context, id, reason string) error {
	_, err := s.db.Pool().Exec(ctx, `UPDATE files SET status = 'failed', reason = $2, finished_at = now(),
		lease_until = NULL, updated_at = now() WHERE file_id = $1 AND status IN ('received', 'processing')`, id, reason)
	return err
}
