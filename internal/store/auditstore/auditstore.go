// Package auditstore keeps the audit log (audit.Entry) in PostgreSQL's
// audit_log table. Adapters that change something on a person's behalf
// call Insert inside their own transaction, so that the change and its
// entry commit together.
package auditstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/audit"
	"vivace.dev/vivace/internal/store"
)

// Store reads the audit log.
type Store struct {
	db *store.Store
}

// New returns the audit log on db.
func New(db *store.Store) *Store { return &Store{db: db} }

var _ audit.Log = (*Store)(nil)

// Insert records e within tx. An entry without an id or time gets a new
// id and the time of the insert itself, not of the transaction's start,
// so that changes serialised by a lock sort in the order they were made.
func Insert(ctx context.Context, tx pgx.Tx, e audit.Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if e.ID == "" {
		e.ID = store.NewID()
	}
	var at *time.Time
	if !e.At.IsZero() {
		at = &e.At
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_log (audit_id, at, actor, action, target, client, before, after)
		VALUES ($1, coalesce($2, clock_timestamp()), $3, $4, $5, nullif($6, ''), $7::jsonb, $8::jsonb)`,
		e.ID, at, e.Actor, e.Action, e.Target, e.Client, nullJSON(e.Before), nullJSON(e.After))
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

func nullJSON(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// Record inserts one entry in a transaction of its own, for actions
// that change nothing else in the database.
func (s *Store) Record(ctx context.Context, e audit.Entry) error {
	return pgx.BeginFunc(ctx, s.db.Pool(), func(tx pgx.Tx) error { return Insert(ctx, tx, e) })
}

// List returns the entries f selects, newest first.
func (s *Store) List(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT audit_id::text, at, actor, action, target, coalesce(client, ''),
			coalesce(before::text, ''), coalesce(after::text, '')
		FROM audit_log
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR target = $2) AND ($3 = '' OR action = $3)
		  AND ($4 = '' OR actor = $4) AND ($5::timestamptz IS NULL OR at >= $5)
		ORDER BY at DESC, audit_id DESC LIMIT $6`, f.Client, f.Target, f.Action, f.Actor, since, limit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Entry, error) {
		var e audit.Entry
		var before, after string
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Client, &before, &after)
		e.At = e.At.UTC()
		if before != "" {
			e.Before = []byte(before)
		}
		if after != "" {
			e.After = []byte(after)
		}
		return e, err
	})
}
