package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tx runs fn in a transaction and commits it; an error from fn rolls it
// back and is returned.
func (s *Store) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// ReadTx runs fn in a read-only transaction at repeatable read: every
// statement fn runs sees the same snapshot.
func (s *Store) ReadTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// retryAttempts is how often RetryTx runs a transaction at most.
const retryAttempts = 5

// RetryTx runs fn in a transaction like Tx, and runs it again from the
// start, after a short pause that grows with each attempt, when it fails
// with an error that Retryable or again (when not nil) reports: a
// transaction that lost a race with another. fn must be repeatable: it
// gets a fresh view each time. After five attempts the last error is
// returned.
func (s *Store) RetryTx(ctx context.Context, again func(error) bool, fn func(pgx.Tx) error) error {
	var err error
	for attempt := range retryAttempts {
		if err = s.Tx(ctx, fn); err == nil || !(Retryable(err) || again != nil && again(err)) {
			return err
		}
		if attempt == retryAttempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return err
}
