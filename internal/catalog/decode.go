package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
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
// entity_id and validates the result. What Vivace does not use is
// ignored (see Check). The entity is returned as a *Account, *UsageType,
// *Plan, *Subscription or *Discount.
func Decode(entity, id string, data []byte) (Entity, error) {
	e, _, _, err := Check(entity, id, data)
	return e, err
}

// Check is Decode that also says what it ignores: fields Vivace does not
// use, at any level of the data (an unknown one, a plan's name), and
// fields the entity's model does not use (a unit_price on a stairstep
// tier). Each warning names its field, except for the names and
// descriptions that only say what something is. kept is the data
// without what was ignored, or nil when that is all of it. The data is
// refused only when something needed is missing, of the wrong type or
// invalid.
func Check(entity, id string, data []byte) (e Entity, warnings []string, kept []byte, err error) {
	var v interface {
		Entity
		setID(string)
	}
	switch entity {
	case EntityAccount:
		v = new(Account)
	case EntityUsageType:
		v = new(UsageType)
	case EntityPlan:
		v = new(Plan)
	case EntitySubscription:
		v = new(Subscription)
	case EntityDiscount:
		v = new(Discount)
	default:
		return nil, nil, nil, fmt.Errorf("%w %q", ErrUnknownEntity, entity)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return v, nil, nil, errors.New("data: must be a JSON object")
	}
	s := schemas[entity]
	// The usual data, without fields Vivace does not use, is read in one
	// strict pass; other data is pruned first, so that what is refused
	// is named in what Vivace reads.
	src := data
	err = decodeOne(data, v, true)
	// encoding/json says that a field is unknown only in its message.
	if err != nil && strings.HasPrefix(err.Error(), "json: unknown field ") {
		if warnings, kept, err = prune(data, s, nil); err != nil {
			return v, nil, nil, err
		}
		reflect.ValueOf(v).Elem().SetZero()
		src, err = kept, decodeOne(kept, v, true)
	}
	if err != nil {
		return v, nil, nil, explain(src, s, err)
	}
	v.setID(id)
	var drop []unused
	if pl, ok := v.(*Plan); ok {
		drop = pl.clearUnused()
	}
	if err := v.Validate(); err != nil {
		return v, nil, nil, err
	}
	if len(drop) > 0 {
		more, k, err := prune(src, s, drop)
		if err != nil {
			return v, nil, nil, err
		}
		warnings, kept = append(warnings, more...), k
	}
	return v, warnings, kept, nil
}

// ValidateData checks an upsert's data for entity without knowing its
// entity_id (which the event envelope checks), and returns what Check
// ignores. It fits the feed's data validator.
func ValidateData(entity string, data json.RawMessage) ([]string, json.RawMessage, error) {
	_, warnings, kept, err := Check(entity, "(entity_id)", data)
	return warnings, kept, err
}

func (a *Account) setID(id string)      { a.ID = id }
func (u *UsageType) setID(id string)    { u.Code = id }
func (p *Plan) setID(id string)         { p.ID = id }
func (s *Subscription) setID(id string) { s.ID = id }
func (d *Discount) setID(id string)     { d.ID = id }

// DecodeAccount decodes and validates an account's data.
func DecodeAccount(id string, data []byte) (Account, error) {
	e, err := Decode(EntityAccount, id, data)
	return *e.(*Account), err
}

// DecodeUsageType decodes and validates a usage type's data.
func DecodeUsageType(id string, data []byte) (UsageType, error) {
	e, err := Decode(EntityUsageType, id, data)
	return *e.(*UsageType), err
}

// DecodePlan decodes and validates a plan's data.
func DecodePlan(id string, data []byte) (Plan, error) {
	e, err := Decode(EntityPlan, id, data)
	return *e.(*Plan), err
}

// DecodeSubscription decodes and validates a subscription's data.
func DecodeSubscription(id string, data []byte) (Subscription, error) {
	e, err := Decode(EntitySubscription, id, data)
	return *e.(*Subscription), err
}

