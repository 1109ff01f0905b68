package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Every subject's schema is here, in one numbering: a subject package adds
// its tables as the next migration.
//
//go:embed migrations/*.sql
var migrations embed.FS

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

// SchemaVersions reports the database's schema version and the newest
// this binary carries, for a process that must not run on a schema older
// than its own (vivace serve never migrates).
func SchemaVersions(ctx context.Context, dsn string) (current, target int64, err error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, 0, fmt.Errorf("database url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, 0, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithTableName("vivace_schema_migrations"))
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: %w", err)
	}
	return p.GetVersions(ctx)
}
