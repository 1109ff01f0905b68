package tmf635

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"vivace.dev/vivace/internal/jsonx"
	"vivace.dev/vivace/internal/usage"
)

// Submission is a posted usage as a usage record: its client and the
// raw record's fields, as a file line of that client would carry them.
type Submission struct {
	Client string
	Fields map[string]string
	Body   json.RawMessage
	// OwnRecordID: the body named no record_id, so the usage's own id
	// becomes it once the usage has one (Complete).
	OwnRecordID bool
	// UsageTime is usageDate, nil without one.
	UsageTime *time.Time
}

// WriteTime writes the usage time in the client's format, as its files
// write it, so that the mediate stage reads it with the client's rules.
func (s *Submission) WriteTime(f usage.TimeFormat) {
	if s.UsageTime != nil {
		s.Fields[usage.FieldUsageTime] = f.Format(*s.UsageTime)
	}
}

// Complete gives the submission its place, the line of its client's api
// submission, and the record_id it lacked.
func (s *Submission) Complete(fileID string, line int64) {
	if s.OwnRecordID {
		s.Fields[usage.FieldRecordID] = ID(fileID, line, 0)
	}
}

type createBody struct {
	Description         string           `json:"description"`
	UsageDate           *string          `json:"usageDate"`
	UsageType           *string          `json:"usageType"`
	Status              *string          `json:"status"`
	RelatedParty        []RelatedParty   `json:"relatedParty"`
	UsageCharacteristic []Characteristic `json:"usageCharacteristic"`
	RatedProductUsage   []any            `json:"ratedProductUsage"`
}

// ParseCreate reads a Usage_Create body (docs/tmf635.md, "POST /usage"):
// usageType is the usage type, usageDate the usage time, the related
// party whose @referredType is BillingAccount (else whose role is
// customer) the account, and the characteristics quantity, record_id and
// qualifier_1..qualifier_4 those fields; others become attributes, but
// for client, which picks the client. pick says which client a usage is
// for given the one it names (maybe none): it refuses a client the
// token does not cover and an unnamed one when the token covers several.
// What the record's checks refuse (a missing quantity, a bad time) is
// not refused here: the usage is received and the pipeline rejects it,
// as it would a file line.
func ParseCreate(body []byte, pick func(named string) (string, error)) (Submission, error) {
	var b createBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return Submission{}, badRequest("body: empty; expected a Usage_Create JSON object")
		}
		return Submission{}, badRequest("body: %v", jsonx.Describe(err, "a Usage_Create JSON object"))
	}
	if dec.More() {
		return Submission{}, badRequest("body: more than one JSON value; send one Usage_Create object")
	}
	if b.Status != nil && *b.Status != string(Received) {
		return Submission{}, badRequest("status: %q; a usage is posted received (or without a status) and the pipeline moves it on", *b.Status)
	}
	if len(b.RatedProductUsage) > 0 {
		return Submission{}, badRequest("ratedProductUsage: Vivace rates posted usages itself; send none")
	}
	fields := map[string]string{}
	if b.UsageType != nil {
		fields[usage.FieldUsageType] = *b.UsageType
	}
	var at *time.Time
	if b.UsageDate != nil {
		t, err := time.Parse(time.RFC3339Nano, *b.UsageDate)
		if err != nil {
			return Submission{}, badRequest("usageDate: %q is not a date-time (RFC 3339, e.g. 2026-01-31T10:00:00Z)", *b.UsageDate)
		}
		t = t.UTC()
		at = &t
		fields[usage.FieldUsageTime] = t.Format(time.RFC3339Nano)
	}
	if a := account(b.RelatedParty); a != "" {
		fields[usage.FieldAccountID] = a
	}
	named := ""
	for i, c := range b.UsageCharacteristic {
		if c.Name == "" {
			return Submission{}, badRequest("usageCharacteristic[%d]: name is missing", i)
		}
		v, err := charValue(c.Value)
		if err != nil {
			return Submission{}, badRequest("usageCharacteristic[%d] (%s): %v", i, c.Name, err)
		}
		switch {
		case c.Name == "client":
			named = v
			continue
		case c.Name == usage.FieldAccountID || c.Name == usage.FieldUsageType || c.Name == usage.FieldUsageTime:
			return Submission{}, badRequest("usageCharacteristic[%d]: %s is carried by %s, not a characteristic", i, c.Name,
				map[string]string{usage.FieldAccountID: "relatedParty", usage.FieldUsageType: "usageType", usage.FieldUsageTime: "usageDate"}[c.Name])
		}
		if _, dup := fields[c.Name]; dup {
			return Submission{}, badRequest("usageCharacteristic[%d]: %s named twice", i, c.Name)
		}
		fields[c.Name] = v
	}
	client, err := pick(named)
	if err != nil {
		return Submission{}, err
	}
	s := Submission{Client: client, Fields: fields, Body: json.RawMessage(body), UsageTime: at}
	if strings.TrimSpace(fields[usage.FieldRecordID]) == "" {
		s.OwnRecordID = true
		delete(fields, usage.FieldRecordID)
	}
	return s, nil
}

