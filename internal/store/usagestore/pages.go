package usagestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/store"
)

// The exceptions' columns, filter and its arguments, shared by the export,
// the pages and the counts so that every list selects the same rows for
// the same filter.
const (
	exceptionColumns = `exception_id, client, file_id, line, part, coalesce(record_id, ''),
		stage, code, coalesce(field, ''), message, status, attempts, record, created_at, updated_at`
	exceptionWhere = `($1 = '' OR client = $1) AND ($2 = '' OR file_id::text = $2) AND ($3 = '' OR stage = $3)
		AND ($4 = '' OR code = $4) AND ($5 = '' OR status = $5)
		AND (coalesce(cardinality($6::text[]), 0) = 0 OR client = ANY($6))
		AND ($7 = '' OR record->>'account_id' = $7)
		AND ($8::timestamptz IS NULL OR created_at >= $8) AND ($9::timestamptz IS NULL OR created_at < $9)`
)

func exceptionArgs(f exceptions.Filter) []any {
	return []any{f.Client, f.FileID, f.Stage, f.Code, f.Status, f.Clients, f.AccountID, f.From, f.To}
}

func scanException(r pgx.Row) (exceptions.Exception, error) {
	var e exceptions.Exception
	err := r.Scan(&e.ExceptionID, &e.Client, &e.FileID, &e.Line, &e.Part, &e.RecordID, &e.Stage,
		&e.Code, &e.Field, &e.Message, &e.Status, &e.Attempts, &e.Record, &e.CreatedAt, &e.UpdatedAt)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, err
}

// ListExceptions returns a page of the exceptions f selects, newest first
// (by exception id, which sorts by time). A cursor that is not an id
// starts nowhere: it is refused rather than read as the first page.
func (s *Store) ListExceptions(ctx context.Context, f exceptions.Filter, p exceptions.Window) ([]exceptions.Exception, error) {
	if p.After != "" && !ids.Valid(p.After) {
		return nil, fmt.Errorf("cursor %q: not a place in this list", p.After)
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT `+exceptionColumns+` FROM exceptions WHERE `+exceptionWhere+`
			AND ($10 = '' OR exception_id < $10::uuid)
		ORDER BY exception_id DESC LIMIT $11`, append(exceptionArgs(f), p.After, p.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (exceptions.Exception, error) { return scanException(r) })
}

// TallyExceptions counts the exceptions f selects by code and stage.
func (s *Store) TallyExceptions(ctx context.Context, f exceptions.Filter) ([]exceptions.Tally, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT code, stage, count(*) FROM exceptions WHERE `+exceptionWhere+`
		GROUP BY code, stage ORDER BY code, stage`, exceptionArgs(f)...)
	if err != nil {
		return nil, fmt.Errorf("count exceptions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (exceptions.Tally, error) {
		var t exceptions.Tally
		return t, r.Scan(&t.Code, &t.Stage, &t.Count)
	})
}

// GetException returns one exception; store.ErrNotFound when there is
// none with that id (an id that is not a UUID names none).
func (s *Store) GetException(ctx context.Context, id string) (exceptions.Exception, error) {
	if !ids.Valid(id) {
		return exceptions.Exception{}, store.ErrNotFound
	}
	e, err := scanException(s.db.Pool().QueryRow(ctx, `SELECT `+exceptionColumns+` FROM exceptions WHERE exception_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, store.ErrNotFound
	}
	return e, err
}

// The MURs' columns, filter and its arguments, shared by the export, the
// pages and the totals.
const (
	murColumns = `mur_id, client, record_id, file_id, line, part, account_id, usage_type,
		quantity::text, usage_time, currency, gross_amount::text, discount_amount::text, net_amount::text,
		rate_detail, qualifiers, attributes, rated_at, sync_status, aggregate_id::text, sync_batch_id::text, sync_error`
	murWhere = `($1 = '' OR client = $1) AND ($2 = '' OR file_id::text = $2) AND ($3 = '' OR sync_status = $3)
		AND (coalesce(cardinality($4::text[]), 0) = 0 OR client = ANY($4))
		AND ($5 = '' OR account_id = $5)
		AND ($6::timestamptz IS NULL OR usage_time >= $6) AND ($7::timestamptz IS NULL OR usage_time < $7)`
)

func murArgs(f murs.Filter) []any {
	return []any{f.Client, f.FileID, f.SyncStatus, f.Clients, f.AccountID, f.From, f.To}
}

func scanMUR(r pgx.Row) (murs.MUR, error) {
	var m murs.MUR
	err := r.Scan(&m.MURID, &m.Client, &m.RecordID, &m.FileID, &m.Line, &m.Part, &m.AccountID, &m.UsageType,
		&m.Quantity, &m.UsageTime, &m.Currency, &m.GrossAmount, &m.DiscountAmount, &m.NetAmount,
		&m.RateDetail, &m.Qualifiers, &m.Attributes, &m.RatedAt, &m.SyncStatus, &m.AggregateID, &m.SyncBatchID, &m.SyncError)
	m.UsageTime, m.RatedAt = m.UsageTime.UTC(), m.RatedAt.UTC()
	return m, err
}

// ListMURs returns a page of the MURs f selects, newest first (by MUR id,
// which sorts by time).
func (s *Store) ListMURs(ctx context.Context, f murs.Filter, p murs.Page) ([]murs.MUR, error) {
	if p.After != "" && !ids.Valid(p.After) {
		return nil, fmt.Errorf("cursor %q: not a place in this list", p.After)
	}
	rows, err := s.db.Pool().Query(ctx, `SELECT `+murColumns+` FROM murs WHERE `+murWhere+`
			AND ($8 = '' OR mur_id < $8::uuid)
		ORDER BY mur_id DESC LIMIT $9`, append(murArgs(f), p.After, p.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list MURs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (murs.MUR, error) { return scanMUR(r) })
}

// MURTotals sums the MURs f selects per currency, exactly.
func (s *Store) MURTotals(ctx context.Context, f murs.Filter) ([]murs.CurrencyTotal, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT currency, count(*), sum(quantity)::text, sum(gross_amount)::text,
			sum(discount_amount)::text, sum(net_amount)::text
		FROM murs WHERE `+murWhere+` GROUP BY currency ORDER BY currency`, murArgs(f)...)
	if err != nil {
		return nil, fmt.Errorf("MUR totals: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (murs.CurrencyTotal, error) {
		var t murs.CurrencyTotal
		return t, r.Scan(&t.Currency, &t.MURs, &t.Quantity, &t.GrossAmount, &t.DiscountAmount, &t.NetAmount)
	})
}
