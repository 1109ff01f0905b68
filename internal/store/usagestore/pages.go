package usagestore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
)

// The MURs' columns, filter and its arguments, shared by the export, the
// pages and the totals.
const (
	murColumns = `mur_id, client, record_id, file_id, line, part, account_id, usage_type,
		quantity::text, usage_time, currency, gross_amount::text, discount_amount::text, net_amount::text,
		rate_detail::jsonb, qualifiers, attributes, rated_at, sync_status, aggregate_id::text, sync_batch_id::text, sync_error`
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
