package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/feed"
)

// EventOutcomes returns the recorded outcome of each event id (missing
// ids are absent from the map).
func (s *Store) EventOutcomes(ctx context.Context, ids []string) (map[string]feed.Outcome, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id, outcome, coalesce(code, ''), coalesce(message, '')
		FROM catalog_events WHERE event_id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]feed.Outcome, len(ids))
	for rows.Next() {
		var o feed.Outcome
		if err := rows.Scan(&o.EventID, &o.Outcome, &o.Code, &o.Message); err != nil {
			return nil, err
		}
		out[o.EventID] = o
	}
	return out, rows.Err()
}

// CatalogEntity is a stored catalog row.
type CatalogEntity struct {
	Entity   string
	EntityID string
	Version  int64
	Data     json.RawMessage
}

// CatalogVersion returns a client's catalog change counter (0 when the
// client has no catalog).
func (s *Store) CatalogVersion(ctx context.Context, client string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM catalog_versions WHERE client = $1`, client).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// LoadCatalog returns a client's live (not deleted) catalog rows and the
// change counter they correspond to, read in one snapshot.
func (s *Store) LoadCatalog(ctx context.Context, client string) ([]CatalogEntity, int64, error) {
	var out []CatalogEntity
	var version int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT version FROM catalog_versions WHERE client = $1), 0)`, client).Scan(&version); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT entity, entity_id, version, data FROM catalog_entities
			WHERE client = $1 AND NOT deleted ORDER BY entity, entity_id`, client)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e CatalogEntity
			if err := rows.Scan(&e.Entity, &e.EntityID, &e.Version, &e.Data); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, version, err
}
