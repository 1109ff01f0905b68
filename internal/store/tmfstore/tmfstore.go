// Package tmfstore is the SQL of TMF635 (docs/tmf635.md): usages read
// from MURs, exceptions and posted usages; posted usages taken into
// their client's api submission and handed to the ingest stage; hub
// subscriptions and the durable queue of their callbacks.
package tmfstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/tmf635"
	"vivace.dev/vivace/internal/usage"
)

// Store reads and writes TMF635's tables.
type Store struct{ db *store.Store }

// New returns the store on db.
func New(db *store.Store) *Store { return &Store{db: db} }

const murColumns = `mur_id, client, record_id, file_id::text, line, part, account_id, usage_type,
	quantity::text, usage_time, currency, gross_amount::text, discount_amount::text, net_amount::text,
	rate_detail::jsonb, qualifiers, attributes, rated_at, sync_status, aggregate_id::text, sync_batch_id::text, sync_error`

func scanMUR(row pgx.Row) (*murs.MUR, error) {
	var m murs.MUR
	err := row.Scan(&m.MURID, &m.Client, &m.RecordID, &m.FileID, &m.Line, &m.Part, &m.AccountID, &m.UsageType,
		&m.Quantity, &m.UsageTime, &m.Currency, &m.GrossAmount, &m.DiscountAmount, &m.NetAmount,
		&m.RateDetail, &m.Qualifiers, &m.Attributes, &m.RatedAt, &m.SyncStatus, &m.AggregateID, &m.SyncBatchID, &m.SyncError)
	return &m, err
}

const excColumns = `exception_id, client, file_id::text, line, part, coalesce(record_id, ''),
	stage, code, coalesce(field, ''), message, status, attempts, record, created_at, updated_at, edited`

func scanExc(row pgx.Row) (*exceptions.Exception, json.RawMessage, error) {
	var e exceptions.Exception
	var edited json.RawMessage
	err := row.Scan(&e.ExceptionID, &e.Client, &e.FileID, &e.Line, &e.Part, &e.RecordID, &e.Stage,
		&e.Code, &e.Field, &e.Message, &e.Status, &e.Attempts, &e.Record, &e.CreatedAt, &e.UpdatedAt, &edited)
	return &e, edited, err
}

// shownExc keeps the exceptions that are usages of their own: all but
// those resolved by becoming a MUR at their source (the MUR is the usage
// then). One superseded by another copy of its record id stays, rejected:
// its own record was never rated.
const shownExc = `NOT (status = 'resolved' AND resolution IS NOT DISTINCT FROM 'rated')`

// excStatus is an exception's TMF status in SQL (tmf635.StatusOf).
const excStatus = `CASE WHEN status = 'reprocessing' THEN 'recycled'
	WHEN status = 'resolved' AND resolution IS NOT DISTINCT FROM 'rated' THEN NULL ELSE 'rejected' END`

const postedColumns = `client, file_id::text, line, fields, body, received_at`

func scanPosted(row pgx.Row) (tmf635.Record, error) {
	var r tmf635.Record
	p := &tmf635.Posted{}
	err := row.Scan(&r.Client, &r.FileID, &r.Line, &p.Fields, &p.Body, &p.ReceivedAt)
	r.Posted = p
	return r, err
}

