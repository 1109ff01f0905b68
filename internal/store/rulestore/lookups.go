package rulestore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/rules"
)

// LoadLookup copies rows into a staging table and upserts them into the
// lookup table in one transaction: readers see the table before or after
// the load, never half of it. A bad row (rows.Err) rolls everything back.
func (s *Store) LoadLookup(ctx context.Context, l rules.LookupLoad, rows rules.LookupRows) (rules.LookupLoadResult, error) {
	var res rules.LookupLoadResult
	if err := l.Validate(); err != nil {
		return res, err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE lookup_staging (key text PRIMARY KEY, value jsonb NOT NULL) ON COMMIT DROP`); err != nil {
			return err
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"lookup_staging"}, []string{"key", "value"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if !rows.Next() {
					return nil, rows.Err()
				}
				k, v := rows.Entry()
				return []any{k, v}, nil
			}))
		if rerr := rows.Err(); rerr != nil {
			return rerr // the bad line, rather than COPY's report of it
		}
		if err != nil {
			return fmt.Errorf("copy lookup entries: %w", err)
		}
		res.Entries = n
		if _, err := tx.Exec(ctx, `ANALYZE lookup_staging`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `
WITH up AS (
    INSERT INTO lookup_entries (client, lookup, key, value)
    SELECT $1, $2, key, value FROM lookup_staging
    ON CONFLICT (client, lookup, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
        WHERE lookup_entries.value IS DISTINCT FROM EXCLUDED.value
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`,
			l.Client, l.Lookup).Scan(&res.Inserted, &res.Updated); err != nil {
			return fmt.Errorf("upsert lookup entries: %w", err)
		}
		res.Unchanged = res.Entries - res.Inserted - res.Updated
		if l.Replace {
			tag, err := tx.Exec(ctx, `
DELETE FROM lookup_entries e
WHERE e.client = $1 AND e.lookup = $2
  AND NOT EXISTS (SELECT 1 FROM lookup_staging s WHERE s.key = e.key)`, l.Client, l.Lookup)
			if err != nil {
				return fmt.Errorf("drop lookup entries not in the file: %w", err)
			}
			res.Deleted = tag.RowsAffected()
		}
		if res.Inserted+res.Deleted > 0 {
			// Fresh statistics, so the rule's lookups use the primary key
			// at once rather than after autovacuum gets round to the table.
			if _, err := tx.Exec(ctx, `ANALYZE lookup_entries`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return rules.LookupLoadResult{}, err
	}
	return res, nil
}

// LookupValues reads the entries of the lookup table named lookup for the
// given keys (of any clients) in one query. A key without an entry is not
// in the result.
func (s *Store) LookupValues(ctx context.Context, lookup string, keys []rules.LookupKey) (map[rules.LookupKey]map[string]string, error) {
	out := make(map[rules.LookupKey]map[string]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	clients := make([]string, len(keys))
	ks := make([]string, len(keys))
	for i, k := range keys {
		clients[i], ks[i] = k.Client, k.Key
	}
	rows, err := s.pool.Query(ctx, `
SELECT e.client, e.key, e.value
FROM unnest($2::text[], $3::text[]) AS q(client, key)
JOIN lookup_entries e ON e.client = q.client AND e.lookup = $1 AND e.key = q.key`, lookup, clients, ks)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", lookup, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k rules.LookupKey
		var v map[string]string
		if err := rows.Scan(&k.Client, &k.Key, &v); err != nil {
			return nil, fmt.Errorf("lookup %s: %w", lookup, err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lookup %s: %w", lookup, err)
	}
	return out, nil
}

// ListLookups lists the lookup tables, of one client when client is not
// empty.
func (s *Store) ListLookups(ctx context.Context, client string) ([]rules.LookupInfo, error) {
	rows, err := s.pool.Query(ctx, `
SELECT client, lookup, count(*), max(updated_at)
FROM lookup_entries
WHERE $1 = '' OR client = $1
GROUP BY client, lookup
ORDER BY client, lookup`, client)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (rules.LookupInfo, error) {
		var li rules.LookupInfo
		err := r.Scan(&li.Client, &li.Lookup, &li.Entries, &li.UpdatedAt)
		return li, err
	})
}
