// Package syncstore is the PostgreSQL adapter of MUR sync
// (internal/mursync): the cycle lock, jobs, aggregated records, batches,
// and the MURs' sync state (murs.sync_status, aggregate_id,
// sync_batch_id, sync_error). Every change that must not be seen half
// done is one transaction whose statements check that what they change
// is still in the state they expect; when it is not, the transaction
// rolls back with mursync.ErrConcurrentChange (or ErrAnswered) and
// nothing changed.
package syncstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/store"
)

// Store is MUR sync's storage.
type Store struct {
	db   *store.Store
	pool *pgxpool.Pool
	// LockPoll is how often a waiting Lock tries again; 0 means 200ms.
	LockPoll time.Duration

	mu sync.Mutex
	// locked holds the connection of each client whose cycle lock this
	// Store holds. A cycle's aggregated records and batches are
	// committed on that connection: if it is lost, the lock goes with it
	// and so does the transaction, so no two cycles can ever commit
	// records of the same MURs.
	locked map[string]*pgxpool.Conn
}

// New returns MUR sync's storage on db.
func New(db *store.Store) *Store { return &Store{db: db, pool: db.Pool()} }

var (
	_ mursync.OpsStore  = (*Store)(nil)
	_ mursync.SendStore = (*Store)(nil)
	_ mursync.Reader    = (*Store)(nil)
)

// lockKey is the advisory lock of a client's cycles.
func lockKey(client string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("vivace.mursync.cycle\x00" + client))
	return int64(h.Sum64())
}

// Lock takes the client's cycle lock: a session advisory lock on a
// connection kept out of the pool until unlock. The lock goes with the
// connection, so a process that dies frees it at once, and every replica
// on the database sees it. (A connection pooler in transaction mode
// would break this; connect the sync to PostgreSQL directly or in
// session mode.)
func (s *Store) Lock(ctx context.Context, client string, wait bool) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := lockKey(client)
	poll := s.LockPoll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			conn.Release()
			return nil, err
		}
		if ok {
			break
		}
		if !wait {
			conn.Release()
			return nil, mursync.ErrBusy
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, fmt.Errorf("%w (waited until %v)", mursync.ErrBusy, ctx.Err())
		case <-time.After(poll):
		}
	}
	s.mu.Lock()
	if s.locked == nil {
		s.locked = map[string]*pgxpool.Conn{}
	}
	s.locked[client] = conn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.locked, client)
		s.mu.Unlock()
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var released bool
		if err := conn.QueryRow(uctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&released); err != nil || !released {
			// A connection whose lock state is unknown must not go back
			// to the pool holding it: closing it frees the lock.
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}

// ErrNotLocked is returned for a cycle's write without the client's
// cycle lock.
var ErrNotLocked = errors.New("the client's sync cycle lock is not held")

// lockedTx runs fn in a transaction on the connection that holds the
// client's cycle lock, again after a deadlock or serialisation failure.
func (s *Store) lockedTx(ctx context.Context, client string, fn func(pgx.Tx) error) error {
	s.mu.Lock()
	conn := s.locked[client]
	s.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("client %s: %w", client, ErrNotLocked)
	}
	return retryTx(ctx, func() error { return pgx.BeginFunc(ctx, conn, fn) })
}

// inTx runs fn in a transaction, again when PostgreSQL reports a
// deadlock or a serialisation failure.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return retryTx(ctx, func() error { return pgx.BeginFunc(ctx, s.pool, fn) })
}

// retryTx runs a transaction, again when PostgreSQL reports a deadlock or
// a serialisation failure.
func retryTx(ctx context.Context, run func() error) error {
	return store.RetryRaces(ctx, nil, func(context.Context) error { return run() })
}

// StartJob records a running job, ending the client's jobs left running
// by a process that is gone (the caller holds the client's lock, so no
// live cycle owns them).
func (s *Store) StartJob(ctx context.Context, j mursync.Job) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sync_jobs SET status = 'failed', finished_at = $2,
				error = 'interrupted: the process running it ended before it did'
			WHERE client = $1 AND status = 'running'`, j.Client, j.StartedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sync_jobs (job_id, client, trigger, requested_by, owner, status, started_at)
			VALUES ($1, $2, $3, nullif($4, ''), $5, 'running', $6)`,
			j.ID, j.Client, string(j.Trigger), j.RequestedBy, j.Owner, j.StartedAt)
		return err
	})
}

// FinishJob records a job's end; its counts are the batches' to move.
func (s *Store) FinishJob(ctx context.Context, j mursync.Job) error {
	_, err := s.pool.Exec(ctx, `UPDATE sync_jobs SET status = $2, finished_at = $3, error = nullif($4, '') WHERE job_id = $1`,
		j.ID, string(j.Status), j.FinishedAt, j.Error)
	return err
}

const jobColumns = `job_id::text, client, trigger, coalesce(requested_by, ''), owner, status, started_at, finished_at,
	aggregates, batches, murs, synced, failed, coalesce(error, '')`

func scanJob(r pgx.Row) (mursync.Job, error) {
	var j mursync.Job
	var trigger, status string
	err := r.Scan(&j.ID, &j.Client, &trigger, &j.RequestedBy, &j.Owner, &status, &j.StartedAt, &j.FinishedAt,
		&j.Aggregates, &j.Batches, &j.MURs, &j.Synced, &j.Failed, &j.Error)
	j.Trigger, j.Status = mursync.Trigger(trigger), mursync.JobStatus(status)
	j.StartedAt = j.StartedAt.UTC()
	if j.FinishedAt != nil {
		t := j.FinishedAt.UTC()
		j.FinishedAt = &t
	}
	return j, err
}

// Progress reads a job and how far its batches are.
func (s *Store) Progress(ctx context.Context, jobID string) (mursync.Progress, error) {
	var p mursync.Progress
	var err error
	if p.Job, err = scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM sync_jobs WHERE job_id = $1`, jobID)); err != nil {
		return p, fmt.Errorf("job %s: %w", jobID, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT batch_id::text, status, coalesce(failure, ''), coalesce(error_code, 0),
			coalesce(error_msg, ''), records
		FROM sync_batches WHERE job_id = $1 AND status NOT IN ('done') ORDER BY created_at, batch_id`, jobID)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	for rows.Next() {
		var f mursync.BatchFailure
		var status, failure string
		if err := rows.Scan(&f.BatchID, &status, &failure, &f.Code, &f.Message, &f.Records); err != nil {
			return p, err
		}
		if mursync.BatchStatus(status) == mursync.Failed {
			f.Failure = mursync.Failure(failure)
			p.Failures = append(p.Failures, f)
		} else {
			p.Open++
		}
	}
	return p, rows.Err()
}
