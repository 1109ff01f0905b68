// Package rulestore keeps what the mediation rules hold in PostgreSQL:
// the correlation groups of vivace_correlate and the lookup tables of
// vivace_lookup. It implements the ports internal/rules declares
// (rules.CorrelationStore, rules.LookupReader) on the base package's pool;
// the rules' types are internal/rules'.
package rulestore

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
)

// Store runs the rules' SQL on a database's pool.
type Store struct {
	pool *pgxpool.Pool
}

// New returns the rules' adapter over db.
func New(db *store.Store) *Store { return &Store{pool: db.Pool()} }

var (
	_ rules.CorrelationStore = (*Store)(nil)
	_ rules.LookupReader     = (*Store)(nil)
)
