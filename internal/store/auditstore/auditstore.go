// Package auditstore reads the audit log (audit_log) and writes entries
// within the transaction of the change they describe, so that a change
// and its entry commit together. (authstore writes the entries of the
// token actions on their own.)
package auditstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/store"
)

// Store reads the audit log.
type Store struct {
	db *store.Store
}

// New returns the audit log on db.
func New(db *store.Store) *Store { return &Store{db: db} }

// Insert records e within tx. An entry without a time gets the time of
// the insert itself, not of the transaction's start, so that changes
// serialised by a lock sort in the order they were made.
func Insert(ctx context.Context, tx pgx.Tx, e auth.AuditEntry) error {
	if strings.TrimSpace(e.Actor) == "" || e.Action == "" || e.Target == "" {
		return errors.New("audit entry: actor, action and target are required")
	}
	var at *time.Time
	if !e.At.IsZero() {
		at = &e.At
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_log (at, actor, action, target, client, before, after)
		VALUES (coalesce($1, clock_timestamp()), $2, $3, $4, nullif($5, ''), $6::jsonb, $7::jsonb)`,
		at, e.Actor, e.Action, e.Target, e.Client, nullJSON(e.Before), nullJSON(e.After))
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

// Filter selects entries; zero fields select everything.
type Filter struct {
	Client string
	Target string
	Action string
	Actor  string
	Since  time.Time
	// Clients, when not empty, keeps to the entries of these clients (a
	// token's scope): entries of no client are left out.
	Clients []string
	// Limit bounds the number of entries, newest first; 0 means 100.
	Limit int
}

// List returns the entries f selects, newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]auth.AuditEntry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT at, actor, action, target, coalesce(client, ''),
			coalesce(before::text, ''), coalesce(after::text, '')
		FROM audit_log
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR target = $2) AND ($3 = '' OR action = $3)
		  AND ($4 = '' OR actor = $4) AND ($5::timestamptz IS NULL OR at >= $5)
		  AND (coalesce(cardinality($7::text[]), 0) = 0 OR client = ANY($7))
		ORDER BY at DESC, audit_id DESC LIMIT $6`, f.Client, f.Target, f.Action, f.Actor, since, limit, f.Clients)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.AuditEntry, error) {
		var e auth.AuditEntry
		var before, after string
		err := r.Scan(&e.At, &e.Actor, &e.Action, &e.Target, &e.Client, &before, &after)
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
