package rules

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/retry"
)

// What a lookup does with a key that has no entry.
const (
	OnMissingFail    = "fail"    // the record fails with MEDIATION_FAILED
	OnMissingKeep    = "keep"    // the record goes on unchanged
	OnMissingDefault = "default" // the record takes the defaults
)

// LookupConfig is one lookup rule: which table it reads, which fields it
// sets from an entry's value columns, and what a key without an entry
// does.
type LookupConfig struct {
	// Lookup is the table's name.
	Lookup string
	// KeyName is how failures name the key: the key's field when the key
	// is one field, else the key query's text.
	KeyName string
	// Set maps record field → value column.
	Set map[string]string
	// OnMissing is OnMissingFail, OnMissingKeep or OnMissingDefault.
	OnMissing string
	// Defaults are the fields set when a key has no entry
	// (OnMissingDefault only); each is a field of Set.
	Defaults map[string]string
	// Cache keeps answers between batches (nil: none are kept).
	Cache *LookupCache[LookupKey]
	// Reader reads the table.
	Reader LookupReader
	// Refused reports whether a read error is the store refusing the
	// query (a missing table, say): the records that needed it fail at
	// once. Any other error is waited out.
	Refused func(error) bool
	// Warnf, when set, hears about the waits on the store.
	Warnf func(format string, args ...any)
	// MaxWait, when positive, bounds how long a store that cannot be
	// reached is waited for before the records that needed it fail.
	MaxWait time.Duration
}

// Validate joins every problem of the settings.
func (c LookupConfig) Validate() error {
	var errs []error
	if err := ValidLookupName(c.Lookup); err != nil {
		errs = append(errs, err)
	}
	if len(c.Set) == 0 {
		errs = append(errs, errors.New("set: empty; name at least one record field and the value column it takes"))
	}
	for _, f := range sortedKeys(c.Set) {
		if col := c.Set[f]; f == "" || col == "" {
			errs = append(errs, fmt.Errorf("set: %q: %q: both the record field and the value column are needed", f, col))
		}
	}
	switch {
	case c.OnMissing != OnMissingFail && c.OnMissing != OnMissingKeep && c.OnMissing != OnMissingDefault:
		errs = append(errs, fmt.Errorf("on_missing: %q is not fail, keep or default", c.OnMissing))
	case c.OnMissing == OnMissingDefault && len(c.Defaults) == 0:
		errs = append(errs, errors.New("defaults: on_missing is default, so defaults must name the fields to set"))
	case c.OnMissing != OnMissingDefault && len(c.Defaults) > 0:
		errs = append(errs, fmt.Errorf("defaults: only used with on_missing: default (it is %s)", c.OnMissing))
	}
	for _, f := range sortedKeys(c.Defaults) {
		if _, ok := c.Set[f]; !ok {
			errs = append(errs, fmt.Errorf("defaults: %q is not a field of set", f))
		}
	}
	if c.Reader == nil {
		errs = append(errs, errors.New("a lookup reader is required"))
	}
	return errors.Join(errs...)
}

// Lookup enriches records from a lookup table: Resolve reads the entries
// of a batch's keys (from the cache, the rest in one read), Fields says
// what each record becomes. It is safe for concurrent use.
type Lookup struct {
	LookupConfig
	setFields []string // the keys of Set, sorted
	retry     retry.Policy
	queries   atomic.Int64
}

// NewLookup checks cfg and returns its Lookup.
func NewLookup(cfg LookupConfig) (*Lookup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := storeRetry(cfg.Refused, 1, 100*time.Millisecond, cfg.MaxWait)
	r.Warnf = cfg.Warnf
	return &Lookup{LookupConfig: cfg, setFields: sortedKeys(cfg.Set), retry: r}, nil
}

// Queries is how many reads Resolve has sent to the store.
func (l *Lookup) Queries() int64 { return l.queries.Load() }

