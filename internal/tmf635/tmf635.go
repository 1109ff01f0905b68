// Package tmf635 maps Vivace's usage records onto TM Forum's TMF635
// Usage Management API v4 (docs/tmf635.md): a usage is a record of a
// client's file or of its "api" submission, seen as it stands — received,
// rejected (an exception), recycled (an exception being reprocessed),
// rated (a MUR) or billed (a MUR synced to the core). It holds the TMF
// shapes, the status rules, what a posted Usage_Create means as a usage
// record, the list filters and the hub's queries and retry policy. It
// knows nothing of HTTP or SQL.
package tmf635

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/usage"
)

// BasePath is where the API is served.
const BasePath = "/tmf-api/usageManagement/v4"

// Status is a TMF usage status (UsageStatusType).
type Status string

// The statuses Vivace's records take. guided and rerated are in the
// standard but no Vivace record is ever in them.
const (
	Received Status = "received"
	Rejected Status = "rejected"
	Recycled Status = "recycled"
	Rated    Status = "rated"
	Billed   Status = "billed"
)

// Statuses are the statuses a filter may name.
var Statuses = []Status{Received, Rejected, Recycled, Rated, Billed}

// Money is an amount in a currency; value is a JSON number.
type Money struct {
	Unit  string      `json:"unit"`
	Value json.Number `json:"value"`
}

// RatedProductUsage is what rating made of a usage.
type RatedProductUsage struct {
	RatingDate              string `json:"ratingDate"`
	UsageRatingTag          string `json:"usageRatingTag"`
	IsBilled                bool   `json:"isBilled"`
	RatingAmountType        string `json:"ratingAmountType"`
	TaxExcludedRatingAmount Money  `json:"taxExcludedRatingAmount"`
	Type                    string `json:"@type"`
}

// Characteristic is a usage characteristic: a name and a value.
type Characteristic struct {
	Name      string `json:"name"`
	ValueType string `json:"valueType,omitempty"`
	Value     any    `json:"value"`
}

// RelatedParty is a party of a usage: for Vivace the billing account.
type RelatedParty struct {
	ID           string `json:"id"`
	Name         string `json:"name,omitempty"`
	Role         string `json:"role,omitempty"`
	ReferredType string `json:"@referredType"`
}

// SpecRef refers to a usage specification (a usage type).
type SpecRef struct {
	ID   string `json:"id"`
	Href string `json:"href,omitempty"`
	Name string `json:"name,omitempty"`
}

// Usage is the TMF Usage resource.
type Usage struct {
	ID                  string              `json:"id"`
	Href                string              `json:"href"`
	Description         string              `json:"description,omitempty"`
	UsageDate           string              `json:"usageDate,omitempty"`
	UsageType           string              `json:"usageType,omitempty"`
	Status              Status              `json:"status"`
	UsageSpecification  *SpecRef            `json:"usageSpecification,omitempty"`
	UsageCharacteristic []Characteristic    `json:"usageCharacteristic,omitempty"`
	RelatedParty        []RelatedParty      `json:"relatedParty,omitempty"`
	RatedProductUsage   []RatedProductUsage `json:"ratedProductUsage,omitempty"`
	Type                string              `json:"@type"`
}

// UsageSpecification is a usage type of a client's catalog.
type UsageSpecification struct {
	ID              string `json:"id"`
	Href            string `json:"href"`
	Name            string `json:"name"`
	Description     string `json:"description,omitempty"`
	LifecycleStatus string `json:"lifecycleStatus"`
	LastUpdate      string `json:"lastUpdate,omitempty"`
	Type            string `json:"@type"`
}

// EventSubscription is a hub registration.
type EventSubscription struct {
	ID       string `json:"id"`
	Callback string `json:"callback"`
	Query    string `json:"query,omitempty"`
}

// Hub is a subscription with the clients it covers (nil: every client).
type Hub struct {
	EventSubscription
	Clients []string
}

// Delivery is a callback waiting in the hub's queue: a change of one
// usage for one subscriber.
type Delivery struct {
	Seq       int64
	Hub       Hub
	Kind      string // create (UsageCreateEvent) or state (UsageStateChangeEvent)
	Status    Status // the status the usage changed to
	Attempts  int
	CreatedAt time.Time
	FileID    string
	Line      int64
	Part      int
}

