// Package murs is the model of a monetized usage record: a usage record
// rated and discounted, with its amounts and where it stands in the sync
// to the core billing system.
package murs

import (
	"encoding/json"
	"time"
)

// SyncStatus is where a MUR stands in the sync to the core system.
type SyncStatus string

// Sync statuses.
const (
	Unsynced   SyncStatus = "unsynced"
	Batched    SyncStatus = "batched"
	Synced     SyncStatus = "synced"
	SyncFailed SyncStatus = "failed"
)

// MUR is a monetized usage record. Amounts and quantities are exact
// decimal text.
type MUR struct {
	MURID          string
	Client         string
	RecordID       string
	FileID         string
	Line           int64
	Part           int
	Parts          int // the line's number of parts when mediation split it; not stored
	AccountID      string
	UsageType      string
	Quantity       string
	UsageTime      time.Time
	Currency       string
	GrossAmount    string
	DiscountAmount string
	NetAmount      string
	RateDetail     json.RawMessage
	Qualifiers     map[string]string
	Attributes     map[string]string
	RatedAt        time.Time
	SyncStatus     SyncStatus
	AggregateID    *string
	SyncBatchID    *string
	SyncError      *string
}

// Filter selects MURs; empty fields match all.
type Filter struct {
	Client     string
	FileID     string
	SyncStatus SyncStatus

	// Clients, when not empty, keeps to these clients (a token's scope).
	Clients []string
}
