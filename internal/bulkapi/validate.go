package bulkapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Batch is what one call sends.
type Batch struct {
	// ReceiptID becomes client_receipt_id (≤ 50 characters; optional): the
	// batch's id is a good one.
	ReceiptID string
	Records   []UsageRec
}

// Field lengths the core documents (characters).
const (
	maxClientRecordID = 50
	maxClientAcctID   = 50
	maxUserID         = 32
	maxUsageTypeCode  = 30
	maxQualifier      = 300
	maxReceiptID      = 50
	maxPlanInstanceID = 100
)

// Validate checks a batch against the call's rules before it is sent:
// at least one record, each valid (UsageRec.Validate), client_record_ids
// unique in the batch, client_receipt_id within its length. It returns an
// *InvalidBatchError listing every problem.
func (b Batch) Validate() error {
	var errs []error
	if len(b.Records) == 0 {
		errs = append(errs, errors.New("usage_recs: the batch holds no record"))
	}
	if utf8.RuneCountInString(b.ReceiptID) > maxReceiptID {
		errs = append(errs, fmt.Errorf("client_receipt_id: longer than %d characters", maxReceiptID))
	}
	seen := make(map[string]int, len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("usage_recs[%d]: %w", i, err))
		}
		if r.ClientRecordID == "" {
			continue
		}
		if j, dup := seen[r.ClientRecordID]; dup {
			errs = append(errs, fmt.Errorf("usage_recs[%d]: client_record_id %q also in usage_recs[%d]", i, r.ClientRecordID, j))
			continue
		}
		seen[r.ClientRecordID] = i
	}
	if len(errs) == 0 {
		return nil
	}
	return &InvalidBatchError{Problems: errs}
}

// Validate checks one record: a client_record_id (without one the core
// cannot say which record it refused), an account (acct_no, userid,
// client_acct_id, plan_instance_no or client_plan_instance_id), a usage
// type (usage_type or usage_type_code), usage_units, numbers written as
// plain decimals, usage_date in its layout, and the documented lengths.
func (r *UsageRec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if r.ClientRecordID == "" {
		bad("client_record_id", "missing")
	}
	if r.AcctNo == 0 && r.UserID == "" && r.ClientAcctID == "" && r.PlanInstanceNo == 0 && r.ClientPlanInstanceID == "" {
		bad("client_acct_id", "missing: the record names no account")
	}
	if r.UsageType == 0 && r.UsageTypeCode == "" {
		bad("usage_type_code", "missing")
	}
	if r.UsageUnits == "" {
		bad("usage_units", "missing")
	}
	for _, n := range []struct {
		field string
		v     json.Number
	}{{"usage_units", r.UsageUnits}, {"billable_units", r.BillableUnits}, {"amt", r.Amt}, {"rate", r.Rate}} {
		if n.v != "" && !plainDecimal(string(n.v)) {
			bad(n.field, "%q is not a plain decimal number", string(n.v))
		}
	}
	if r.UsageDate != "" {
		if _, err := ParseDate(r.UsageDate); err != nil {
			errs = append(errs, err)
		}
	}
	for _, l := range []struct {
		field string
		v     string
		max   int
	}{
		{"client_record_id", r.ClientRecordID, maxClientRecordID},
		{"client_acct_id", r.ClientAcctID, maxClientAcctID},
		{"userid", r.UserID, maxUserID},
		{"usage_type_code", r.UsageTypeCode, maxUsageTypeCode},
		{"client_plan_instance_id", r.ClientPlanInstanceID, maxPlanInstanceID},
		{"client_master_plan_instance_id", r.ClientMasterPlanInstanceID, maxPlanInstanceID},
		{"qualifier_1", r.Qualifier1, maxQualifier},
		{"qualifier_2", r.Qualifier2, maxQualifier},
		{"qualifier_3", r.Qualifier3, maxQualifier},
		{"qualifier_4", r.Qualifier4, maxQualifier},
	} {
		if n := utf8.RuneCountInString(l.v); n > l.max {
			bad(l.field, "%d characters, more than %d", n, l.max)
		}
	}
	if r.ExcludeFromBilling != "" && r.ExcludeFromBilling != "true" && r.ExcludeFromBilling != "false" {
		bad("exclude_from_billing", "%q is neither true nor false", r.ExcludeFromBilling)
	}
	return errors.Join(errs...)
}

// plainDecimal reports whether s is -?digits[.digits]: what the core reads
// as a number without doubt (no exponent, no sign +, no bare point).
func plainDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != '.' {
		return false
	}
	i++
	frac := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > frac && i == len(s)
}
