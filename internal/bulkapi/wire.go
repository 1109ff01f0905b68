// Package bulkapi speaks the core billing system's bulk usage call,
// bulk_record_usage_m: its request and response as the core's API
// definitions give them, and a Client that sends one batch of usage
// records per call with a per-call timeout, retries with exponential
// backoff and full jitter, and a per-client rate limit.
//
// Every call is a JSON POST to the core's dispatcher (Path); the body
// names the call (rest_call) and carries the client's credentials
// (client_no, auth_key). The answer says whether the call as a whole was
// refused (error_code ≠ 0) and, when it was not, which records were
// refused one by one (error_records, keyed by the client_record_id each
// record was sent with).
//
// What a Send returns is one of:
//   - a *Result: the core took the call; records named in Result.Errors
//     were refused with their own code, every other record was recorded;
//   - a *RefusedError: the core refused the whole call (authentication,
//     missing parameters, …); it recorded nothing;
//   - an *UnavailableError: no answer after the configured attempts
//     (timeouts, connection errors, 5xx); nothing is known about what the
//     core recorded, and sending the same batch again is safe because the
//     core keys records by client_record_id;
//   - a *BadAnswerError: the core answered something that is not a bulk
//     usage answer, or that names records the batch does not hold;
//   - an *InvalidBatchError: the batch breaks the call's rules and was not
//     sent;
//   - the context's error when ctx ended first.
package bulkapi

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

// Path is the core API's dispatcher: every call is a POST of a JSON body
// to it, the call being named by the body's rest_call.
const Path = "/api/ws/api_ws_class_dispatcher.php"

// RestCall is the name of the bulk usage call.
const RestCall = "bulk_record_usage_m"

// OutputFormat is the only answer format this package reads.
const OutputFormat = "json"

// DateLayout is usage_date's layout, yyyy-mm-dd hh24:mi:ss, in UTC.
const DateLayout = "2006-01-02 15:04:05"

// Request is the body of a bulk_record_usage_m call (the core's
// BulkRecordUsageMRequest). Only Body gives the wire form with the
// auth_key; its JSON (encoding/json), String, %v, %+v, %#v and slog forms
// show [redacted] instead.
type Request struct {
	RestCall     string     `json:"rest_call"`
	OutputFormat string     `json:"output_format"`
	ClientNo     int64      `json:"client_no"`
	AuthKey      Secret     `json:"auth_key"`
	UsageRecs    []UsageRec `json:"usage_recs"`
	// ClientReceiptID tracks related actions on the core side (≤ 50
	// characters); optional.
	ClientReceiptID string `json:"client_receipt_id,omitempty"`
	AltCallerID     string `json:"alt_caller_id,omitempty"`
	// OptionalTransactionQualifiers are, for this call, used only for
	// financial transactions and not persisted by the core.
	OptionalTransactionQualifiers []TransactionQualifier `json:"optional_transaction_qualifiers,omitempty"`
}

// TransactionQualifier is one of a call's optional_transaction_qualifiers.
type TransactionQualifier struct {
	Name  string `json:"qualifier_name"`
	Value string `json:"qualifier_value"`
}

