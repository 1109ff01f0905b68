package usagestore

import (
	"context"

	"vivace.dev/vivace/internal/murs"
)

// ExportMURs calls fn for each MUR matching the filter in source order
// (file, line, part), streaming rows rather than loading them all.
func (s *Store) ExportMURs(ctx context.Context, f murs.Filter, fn func(murs.MUR) error) error {
	rows, err := s.db.Pool().Query(ctx, `SELECT mur_id, client, record_id, file_id, line, part, account_id, usage_type,
			quantity::text, usage_time, currency, gross_amount::text, discount_amount::text, net_amount::text,
			rate_detail::jsonb, qualifiers, attributes, rated_at, sync_status, aggregate_id::text, sync_batch_id::text, sync_error
		FROM murs
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR file_id::text = $2) AND ($3 = '' OR sync_status = $3)
			AND (coalesce(cardinality($4::text[]), 0) = 0 OR client = ANY($4))
			AND ($5 = '' OR account_id = $5)
			AND ($6::timestamptz IS NULL OR usage_time >= $6) AND ($7::timestamptz IS NULL OR usage_time < $7)
		ORDER BY file_id, line, part`, f.Client, f.FileID, f.SyncStatus, f.Clients, f.AccountID, f.From, f.To)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var m murs.MUR
		if err := rows.Scan(&m.MURID, &m.Client, &m.RecordID, &m.FileID, &m.Line, &m.Part, &m.AccountID, &m.UsageType,
			&m.Quantity, &m.UsageTime, &m.Currency, &m.GrossAmount, &m.DiscountAmount, &m.NetAmount,
			&m.RateDetail, &m.Qualifiers, &m.Attributes, &m.RatedAt, &m.SyncStatus, &m.AggregateID, &m.SyncBatchID, &m.SyncError); err != nil {
			return err
		}
		m.UsageTime, m.RatedAt = m.UsageTime.UTC(), m.RatedAt.UTC()
		if err := fn(m); err != nil {
			return err
		}
	}
	return rows.Err()
}