// account is the id of the BillingAccount party, else of the customer.
func account(ps []RelatedParty) string {
	for _, p := range ps {
		if p.ReferredType == "BillingAccount" {
			return p.ID
		}
	}
	for _, p := range ps {
		if p.Role == "customer" {
			return p.ID
		}
	}
	return ""
}

func charValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return fmt.Sprint(x), nil
	case nil:
		return "", fmt.Errorf("value is missing")
	default:
		return "", fmt.Errorf("value is an object or a list; use a string, number or boolean")
	}
}

// ApplyUpdate reads a Usage_Update body (PATCH /usage/{id}) for a usage
// in exception and returns its record's fields as corrected: fields, the
// record as it stands, with what the body names replaced — usageType,
// usageDate, the account of relatedParty, and each characteristic by
// name (as in ParseCreate); what the body does not name stays. status,
// if sent, must be recycled: a correction is sent through the pipeline
// again. The usage's client cannot change.
func ApplyUpdate(fields map[string]string, body []byte) (map[string]string, error) {
	var b createBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest("body: empty; expected a Usage_Update JSON object")
		}
		return nil, badRequest("body: %v", jsonx.Describe(err, "a Usage_Update JSON object"))
	}
	if dec.More() {
		return nil, badRequest("body: more than one JSON value; send one Usage_Update object")
	}
	if b.Status != nil && *b.Status != string(Recycled) {
		return nil, badRequest("status: %q; a corrected usage is recycled (sent through the pipeline again), or send no status", *b.Status)
	}
	if len(b.RatedProductUsage) > 0 {
		return nil, badRequest("ratedProductUsage: Vivace rates usages itself; send none")
	}
	out := make(map[string]string, len(fields)+4)
	for k, v := range fields {
		out[k] = v
	}
	if b.UsageType != nil {
		out[usage.FieldUsageType] = *b.UsageType
	}
	if b.UsageDate != nil {
		t, err := time.Parse(time.RFC3339Nano, *b.UsageDate)
		if err != nil {
			return nil, badRequest("usageDate: %q is not a date-time (RFC 3339, e.g. 2026-01-31T10:00:00Z)", *b.UsageDate)
		}
		out[usage.FieldUsageTime] = t.UTC().Format(time.RFC3339Nano)
	}
	if len(b.RelatedParty) > 0 {
		a := account(b.RelatedParty)
		if a == "" {
			return nil, badRequest("relatedParty: none is the BillingAccount (@referredType) or the customer (role)")
		}
		out[usage.FieldAccountID] = a
	}
	named := map[string]bool{}
	for i, c := range b.UsageCharacteristic {
		if c.Name == "" {
			return nil, badRequest("usageCharacteristic[%d]: name is missing", i)
		}
		switch c.Name {
		case "client":
			return nil, badRequest("usageCharacteristic[%d]: a usage stays with its client", i)
		case "exception_code", "exception_id", "exception_field":
			continue // what the usage said of its exception, sent back as it was
		case usage.FieldAccountID, usage.FieldUsageType, usage.FieldUsageTime:
			return nil, badRequest("usageCharacteristic[%d]: %s is carried by %s, not a characteristic", i, c.Name,
				map[string]string{usage.FieldAccountID: "relatedParty", usage.FieldUsageType: "usageType", usage.FieldUsageTime: "usageDate"}[c.Name])
		}
		if named[c.Name] {
			return nil, badRequest("usageCharacteristic[%d]: %s named twice", i, c.Name)
		}
		named[c.Name] = true
		v, err := charValue(c.Value)
		if err != nil {
			return nil, badRequest("usageCharacteristic[%d] (%s): %v", i, c.Name, err)
		}
		out[c.Name] = v
	}
	delete(out, "raw") // a line that could not be read, now given as fields
	return out, nil
}
