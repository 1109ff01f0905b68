package mursync

import (
	"encoding/json"
	"fmt"
	"time"
)

// BatchMessage is a batch as published on the batches topic
// (mur.sync.batches, keyed by batch id): the aggregated records ready for
// the core's bulk call.
type BatchMessage struct {
	BatchID   string    `json:"batch_id"`
	Client    string    `json:"client"`
	JobID     string    `json:"job_id"`
	CreatedAt time.Time `json:"created_at"`
	Records   []Record  `json:"-"`
	// Omitted is set on a message that does not carry its records
	// because they would make it larger than MaxInline; the sync service
	// reads them from the database. Count is their number.
	Omitted bool `json:"-"`
	Count   int  `json:"-"`
}

// MaxInline bounds a batch message with its records: brokers refuse
// messages above 1 MiB by default, and a record takes about 350 bytes.
const MaxInline = 768 << 10

type wireRecord struct {
	ClientRecordID string `json:"client_record_id"`
	AccountID      string `json:"account_id"`
	UsageType      string `json:"usage_type"`
	Currency       string `json:"currency"`
	UsageDate      string `json:"usage_date"`
	Units          string `json:"units"`
	Amount         string `json:"amount"`
	MURs           int    `json:"murs"`
	Qualifier1     string `json:"qualifier_1,omitempty"`
	Qualifier2     string `json:"qualifier_2,omitempty"`
	Qualifier3     string `json:"qualifier_3,omitempty"`
	Qualifier4     string `json:"qualifier_4,omitempty"`
	Comments       string `json:"comments,omitempty"`
}

type wireBatch struct {
	BatchID   string       `json:"batch_id"`
	Client    string       `json:"client"`
	JobID     string       `json:"job_id"`
	CreatedAt time.Time    `json:"created_at"`
	Count     int          `json:"record_count"`
	Omitted   bool         `json:"records_omitted,omitempty"`
	Records   []wireRecord `json:"records"`
}

// MarshalJSON writes the message with its records (or, when Omitted,
// only their number); units and amounts are decimal strings, usage_date
// RFC 3339 in UTC.
func (m BatchMessage) MarshalJSON() ([]byte, error) {
	w := wireBatch{BatchID: m.BatchID, Client: m.Client, JobID: m.JobID, CreatedAt: m.CreatedAt.UTC(),
		Count: len(m.Records), Records: make([]wireRecord, len(m.Records))}
	if m.Omitted {
		w.Count, w.Omitted, w.Records = m.Count, true, []wireRecord{}
		return json.Marshal(w)
	}
	for i := range m.Records {
		r := &m.Records[i]
		w.Records[i] = wireRecord{ClientRecordID: r.ID, AccountID: r.AccountID, UsageType: r.UsageType,
			Currency: r.Currency, UsageDate: r.UsageDate.UTC().Format(time.RFC3339), Units: r.Units, Amount: r.Amount,
			MURs: r.MURs, Qualifier1: r.Qualifiers[0], Qualifier2: r.Qualifiers[1], Qualifier3: r.Qualifiers[2],
			Qualifier4: r.Qualifiers[3], Comments: r.Comments}
	}
	return json.Marshal(w)
}

// Encode writes the message for the topic: with its records when that
// fits MaxInline, otherwise without them.
func (m BatchMessage) Encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil || len(b) <= MaxInline {
		return b, err
	}
	m.Omitted, m.Count = true, len(m.Records)
	return json.Marshal(m)
}

// UnmarshalJSON reads a message; fields it does not know are ignored.
func (m *BatchMessage) UnmarshalJSON(b []byte) error {
	var w wireBatch
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.BatchID == "" || w.Client == "" {
		return fmt.Errorf("sync batch message: batch_id and client are required")
	}
	*m = BatchMessage{BatchID: w.BatchID, Client: w.Client, JobID: w.JobID, CreatedAt: w.CreatedAt,
		Records: make([]Record, len(w.Records)), Omitted: w.Omitted, Count: w.Count}
	for i, r := range w.Records {
		t, err := time.Parse(time.RFC3339, r.UsageDate)
		if err != nil {
			return fmt.Errorf("sync batch message %s: records[%d].usage_date: %w", w.BatchID, i, err)
		}
		if r.ClientRecordID == "" {
			return fmt.Errorf("sync batch message %s: records[%d].client_record_id is required", w.BatchID, i)
		}
		m.Records[i] = Record{ID: r.ClientRecordID, AccountID: r.AccountID, UsageType: r.UsageType, Currency: r.Currency,
			UsageDate: t.UTC(), Units: r.Units, Amount: r.Amount, MURs: r.MURs,
			Qualifiers: [4]string{r.Qualifier1, r.Qualifier2, r.Qualifier3, r.Qualifier4}, Comments: r.Comments}
	}
	return nil
}

// Result is a batch's answer as published on the results topic
// (mur.sync.results, keyed by batch id).
type Result struct {
	BatchID string      `json:"batch_id"`
	Client  string      `json:"client"`
	JobID   string      `json:"job_id"`
	Status  BatchStatus `json:"status"`
	// Attempts counts the times the sync service took the batch up (a
	// redelivery after a crash is one more); the tries within one are
	// the API client's and show in the metrics.
	Attempts   int       `json:"attempts"`
	Failure    Failure   `json:"failure,omitempty"`
	ErrorCode  int64     `json:"error_code,omitempty"`
	ErrorMsg   string    `json:"error_msg,omitempty"`
	Synced     int       `json:"synced"`
	Failed     int       `json:"failed"`
	MURs       int64     `json:"murs"`
	AnsweredAt time.Time `json:"answered_at"`
	// Records holds each record's outcome.
	Records []RecordResult `json:"records"`
	// Redelivered is set when the batch had its answer already (the
	// message came again after a crash) and nothing was sent.
	Redelivered bool `json:"redelivered,omitempty"`
}

// RecordResult is one record's outcome.
type RecordResult struct {
	ClientRecordID string       `json:"client_record_id"`
	Status         RecordStatus `json:"status"`
	Code           int64        `json:"record_error_code,omitempty"`
	Message        string       `json:"record_error_msg,omitempty"`
}