// UsageRec is one usage record of a call (the core's UsageRec). Numbers
// are exact decimal texts (json.Number) written as JSON numbers: build
// them with Units and Amount, never from binary floating point. Empty
// fields are left out of the body. Vivace fills ClientAcctID,
// UsageTypeCode, UsageUnits, UsageDate, Amt, ClientRecordID, the
// qualifiers and Comments; the other fields are the core's and are here so
// that the type is the whole definition.
type UsageRec struct {
	AcctNo                     int64  `json:"acct_no,omitempty"`
	UserID                     string `json:"userid,omitempty"`
	MasterPlanInstanceNo       int64  `json:"master_plan_instance_no,omitempty"`
	ClientMasterPlanInstanceID string `json:"client_master_plan_instance_id,omitempty"`
	PlanInstanceNo             int64  `json:"plan_instance_no,omitempty"`
	ClientPlanInstanceID       string `json:"client_plan_instance_id,omitempty"`
	UsageType                  int64  `json:"usage_type,omitempty"`
	// UsageUnits is required.
	UsageUnits json.Number `json:"usage_units"`
	// UsageDate is yyyy-mm-dd hh24:mi:ss in UTC (FormatDate).
	UsageDate     string      `json:"usage_date,omitempty"`
	BillableUnits json.Number `json:"billable_units,omitempty"`
	// Amt is the amount to charge, overriding the core's own rating: a
	// currency value written with the currency's minor-unit decimals
	// (Amount).
	Amt                json.Number `json:"amt,omitempty"`
	Rate               json.Number `json:"rate,omitempty"`
	TelcoFrom          string      `json:"telco_from,omitempty"`
	TelcoTo            string      `json:"telco_to,omitempty"`
	Comments           string      `json:"comments,omitempty"`
	ExcludeFromBilling string      `json:"exclude_from_billing,omitempty"`
	ExclusionComments  string      `json:"exclusion_comments,omitempty"`
	ParentUsageRecNo   int64       `json:"parent_usage_rec_no,omitempty"`
	Qualifier1         string      `json:"qualifier_1,omitempty"`
	Qualifier2         string      `json:"qualifier_2,omitempty"`
	Qualifier3         string      `json:"qualifier_3,omitempty"`
	Qualifier4         string      `json:"qualifier_4,omitempty"`
	UsageTypeCode      string      `json:"usage_type_code,omitempty"`
	// ClientRecordID is the idempotency key: the core keeps one record per
	// id, and names it in error_records when it refuses the record.
	ClientRecordID string `json:"client_record_id,omitempty"`
	CallerID       string `json:"caller_id,omitempty"`
	ClientAcctID   string `json:"client_acct_id,omitempty"`
}

// Response is the answer to a bulk_record_usage_m call (the core's
// BulkRecordUsageMResponse). Fields the core adds are ignored.
type Response struct {
	// ErrorCode 0 means the call was taken; any other code refused it whole.
	ErrorCode Code `json:"error_code"`
	// ErrorMsg is "OK" when there was no error.
	ErrorMsg string `json:"error_msg"`
	// ErrorRecords lists the records refused one by one.
	ErrorRecords []ErrorRecord `json:"error_records,omitempty"`
}

// ErrorRecord is one refused record of an answer (the core's ErrorRecord).
type ErrorRecord struct {
	// OutClientRecordID is the client_record_id the record was sent with.
	OutClientRecordID string `json:"out_client_record_id"`
	// AcctNo is the core's account number of the record, when it has one.
	AcctNo          json.Number `json:"acct_no,omitempty"`
	RecordErrorCode Code        `json:"record_error_code"`
	RecordErrorMsg  string      `json:"record_error_msg"`
}

// Code is one of the core's error codes. It reads from a JSON number or a
// JSON string holding one.
type Code int64

// The core's error codes for bulk_record_usage_m that Vivace knows by
// meaning. Others pass through unchanged.
const (
	CodeOK = Code(0)
	// CodeUnexpected: unexpected error.
	CodeUnexpected = Code(1001)
	// CodeAuthentication: authentication error (client_no and auth_key).
	CodeAuthentication = Code(1004)
	// CodeAccountNotFound: the account does not exist.
	CodeAccountNotFound = Code(1009)
	// CodeMissingParameter: missing required parameters.
	CodeMissingParameter = Code(1010)
	// CodeInvalidInput: invalid input (such as a value that is not a valid long).
	CodeInvalidInput = Code(1016)
	// CodeInvalidDate: invalid date format.
	CodeInvalidDate = Code(1024)
	// CodeInvalidPlanInstance: plan_instance_no or master plan instance
	// does not belong to the account.
	CodeInvalidPlanInstance = Code(14046)
	// CodeInvalidClientPlanInstance: invalid client plan instance id.
	CodeInvalidClientPlanInstance = Code(14047)
	// CodeInvalidMPI, CodeInvalidClientMPI: invalid master plan instance
	// number / client master plan instance id.
	CodeInvalidMPI       = Code(14053)
	CodeInvalidClientMPI = Code(14054)
	// CodeMPIMissing: master plan instance information missing.
	CodeMPIMissing = Code(14071)
)

