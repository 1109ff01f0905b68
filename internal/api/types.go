package api

import (
	"encoding/json"
	"time"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/murs"
)

// The API's answers. Their JSON is the API's contract: the field names
// and their order stay as they are whatever the domain types become.

// File is a file of the registry as the API shows it.
type File struct {
	FileID     string     `json:"file_id"`
	Client     string     `json:"client"`
	Name       string     `json:"name"`
	Source     string     `json:"source"`
	Location   string     `json:"location,omitempty"`
	Format     string     `json:"format"`
	SizeBytes  int64      `json:"size_bytes"`
	SHA256     string     `json:"sha256"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	Records    *int64     `json:"records"`
	Split      int64      `json:"split,omitempty"`
	MURs       int64      `json:"murs"`
	Exceptions int64      `json:"exceptions"`
	Filtered   int64      `json:"filtered"`
	ReceivedAt time.Time  `json:"received_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	ReadAt     *time.Time `json:"read_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// NewFile is f as the API shows it.
func NewFile(f files.File) File {
	return File{FileID: f.FileID, Client: f.Client, Name: f.Name, Source: f.Source, Location: f.Location,
		Format: f.Format, SizeBytes: f.SizeBytes, SHA256: f.SHA256, Status: string(f.Status), Reason: f.Reason,
		Records: f.Records, Split: f.Split, MURs: f.MURs, Exceptions: f.Exceptions, Filtered: f.Filtered,
		ReceivedAt: f.ReceivedAt, StartedAt: f.StartedAt, ReadAt: f.ReadAt, FinishedAt: f.FinishedAt}
}

// MUR is a monetized usage record as the export writes it.
type MUR struct {
	MURID          string            `json:"mur_id"`
	Client         string            `json:"client"`
	RecordID       string            `json:"record_id"`
	FileID         string            `json:"file_id"`
	Line           int64             `json:"line"`
	Part           int               `json:"part"`
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

// NewMUR is m as the export writes it.
func NewMUR(m *murs.MUR) MUR {
	return MUR{MURID: m.MURID, Client: m.Client, RecordID: m.RecordID, FileID: m.FileID, Line: m.Line, Part: m.Part,
		AccountID: m.AccountID, UsageType: m.UsageType, Quantity: m.Quantity, UsageTime: m.UsageTime,
		Currency: m.Currency, GrossAmount: m.GrossAmount, DiscountAmount: m.DiscountAmount, NetAmount: m.NetAmount,
		RateDetail: m.RateDetail, Qualifiers: m.Qualifiers, Attributes: m.Attributes, RatedAt: m.RatedAt,
		SyncStatus: string(m.SyncStatus), AggregateID: m.AggregateID, SyncBatchID: m.SyncBatchID, SyncError: m.SyncError}
}

// Exception is an exception as the export writes it.
type Exception struct {
	ExceptionID string          `json:"exception_id"`
	Client      string          `json:"client"`
	FileID      string          `json:"file_id"`
	Line        int64           `json:"line"`
	Part        int             `json:"part"`
	RecordID    string          `json:"record_id"`
	Stage       string          `json:"stage"`
	Code        string          `json:"code"`
	Field       string          `json:"field,omitempty"`
	Message     string          `json:"message"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	Record      json.RawMessage `json:"record"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// NewException is e as the export writes it.
func NewException(e *exceptions.Exception) Exception {
	return Exception{ExceptionID: e.ExceptionID, Client: e.Client, FileID: e.FileID, Line: e.Line, Part: e.Part,
		RecordID: e.RecordID, Stage: e.Stage, Code: string(e.Code), Field: e.Field, Message: e.Message,
		Status: string(e.Status), Attempts: e.Attempts, Record: e.Record, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// FeedOutcome is what became of a feed event.
type FeedOutcome struct {
	EventID string `json:"event_id"`
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Warnings name what the event carried that Vivace ignores.
	Warnings []string `json:"warnings,omitempty"`
}

// NewFeedOutcome is o as the API shows it.
func NewFeedOutcome(o feed.Outcome) FeedOutcome {
	return FeedOutcome{EventID: o.EventID, Outcome: string(o.Outcome), Code: string(o.Code), Message: o.Message,
		Warnings: o.Warnings}
}

// FeedEvent is a feed event on record with its outcome.
type FeedEvent struct {
	EventID         string          `json:"event_id"`
	Client          string          `json:"client"`
	Entity          string          `json:"entity"`
	EntityID        string          `json:"entity_id"`
	Version         int64           `json:"version"`
	Op              string          `json:"op"`
	OccurredAt      *time.Time      `json:"occurred_at"`
	Outcome         string          `json:"outcome"`
	Code            string          `json:"code,omitempty"`
	Message         string          `json:"message,omitempty"`
	Source          string          `json:"source"`
	Attempts        int             `json:"attempts"`
	ReceivedAt      time.Time       `json:"received_at"`
	AppliedAt       *time.Time      `json:"applied_at,omitempty"`
	UpdatedAt       time.Time       `json:"updated_at"`
	Payload         json.RawMessage `json:"payload"`
	OriginalPayload json.RawMessage `json:"original_payload,omitempty"`
	Warnings        []string        `json:"warnings,omitempty"`
}

// NewFeedEvent is e as the API shows it.
func NewFeedEvent(e *feed.EventRecord) FeedEvent {
	return FeedEvent{EventID: e.EventID, Client: e.Client, Entity: e.Entity, EntityID: e.EntityID, Version: e.Version,
		Op: e.Op, OccurredAt: e.OccurredAt, Outcome: string(e.Outcome), Code: string(e.Code), Message: e.Message,
		Source: string(e.Source), Attempts: e.Attempts, ReceivedAt: e.ReceivedAt, AppliedAt: e.AppliedAt,
		UpdatedAt: e.UpdatedAt, Payload: e.Payload, OriginalPayload: e.OriginalPayload, Warnings: e.Warnings}
}

// mapSlice applies fn to each element of in; never nil, so an empty list
// is written as [].
func mapSlice[T, U any](in []T, fn func(*T) U) []U {
	out := make([]U, len(in))
	for i := range in {
		out[i] = fn(&in[i])
	}
	return out
}
