// Package pgtest gives each test package a fresh PostgreSQL database on the
// server named by DATABASE_URL (default: the local server), migrated to the
// current schema, and drops it when the package's tests end.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/store"
)

// adminDSN is the database pgtest connects to without DATABASE_URL, to
// create and drop the test databases: the local server's postgres one.
const adminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	once    sync.Once
	dsn     string
	dbName  string
	baseDSN string
	initErr error
)

// Main runs a package's tests and drops its database afterwards, then runs
// the given clean-ups (Main ends the process, so deferred calls in TestMain
// would never run). Call it from TestMain:
// func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	defer func() {
		for _, c := range cleanups {
			c()
		}
		os.Exit(code)
	}()
	if dbName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := drop(ctx, baseDSN, dbName); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: drop database %s: %v\n", dbName, err)
		}
		cancel()
	}
}

// DSN returns the connection string of this package's database, creating
// and migrating it on first use.
func DSN(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		baseDSN = os.Getenv("DATABASE_URL")
		if baseDSN == "" {
			baseDSN = adminDSN
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		dbName = "vivace_test_" + packageName() + "_" + randomSuffix()
		if initErr = create(ctx, baseDSN, dbName); initErr != nil {
			dbName = ""
			return
		}
		dsn, initErr = withDatabase(baseDSN, dbName)
		if initErr != nil {
			return
		}
		initErr = store.Migrate(ctx, dsn, nil)
	})
	if initErr != nil {
		tb.Fatalf("test database (DATABASE_URL=%q): %v", redacted(baseDSN), initErr)
	}
	return dsn
}

// Store opens a store on this package's database, closed at test end.
func Store(tb testing.TB) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, DSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func create(ctx context.Context, base, name string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func drop(ctx context.Context, base, name string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// withDatabase swaps the database name in a URL or key=value DSN.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return base + " dbname=" + name, nil
}

func redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

func packageName() string {
	wd, err := os.Getwd()
	if err != nil {
		return "pkg"
	}
	b := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(filepath.Base(wd)))
	if len(b) > 20 {
		b = b[:20]
	}
	return b
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
