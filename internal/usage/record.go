// Package usage holds the usage record in its two shapes — raw, as read
// from a client's file, and normal form, as the rater expects it — with
// the file readers and the normal-form checks. It knows nothing of Kafka,
// Benthos or SQL.
package usage

import "time"

// Normal-form field names (docs/formats.md, "Fields").
const (
	FieldRecordID  = "record_id"
	FieldAccountID = "account_id"
	FieldUsageType = "usage_type"
	FieldQuantity  = "quantity"
	FieldUsageTime = "usage_time"
)

// RequiredFields lists the fields every record must carry, in the order
// they are checked.
var RequiredFields = []string{FieldRecordID, FieldAccountID, FieldUsageType, FieldQuantity, FieldUsageTime}

// QualifierFields are carried to the MUR as they are.
var QualifierFields = [4]string{"qualifier_1", "qualifier_2", "qualifier_3", "qualifier_4"}

// Source says where a record came from: the file, the physical line where
// the record starts, and the part when mediation split one input record
// into several. (client, file, line, part) identifies a record across
// replays. Parts is how many records the line was split into (0 or 1 when
// it was not split): parts 0..Parts-1 all count toward the file, so the
// file is done only when every part has ended somewhere.
type Source struct {
	Client string `json:"client"`
	FileID string `json:"file_id"`
	Line   int64  `json:"line"`
	Part   int    `json:"part,omitempty"`
	Parts  int    `json:"parts,omitempty"`
}

// Raw is a record as read from a file, its columns already mapped to
// Vivace's field names. It travels on usage.raw.
type Raw struct {
	Source
	Fields map[string]string `json:"fields"`
}

// Record is a usage record in normal form. It travels on usage.mediated.
type Record struct {
	Source
	RecordID   string            `json:"record_id"`
	AccountID  string            `json:"account_id"`
	UsageType  string            `json:"usage_type"`
	Quantity   string            `json:"quantity"` // a checked, non-negative decimal
	UsageTime  time.Time         `json:"usage_time"`
	Qualifiers map[string]string `json:"qualifiers,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}
