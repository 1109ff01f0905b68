package rules

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// LookupKey is one key of one client's lookup table.
type LookupKey struct {
	Client string
	Key    string
}

// LookupRows is a lookup table's entries as a load copies them, one at a
// time (LookupCSV reads them from a file).
type LookupRows interface {
	Next() bool
	Entry() (key string, values map[string]string)
	Err() error
}

// LookupLoad says which table a load replaces or adds to.
type LookupLoad struct {
	Client string
	Lookup string
	// Replace drops the table's entries whose key is not among the rows.
	Replace bool
}

var lookupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// Validate checks the client and the table name.
func (l LookupLoad) Validate() error {
	var errs []error
	if l.Client == "" {
		errs = append(errs, errors.New("client: required"))
	}
	if err := ValidLookupName(l.Lookup); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ValidLookupName checks a lookup table's name.
func ValidLookupName(name string) error {
	if !lookupName.MatchString(name) {
		return fmt.Errorf("lookup %q: a name is letters, digits, '_', '.' and '-', at most 100", name)
	}
	return nil
}

// LookupLoadResult counts what a load did. Entries = Inserted + Updated +
// Unchanged.
type LookupLoadResult struct {
	Entries   int64 `json:"entries"`
	Inserted  int64 `json:"inserted"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Deleted   int64 `json:"deleted"`
}

// LookupInfo describes one lookup table.
type LookupInfo struct {
	Client    string    `json:"client"`
	Lookup    string    `json:"lookup"`
	Entries   int64     `json:"entries"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LookupReader reads lookup table entries (internal/store/rulestore reads
// them from PostgreSQL).
type LookupReader interface {
	// LookupValues reads the entries of the table named lookup for the
	// given keys (of any clients) at once. A key without an entry is not
	// in the result.
	LookupValues(ctx context.Context, lookup string, keys []LookupKey) (map[LookupKey]map[string]string, error)
}