var meanings = map[Code]string{
	CodeOK:                        "OK",
	CodeUnexpected:                "unexpected error",
	CodeAuthentication:            "authentication error",
	CodeAccountNotFound:           "account does not exist",
	CodeMissingParameter:          "missing required parameters",
	CodeInvalidInput:              "invalid input",
	CodeInvalidDate:               "invalid date format",
	CodeInvalidPlanInstance:       "invalid plan instance for the account",
	CodeInvalidClientPlanInstance: "invalid client plan instance id",
	CodeInvalidMPI:                "invalid master plan instance number",
	CodeInvalidClientMPI:          "invalid client master plan instance id",
	CodeMPIMissing:                "master plan instance information missing",
}

// Meaning is what the code means, or "" for a code this package does not
// know.
func (c Code) Meaning() string { return meanings[c] }

// String is the code's number, with its meaning when known: "1004
// (authentication error)".
func (c Code) String() string {
	if m := meanings[c]; m != "" {
		return strconv.FormatInt(int64(c), 10) + " (" + m + ")"
	}
	return strconv.FormatInt(int64(c), 10)
}

// UnmarshalJSON reads a number or a string holding an integer; null
// leaves the code unchanged.
func (c *Code) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("error code %s is not an integer", b)
	}
	*c = Code(n)
	return nil
}

// Secret holds a credential. It prints as [redacted] in every fmt verb,
// in slog and in JSON; only Reveal gives the value (and Request.Body, the
// wire body). The value sits behind a pointer, so even
// a struct printed through unexported fields shows an address, not the
// key.
type Secret struct{ v *string }

// NewSecret wraps a credential.
func NewSecret(s string) Secret { return Secret{v: &s} }

const redacted = "[redacted]"

// Reveal returns the credential itself.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// Equal compares the secret with a candidate in constant time.
func (s Secret) Equal(candidate string) bool {
	return subtle.ConstantTimeCompare([]byte(s.Reveal()), []byte(candidate)) == 1
}

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// Format prints [redacted] whatever the verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes "[redacted]": a Secret alone never reaches JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText writes [redacted].
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalJSON reads the credential from a JSON string.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("auth_key: %w", err)
	}
	*s = NewSecret(v)
	return nil
}

// plainRequest is Request without its methods, to embed.
type plainRequest Request

// Body is the wire body, auth_key included: the one place the key is
// revealed.
func (r Request) Body() ([]byte, error) {
	return json.Marshal(struct {
		plainRequest
		// Shallower than the embedded field of the same name: it wins.
		AuthKey string `json:"auth_key"`
	}{plainRequest(r), r.AuthKey.Reveal()})
}

// String describes the call without its credential.
func (r Request) String() string {
	return fmt.Sprintf("%s client_no=%d auth_key=%s usage_recs=%d client_receipt_id=%q",
		r.RestCall, r.ClientNo, redacted, len(r.UsageRecs), r.ClientReceiptID)
}

// Format prints String for every verb, so %v, %+v and %#v hide the key.
func (r Request) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue keeps the key out of slog output.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("rest_call", r.RestCall),
		slog.Int64("client_no", r.ClientNo),
		slog.String("auth_key", redacted),
		slog.Int("usage_recs", len(r.UsageRecs)),
		slog.String("client_receipt_id", r.ClientReceiptID),
	)
}
