// Package settings holds Vivace's system settings: the settings that are
// not per client (how MUR sync batches and paces its calls, say). Each
// key has a type, a range and a default here in the code; the database
// holds only the values someone set, who set them and when. A change is
// validated strictly (an unknown key or a value of the wrong type is an
// error that names the key), recorded in the audit log in the same
// transaction, and read again by whatever uses it at its next turn, so it
// takes effect without a restart.
package settings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/auth"
)

// Type is the JSON shape of a setting's value.
type Type string

// The types of value.
const (
	Integer  Type = "integer"  // a JSON number without fraction or exponent
	Number   Type = "number"   // a JSON number
	Boolean  Type = "boolean"  // true or false
	Duration Type = "duration" // a JSON string such as "5m" or "90s"
)

// The keys.
const (
	MURSyncBatchSize   = "mur_sync.batch_size"
	MURSyncInterval    = "mur_sync.interval"
	MURSyncAggregate   = "mur_sync.aggregate"
	MURSyncMaxAttempts = "mur_sync.max_attempts"
	MURSyncRateLimit   = "mur_sync.rate_limit"
	MURSyncCallTimeout = "mur_sync.call_timeout"
)

// Def describes one key.
type Def struct {
	Key     string          `json:"key"`
	Type    Type            `json:"type"`
	Default json.RawMessage `json:"default"`
	Help    string          `json:"help"`

	min, max float64 // integer and number: inclusive bounds
	minD     time.Duration
	maxD     time.Duration
}

var defs = []Def{
	{Key: MURSyncBatchSize, Type: Integer, Default: json.RawMessage(`1000`), min: 1, max: 10000,
		Help: "aggregated records per bulk_record_usage_m call (1 to 10000)"},
	{Key: MURSyncInterval, Type: Duration, Default: json.RawMessage(`"5m"`), minD: time.Second, maxD: 24 * time.Hour,
		Help: "time between the starts of two scheduled sync cycles (1s to 24h)"},
	{Key: MURSyncAggregate, Type: Boolean, Default: json.RawMessage(`true`),
		Help: "sum MURs per client, account, usage type, currency and UTC day into one record; false sends one record per MUR"},
	{Key: MURSyncMaxAttempts, Type: Integer, Default: json.RawMessage(`5`), min: 1, max: 50,
		Help: "tries of one call, the first included, before a batch fails for a timeout, a lost connection or a 5xx (1 to 50)"},
	{Key: MURSyncRateLimit, Type: Number, Default: json.RawMessage(`20`), min: 0, max: 100000,
		Help: "most calls per second to the core for one client, retries included; 0 means no limit"},
	{Key: MURSyncCallTimeout, Type: Duration, Default: json.RawMessage(`"60s"`), minD: 100 * time.Millisecond, maxD: 30 * time.Minute,
		Help: "how long one try of a call may take before it counts as a timeout (100ms to 30m)"},
}

