package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"vivace.dev/vivace/internal/devenv"
	"vivace.dev/vivace/internal/store"
)

// databaseURL is DATABASE_URL, or "" when it is not set.
func databaseURL() string { return os.Getenv("DATABASE_URL") }

// databaseDSN is the database every command works on: DATABASE_URL, else
// store.DefaultDSN (the vivace database on the local server, the one
// vivace dev uses).
func databaseDSN() string {
	if v := databaseURL(); v != "" {
		return v
	}
	return store.DefaultDSN
}

// dbTarget names a database and its server for messages: `database
// "vivace" on 127.0.0.1:5432`.
type dbTarget struct {
	Name, Server string
}

func targetOf(dsn string) dbTarget {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return dbTarget{Name: "?", Server: "?"}
	}
	return dbTarget{Name: cfg.Database, Server: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)}
}

func (t dbTarget) String() string { return fmt.Sprintf("database %q on %s", t.Name, t.Server) }

// PostgreSQL's codes for the answers dbError explains.
const (
	pgInvalidCatalogName = "3D000" // the database does not exist
	pgUndefinedTable     = "42P01"
)

// dbError puts the database in an error of a command that works on it,
// and says what to do about the common cases: a database that does not
// exist, one without Vivace's schema.
func dbError(dsn string, err error) error {
	if err == nil {
		return nil
	}
	t := targetOf(dsn)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgInvalidCatalogName:
			return fmt.Errorf("%s does not exist: create it with `vivace migrate --create` (or start `vivace dev`, which creates it), or point DATABASE_URL at another", t)
		case pgUndefinedTable:
			return fmt.Errorf("%s has no Vivace schema (%s): run `vivace migrate`", t, pgErr.Message)
		}
	}
	if strings.Contains(err.Error(), t.Name) {
		return err // it names the database already
	}
	return fmt.Errorf("%s: %w", t, err)
}

// adminDSN is dsn pointing at the same server's postgres database, from
// which another database can be created.
func adminDSN(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL: %w", err)
		}
		u.Path = "/postgres"
		return u.String(), nil
	}
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	return dsn + " dbname=postgres", nil // the last dbname given wins
}

// ensureDatabase creates the database dsn names when the server answers
// that it does not exist, connecting to the server's postgres database to
// do it. created reports whether it did.
func ensureDatabase(ctx context.Context, dsn string) (created bool, err error) {
	t := targetOf(dsn)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		_ = conn.Close(ctx)
		return false, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgInvalidCatalogName {
		return false, fmt.Errorf("%s: %w", t, err)
	}
	admin, err := adminDSN(dsn)
	if err != nil {
		return false, err
	}
	if _, err := devenv.EnsureDatabase(ctx, admin, t.Name); err != nil {
		return false, fmt.Errorf("%s does not exist and could not be created (%w): create it yourself (createdb %s) with a user that may", t, err, t.Name)
	}
	return true, nil
}

// withStore opens the commands' database for one command and closes it
// after; errors name the database.
func withStore(ctx context.Context, fn func(*store.Store) error) error {
	dsn := databaseDSN()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return dbError(dsn, err)
	}
	defer st.Close()
	return dbError(dsn, fn(st))
}