// Answers is what Resolve found for a batch's keys.
type Answers struct {
	entries map[LookupKey]map[string]string // nil value: no entry
	unread  map[LookupKey]struct{}          // keys the read failed for
	err     error                           // why
	// Hits counts the keys answered from the cache, Misses those read;
	// Reads the reads sent to the store for them (retries included).
	Hits, Misses, Reads int
}

// Err is why some keys could not be read (nil when all were).
func (a Answers) Err() error { return a.err }

// Resolve finds the entries of keys: each distinct key once, from the
// cache when it holds an answer, the others in one read of the table,
// waiting while the store cannot be reached. Only keys the read was for
// fail when it does.
func (l *Lookup) Resolve(ctx context.Context, keys []LookupKey) Answers {
	a := Answers{entries: make(map[LookupKey]map[string]string, len(keys))}
	var need []LookupKey
	for _, k := range keys {
		if k.Key == "" || !storable(k.Key) {
			continue // no entry can have it
		}
		if _, seen := a.entries[k]; seen {
			continue
		}
		if l.Cache != nil {
			if v, ok := l.Cache.Get(k); ok {
				a.entries[k] = v
				a.Hits++
				continue
			}
		}
		a.entries[k] = nil
		need = append(need, k)
	}
	if len(need) == 0 {
		return a
	}
	a.Misses = len(need)
	var got map[LookupKey]map[string]string
	err := l.retry.Do(ctx, func(ctx context.Context) error {
		l.queries.Add(1)
		a.Reads++
		var err error
		got, err = l.Reader.LookupValues(ctx, l.Lookup, need)
		return err
	})
	if err != nil {
		a.err = err
		a.unread = make(map[LookupKey]struct{}, len(need))
		for _, k := range need {
			a.unread[k] = struct{}{}
		}
		return a
	}
	for _, k := range need {
		a.entries[k] = got[k]
		if l.Cache != nil {
			l.Cache.Put(k, got[k])
		}
	}
	return a
}

// Fields says what the record with key k becomes, from the answers: the
// fields to set (nil: the record goes on unchanged), or why it fails
// (MEDIATION_FAILED naming the lookup, the key and what is wrong).
func (l *Lookup) Fields(a Answers, k LookupKey) (map[string]string, *codes.Error) {
	if _, failed := a.unread[k]; failed {
		return nil, codes.Errorf(codes.MediationFailed, "", "%v", a.err) // the store's errors name the lookup
	}
	entry := a.entries[k]
	switch {
	case entry != nil:
		vals := make(map[string]string, len(l.Set))
		for _, f := range l.setFields {
			col := l.Set[f]
			v, ok := entry[col]
			if !ok {
				return nil, codes.Errorf(codes.MediationFailed, l.keyField(),
					"lookup %s: the entry for %s %q has no column %q (it has: %s)", l.Lookup, l.KeyName, clip(k.Key, 64), col,
					strings.Join(sortedKeys(entry), ", "))
			}
			vals[f] = v
		}
		return vals, nil
	case l.OnMissing == OnMissingKeep:
		return nil, nil
	case l.OnMissing == OnMissingDefault:
		return l.Defaults, nil
	default:
		what := fmt.Sprintf("no entry for %s %q", l.KeyName, clip(k.Key, 64))
		if k.Key == "" {
			what = fmt.Sprintf("%s is empty", l.KeyName)
		}
		return nil, codes.Errorf(codes.MediationFailed, l.keyField(), "lookup %s: %s (client %s)", l.Lookup, what, k.Client)
	}
}

// keyField is the record field failures name: the key's field when the
// key is one field.
func (l *Lookup) keyField() string {
	if strings.ContainsAny(l.KeyName, " .()") {
		return ""
	}
	return l.KeyName
}

// storable reports whether PostgreSQL text can hold s: valid UTF-8
// without NUL bytes.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// clip shortens s to n bytes for a message, marking the cut.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
