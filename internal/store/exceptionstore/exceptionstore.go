// Package exceptionstore is the storage of working exceptions
// (exceptions.Store): reading them one at a time and by the page, their
// counts, edits, claiming them for a reprocess, discarding them and the
// bulk actions' jobs. Every change writes its audit entries in its own
// transaction.
package exceptionstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/auditstore"
)

// Store is the exceptions' storage over a database.
type Store struct{ db *store.Store }

// New returns the exceptions' storage of db.
func New(db *store.Store) *Store { return &Store{db: db} }

var _ exceptions.Store = (*Store)(nil)

const columns = `x.exception_id::text, x.client, x.file_id::text, x.line, x.part, coalesce(x.record_id, ''),
	x.stage, x.code, coalesce(x.field, ''), x.message, x.status, x.attempts, x.record, x.created_at, x.updated_at,
	x.arrived, x.edited, coalesce(x.edited_by, ''), x.edited_at, coalesce(x.resolution, ''), coalesce(x.reason, ''),
	x.superseded_file::text, x.superseded_line, x.superseded_part`

func scan(row pgx.Row) (exceptions.Listed, error) {
	var l exceptions.Listed
	e, w := &l.Exception, &l.Work
	var arrived, edited []byte
	var supFile *string
	var supLine *int64
	var supPart *int32
	err := row.Scan(&e.ExceptionID, &e.Client, &e.FileID, &e.Line, &e.Part, &e.RecordID, &e.Stage, &e.Code,
		&e.Field, &e.Message, &e.Status, &e.Attempts, &e.Record, &e.CreatedAt, &e.UpdatedAt,
		&arrived, &edited, &w.EditedBy, &w.EditedAt, &w.Resolution, &w.Reason, &supFile, &supLine, &supPart)
	if err != nil {
		return l, err
	}
	if len(edited) > 0 {
		w.Edited = edited
	}
	if len(arrived) > 0 {
		w.Arrived = arrived
	}
	if supFile != nil {
		p := exceptions.Position{FileID: *supFile}
		if supLine != nil {
			p.Line = *supLine
		}
		if supPart != nil {
			p.Part = int(*supPart)
		}
		w.SupersededBy = &p
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return l, nil
}

// Exception returns one exception with its work.
func (s *Store) Exception(ctx context.Context, id string) (exceptions.Exception, exceptions.Work, error) {
	if !ids.Valid(id) {
		return exceptions.Exception{}, exceptions.Work{}, exceptions.ErrNotFound
	}
	l, err := scan(s.db.Pool().QueryRow(ctx, `SELECT `+columns+` FROM exceptions x WHERE x.exception_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return l.Exception, l.Work, exceptions.ErrNotFound
	}
	if err != nil {
		return l.Exception, l.Work, fmt.Errorf("exception %s: %w", id, err)
	}
	return l.Exception, l.Work, nil
}

// History returns the audit entries of an exception, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]auth.AuditEntry, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT at, actor, action, target, coalesce(client, ''),
			coalesce(before::text, ''), coalesce(after::text, '')
		FROM audit_log WHERE target = $1 ORDER BY at, audit_id`, "exception:"+id)
	if err != nil {
		return nil, fmt.Errorf("exception history: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.AuditEntry, error) {
		var e auth.AuditEntry
		var before, after string
		err := r.Scan(&e.At, &e.Actor, &e.Action, &e.Target, &e.Client, &before, &after)
		e.At = e.At.UTC()
		if before != "" {
			e.Before = json.RawMessage(before)
		}
		if after != "" {
			e.After = json.RawMessage(after)
		}
		return e, err
	})
}

// where builds the conditions of a filter, numbering parameters from
// len(args)+1. Only the conditions given are written, so that the planner
// sees what it can use an index for.
func where(f exceptions.Filter, args []any) ([]string, []any) {
	var conds []string
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Client != "" {
		add("x.client = ?", f.Client)
	}
	if len(f.Clients) > 0 {
		add("x.client = ANY(?::text[])", f.Clients)
	}
	if f.FileID != "" {
		add("x.file_id = ?::uuid", f.FileID)
	}
	if f.Stage != "" {
		add("x.stage = ?", f.Stage)
	}
	if f.Code != "" {
		add("x.code = ?", string(f.Code))
	}
	if f.Status != "" {
		add("x.status = ?", string(f.Status))
	}
	if f.AccountID != "" {
		add("x.record->>'account_id' = ?", f.AccountID)
	}
	// The time range is also a range of exception ids (time ordered, made
	// by the process that stored the exception), which the list's indexes
	// end with: a page of a range long past reads that range only. The id
	// bounds leave clockSkew for the clocks of that process and of the
	// database; created_at decides.
	if f.From != nil {
		add("x.created_at >= ?", *f.From)
		add("x.exception_id >= ?::uuid", ids.At(f.From.Add(-clockSkew)))
	}
	if f.To != nil {
		add("x.created_at < ?", *f.To)
		add("x.exception_id < ?::uuid", ids.At(f.To.Add(clockSkew)))
	}
	return conds, args
}

// clockSkew is how far apart the clocks that made an exception's id and
// its created_at may be.
const clockSkew = 10 * time.Minute

// validFilter refuses a file id that is not one (it would fail the
// statement); such a filter selects nothing.
func validFilter(f exceptions.Filter) bool { return f.FileID == "" || ids.Valid(f.FileID) }

// Exceptions returns a page: newest first (exception ids are time
// ordered) keyed by exception id, or for one file in line order keyed by
// line and part (a cursor "L<line>.<part>"). A list over several clients
// is one index scan per client merged, not a sort of all their rows.
func (s *Store) Exceptions(ctx context.Context, q exceptions.Query) (exceptions.Page, error) {
	var page exceptions.Page
	if !validFilter(q.Filter) {
		return page, nil
	}
	byLine := q.Filter.FileID != ""
	f := q.Filter
	clients := f.Clients
	if f.Client != "" || len(clients) == 1 {
		if f.Client == "" {
			f.Client = clients[0]
		}
		clients = nil
	}
	f.Clients = nil
	conds, args := where(f, nil)
	if len(q.IDs) > 0 {
		var valid []string
		for _, id := range q.IDs {
			if ids.Valid(id) {
				valid = append(valid, id)
			}
		}
		args = append(args, valid)
		conds = append(conds, "x.exception_id = ANY($"+strconv.Itoa(len(args))+"::uuid[])")
	}
	if q.After != "" {
		cond, vals, ok := afterCursor(q.After, byLine, len(args))
		if !ok {
			return page, &exceptions.Refused{Field: "after", Reason: fmt.Sprintf("after: %q is not a cursor of this list", q.After)}
		}
		args = append(args, vals...)
		conds = append(conds, cond)
	}
	order := ` ORDER BY x.exception_id DESC`
	if byLine {
		order = ` ORDER BY x.line, x.part`
	}
	args = append(args, q.Limit+1)
	limit := ` LIMIT $` + strconv.Itoa(len(args))
	one := func(extra string) string {
		c := conds
		if extra != "" {
			c = append(slices.Clip(c), extra)
		}
		sql := `SELECT ` + columns + ` FROM exceptions x`
		if len(c) > 0 {
			sql += ` WHERE ` + strings.Join(c, " AND ")
		}
		return sql + order + limit
	}
	var sql string
	if len(clients) > 1 {
		// Each client's page from its own index, merged.
		parts := make([]string, len(clients))
		for i, c := range clients {
			args = append(args, c)
			parts[i] = "(" + one("x.client = $"+strconv.Itoa(len(args))) + ")"
		}
		sql = `SELECT * FROM (` + strings.Join(parts, " UNION ALL ") + `) x` + strings.ReplaceAll(order, "x.", "") + limit
	} else {
		sql = one("")
	}
	var items []exceptions.Listed
	err := s.inOrder(ctx, len(q.IDs) == 0, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (exceptions.Listed, error) { return scan(r) })
		return err
	})
	if err != nil {
		return page, fmt.Errorf("list exceptions: %w", err)
	}
	if len(items) > q.Limit {
		items = items[:q.Limit]
		last := items[len(items)-1]
		page.Next = last.ExceptionID
		if byLine {
			page.Next = fmt.Sprintf("L%d.%d", last.Line, last.Part)
		}
	}
	page.Items = items
	return page, nil
}