// Usage loads one usage by its source; store.ErrNotFound when no MUR,
// exception or posted usage is there. A discarded or resolved exception
// is not shown as one.
func (s *Store) Usage(ctx context.Context, fileID string, line int64, part int) (tmf635.Record, error) {
	r := tmf635.Record{FileID: fileID, Line: line, Part: part}
	err := s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT client FROM files WHERE file_id = $1`, fileID).Scan(&r.Client); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		m, err := scanMUR(tx.QueryRow(ctx, `SELECT `+murColumns+` FROM murs WHERE file_id = $1 AND line = $2 AND part = $3`, fileID, line, part))
		switch {
		case err == nil:
			r.MUR = m
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		e, edited, err := scanExc(tx.QueryRow(ctx, `SELECT `+excColumns+` FROM exceptions
			WHERE client = $1 AND file_id = $2 AND line = $3 AND part = $4 AND `+shownExc+``, r.Client, fileID, line, part))
		switch {
		case err == nil:
			r.Exc, r.ExcEdited = e, edited
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if part == 0 {
			p, err := scanPosted(tx.QueryRow(ctx, `SELECT `+postedColumns+` FROM api_usage WHERE file_id = $1 AND line = $2`, fileID, line))
			switch {
			case err == nil:
				r.Posted = p.Posted
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
		}
		if r.MUR == nil && r.Exc == nil && r.Posted == nil {
			return store.ErrNotFound
		}
		return nil
	})
	return r, err
}

// List is a page of usages, in source order (file, line, part), and how
// many match in all. clients nil means every client.
func (s *Store) List(ctx context.Context, clients []string, f tmf635.Filter) ([]tmf635.Record, int64, error) {
	if len(f.Statuses) == 0 && len(f.UsageTypes) == 0 && len(f.Accounts) == 0 && f.From == nil && f.To == nil {
		return s.listByFile(ctx, clients, f.Offset, f.Limit)
	}
	return s.listFiltered(ctx, clients, f)
}

// listByFile pages through every usage of the clients a file at a time:
// the files' counts (moved in the transactions that store MURs and
// exceptions) say how many usages each file has, so whole files are
// skipped without reading their rows, and each file's rows are read by
// its own index (file, line, part) whatever the planner knows. The total
// is the sum of those counts.
func (s *Store) listByFile(ctx context.Context, clients []string, offset, limit int) ([]tmf635.Record, int64, error) {
	var out []tmf635.Record
	var total int64
	err := s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT file_id::text, client, source = 'api', exceptions = 0,
				murs + exceptions + CASE WHEN source = 'api' THEN greatest(coalesce(records, 0) - murs - exceptions - filtered, 0) ELSE 0 END
			FROM files WHERE status <> 'rejected' AND (coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1))
			ORDER BY file_id`, clients)
		if err != nil {
			return err
		}
		type file struct {
			id, client  string
			api, onlyMU bool
			n           int64
		}
		var fs []file
		for rows.Next() {
			var f file
			if err := rows.Scan(&f.id, &f.client, &f.api, &f.onlyMU, &f.n); err != nil {
				rows.Close()
				return err
			}
			fs = append(fs, f)
			total += f.n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		skip := int64(offset)
		for _, f := range fs {
			if len(out) >= limit {
				break
			}
			if f.n == 0 || skip >= f.n {
				skip -= f.n
				continue
			}
			if f.onlyMU && !f.api {
				// Only MURs: the database skips to the page itself.
				recs, err := fileMURs(ctx, tx, f.id, skip, limit-len(out))
				if err != nil {
					return err
				}
				skip = 0
				out = append(out, recs...)
				continue
			}
			want := int(skip) + limit - len(out)
			recs, err := fileUsages(ctx, tx, f.id, f.client, f.api, want)
			if err != nil {
				return err
			}
			if int(skip) >= len(recs) {
				skip = 0 // the counts ran ahead of the rows: nothing of this file to show
				continue
			}
			recs = recs[skip:]
			skip = 0
			out = append(out, recs[:min(len(recs), limit-len(out))]...)
		}
		return nil
	})
	return out, total, err
}

