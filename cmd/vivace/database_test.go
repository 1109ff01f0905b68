package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
)

// otherDatabase is a DSN on the test server for a database that does not
// exist yet; it is dropped when the test ends.
func otherDatabase(t *testing.T, suffix string) string {
	t.Helper()
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("vivace_test_cmd_%s_%d", suffix, time.Now().UnixNano())
	u.Path = "/" + name
	dsn := u.String()
	t.Cleanup(func() {
		admin, err := adminDSN(dsn)
		if err != nil {
			t.Error(err)
			return
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	return dsn
}

// TestOneDefaultDatabase: without DATABASE_URL, every command and vivace
// dev work on the same database.
func TestOneDefaultDatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	if got := databaseDSN(); got != store.DefaultDSN {
		t.Fatalf("databaseDSN() = %q, want store.DefaultDSN %q", got, store.DefaultDSN)
	}
	name := targetOf(store.DefaultDSN).Name
	if name != "vivace" {
		t.Errorf("the default database is %q, want vivace", name)
	}
	for _, f := range devCommand().Flags {
		if f.Names()[0] == "database" {
			if got := f.(interface{ GetValue() string }).GetValue(); got != name {
				t.Errorf("vivace dev --database defaults to %q, the other commands to %q", got, name)
			}
		}
	}
	if !strings.Contains(migrateCommand().Description, store.DefaultDSN) {
		t.Errorf("vivace migrate --help does not name the default database:\n%s", migrateCommand().Description)
	}
}

func TestDatabaseErrorsNameTheDatabase(t *testing.T) {
	ctx := context.Background()
	missing := otherDatabase(t, "missing")
	t.Setenv("DATABASE_URL", missing)
	name := targetOf(missing).Name
	err := withStore(ctx, func(*store.Store) error { return nil })
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("database %q on ", name)) ||
		!strings.Contains(err.Error(), "does not exist: create it with `vivace migrate --create`") {
		t.Fatalf("a missing database: %v", err)
	}

	// A database without the schema: vivace lookup list before vivace migrate.
	if _, err := ensureDatabase(ctx, missing); err != nil {
		t.Fatal(err)
	}
	err = withStore(ctx, func(st *store.Store) error {
		_, err := rulestore.New(st).ListLookups(ctx, "")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("database %q on ", name)) ||
		!strings.Contains(err.Error(), "has no Vivace schema") || !strings.Contains(err.Error(), "run `vivace migrate`") {
		t.Fatalf("a database without the schema: %v", err)
	}
}

func TestEnsureDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := otherDatabase(t, "ensure")
	created, err := ensureDatabase(ctx, dsn)
	if err != nil || !created {
		t.Fatalf("first ensureDatabase: created %v, %v", created, err)
	}
	if created, err = ensureDatabase(ctx, dsn); err != nil || created {
		t.Fatalf("second ensureDatabase: created %v, %v; want an existing database left alone", created, err)
	}
	bad := strings.Replace(pgtest.DSN(t), "postgres@", "no_such_role_docs@", 1)
	if _, err := ensureDatabase(ctx, bad); err == nil || !strings.Contains(err.Error(), "no_such_role_docs") {
		t.Fatalf("a refused login: %v", err)
	}
}

// TestDevCreatesDatabaseURLsDatabase: vivace dev with DATABASE_URL naming a
// database that does not exist creates it.
func TestDevCreatesDatabaseURLsDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := otherDatabase(t, "dev")
	t.Setenv("DATABASE_URL", dsn)
	got, stop, err := devDatabase(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), t.TempDir(), "unused", false)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got != dsn {
		t.Errorf("dev uses %q, want DATABASE_URL %q as given", got, dsn)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("the database was not created: %v", err)
	}
	_ = conn.Close(ctx)
}

func TestAdminDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@db:5433/vivace?sslmode=disable": "postgres://u:p@db:5433/postgres?sslmode=disable",
		"host=db dbname=vivace":                         "host=db dbname=vivace dbname=postgres",
	} {
		got, err := adminDSN(in)
		if err != nil || got != want {
			t.Errorf("adminDSN(%q) = %q, %v; want %q", in, got, err, want)
		}
		if n := targetOf(got).Name; n != "postgres" {
			t.Errorf("adminDSN(%q) names database %q", in, n)
		}
	}
}