// afterCursor is the condition of a page after cursor: an exception id
// (newest first) or, for one file, "L<line>.<part>".
func afterCursor(cursor string, byLine bool, n int) (string, []any, bool) {
	if !byLine {
		if !ids.Valid(cursor) {
			return "", nil, false
		}
		return "x.exception_id < $" + strconv.Itoa(n+1) + "::uuid", []any{cursor}, true
	}
	l, p, ok := strings.Cut(strings.TrimPrefix(cursor, "L"), ".")
	line, err1 := strconv.ParseInt(l, 10, 64)
	part, err2 := strconv.Atoi(p)
	if !ok || !strings.HasPrefix(cursor, "L") || err1 != nil || err2 != nil {
		return "", nil, false
	}
	return fmt.Sprintf("(x.line, x.part) > ($%d::bigint, $%d::int)", n+1, n+2), []any{line, part}, true
}

// CountExceptions counts by code and stage.
func (s *Store) CountExceptions(ctx context.Context, f exceptions.Filter) ([]exceptions.Count, error) {
	if !validFilter(f) {
		return nil, nil
	}
	conds, args := where(f, nil)
	sql := `SELECT x.code, x.stage, count(*) FROM exceptions x`
	if len(conds) > 0 {
		sql += ` WHERE ` + strings.Join(conds, " AND ")
	}
	sql += ` GROUP BY x.code, x.stage ORDER BY x.code, x.stage`
	rows, err := s.db.Pool().Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("count exceptions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (exceptions.Count, error) {
		var c exceptions.Count
		err := r.Scan(&c.Code, &c.Stage, &c.N)
		return c, err
	})
}