// Defs lists every key, sorted.
func Defs() []Def {
	out := append([]Def(nil), defs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ErrUnknownKey is wrapped by the error for a key that is not a setting.
var ErrUnknownKey = errors.New("unknown system setting")

// Lookup returns the definition of key.
func Lookup(key string) (Def, error) {
	for _, d := range defs {
		if d.Key == key {
			return d, nil
		}
	}
	known := make([]string, 0, len(defs))
	for _, d := range Defs() {
		known = append(known, d.Key)
	}
	return Def{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownKey, key, strings.Join(known, ", "))
}

// ErrInvalid is wrapped by the error for a value a key does not take.
var ErrInvalid = errors.New("invalid value")

// Parse reads a value as typed on a command line: JSON (500, true,
// "5m"), or for a duration the bare text (5m). It returns the value in
// its stored form.
func Parse(key, text string) (json.RawMessage, error) {
	d, err := Lookup(key)
	if err != nil {
		return nil, err
	}
	text = strings.TrimSpace(text)
	raw := json.RawMessage(text)
	if !json.Valid(raw) {
		if d.Type != Duration || text == "" {
			return nil, d.invalid(text, "is not a %s", d.describe())
		}
		raw, _ = json.Marshal(text)
	}
	return d.Check(raw)
}

// Check validates raw JSON as a value of the key and returns its stored
// form (numbers and durations written one way).
func (d Def) Check(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, d.invalid(string(raw), "is not JSON")
	}
	if dec.More() {
		return nil, d.invalid(string(raw), "holds more than one value")
	}
	switch d.Type {
	case Integer:
		n, ok := v.(json.Number)
		if !ok {
			return nil, d.invalid(string(raw), "is a %s, not a %s", kind(v), d.describe())
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, d.invalid(string(raw), "is not a whole number")
		}
		if float64(i) < d.min || float64(i) > d.max {
			return nil, d.invalid(string(raw), "is out of range (%s)", d.rangeText())
		}
		return json.RawMessage(strconv.FormatInt(i, 10)), nil
	case Number:
		n, ok := v.(json.Number)
		if !ok {
			return nil, d.invalid(string(raw), "is a %s, not a %s", kind(v), d.describe())
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, d.invalid(string(raw), "is not a number")
		}
		if f < d.min || f > d.max {
			return nil, d.invalid(string(raw), "is out of range (%s)", d.rangeText())
		}
		return json.RawMessage(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case Boolean:
		b, ok := v.(bool)
		if !ok {
			return nil, d.invalid(string(raw), "is a %s, not true or false", kind(v))
		}
		return json.RawMessage(strconv.FormatBool(b)), nil
	case Duration:
		s, ok := v.(string)
		if !ok {
			return nil, d.invalid(string(raw), "is a %s, not a %s", kind(v), d.describe())
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			return nil, d.invalid(string(raw), "is not a duration such as \"90s\", \"5m\" or \"1h\"")
		}
		if dur < d.minD || dur > d.maxD {
			return nil, d.invalid(string(raw), "is out of range (%s)", d.rangeText())
		}
		b, _ := json.Marshal(s)
		return b, nil
	}
	return nil, fmt.Errorf("setting %s: no type", d.Key)
}

func (d Def) invalid(value, format string, args ...any) error {
	return fmt.Errorf("%w for %s: %s %s", ErrInvalid, d.Key, clip(value), fmt.Sprintf(format, args...))
}

func (d Def) describe() string {
	switch d.Type {
	case Integer:
		return "whole number (" + d.rangeText() + ")"
	case Number:
		return "number (" + d.rangeText() + ")"
	case Boolean:
		return "true or false"
	default:
		return "duration such as \"5m\" (" + d.rangeText() + ")"
	}
}

func (d Def) rangeText() string {
	if d.Type == Duration {
		return fmt.Sprintf("%s to %s", d.minD, d.maxD)
	}
	return fmt.Sprintf("%s to %s", strconv.FormatFloat(d.min, 'f', -1, 64), strconv.FormatFloat(d.max, 'f', -1, 64))
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	default:
		return "object"
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// The actions a change records in the audit log.
const (
	ActionSet   = "setting.set"   // a setting given a value
	ActionReset = "setting.reset" // a setting back to its default
)

// Stored is a value someone set.
type Stored struct {
	Key       string
	Value     json.RawMessage
	UpdatedBy string
	UpdatedAt time.Time
}

// Setting is a key with the value in effect.
type Setting struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Default   json.RawMessage `json:"default"`
	IsDefault bool            `json:"is_default"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	UpdatedAt *time.Time      `json:"updated_at,omitempty"`
	Type      Type            `json:"type"`
	Help      string          `json:"help"`
}

// Store keeps the values set; the storage adapter implements it.
type Store interface {
	// Load returns every stored value.
	Load(ctx context.Context) ([]Stored, error)
	// Put stores value for key (nil: removes it, so the default applies)
	// as set by actor and, in the same transaction, records the entry
	// entry(before) returns, before being the value stored until then
	// (nil when there was none).
	Put(ctx context.Context, key string, value json.RawMessage, actor string, entry func(before json.RawMessage) auth.AuditEntry) error
}

// Service reads and changes settings.
type Service struct {
	Store Store
}

// List returns every key with the value in effect.
func (s *Service) List(ctx context.Context) ([]Setting, error) {
	stored, err := s.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("system settings: %w", err)
	}
	byKey := map[string]Stored{}
	for _, st := range stored {
		byKey[st.Key] = st
	}
	var out []Setting
	for _, d := range Defs() {
		set := Setting{Key: d.Key, Value: d.Default, Default: d.Default, IsDefault: true, Type: d.Type, Help: d.Help}
		if st, ok := byKey[d.Key]; ok {
			set.Value, set.IsDefault, set.UpdatedBy = st.Value, false, st.UpdatedBy
			at := st.UpdatedAt.UTC()
			set.UpdatedAt = &at
		}
		out = append(out, set)
	}
	return out, nil
}

// Get returns one key with the value in effect.
func (s *Service) Get(ctx context.Context, key string) (Setting, error) {
	if _, err := Lookup(key); err != nil {
		return Setting{}, err
	}
	all, err := s.List(ctx)
	if err != nil {
		return Setting{}, err
	}
	for _, set := range all {
		if set.Key == key {
			return set, nil
		}
	}
	return Setting{}, fmt.Errorf("%w %q", ErrUnknownKey, key)
}

// Set gives key the value text (as Parse reads it) on behalf of actor
// (who made the change, for the audit log: a token's name).
func (s *Service) Set(ctx context.Context, key, text, actor string) (Setting, error) {
	v, err := Parse(key, text)
	if err != nil {
		return Setting{}, err
	}
	return s.put(ctx, key, v, actor)
}

// Reset removes key's value, so that its default applies again.
func (s *Service) Reset(ctx context.Context, key, actor string) (Setting, error) {
	if _, err := Lookup(key); err != nil {
		return Setting{}, err
	}
	return s.put(ctx, key, nil, actor)
}

func (s *Service) put(ctx context.Context, key string, v json.RawMessage, actor string) (Setting, error) {
	d, _ := Lookup(key)
	if strings.TrimSpace(actor) == "" {
		return Setting{}, errors.New("system settings: who makes the change is required")
	}
	action, after := ActionSet, v
	if v == nil {
		action, after = ActionReset, d.Default
	}
	err := s.Store.Put(ctx, key, v, actor, func(before json.RawMessage) auth.AuditEntry {
		if before == nil {
			before = d.Default
		}
		return auth.AuditEntry{Actor: actor, Action: action, Target: "setting:" + key, Before: before, After: after}
	})
	if err != nil {
		return Setting{}, fmt.Errorf("system setting %s: %w", key, err)
	}
	return s.Get(ctx, key)
}
