package store

import (
	"context"
	"encoding/json"
	"time"
)

// MUR is a monetized usage record. Amounts and quantities are exact
// decimal text.
type MUR struct {
	MURID          string            `json:"mur_id"`
	Client         string            `json:"client"`
	RecordID       string            `json:"record_id"`
	FileID         string            `json:"file_id"`
	Line           int64             `json:"line"`
	Part           int               `json:"part"`
	Parts          int               `json:"-"` // the line's number of parts when mediation split it; not stored
	AccountID      string            `json:"account_id"`
	UsageType      string            `json:"usage_type"`
	Quantity       string            `json:"quantity"`
	UsageTime      time.Time         `json:"usage_time"`
	Currency       string            `json:"currency"`
	GrossAmount    string            `json:"gross_amount"`
	DiscountAmount string            `json:"discount_amount"`
	NetAmount      string            `json:"net_amount"`
	RateDetail     json.RawMessage   `json:"rate_detail"`
	Qualifiers     map[string]string `json:"qualifiers"`
	Attributes     map[string]string `json:"attributes"`
	RatedAt        time.Time         `json:"rated_at"`
	SyncStatus     string            `json:"sync_status"`
	AggregateID    *string           `json:"aggregate_id"`
	SyncBatchID    *string           `json:"sync_batch_id"`
	SyncError      *string           `json:"sync_error"`
}

// MURFilter selects MURs.
type MURFilter struct {
	Client     string
	FileID     string
	SyncStatus string
}

// ExportMURs calls fn for each MUR matching the filter in source order
// (file, line, part), streaming rows rather than loading them all.
func (s *Store) ExportMURs(ctx context.Context, f MURFilter, fn func(MUR) error) error {
	rows, err := s.pool.Query(ctx, `SELECT mur_id, client, record_id, file_id, line, part, account_id, usage_type,
			quantity::text, usage_time, currency, gross_amount::text, discount_amount::text, net_amount::text,
			rate_detail, qualifiers, attributes, rated_at, sync_status, aggregate_id::text, sync_batch_id::text, sync_error
		FROM murs
		WHERE ($1 = '' OR client = $1) AND ($2 = '' OR file_id::text = $2) AND ($3 = '' OR sync_status = $3)
		ORDER BY file_id, line, part`, f.Client, f.FileID, f.SyncStatus)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var m MUR
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
