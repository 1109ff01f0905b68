package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"vivace.dev/vivace/internal/money"
)

// Entity names as the core feed writes them.
const (
	EntityAccount      = "account"
	EntityUsageType    = "usage_type"
	EntityPlan         = "plan"
	EntitySubscription = "subscription"
	EntityDiscount     = "discount"
)

// ErrUnknownEntity is returned for an entity name the catalog does not
// know.
var ErrUnknownEntity = errors.New("unknown entity")

// Entity is any of the catalog's entity types.
type Entity interface {
	Validate() error
}

// Decode reads an upsert's data for entity, sets the id from the event's
// entity_id and validates the result. Unknown fields are refused, so a
// misspelt field cannot silently lose a price. The entity is returned as
// a *Account, *UsageType, *Plan, *Subscription or *Discount.
func Decode(entity, id string, data []byte) (Entity, error) {
	switch entity {
	case EntityAccount:
		v, err := DecodeAccount(id, data)
		return &v, err
	case EntityUsageType:
		v, err := DecodeUsageType(id, data)
		return &v, err
	case EntityPlan:
		v, err := DecodePlan(id, data)
		return &v, err
	case EntitySubscription:
		v, err := DecodeSubscription(id, data)
		return &v, err
	case EntityDiscount:
		v, err := DecodeDiscount(id, data)
		return &v, err
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownEntity, entity)
}

// ValidateData checks an upsert's data for entity without knowing its
// entity_id (which the event envelope checks). It fits the feed's data
// validator.
func ValidateData(entity string, data json.RawMessage) error {
	_, err := Decode(entity, "(entity_id)", data)
	return err
}

// DecodeAccount decodes and validates an account's data.
func DecodeAccount(id string, data []byte) (Account, error) {
	var a Account
	if err := decodeStrict(data, &a); err != nil {
		return a, err
	}
	a.ID = id
	return a, a.Validate()
}

// DecodeUsageType decodes and validates a usage type's data.
func DecodeUsageType(id string, data []byte) (UsageType, error) {
	var u UsageType
	if err := decodeStrict(data, &u); err != nil {
		return u, err
	}
	u.Code = id
	return u, u.Validate()
}

// DecodePlan decodes and validates a plan's data.
func DecodePlan(id string, data []byte) (Plan, error) {
	var p Plan
	if err := decodeStrict(data, &p); err != nil {
		return p, err
	}
	p.ID = id
	return p, p.Validate()
}

// DecodeSubscription decodes and validates a subscription's data.
func DecodeSubscription(id string, data []byte) (Subscription, error) {
	var s Subscription
	if err := decodeStrict(data, &s); err != nil {
		return s, err
	}
	s.ID = id
	return s, s.Validate()
}

// DecodeDiscount decodes and validates a discount's data.
func DecodeDiscount(id string, data []byte) (Discount, error) {
	var d Discount
	if err := decodeStrict(data, &d); err != nil {
		return d, err
	}
	d.ID = id
	return d, d.Validate()
}

func decodeStrict(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return errors.New("data: must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explain(data, err)
	}
	if dec.More() {
		return errors.New("data: more than one JSON value")
	}
	return nil
}

// Fields holding decimals and times, wherever they appear.
var (
	decimalFields = map[string]bool{"unit_price": true, "up_to": true, "flat_fee": true, "package_size": true, "value": true}
	timeFields    = map[string]bool{"effective_from": true, "effective_to": true}
)

// explain turns a decoding error into one naming the field at fault when
// a walk over the document finds a bad decimal or time; the standard
// decoder does not say where a value's own parser failed.
func explain(data []byte, err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return &FieldError{Field: ute.Field, Message: fmt.Sprintf("a JSON %s is not allowed here (want %s)", ute.Value, jsonKind(ute.Type.String()))}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return err
	}
	if fe := findBad(v, ""); fe != nil {
		return fe
	}
	return err
}

func jsonKind(goType string) string {
	switch goType {
	case "int":
		return "an integer"
	case "string", "catalog.Status", "catalog.Model", "catalog.DiscountKind":
		return "a string"
	case "[]string":
		return "a list of strings"
	}
	return goType
}

func findBad(v any, path string) *FieldError {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			val := x[k]
			switch {
			case val == nil:
			case decimalFields[k]:
				var s string
				switch n := val.(type) {
				case json.Number:
					s = string(n)
				case string:
					s = n
				default:
					return &FieldError{Field: p, Message: "must be a decimal (a JSON string or number)"}
				}
				if _, err := money.Parse(s); err != nil {
					return &FieldError{Field: p, Message: err.Error()}
				}
				continue
			case timeFields[k]:
				s, ok := val.(string)
				if !ok {
					return &FieldError{Field: p, Message: "must be an RFC 3339 timestamp string"}
				}
				if _, err := time.Parse(time.RFC3339, s); err != nil {
					return &FieldError{Field: p, Message: fmt.Sprintf("%s is not an RFC 3339 timestamp (e.g. 2026-03-01T00:00:00Z)", strconv.Quote(s))}
				}
				continue
			}
			if fe := findBad(val, p); fe != nil {
				return fe
			}
		}
	case []any:
		for i, e := range x {
			if fe := findBad(e, fmt.Sprintf("%s[%d]", path, i)); fe != nil {
				return fe
			}
		}
	}
	return nil
}

// Builder gathers a client's catalog rows, decoding each, and builds a
// Snapshot. Rows that do not decode are left out and listed by Problems.
type Builder struct {
	accounts      []Account
	usageTypes    []UsageType
	plans         []Plan
	subscriptions []Subscription
	discounts     []Discount
	problems      []error
}

// Add decodes one live catalog row. An invalid row is kept out of the
// snapshot; the error is returned and also listed by Problems.
func (b *Builder) Add(entity, id string, data []byte) error {
	e, err := Decode(entity, id, data)
	if err != nil {
		err = fmt.Errorf("%s %s: %w", entity, id, err)
		b.AddProblem(err)
		return err
	}
	b.AddDecoded(e)
	return nil
}

// AddProblem lists a row that was refused elsewhere (a cache keeps rows
// decoded once, problems included, across snapshots).
func (b *Builder) AddProblem(err error) { b.problems = append(b.problems, err) }

// AddDecoded adds an entity Decode returned.
func (b *Builder) AddDecoded(e Entity) {
	switch v := e.(type) {
	case *Account:
		b.accounts = append(b.accounts, *v)
	case *UsageType:
		b.usageTypes = append(b.usageTypes, *v)
	case *Plan:
		b.plans = append(b.plans, *v)
	case *Subscription:
		b.subscriptions = append(b.subscriptions, *v)
	case *Discount:
		b.discounts = append(b.discounts, *v)
	}
}

// Problems lists the rows Add refused.
func (b *Builder) Problems() []error { return b.problems }

// Snapshot builds the snapshot of what was added. Its Problems include
// the rows Add refused.
func (b *Builder) Snapshot(client string) *Snapshot {
	s := NewSnapshot(client, b.accounts, b.usageTypes, b.plans, b.subscriptions, b.discounts)
	s.problems = append(append([]error(nil), b.problems...), s.problems...)
	return s
}

// Row is a catalog entity as stored: the data of the event that last
// wrote it, not yet decoded.
type Row struct {
	Entity   string
	EntityID string
	Version  int64
	Deleted  bool
	Data     json.RawMessage
}