// SaveEdit stores an edit of an open exception whose edited record is
// still before.
func (s *Store) SaveEdit(ctx context.Context, id string, before, edited json.RawMessage, a auth.AuditEntry) (exceptions.Exception, exceptions.Work, error) {
	var l exceptions.Listed
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		var b *string
		if len(before) > 0 {
			t := string(before)
			b = &t
		}
		var err error
		l, err = scan(tx.QueryRow(ctx, `UPDATE exceptions x SET edited = $2::jsonb, edited_by = $3, edited_at = now(), updated_at = now()
			WHERE x.exception_id = $1 AND x.status = 'open' AND x.edited IS NOT DISTINCT FROM $4::jsonb
			RETURNING `+columns, id, string(edited), a.Actor, b))
		if errors.Is(err, pgx.ErrNoRows) {
			return &exceptions.Refused{Reason: "the exception changed meanwhile (edited, reprocessed or discarded): look at it again"}
		}
		if err != nil {
			return fmt.Errorf("edit exception %s: %w", id, err)
		}
		return auditstore.Insert(ctx, tx, a)
	})
	return l.Exception, l.Work, err
}

// ClaimOpen marks the open ones among ids reprocessing and audits each.
func (s *Store) ClaimOpen(ctx context.Context, ids []string, actor string) ([]exceptions.Listed, error) {
	var out []exceptions.Listed
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		if err := probes(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH u AS (
				UPDATE exceptions x SET status = 'reprocessing', attempts = x.attempts + 1, updated_at = now()
				FROM (`+lockListed+`) p
				WHERE x.exception_id = p.exception_id
				RETURNING `+columns+`),
			a AS (
				INSERT INTO audit_log (actor, action, target, client, before, after)
				SELECT $2, 'exception.reprocess', 'exception:' || u.exception_id, u.client,
					jsonb_build_object('status', 'open', 'attempts', u.attempts - 1),
					jsonb_build_object('status', 'reprocessing', 'attempts', u.attempts)
				FROM u)
			SELECT * FROM u ORDER BY 1`, ids, actor)
		if err != nil {
			return fmt.Errorf("claim exceptions: %w", err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (exceptions.Listed, error) { return scan(r) })
		return err
	})
	return out, err
}

// Reopen puts reprocessing exceptions back to open, taking back the
// attempt their claim counted (their record was not sent).
func (s *Store) Reopen(ctx context.Context, ids []string, actor, why string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.db.Tx(ctx, func(tx pgx.Tx) error {
		if err := probes(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `WITH u AS (
				UPDATE exceptions x SET status = 'open', attempts = x.attempts - 1, updated_at = now()
				FROM (`+strings.Replace(lockListed, "'open'", "'reprocessing'", 1)+`) p
				WHERE x.exception_id = p.exception_id
				RETURNING x.exception_id, x.client, x.attempts)
			INSERT INTO audit_log (actor, action, target, client, before, after)
			SELECT $2, 'exception.reopen', 'exception:' || u.exception_id, u.client,
				jsonb_build_object('status', 'reprocessing', 'attempts', u.attempts + 1),
				jsonb_build_object('status', 'open', 'attempts', u.attempts, 'why', $3::text)
			FROM u`, ids, actor, why)
		if err != nil {
			return fmt.Errorf("reopen exceptions: %w", err)
		}
		return nil
	})
}

// Discard marks the open ones among ids discarded.
func (s *Store) Discard(ctx context.Context, ids []string, actor, reason string) ([]string, error) {
	var out []string
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		if err := probes(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH u AS (
				UPDATE exceptions x SET status = 'discarded', resolution = 'discarded', reason = $3, updated_at = now()
				FROM (`+lockListed+`) p
				WHERE x.exception_id = p.exception_id
				RETURNING x.exception_id, x.client),
			a AS (
				INSERT INTO audit_log (actor, action, target, client, before, after)
				SELECT $2, 'exception.discard', 'exception:' || u.exception_id, u.client,
					jsonb_build_object('status', 'open'), jsonb_build_object('status', 'discarded', 'reason', $3::text)
				FROM u)
			SELECT exception_id::text FROM u ORDER BY 1`, ids, actor, reason)
		if err != nil {
			return fmt.Errorf("discard exceptions: %w", err)
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return out, err
}

// SelectIDs returns ids of open exceptions f selects, in id order (for
// one file, in line order), after the cursor after, and the cursor of
// the next call.
func (s *Store) SelectIDs(ctx context.Context, f exceptions.Filter, after string, limit int) ([]string, string, error) {
	if !validFilter(f) {
		return nil, "", nil
	}
	f.Status = exceptions.Open
	if f.Client == "" && len(f.Clients) == 1 {
		f.Client, f.Clients = f.Clients[0], nil
	}
	byLine := f.FileID != ""
	conds, args := where(f, nil)
	order := ` ORDER BY x.exception_id`
	if byLine {
		order = ` ORDER BY x.line, x.part`
	}
	if after != "" {
		if byLine {
			cond, vals, ok := afterCursor(after, true, len(args))
			if !ok {
				return nil, "", fmt.Errorf("select exceptions: cursor %q", after)
			}
			conds, args = append(conds, cond), append(args, vals...)
		} else {
			args = append(args, after)
			conds = append(conds, "x.exception_id > $"+strconv.Itoa(len(args))+"::uuid")
		}
	}
	args = append(args, limit)
	var out []string
	next := ""
	err := s.inOrder(ctx, true, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT x.exception_id::text, x.line, x.part FROM exceptions x WHERE `+strings.Join(conds, " AND ")+
			order+` LIMIT $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var line int64
			var part int
			if err := rows.Scan(&id, &line, &part); err != nil {
				return err
			}
			out = append(out, id)
			next = id
			if byLine {
				next = fmt.Sprintf("L%d.%d", line, part)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", fmt.Errorf("select exceptions: %w", err)
	}
	return out, next, nil
}

// inOrder runs fn in a read-only transaction in which, when ordered, the
// planner may only read an index in the list's order and stop at the
// page's end. Without statistics it guesses that a filter leaves a row or
// two and would rather collect them all and sort: for a filter that
// leaves a hundred thousand that is a hundred thousand rows read for a
// page of fifty.
func (s *Store) inOrder(ctx context.Context, ordered bool, fn func(pgx.Tx) error) error {
	return s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		if ordered {
			// jit off: a plan priced with a disabled node (the small sort
			// that merges several clients' pages) would otherwise be
			// compiled, which takes longer than the query.
			if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;
				SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL jit = off`); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// Clients returns the client of each existing exception of ids.
func (s *Store) Clients(ctx context.Context, list []string) (map[string]string, error) {
	var valid []string
	for _, id := range list {
		if ids.Valid(id) {
			valid = append(valid, id)
		}
	}
	out := map[string]string{}
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT x.exception_id::text, x.client FROM unnest($1::uuid[]) AS k(id)
		CROSS JOIN LATERAL (SELECT exception_id, client FROM exceptions WHERE exception_id = k.id OFFSET 0) x`, valid)
	if err != nil {
		return nil, fmt.Errorf("exceptions' clients: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, c string
		if err := rows.Scan(&id, &c); err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, rows.Err()
}

// lockListed locks the listed exceptions ($1) that are open, one probe
// of the primary key each: the status is checked on the row found (and
// again once it is locked, should another transaction have changed it),
// never used to find rows. Without statistics the planner would
// otherwise guess that few exceptions are open, read them all through a
// status index and compare each with every listed id: 25 s for 2,000 ids
// over 20,000 rows.
const lockListed = `SELECT e.exception_id FROM unnest($1::uuid[]) AS k(id)
	CROSS JOIN LATERAL (SELECT exception_id FROM exceptions WHERE exception_id = k.id AND status = 'open' FOR UPDATE) e`

// probes makes the rest of the transaction join the listed ids to the
// table by primary key, one probe each: without statistics the planner
// could otherwise hash or scan the table for a thousand ids.
func probes(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
		SET LOCAL enable_material = off; SET LOCAL enable_seqscan = off; SET LOCAL jit = off`)
	return err
}

// CreateJob stores a new job.
func (s *Store) CreateJob(ctx context.Context, j exceptions.Job) error {
	sel, err := json.Marshal(j.Select)
	if err != nil {
		return err
	}
	_, err = s.db.Pool().Exec(ctx, `INSERT INTO exception_jobs (job_id, action, actor, clients, selection, reason, status, started_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, $8, $8)`, j.ID, j.Action, j.Actor, j.Clients, sel, j.Reason, j.Status, j.Started)
	if err != nil {
		return fmt.Errorf("create exceptions job: %w", err)
	}
	return nil
}

// UpdateJob saves a job's progress.
func (s *Store) UpdateJob(ctx context.Context, j exceptions.Job) error {
	tag, err := s.db.Pool().Exec(ctx, `UPDATE exception_jobs SET status = $2, total = $3, done = $4, skipped = $5,
			error = nullif($6, ''), updated_at = $7, finished_at = $8
		WHERE job_id = $1 AND status = 'running'`, j.ID, j.Status, j.Total, j.Done, j.Skipped, j.Error, j.Updated, j.Finished)
	if err != nil {
		return fmt.Errorf("save exceptions job %s: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save exceptions job %s: %w", j.ID, exceptions.ErrJobStopped)
	}
	return nil
}

// FailStaleJobs marks failed the running jobs last saved before before.
func (s *Store) FailStaleJobs(ctx context.Context, before time.Time, why string) (int, error) {
	tag, err := s.db.Pool().Exec(ctx, `UPDATE exception_jobs SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
		WHERE status = 'running' AND updated_at < $1`, before, why)
	if err != nil {
		return 0, fmt.Errorf("interrupted exceptions jobs: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Job returns a job, or exceptions.ErrNotFound.
func (s *Store) Job(ctx context.Context, id string) (exceptions.Job, error) {
	var j exceptions.Job
	if !ids.Valid(id) {
		return j, exceptions.ErrNotFound
	}
	var sel []byte
	var reason, errText *string
	err := s.db.Pool().QueryRow(ctx, `SELECT job_id::text, action, actor, clients, selection, reason, status, total, done, skipped,
			error, started_at, updated_at, finished_at
		FROM exception_jobs WHERE job_id = $1`, id).Scan(&j.ID, &j.Action, &j.Actor, &j.Clients, &sel, &reason, &j.Status,
		&j.Total, &j.Done, &j.Skipped, &errText, &j.Started, &j.Updated, &j.Finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, exceptions.ErrNotFound
	}
	if err != nil {
		return j, fmt.Errorf("exceptions job %s: %w", id, err)
	}
	if err := json.Unmarshal(sel, &j.Select); err != nil {
		return j, fmt.Errorf("exceptions job %s: selection: %w", id, err)
	}
	if reason != nil {
		j.Reason = *reason
	}
	if errText != nil {
		j.Error = *errText
	}
	j.Started, j.Updated = j.Started.UTC(), j.Updated.UTC()
	if j.Finished != nil {
		t := j.Finished.UTC()
		j.Finished = &t
	}
	return j, nil
}
