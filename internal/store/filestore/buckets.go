package filestore

import (
	"context"
	"fmt"

	"vivace.dev/vivace/internal/files"
)

// TakenObjects reports, for each (keys[i], etags[i]) of a client's bucket,
// the outcome of taking that object (files.Received or files.Rejected), or ""
// when it was not taken yet.
func (s *Store) TakenObjects(ctx context.Context, client, bucket string, keys, etags []string) ([]files.Status, error) {
	if len(keys) != len(etags) {
		return nil, fmt.Errorf("taken objects: %d keys but %d etags", len(keys), len(etags))
	}
	out := make([]files.Status, 0, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT coalesce(b.outcome, '')
		FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS o(key, etag, n)
		LEFT JOIN bucket_objects b ON b.client = $1 AND b.bucket = $2 AND b.key = o.key AND b.etag = o.etag
		ORDER BY o.n`, client, bucket, keys, etags)
	if err != nil {
		return nil, fmt.Errorf("taken objects of client %s bucket %s: %w", client, bucket, err)
	}
	defer rows.Close()
	for rows.Next() {
		var outcome files.Status
		if err := rows.Scan(&outcome); err != nil {
			return nil, err
		}
		out = append(out, outcome)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("taken objects of client %s bucket %s: %w", client, bucket, err)
	}
	return out, nil
}

// RecordTakenObject records that an object was taken. Recording the same
// object again changes nothing.
func (s *Store) RecordTakenObject(ctx context.Context, o files.BucketObject) error {
	_, err := s.db.Pool().Exec(ctx, `INSERT INTO bucket_objects (client, bucket, key, etag, size_bytes, file_id, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (client, bucket, key, etag) DO NOTHING`,
		o.Client, o.Bucket, o.Key, o.ETag, o.SizeBytes, o.FileID, o.Outcome)
	if err != nil {
		return fmt.Errorf("record taken object client %s bucket %s key %s: %w", o.Client, o.Bucket, o.Key, err)
	}
	return nil
}

// ListTakenObjects returns the objects taken from a client's bucket, the
// newest first.
func (s *Store) ListTakenObjects(ctx context.Context, client, bucket string, limit int) ([]files.BucketObject, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT client, bucket, key, etag, size_bytes, file_id::text, outcome, taken_at
		FROM bucket_objects WHERE client = $1 AND bucket = $2 ORDER BY taken_at DESC, key LIMIT $3`,
		client, bucket, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []files.BucketObject
	for rows.Next() {
		var o files.BucketObject
		if err := rows.Scan(&o.Client, &o.Bucket, &o.Key, &o.ETag, &o.SizeBytes, &o.FileID, &o.Outcome, &o.TakenAt); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
