package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/feed"
)

// ApplyEvents applies core feed events in one transaction, in the order
// given. An event applies only when its version is newer than the stored
// one (deletes too, as soft deletes), so replays and late arrivals change
// nothing. Invalid events (the caller passes the validation error in
// failures[i]) are recorded as failed. Every event's outcome is kept in
// catalog_events; an event id seen before keeps its first outcome.
func (s *Store) ApplyEvents(ctx context.Context, events []feed.Event, failures []error) ([]feed.Outcome, error) {
	out := make([]feed.Outcome, len(events))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		changed := map[string]bool{}
		for i, e := range events {
			o, err := applyEvent(ctx, tx, e, failures[i])
			if err != nil {
				return err
			}
			out[i] = o
			if o.Outcome == feed.Applied {
				changed[e.Client] = true
			}
		}
		for _, client := range sortedKeys(changed) {
			if _, err := tx.Exec(ctx, `INSERT INTO catalog_versions (client, version) VALUES ($1, 1)
				ON CONFLICT (client) DO UPDATE SET version = catalog_versions.version + 1`, client); err != nil {
				return err
			}
		}
		if len(changed) > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_notify('vivace_catalog', $1)`, fmt.Sprint(sortedKeys(changed))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply feed events: %w", err)
	}
	return out, nil
}

func applyEvent(ctx context.Context, tx pgx.Tx, e feed.Event, invalid error) (feed.Outcome, error) {
	o := feed.Outcome{EventID: e.EventID}
	payload, _ := json.Marshal(e)
	if invalid != nil {
		o.Outcome, o.Code, o.Message = feed.Failed, "INVALID_EVENT", invalid.Error()
	} else {
		data := e.Data
		if e.Op == feed.OpDelete {
			data = json.RawMessage(`{}`)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO catalog_entities AS c
				(client, entity, entity_id, version, deleted, data, event_id, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (client, entity, entity_id) DO UPDATE SET
				version = excluded.version, deleted = excluded.deleted,
				data = CASE WHEN excluded.deleted THEN c.data ELSE excluded.data END,
				event_id = excluded.event_id, occurred_at = excluded.occurred_at, updated_at = now()
			WHERE c.version < excluded.version`,
			e.Client, e.Entity, e.EntityID, e.Version, e.Op == feed.OpDelete, data, e.EventID, e.OccurredAt)
		if err != nil {
			return o, err
		}
		o.Outcome = feed.Applied
		if tag.RowsAffected() == 0 {
			o.Outcome = feed.Ignored
			o.Message = "a version at least as new is stored"
		}
	}
	// The first outcome of an event id stands: a redelivered event that was
	// applied is not reported again as ignored.
	var stored feed.Outcome
	err := tx.QueryRow(ctx, `INSERT INTO catalog_events
			(event_id, client, entity, entity_id, version, op, occurred_at, payload, outcome, code, message)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''), nullif($11, ''))
		ON CONFLICT (event_id) DO UPDATE SET event_id = excluded.event_id
		RETURNING event_id, outcome, coalesce(code, ''), coalesce(message, '')`,
		e.EventID, e.Client, e.Entity, e.EntityID, e.Version, e.Op, nullTime(e.OccurredAt), payload,
		o.Outcome, o.Code, o.Message).Scan(&stored.EventID, &stored.Outcome, &stored.Code, &stored.Message)
	if err != nil {
		return o, err
	}
	return stored, nil
}

func nullTime[T interface{ IsZero() bool }](t T) any {
	if t.IsZero() {
		return nil
	}
	return t
}

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
