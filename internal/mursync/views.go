package mursync

import (
	"context"
	"time"
)

// BatchView is a batch as listed for people.
type BatchView struct {
	BatchID     string      `json:"batch_id"`
	Client      string      `json:"client"`
	JobID       string      `json:"job_id"`
	Status      BatchStatus `json:"status"`
	Records     int         `json:"records"`
	MURs        int64       `json:"murs"`
	Synced      int         `json:"synced"`
	Failed      int         `json:"failed"`
	Attempts    int         `json:"attempts"`
	Failure     Failure     `json:"failure,omitempty"`
	Code        int64       `json:"error_code,omitempty"`
	Message     string      `json:"error_msg,omitempty"`
	ResendOf    string      `json:"resend_of,omitempty"`
	CreatedAt   time.Time   `json:"created_at"`
	PublishedAt *time.Time  `json:"published_at,omitempty"`
	AnsweredAt  *time.Time  `json:"answered_at,omitempty"`
}

// RecordView is an aggregated record as listed for people.
type RecordView struct {
	ID        string       `json:"client_record_id"`
	Client    string       `json:"client"`
	AccountID string       `json:"account_id"`
	UsageType string       `json:"usage_type"`
	Currency  string       `json:"currency"`
	Day       time.Time    `json:"usage_day"`
	UsageDate time.Time    `json:"usage_date"`
	Units     string       `json:"units"`
	Amount    string       `json:"amount"`
	MURs      int          `json:"murs"`
	Status    RecordStatus `json:"status"`
	BatchID   string       `json:"batch_id"`
	Code      int64        `json:"error_code,omitempty"`
	Message   string       `json:"error_msg,omitempty"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// JobFilter selects jobs, newest first; Clients nil means every client,
// Limit 0 means 100.
type JobFilter struct {
	Clients []string
	Limit   int
}

// BatchFilter selects batches, newest first; Clients nil means every
// client, Limit 0 means 100.
type BatchFilter struct {
	Clients []string
	Status  BatchStatus
	JobID   string
	Limit   int
}

// RecordFilter selects aggregated records; Clients nil means every
// client, Limit 0 means 1000.
type RecordFilter struct {
	Clients []string
	BatchID string
	Status  RecordStatus
	Limit   int
}

// Reader lists what the sync did, for the API and the console.
type Reader interface {
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
	Batches(ctx context.Context, f BatchFilter) ([]BatchView, error)
	Batch(ctx context.Context, id string) (BatchView, error)
	Records(ctx context.Context, f RecordFilter) ([]RecordView, error)
	Totals(ctx context.Context, client string) ([]Total, error)
}

// Total sums a client's MURs of one account, usage type and currency:
// all of them, and those synced to the core.
type Total struct {
	AccountID    string `json:"account_id"`
	UsageType    string `json:"usage_type"`
	Currency     string `json:"currency"`
	MURs         int64  `json:"murs"`
	Units        string `json:"units"`
	Amount       string `json:"amount"`
	SyncedMURs   int64  `json:"synced_murs"`
	SyncedUnits  string `json:"synced_units"`
	SyncedAmount string `json:"synced_amount"`
}
