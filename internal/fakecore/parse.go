package fakecore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
)

// The core's error codes this stand-in answers with, and their meanings.
const (
	CodeOK               = 0
	CodeUnexpected       = 1001
	CodeAuthentication   = 1004
	CodeAccountNotFound  = 1009
	CodeMissingParameter = 1010
	CodeInvalidInput     = 1016
	CodeInvalidDate      = 1024
)

var meanings = map[int64]string{
	CodeUnexpected:       "unexpected error",
	CodeAuthentication:   "authentication error",
	CodeAccountNotFound:  "account does not exist",
	CodeMissingParameter: "missing required parameters",
	CodeInvalidInput:     "invalid input",
	CodeInvalidDate:      "invalid date format",
}

// coreError is a refusal, of the whole call or of one record.
type coreError struct {
	code int64
	msg  string
}

func refusal(code int64, detail string, args ...any) *coreError {
	msg := meanings[code]
	if detail != "" {
		if msg != "" {
			msg += ": "
		}
		msg += fmt.Sprintf(detail, args...)
	}
	return &coreError{code: code, msg: msg}
}

// call is a request body as the core reads it: every field kept raw, so
// that a value of the wrong type is refused with the core's code rather
// than failing the whole body.
type call struct {
	RestCall     json.RawMessage `json:"rest_call"`
	OutputFormat json.RawMessage `json:"output_format"`
	ClientNo     json.RawMessage `json:"client_no"`
	AuthKey      json.RawMessage `json:"auth_key"`
	UsageRecs    json.RawMessage `json:"usage_recs"`
	ReceiptID    json.RawMessage `json:"client_receipt_id"`
}

// wireRec is one usage record as sent.
type wireRec struct {
	AcctNo               json.RawMessage `json:"acct_no"`
	UserID               json.RawMessage `json:"userid"`
	MasterPlanInstanceNo json.RawMessage `json:"master_plan_instance_no"`
	PlanInstanceNo       json.RawMessage `json:"plan_instance_no"`
	ClientPlanInstanceID json.RawMessage `json:"client_plan_instance_id"`
	UsageType            json.RawMessage `json:"usage_type"`
	UsageUnits           json.RawMessage `json:"usage_units"`
	UsageDate            json.RawMessage `json:"usage_date"`
	BillableUnits        json.RawMessage `json:"billable_units"`
	Amt                  json.RawMessage `json:"amt"`
	Rate                 json.RawMessage `json:"rate"`
	Comments             json.RawMessage `json:"comments"`
	ParentUsageRecNo     json.RawMessage `json:"parent_usage_rec_no"`
	Qualifier1           json.RawMessage `json:"qualifier_1"`
	Qualifier2           json.RawMessage `json:"qualifier_2"`
	Qualifier3           json.RawMessage `json:"qualifier_3"`
	Qualifier4           json.RawMessage `json:"qualifier_4"`
	UsageTypeCode        json.RawMessage `json:"usage_type_code"`
	ClientRecordID       json.RawMessage `json:"client_record_id"`
	ClientAcctID         json.RawMessage `json:"client_acct_id"`
}

// parsedRec is a record that passed the core's checks.
type parsedRec struct {
	id         string
	acctNo     string // the record's acct_no, when it has one (for error_records)
	account    string
	accountBy  string
	usageType  string
	units      apd.Decimal
	amt        *apd.Decimal
	date       string
	qualifiers [4]string
	comments   string
	raw        json.RawMessage
}

func absent(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}

// text reads a string field; numbers are taken as their text (the core's
// string fields are liberal about it).
// v comes from a decoded body, so it is valid JSON.
func text(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return "", true
	}
	switch c := v[0]; {
	case c == '"':
		if in := v[1 : len(v)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
			// No escapes: the text is the bytes between the quotes.
			return string(in), true
		}
		var s string
		err := json.Unmarshal(v, &s)
		return s, err == nil
	case c == '-' || c >= '0' && c <= '9':
		return string(v), true
	}
	return "", false
}