// Error is the TMF Error body.
type Error struct {
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	Status  string `json:"status,omitempty"`
}

// Record is what is stored of one usage: its MUR, its exception, what
// was posted of it, any of them. A usage has at least one.
type Record struct {
	Client string
	FileID string
	Line   int64
	Part   int
	MUR    *murs.MUR
	Exc    *exceptions.Exception
	// ExcEdited is the exception's record as a person edited it (nil
	// when never edited).
	ExcEdited json.RawMessage
	Posted    *Posted
}

// Posted is a usage as POST /usage took it.
type Posted struct {
	Fields     map[string]string
	Body       json.RawMessage // the Usage_Create as sent
	ReceivedAt time.Time
}

// StatusOf is a record's status: a MUR is rated, or billed once synced;
// an exception is rejected, or recycled while it is reprocessed; a
// posted usage with neither is received.
func StatusOf(r *Record) Status {
	switch {
	case r.MUR != nil && r.MUR.SyncStatus == murs.Synced:
		return Billed
	case r.MUR != nil:
		return Rated
	case r.Exc != nil && r.Exc.Status == exceptions.Reprocessing:
		return Recycled
	case r.Exc != nil:
		return Rejected
	default:
		return Received
	}
}

// ID is a usage's id: its source, file and line (and part when mediation
// split the line), which stays the same from received to billed.
func ID(fileID string, line int64, part int) string {
	if part == 0 {
		return fileID + "." + strconv.FormatInt(line, 10)
	}
	return fileID + "." + strconv.FormatInt(line, 10) + "." + strconv.Itoa(part)
}