// DecodeDiscount decodes and validates a discount's data.
func DecodeDiscount(id string, data []byte) (Discount, error) {
	e, err := Decode(EntityDiscount, id, data)
	return *e.(*Discount), err
}

// errMore refuses data with a second JSON value after the first.
var errMore = errors.New("data: more than one JSON value")

// decodeOne decodes the one JSON value of data into v; strict refuses
// fields v does not have.
func decodeOne(data []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errMore
	}
	return nil
}

// schema is the JSON fields of an entity's data and of the objects in it,
// by lower-cased name (encoding/json matches names regardless of case);
// nil for a value that is not one of the catalog's objects.
type schema map[string]schema

var schemas = map[string]schema{
	EntityAccount:      schemaOf(reflect.TypeFor[Account]()),
	EntityUsageType:    schemaOf(reflect.TypeFor[UsageType]()),
	EntityPlan:         schemaOf(reflect.TypeFor[Plan]()),
	EntitySubscription: schemaOf(reflect.TypeFor[Subscription]()),
	EntityDiscount:     schemaOf(reflect.TypeFor[Discount]()),
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// schemaOf reads a type's JSON fields from its struct tags.
func schemaOf(t reflect.Type) schema {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshaler) {
		return nil // a value: a decimal, a time, a string
	}
	s := schema{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s[strings.ToLower(name)] = schemaOf(f.Type)
	}
	return s
}

// descriptive fields say what something is; Vivace accepts them anywhere
// without a word, and keeps them where its model has them.
var descriptive = map[string]bool{"name": true, "description": true}

// prune removes from data the fields the schema does not have and those
// in drop, and returns a warning for each (descriptive fields aside) and
// what is left.
func prune(data []byte, s schema, drop []unused) ([]string, []byte, error) {
	var tree any
	if err := decodeOne(data, &tree, false); err != nil {
		if errors.Is(err, errMore) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	dropped := make(map[string]bool, len(drop))
	for _, d := range drop {
		dropped[d.field] = true
	}
	var warnings []string
	var walk func(v any, s schema, path string)
	walk = func(v any, s schema, path string) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(x) {
				p := fieldPath(path, k)
				child, known := s[strings.ToLower(k)]
				switch {
				case !known:
					delete(x, k)
					if !descriptive[strings.ToLower(k)] {
						warnings = append(warnings, p+": not used by Vivace; ignored")
					}
				case dropped[p]:
					delete(x, k)
				case child != nil:
					walk(x[k], child, p)
				}
			}
		case []any:
			for i, e := range x {
				walk(e, s, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(tree, s, "")
	for _, d := range drop {
		warnings = append(warnings, d.field+": "+d.why+"; ignored")
	}
	kept, err := json.Marshal(tree)
	return warnings, kept, err
}

// Fields holding decimals and times, wherever they appear.
var (
	decimalFields = map[string]bool{"unit_price": true, "up_to": true, "flat_fee": true, "package_size": true, "value": true}
	timeFields    = map[string]bool{"effective_from": true, "effective_to": true}
)

// explain turns a decoding error into one naming the field at fault when
// a walk over the document finds a bad decimal or time; the standard
// decoder does not say where a value's own parser failed.
func explain(data []byte, s schema, err error) error {
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
	if fe := findBad(v, s, ""); fe != nil {
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

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fieldPath is the path of field k of the object at path.
func fieldPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// findBad looks for a bad decimal or time among the fields s has.
func findBad(v any, s schema, path string) *FieldError {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			p := fieldPath(path, k)
			child, known := s[strings.ToLower(k)]
			if !known {
				continue
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
			if fe := findBad(val, child, p); fe != nil {
				return fe
			}
		}
	case []any:
		for i, e := range x {
			if fe := findBad(e, s, fmt.Sprintf("%s[%d]", path, i)); fe != nil {
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
