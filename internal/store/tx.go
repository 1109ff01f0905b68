package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/retry"
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

// txRetry is how a transaction that lost a race is run again: five
// attempts at most, after a short pause that grows.
func txRetry(again func(error) bool) retry.Policy {
	return retry.Policy{First: 20 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: retry.DefaultJitter,
		Attempts: retryAttempts, Refused: func(err error) bool { return !Retryable(err) && (again == nil || !again(err)) }}
}

// RetryTx runs fn in a transaction like Tx, and runs it again from the
// start, after a short pause that grows with each attempt, when it fails
// with an error that Retryable or again (when not nil) reports: a
// transaction that lost a race with another. fn must be repeatable: it
// gets a fresh view each time. After five attempts the last error is
// returned.
func (s *Store) RetryTx(ctx context.Context, again func(error) bool, fn func(pgx.Tx) error) error {
	return RetryRaces(ctx, again, func(ctx context.Context) error { return s.Tx(ctx, fn) })
}

// RetryRaces runs run, a transaction, as RetryTx runs its: again while it
// fails with an error that Retryable or again (when not nil) reports, at
// most five times.
func RetryRaces(ctx context.Context, again func(error) bool, run func(context.Context) error) error {
	err := txRetry(again).Do(ctx, run)
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		return ex.Err
	}
	return err
}