// ParseID reads an id made by ID; false for anything else.
func ParseID(id string) (fileID string, line int64, part int, ok bool) {
	f, rest, found := strings.Cut(id, ".")
	if !found || !validUUID(f) {
		return "", 0, 0, false
	}
	l, p, hasPart := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(l, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != l {
		return "", 0, 0, false
	}
	if hasPart {
		k, err := strconv.Atoi(p)
		if err != nil || k < 1 || strconv.Itoa(k) != p {
			return "", 0, 0, false
		}
		part = k
	}
	return f, n, part, true
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// SpecID is a usage specification's id: client and usage type code
// (client names hold no ':').
func SpecID(client, code string) string { return client + ":" + code }

// ParseSpecID splits a SpecID.
func ParseSpecID(id string) (client, code string, ok bool) {
	client, code, ok = strings.Cut(id, ":")
	return client, code, ok && client != "" && code != ""
}

// Build is the Usage of a record; base is the absolute URL of the API
// (scheme, host and BasePath), for hrefs.
func Build(r *Record, base string) Usage {
	id := ID(r.FileID, r.Line, r.Part)
	u := Usage{ID: id, Href: base + "/usage/" + id, Status: StatusOf(r), Type: "Usage"}
	var fields map[string]string
	switch {
	case r.MUR != nil:
		m := r.MUR
		u.UsageType, u.UsageDate = m.UsageType, m.UsageTime.UTC().Format(time.RFC3339Nano)
		u.RelatedParty = []RelatedParty{{ID: m.AccountID, Role: "customer", ReferredType: "BillingAccount"}}
		u.UsageCharacteristic = append(u.UsageCharacteristic,
			Characteristic{Name: usage.FieldQuantity, ValueType: "number", Value: json.Number(m.Quantity)},
			Characteristic{Name: usage.FieldRecordID, ValueType: "string", Value: m.RecordID})
		u.UsageCharacteristic = append(u.UsageCharacteristic, sortedChars(m.Qualifiers)...)
		u.UsageCharacteristic = append(u.UsageCharacteristic, sortedChars(m.Attributes)...)
		u.RatedProductUsage = []RatedProductUsage{{
			RatingDate: m.RatedAt.UTC().Format(time.RFC3339Nano), UsageRatingTag: "usage",
			IsBilled: m.SyncStatus == murs.Synced, RatingAmountType: "total",
			TaxExcludedRatingAmount: Money{Unit: m.Currency, Value: json.Number(m.NetAmount)},
			Type:                    "RatedProductUsage",
		}}
	case r.Exc != nil:
		fields = excFields(r)
		u.Description = fmt.Sprintf("%s at %s: %s", r.Exc.Code, r.Exc.Stage, r.Exc.Message)
	case r.Posted != nil:
		fields = r.Posted.Fields
	}
	if fields != nil {
		u.UsageType = fields[usage.FieldUsageType]
		drop := []string{usage.FieldUsageType, usage.FieldAccountID}
		// A usage time that is no date-time (the reason it was rejected,
		// say) stays a characteristic, as written: usageDate is one.
		if t, err := time.Parse(time.RFC3339Nano, fields[usage.FieldUsageTime]); err == nil {
			u.UsageDate = t.UTC().Format(time.RFC3339Nano)
			drop = append(drop, usage.FieldUsageTime)
		} else if fields[usage.FieldUsageTime] == "" {
			drop = append(drop, usage.FieldUsageTime)
		}
		if a := fields[usage.FieldAccountID]; a != "" {
			u.RelatedParty = []RelatedParty{{ID: a, Role: "customer", ReferredType: "BillingAccount"}}
		}
		u.UsageCharacteristic = sortedChars(without(fields, drop...))
	}
	if r.Exc != nil {
		u.UsageCharacteristic = append(u.UsageCharacteristic,
			Characteristic{Name: "exception_code", ValueType: "string", Value: string(r.Exc.Code)},
			Characteristic{Name: "exception_id", ValueType: "string", Value: r.Exc.ExceptionID})
		if r.Exc.Field != "" {
			u.UsageCharacteristic = append(u.UsageCharacteristic, Characteristic{Name: "exception_field", ValueType: "string", Value: r.Exc.Field})
		}
	}
	if r.Posted != nil {
		var p struct {
			Description string `json:"description"`
			UsageDate   string `json:"usageDate"`
		}
		_ = json.Unmarshal(r.Posted.Body, &p)
		if u.Description == "" {
			u.Description = p.Description
		}
		// The record's usage_time is in the client's format; the usage
		// was posted with a date-time.
		if t, err := time.Parse(time.RFC3339Nano, p.UsageDate); err == nil && r.MUR == nil && u.UsageDate == "" {
			u.UsageDate = t.UTC().Format(time.RFC3339Nano)
			kept := u.UsageCharacteristic[:0]
			for _, c := range u.UsageCharacteristic {
				if c.Name != usage.FieldUsageTime {
					kept = append(kept, c)
				}
			}
			u.UsageCharacteristic = kept
		}
	}
	if u.UsageType != "" {
		sid := SpecID(r.Client, u.UsageType)
		u.UsageSpecification = &SpecRef{ID: sid, Href: base + "/usageSpecification/" + sid, Name: u.UsageType}
	}
	return u
}

// excFields are the fields of the record an exception holds, as a
// person last edited them if they did (exceptions.Fields).
func excFields(r *Record) map[string]string {
	f, err := exceptions.Fields(r.Exc, &exceptions.Work{Edited: r.ExcEdited})
	if err != nil {
		return map[string]string{}
	}
	return f
}

func without(m map[string]string, keys ...string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// sortedChars are characteristics of string fields, quantity and
// record_id first, then by name.
func sortedChars(m map[string]string) []Characteristic {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	rank := func(k string) string {
		switch k {
		case usage.FieldQuantity:
			return "0"
		case usage.FieldRecordID:
			return "1"
		}
		return "2" + k
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && rank(keys[j]) < rank(keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	out := make([]Characteristic, 0, len(keys))
	for _, k := range keys {
		out = append(out, Characteristic{Name: k, ValueType: "string", Value: m[k]})
	}
	return out
}

// Problem is a request the API refuses: an HTTP status and a TMF error.
type Problem struct {
	Status int
	Code   string
	Reason string
}

func (p *Problem) Error() string { return p.Reason }

// Body is the TMF Error body of the problem.
func (p *Problem) Body() Error {
	return Error{Code: p.Code, Reason: p.Reason, Status: strconv.Itoa(p.Status)}
}

func badRequest(format string, args ...any) *Problem {
	return &Problem{Status: 400, Code: "INVALID_REQUEST", Reason: fmt.Sprintf(format, args...)}
}

// AsProblem is err as a Problem: a codes.Error a bad record carries is
// a 400 with its code.
func AsProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var ce *codes.Error
	if errors.As(err, &ce) {
		return &Problem{Status: 400, Code: string(ce.Code), Reason: ce.Error()}
	}
	return nil
}
