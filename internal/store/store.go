// Package store is the base of Vivace's PostgreSQL layer: the connection
// pool (Open, Shared), the schema migrations (Migrate and migrations/*.sql,
// one numbering for every subject), transactions and their retries, the
// classification of the server's errors, new ids and the COPY text
// format. The SQL of each subject lives in a package of its own built on
// this one: filestore (the file registry), usagestore (rating, MURs,
// exceptions), catalogstore (the feed and the catalog), rulestore (correlation
// groups and lookup tables).
// Nothing outside internal/store writes SQL.
package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultDSN is the database used when DATABASE_URL is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/vivace?sslmode=disable"

// Store wraps a connection pool.
type Store struct {
	pool *pgxpool.Pool
	dsn  string
}

// Open connects to dsn and checks the connection.
func Open(ctx context.Context, dsn string) (*Store, error) { return OpenWith(ctx, dsn, nil) }

// OpenWith is Open with configure, when not nil, given the pool's
// settings before it connects (tests watch the server's notices).
func OpenWith(ctx context.Context, dsn string, configure func(*pgxpool.Config)) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if configure != nil {
		configure(cfg)
	}
	if after := cfg.AfterConnect; after != nil {
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			if err := registerTypes(ctx, conn); err != nil {
				return err
			}
			return after(ctx, conn)
		}
	} else {
		cfg.AfterConnect = registerTypes
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redact(cfg.ConnConfig), err)
	}
	return &Store{pool: pool, dsn: dsn}, nil
}

// Pool is the connection pool, for the subject packages' statements.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func redact(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// shared keeps one pool per DSN for the processors of all streams in one
// process, so ten pipeline components do not open ten pools.
var shared struct {
	sync.Mutex
	m map[string]*sharedEntry
}

type sharedEntry struct {
	s    *Store
	refs int
}

// Shared returns a process-wide store for dsn; call the returned release
// function when done with it. The pool closes when its last user releases.
func Shared(ctx context.Context, dsn string) (*Store, func(), error) {
	shared.Lock()
	defer shared.Unlock()
	if shared.m == nil {
		shared.m = map[string]*sharedEntry{}
	}
	e, ok := shared.m[dsn]
	if !ok {
		s, err := Open(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		e = &sharedEntry{s: s}
		shared.m[dsn] = e
	}
	e.refs++
	var once sync.Once
	return e.s, func() {
		once.Do(func() {
			shared.Lock()
			defer shared.Unlock()
			e.refs--
			if e.refs == 0 {
				e.s.Close()
				delete(shared.m, dsn)
			}
		})
	}, nil
}
