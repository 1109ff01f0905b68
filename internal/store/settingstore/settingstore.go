// Package settingstore keeps the system settings (settings.Stored) in
// PostgreSQL's system_settings table; each change is written with its
// audit entry in one transaction.
package settingstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/auditstore"
)

// Store is the settings table.
type Store struct {
	db *store.Store
}

// New returns the settings table on db.
func New(db *store.Store) *Store { return &Store{db: db} }

var _ settings.Store = (*Store)(nil)

// Load returns every stored value.
func (s *Store) Load(ctx context.Context) ([]settings.Stored, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT key, value::text, updated_by, updated_at FROM system_settings ORDER BY key`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (settings.Stored, error) {
		var st settings.Stored
		var v string
		err := r.Scan(&st.Key, &v, &st.UpdatedBy, &st.UpdatedAt)
		st.Value = json.RawMessage(v)
		return st, err
	})
}

// Put stores (or, for a nil value, removes) key's value and records the
// audit entry in the same transaction. Changes of one key are serialised,
// so each entry's before is the value the change replaced.
func (s *Store) Put(ctx context.Context, key string, value json.RawMessage, actor string, entry func(before json.RawMessage) auth.AuditEntry) error {
	return pgx.BeginFunc(ctx, s.db.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('vivace.setting:' || $1, 0))`, key); err != nil {
			return err
		}
		var before json.RawMessage
		var b string
		switch err := tx.QueryRow(ctx, `SELECT value::text FROM system_settings WHERE key = $1`, key).Scan(&b); {
		case err == nil:
			before = json.RawMessage(b)
		case errors.Is(err, pgx.ErrNoRows):
		default:
			return err
		}
		var err error
		if value == nil {
			_, err = tx.Exec(ctx, `DELETE FROM system_settings WHERE key = $1`, key)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO system_settings (key, value, updated_by, updated_at)
				VALUES ($1, $2::jsonb, $3, now())
				ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, updated_at = now()`,
				key, string(value), actor)
		}
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return auditstore.Insert(ctx, tx, entry(before))
	})
}