// fileMURs are n MURs of one file from the skip-th on, in line order.
func fileMURs(ctx context.Context, tx pgx.Tx, fileID string, skip int64, n int) ([]tmf635.Record, error) {
	rows, err := tx.Query(ctx, `SELECT `+murColumns+` FROM murs WHERE file_id = $1 ORDER BY line, part OFFSET $2 LIMIT $3`, fileID, skip, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tmf635.Record
	for rows.Next() {
		m, err := scanMUR(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tmf635.Record{Client: m.Client, FileID: m.FileID, Line: m.Line, Part: m.Part, MUR: m})
	}
	return out, rows.Err()
}

// fileUsages are the first n usages of one file, in line order: its MURs,
// its exceptions not resolved, and (for an api submission) its posted
// usages without an outcome yet.
func fileUsages(ctx context.Context, tx pgx.Tx, fileID, client string, api bool, n int) ([]tmf635.Record, error) {
	var out []tmf635.Record
	rows, err := tx.Query(ctx, `SELECT `+murColumns+` FROM murs WHERE file_id = $1 ORDER BY line, part LIMIT $2`, fileID, n)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		m, err := scanMUR(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, tmf635.Record{Client: m.Client, FileID: m.FileID, Line: m.Line, Part: m.Part, MUR: m})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT `+excColumns+` FROM exceptions WHERE file_id = $1 AND `+shownExc+`
		ORDER BY line, part LIMIT $2`, fileID, n)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		e, edited, err := scanExc(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, tmf635.Record{Client: e.Client, FileID: e.FileID, Line: e.Line, Part: e.Part, Exc: e, ExcEdited: edited})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if api {
		rows, err = tx.Query(ctx, `SELECT `+postedColumns+` FROM api_usage WHERE client = $1 AND file_id = $2 AND NOT settled
			ORDER BY client, file_id, line LIMIT $3`, client, fileID, n)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r, err := scanPosted(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	sortRecords(out)
	return out[:min(len(out), n)], nil
}

func sortRecords(out []tmf635.Record) {
	slices.SortFunc(out, func(a, b tmf635.Record) int {
		if c := strings.Compare(a.FileID, b.FileID); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return cmpInt(a.Line, b.Line)
		}
		return a.Part - b.Part
	})
}

// listFiltered lists with attribute filters: each kind of record is
// queried with the filters that apply to it and counted.
func (s *Store) listFiltered(ctx context.Context, clients []string, f tmf635.Filter) ([]tmf635.Record, int64, error) {
	want := func(st ...tmf635.Status) bool {
		if len(f.Statuses) == 0 {
			return true
		}
		for _, x := range st {
			if slices.Contains(f.Statuses, x) {
				return true
			}
		}
		return false
	}
	n := f.Offset + f.Limit
	var (
		out   []tmf635.Record
		total int64
	)
	err := s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		if want(tmf635.Rated, tmf635.Billed) {
			sync := ""
			switch {
			case want(tmf635.Rated) && !want(tmf635.Billed):
				sync = "AND sync_status <> 'synced'"
			case !want(tmf635.Rated) && want(tmf635.Billed):
				sync = "AND sync_status = 'synced'"
			}
			where := `(coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1))
				AND (coalesce(cardinality($2::text[]), 0) = 0 OR usage_type = ANY($2))
				AND (coalesce(cardinality($3::text[]), 0) = 0 OR account_id = ANY($3))
				AND ($4::timestamptz IS NULL OR usage_time >= $4) AND ($5::timestamptz IS NULL OR usage_time < $5) ` + sync
			args := []any{clients, f.UsageTypes, f.Accounts, f.From, f.To}
			rows, err := tx.Query(ctx, `SELECT `+murColumns+` FROM murs WHERE `+where+` ORDER BY file_id, line, part LIMIT $6`, append(args, n)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				m, err := scanMUR(rows)
				if err != nil {
					rows.Close()
					return err
				}
				out = append(out, tmf635.Record{Client: m.Client, FileID: m.FileID, Line: m.Line, Part: m.Part, MUR: m})
			}
			if err := rows.Err(); err != nil {
				return err
			}
			var c int64
			if sync == "" && len(f.UsageTypes) == 0 && len(f.Accounts) == 0 && f.From == nil && f.To == nil {
				// Every MUR of the clients: their files' counts, moved in
				// the transactions that store the MURs, not a count of
				// every row.
				err = tx.QueryRow(ctx, `SELECT coalesce(sum(murs), 0) FROM files
					WHERE coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1)`, clients).Scan(&c)
			} else {
				err = tx.QueryRow(ctx, `SELECT count(*) FROM murs WHERE `+where, args...).Scan(&c)
			}
			if err != nil {
				return err
			}
			total += c
		}
		if want(tmf635.Rejected, tmf635.Recycled) {
			statuses := []string{}
			for _, st := range []tmf635.Status{tmf635.Rejected, tmf635.Recycled} {
				if want(st) {
					statuses = append(statuses, string(st))
				}
			}
			field := func(name string) string {
				return fmt.Sprintf(`coalesce(edited->>'%[1]s', record->>'%[1]s')`, name)
			}
			where := excStatus + ` = ANY($6) AND (coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1))
				AND (coalesce(cardinality($2::text[]), 0) = 0 OR ` + field(usage.FieldUsageType) + ` = ANY($2))
				AND (coalesce(cardinality($3::text[]), 0) = 0 OR ` + field(usage.FieldAccountID) + ` = ANY($3))
				AND ($4::timestamptz IS NULL OR tmf_time(` + field(usage.FieldUsageTime) + `) >= $4)
				AND ($5::timestamptz IS NULL OR tmf_time(` + field(usage.FieldUsageTime) + `) < $5)`
			args := []any{clients, f.UsageTypes, f.Accounts, f.From, f.To, statuses}
			rows, err := tx.Query(ctx, `SELECT `+excColumns+` FROM exceptions WHERE `+where+` ORDER BY file_id, line, part LIMIT $7`, append(args, n)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				e, edited, err := scanExc(rows)
				if err != nil {
					rows.Close()
					return err
				}
				out = append(out, tmf635.Record{Client: e.Client, FileID: e.FileID, Line: e.Line, Part: e.Part, Exc: e, ExcEdited: edited})
			}
			if err := rows.Err(); err != nil {
				return err
			}
			var c int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM exceptions WHERE `+where, args...).Scan(&c); err != nil {
				return err
			}
			total += c
		}
		if want(tmf635.Received) {
			where := `NOT settled AND (coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1))
				AND (coalesce(cardinality($2::text[]), 0) = 0 OR fields->>'usage_type' = ANY($2))
				AND (coalesce(cardinality($3::text[]), 0) = 0 OR fields->>'account_id' = ANY($3))
				AND ($4::timestamptz IS NULL OR tmf_time(fields->>'usage_time') >= $4)
				AND ($5::timestamptz IS NULL OR tmf_time(fields->>'usage_time') < $5)`
			args := []any{clients, f.UsageTypes, f.Accounts, f.From, f.To}
			rows, err := tx.Query(ctx, `SELECT `+postedColumns+` FROM api_usage WHERE `+where+` ORDER BY file_id, line LIMIT $6`, append(args, n)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				r, err := scanPosted(rows)
				if err != nil {
					rows.Close()
					return err
				}
				out = append(out, r)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			var c int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_usage WHERE `+where, args...).Scan(&c); err != nil {
				return err
			}
			total += c
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	sortRecords(out)
	if f.Offset >= len(out) {
		return nil, total, nil
	}
	out = out[f.Offset:]
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, total, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Submit takes posted usages into their clients' api submissions of the
// day (a files row with source "api" and one line per usage), in one
// transaction: the usages, the submissions' record counts, and a
// UsageCreateEvent callback for each subscriber. It returns the usages'
// sources, in order; Complete has been called on each submission.
func (s *Store) Submit(ctx context.Context, subs []*tmf635.Submission, now time.Time) ([]tmf635.Record, error) {
	out := make([]tmf635.Record, len(subs))
	byClient := map[string][]int{}
	var order []string
	for i, sub := range subs {
		if _, ok := byClient[sub.Client]; !ok {
			order = append(order, sub.Client)
		}
		byClient[sub.Client] = append(byClient[sub.Client], i)
	}
	slices.Sort(order) // lock the submissions in one order
	day := now.UTC().Format("2006-01-02")
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		for _, client := range order {
			idx := byClient[client]
			name := "api-" + day
			var fileID string
			var last int64
			err := tx.QueryRow(ctx, `UPDATE files SET records = records + $3, status = 'processing', finished_at = NULL, updated_at = now()
				WHERE client = $1 AND sha256 = $2 AND source = 'api' AND status <> 'rejected'
				RETURNING file_id::text, records`, client, name, len(idx)).Scan(&fileID, &last)
			if errors.Is(err, pgx.ErrNoRows) {
				// The day's first: its submission, read already (there is no
				// file to read), and processing until its counts add up.
				fileID, last = ids.New(), int64(len(idx))
				_, err = tx.Exec(ctx, `INSERT INTO files (file_id, client, name, source, location, format, size_bytes, sha256,
						status, records, started_at, read_at)
					VALUES ($1, $2, $3, 'api', '', 'api', 0, $3, 'processing', $4, now(), now())
					ON CONFLICT DO NOTHING`, fileID, client, name, last)
				if err == nil {
					// Another request made it meanwhile: count into that one.
					err = tx.QueryRow(ctx, `SELECT file_id::text, records FROM files
						WHERE client = $1 AND sha256 = $2 AND source = 'api' AND status <> 'rejected'`, client, name).Scan(&fileID, &last)
					if err == nil && last < int64(len(idx)) {
						err = errors.New("api submission counts went backwards")
					}
				}
			}
			if err != nil {
				return fmt.Errorf("api submission of client %q: %w", client, err)
			}
			first := last - int64(len(idx)) + 1
			files, lines, fields, bodies := make([]string, len(idx)), make([]int64, len(idx)), make([][]byte, len(idx)), make([][]byte, len(idx))
			for k, i := range idx {
				line := first + int64(k)
				subs[i].Complete(fileID, line)
				f, err := json.Marshal(subs[i].Fields)
				if err != nil {
					return err
				}
				files[k], lines[k], fields[k], bodies[k] = fileID, line, f, subs[i].Body
				out[i] = tmf635.Record{Client: client, FileID: fileID, Line: line,
					Posted: &tmf635.Posted{Fields: subs[i].Fields, Body: subs[i].Body, ReceivedAt: now}}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO api_usage (file_id, line, client, fields, body)
				SELECT f, l, $5, d, b FROM unnest($1::uuid[], $2::bigint[], $3::jsonb[], $4::jsonb[]) AS t(f, l, d, b)`,
				files, lines, fields, bodies, client); err != nil {
				return fmt.Errorf("posted usages of client %q: %w", client, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO tmf_deliveries (hub_id, client, file_id, line, kind, status)
				SELECT h.hub_id, $1, f, l, 'create', 'received'
				FROM unnest($2::uuid[], $3::bigint[]) AS t(f, l) JOIN tmf_hubs h ON h.clients IS NULL OR $1 = ANY (h.clients)
				ORDER BY l, h.hub_id`, client, files, lines); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, PendingSignal)
		return err
	})
	return out, err
}

// Unsent returns up to limit posted usages not yet sent and without an
// outcome, oldest first.
func (s *Store) Unsent(ctx context.Context, limit int) ([]usage.Raw, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT client, file_id::text, line, fields FROM api_usage
		WHERE sent_at IS NULL AND NOT settled ORDER BY file_id, line LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []usage.Raw
	for rows.Next() {
		var r usage.Raw
		if err := rows.Scan(&r.Client, &r.FileID, &r.Line, &r.Fields); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkSent records that posted usages are on usage.raw. It never waits
// for a row: one that is locked is being settled by the transaction that
// stores its outcome (the triggers of migration 00034), and a settled
// usage is not sent again whether or not it is marked. Waiting instead
// would deadlock with those transactions, which lock their usages in
// their own order.
func (s *Store) MarkSent(ctx context.Context, rs []usage.Raw) error {
	files, lines := make([]string, len(rs)), make([]int64, len(rs))
	for i, r := range rs {
		files[i], lines[i] = r.FileID, r.Line
	}
	_, err := s.db.Pool().Exec(ctx, `UPDATE api_usage a SET sent_at = now()
		FROM (SELECT u.file_id, u.line FROM api_usage u JOIN unnest($1::uuid[], $2::bigint[]) AS t(f, l)
				ON u.file_id = t.f AND u.line = t.l
			WHERE u.sent_at IS NULL AND NOT u.settled FOR UPDATE OF u SKIP LOCKED) AS k
		WHERE a.file_id = k.file_id AND a.line = k.line`, files, lines)
	return err
}

// PendingSignal is the channel a Submit's commit is announced on, so the
// ingest stage sends posted usages at once instead of at its next poll.
const PendingSignal = "vivace_api_usage"

// Listen calls wake whenever posted usages are announced, until ctx ends.
func (s *Store) Listen(ctx context.Context, wake func()) error {
	conn, err := s.db.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+PendingSignal); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `UNLISTEN `+PendingSignal) }()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}

// UsageTypes lists the usage types of the clients' catalogs (nil: every
// client), by client and code.
func (s *Store) UsageTypes(ctx context.Context, clients []string, client, code string) ([]tmf635.UsageSpecification, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT client, entity_id, data, updated_at FROM catalog_entities
		WHERE entity = 'usage_type' AND NOT deleted AND (coalesce(cardinality($1::text[]), 0) = 0 OR client = ANY($1))
			AND ($2 = '' OR client = $2) AND ($3 = '' OR entity_id = $3)
		ORDER BY client, entity_id`, clients, client, code)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tmf635.UsageSpecification
	for rows.Next() {
		var c, id string
		var data []byte
		var at time.Time
		if err := rows.Scan(&c, &id, &data, &at); err != nil {
			return nil, err
		}
		var d struct {
			Unit        string `json:"unit"`
			Description string `json:"description"`
		}
		_ = json.Unmarshal(data, &d)
		desc := d.Description
		if d.Unit != "" {
			desc = strings.TrimSpace(desc + " (unit: " + d.Unit + ")")
		}
		out = append(out, tmf635.UsageSpecification{ID: tmf635.SpecID(c, id), Name: id, Description: desc,
			LifecycleStatus: "Active", LastUpdate: at.UTC().Format(time.RFC3339Nano), Type: "UsageSpecification"})
	}
	return out, rows.Err()
}

// CreateHub stores a subscription.
func (s *Store) CreateHub(ctx context.Context, h tmf635.Hub, by string) error {
	_, err := s.db.Pool().Exec(ctx, `INSERT INTO tmf_hubs (hub_id, callback, query, clients, created_by) VALUES ($1, $2, $3, $4, $5)`,
		h.ID, h.Callback, h.Query, h.Clients, by)
	return err
}

// GetHub loads a subscription; store.ErrNotFound when there is none.
func (s *Store) GetHub(ctx context.Context, id string) (tmf635.Hub, error) {
	var h tmf635.Hub
	err := s.db.Pool().QueryRow(ctx, `SELECT hub_id::text, callback, query, clients FROM tmf_hubs WHERE hub_id = $1`, id).
		Scan(&h.ID, &h.Callback, &h.Query, &h.Clients)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, store.ErrNotFound
	}
	return h, err
}