// long reads a field of type long: a JSON integer or a string holding one.
func long(v json.RawMessage) (int64, bool) {
	s, ok := text(v)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// number reads a field of type number exactly: a JSON number or a string
// holding one.
func number(v json.RawMessage) (apd.Decimal, bool) {
	var d apd.Decimal
	s, ok := text(v)
	if !ok || s == "" {
		return d, false
	}
	if _, _, err := d.SetString(s); err != nil || d.Form != apd.Finite {
		return d, false
	}
	return d, true
}

// parseDate accepts yyyy-mm-dd hh24:mi:ss or yyyy-mm-dd (time 00:00:00).
func parseDate(s string) (string, bool) {
	const layout, day = "2006-01-02 15:04:05", "2006-01-02"
	switch len(s) {
	case len(layout):
		if _, err := time.Parse(layout, s); err == nil {
			return s, true
		}
	case len(day):
		if _, err := time.Parse(day, s); err == nil {
			return s + " 00:00:00", true
		}
	}
	return "", false
}

// parseRecord applies the core's checks to one record, in order: missing
// parameters (1010), values of the wrong type (1016), the date (1024).
// Whether the account exists is the caller's check (1009).
func parseRecord(raw json.RawMessage) (parsedRec, *coreError) {
	p := parsedRec{raw: raw}
	var w wireRec
	if err := json.Unmarshal(raw, &w); err != nil {
		return p, refusal(CodeInvalidInput, "the usage record is not an object")
	}
	id, ok := text(w.ClientRecordID)
	if !ok {
		return p, refusal(CodeInvalidInput, "client_record_id is not a string")
	}
	p.id = id
	if absent(w.UsageUnits) {
		return p, refusal(CodeMissingParameter, "usage_units")
	}
	accountFields := []struct {
		name string
		v    json.RawMessage
		long bool
	}{
		{"client_acct_id", w.ClientAcctID, false}, {"acct_no", w.AcctNo, true}, {"userid", w.UserID, false},
		{"plan_instance_no", w.PlanInstanceNo, true}, {"client_plan_instance_id", w.ClientPlanInstanceID, false},
	}
	for _, f := range accountFields {
		s, ok := text(f.v)
		if ok && s == "" {
			continue
		}
		if !ok {
			return p, refusal(CodeInvalidInput, "%s is not a string", f.name)
		}
		if p.account == "" {
			p.account, p.accountBy = s, f.name
		}
	}
	if p.account == "" {
		return p, refusal(CodeMissingParameter, "one of client_acct_id, acct_no, userid, plan_instance_no, client_plan_instance_id")
	}
	code, ok := text(w.UsageTypeCode)
	if !ok {
		return p, refusal(CodeInvalidInput, "usage_type_code is not a string")
	}
	p.usageType = code
	if code == "" {
		if absent(w.UsageType) {
			return p, refusal(CodeMissingParameter, "usage_type or usage_type_code")
		}
		n, ok := long(w.UsageType)
		if !ok {
			return p, refusal(CodeInvalidInput, "usage_type is not a valid long")
		}
		p.usageType = strconv.FormatInt(n, 10)
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"acct_no", w.AcctNo}, {"plan_instance_no", w.PlanInstanceNo}, {"master_plan_instance_no", w.MasterPlanInstanceNo},
		{"parent_usage_rec_no", w.ParentUsageRecNo}, {"usage_type", w.UsageType}} {
		if !absent(f.v) {
			if _, ok := long(f.v); !ok {
				return p, refusal(CodeInvalidInput, "%s is not a valid long", f.name)
			}
		}
	}
	if !absent(w.AcctNo) {
		n, _ := long(w.AcctNo)
		p.acctNo = strconv.FormatInt(n, 10)
	}
	units, ok := number(w.UsageUnits)
	if !ok {
		return p, refusal(CodeInvalidInput, "usage_units is not a number")
	}
	p.units = units
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"billable_units", w.BillableUnits}, {"rate", w.Rate}} {
		if !absent(f.v) {
			if _, ok := number(f.v); !ok {
				return p, refusal(CodeInvalidInput, "%s is not a number", f.name)
			}
		}
	}
	if !absent(w.Amt) {
		amt, ok := number(w.Amt)
		if !ok {
			return p, refusal(CodeInvalidInput, "amt is not a number")
		}
		p.amt = &amt
	}
	strs := []*string{&p.qualifiers[0], &p.qualifiers[1], &p.qualifiers[2], &p.qualifiers[3], &p.comments}
	for i, v := range []json.RawMessage{w.Qualifier1, w.Qualifier2, w.Qualifier3, w.Qualifier4, w.Comments} {
		s, ok := text(v)
		if !ok {
			return p, refusal(CodeInvalidInput, "%s is not a string", []string{"qualifier_1", "qualifier_2", "qualifier_3", "qualifier_4", "comments"}[i])
		}
		*strs[i] = s
	}
	if !absent(w.UsageDate) {
		s, ok := text(w.UsageDate)
		if !ok {
			return p, refusal(CodeInvalidDate, "usage_date is not a string")
		}
		d, ok := parseDate(s)
		if !ok {
			return p, refusal(CodeInvalidDate, "usage_date %q is not yyyy-mm-dd hh24:mi:ss", s)
		}
		p.date = d
	}
	return p, nil
}
