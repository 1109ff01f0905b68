// Package store is Vivace's PostgreSQL layer: the schema migrations and
// every SQL statement the stages run. Nothing outside this package writes
// SQL.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// DefaultDSN is the database used when DATABASE_URL is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/vivace?sslmode=disable"

//go:embed migrations/*.sql
var migrations embed.FS

// Store wraps a connection pool.
type Store struct {
	pool *pgxpool.Pool
	dsn  string
}

// Open connects to dsn and checks the connection.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
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

// Pool exposes the underlying pool for packages that run their own
// transactions through this package's functions.
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

// Migrate applies every pending migration to the database at dsn. It is
// safe to run from several processes at once: a session advisory lock
// serialises them.
func Migrate(ctx context.Context, dsn string, logger *slog.Logger) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateDB(ctx, db, logger)
}

func migrateDB(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithTableName("vivace_schema_migrations"))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		var perr *goose.PartialError
		if errors.As(err, &perr) && perr.Failed != nil {
			return fmt.Errorf("migration %s failed: %w", perr.Failed.Source.Path, perr.Err)
		}
		return fmt.Errorf("migrate: %w", err)
	}
	if logger != nil {
		for _, r := range results {
			logger.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
		}
	}
	return nil
}