// DeleteHub removes a subscription and its waiting callbacks.
func (s *Store) DeleteHub(ctx context.Context, id string) error {
	_, err := s.db.Pool().Exec(ctx, `DELETE FROM tmf_hubs WHERE hub_id = $1`, id)
	return err
}

// Deliver sends the due callbacks, up to limit, each in its own
// transaction that holds its row: send is called with the row locked,
// and a nil error deletes it (acknowledged), any other puts it back for
// after the backoff. A callback waits while an earlier one of the same
// subscriber and usage is waiting, so each usage's callbacks arrive in
// order. It returns how many were tried.
func (s *Store) Deliver(ctx context.Context, limit int, send func(tmf635.Delivery) error) (int, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT d.seq FROM tmf_deliveries d
		WHERE d.next_at <= now() AND NOT EXISTS (SELECT 1 FROM tmf_deliveries e
			WHERE e.hub_id = d.hub_id AND e.file_id = d.file_id AND e.line = d.line AND e.part = d.part AND e.seq < d.seq)
		ORDER BY d.seq LIMIT $1`, limit)
	if err != nil {
		return 0, err
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, err
	}
	tried := 0
	for _, seq := range seqs {
		err := s.db.Tx(ctx, func(tx pgx.Tx) error {
			var d tmf635.Delivery
			err := tx.QueryRow(ctx, `SELECT d.seq, h.hub_id::text, h.callback, h.query, h.clients, d.kind, d.status, d.attempts,
					d.created_at, d.file_id::text, d.line, d.part
				FROM tmf_deliveries d JOIN tmf_hubs h USING (hub_id)
				WHERE d.seq = $1 AND d.next_at <= now() FOR UPDATE OF d SKIP LOCKED`, seq).
				Scan(&d.Seq, &d.Hub.ID, &d.Hub.Callback, &d.Hub.Query, &d.Hub.Clients, &d.Kind, &d.Status, &d.Attempts,
					&d.CreatedAt, &d.FileID, &d.Line, &d.Part)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // taken by another deliverer, or the hub is gone
			}
			if err != nil {
				return err
			}
			tried++
			if serr := send(d); serr != nil {
				msg := serr.Error()
				if len(msg) > 500 {
					msg = msg[:500]
				}
				_, err = tx.Exec(ctx, `UPDATE tmf_deliveries SET attempts = attempts + 1, last_error = $2,
					next_at = now() + $3::interval WHERE seq = $1`, seq, msg,
					fmt.Sprintf("%d milliseconds", tmf635.Backoff(d.Attempts+1).Milliseconds()))
				return err
			}
			_, err = tx.Exec(ctx, `DELETE FROM tmf_deliveries WHERE seq = $1`, seq)
			return err
		})
		if err != nil {
			return tried, err
		}
	}
	return tried, nil
}
