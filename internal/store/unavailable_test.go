package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
)

// TestUnavailable: why the server does not answer, in a few words a
// readiness probe may show, for what a real pool reports.
func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nowhere, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5")
	if err == nil {
		err = nowhere.Ping(ctx)
		nowhere.Close()
	}
	closed := pgtest.Store(t)
	closed.Close()
	for _, c := range []struct {
		err  error
		want string
	}{
		{err, "connection refused"},
		{closed.Ping(ctx), "the connection pool is closed"},
		{fmt.Errorf("ping: %w", context.DeadlineExceeded), "no answer in time"},
		{&pgconn.PgError{Code: "57P03", Message: "the database system is shutting down"}, "starting up or shutting down"},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, "ended the connection"},
		{&pgconn.PgError{Code: "3D000"}, "the database does not exist"},
		{errors.New("something else"), "does not answer"},
	} {
		got := store.Unavailable(c.err)
		if !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
		for _, bad := range []string{"SQLSTATE", "dial", "pgx", "tcp"} {
			if strings.Contains(got, bad) {
				t.Errorf("%v: %q speaks the driver's words (%s)", c.err, got, bad)
			}
		}
	}
}
