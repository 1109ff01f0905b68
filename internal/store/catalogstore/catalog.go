package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/catalog"
)

// CatalogChannel is the PostgreSQL notification channel on which every
// catalog change is announced, when it commits, with the comma-separated
// clients it touched.
const CatalogChannel = "vivace_catalog"

// CatalogVersion returns a client's catalog change counter (0 when the
// client has no catalog).
func (s *Store) CatalogVersion(ctx context.Context, client string) (int64, error) {
	var v int64
	err := s.db.Pool().QueryRow(ctx, `SELECT version FROM catalog_versions WHERE client = $1`, client).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// CatalogVersions returns the change counters of the given clients
// (clients with no catalog are absent).
func (s *Store) CatalogVersions(ctx context.Context, clients []string) (map[string]int64, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT client, version FROM catalog_versions WHERE client = ANY($1)`, clients)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]int64, len(clients))
	for rows.Next() {
		var c string
		var v int64
		if err := rows.Scan(&c, &v); err != nil {
			return nil, err
		}
		out[c] = v
	}
	return out, rows.Err()
}

// LoadCatalog returns a client's live (not deleted) catalog rows and the
// change counter they correspond to, read in one snapshot.
func (s *Store) LoadCatalog(ctx context.Context, client string) ([]catalog.Row, int64, error) {
	return s.LoadCatalogChanges(ctx, client, 0)
}

// LoadCatalogChanges returns the catalog rows of a client that changed
// after version since, deleted ones included (since 0: every live row),
// and the change counter they bring the catalog to, read in one snapshot.
func (s *Store) LoadCatalogChanges(ctx context.Context, client string, since int64) ([]catalog.Row, int64, error) {
	var out []catalog.Row
	var version int64
	err := s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT version FROM catalog_versions WHERE client = $1), 0)`, client).Scan(&version); err != nil {
			return err
		}
		// From scratch the live rows; after a version, every row changed
		// since, deletes included, so the reader can drop them.
		q, args := `SELECT entity, entity_id, version, deleted, data FROM catalog_entities
			WHERE client = $1 AND NOT deleted ORDER BY entity, entity_id`, []any{client}
		if since > 0 {
			q, args = `SELECT entity, entity_id, version, deleted, data FROM catalog_entities
				WHERE client = $1 AND change_version > $2 ORDER BY entity, entity_id`, []any{client, since}
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e catalog.Row
			if err := rows.Scan(&e.Entity, &e.EntityID, &e.Version, &e.Deleted, &e.Data); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, version, err
}

// ListenCatalog calls changed with the clients of every catalog change as
// it commits, until ctx ends or the connection fails (the error is
// returned; the caller reconnects and, since changes may have been missed
// meanwhile, treats every client as changed). It holds a connection of
// its own, outside the pool. ready is called once listening has begun.
func (s *Store) ListenCatalog(ctx context.Context, ready func(), changed func(clients []string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.db.Pool().Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("listen for catalog changes: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+CatalogChannel); err != nil {
		return fmt.Errorf("listen for catalog changes: %w", err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen for catalog changes: %w", err)
		}
		changed(strings.Split(n.Payload, ","))
	}
}
