package ratestage

import (
	"context"
	"errors"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/rating"
)

// What the stage needs from storage; internal/store/usagestore and
// internal/store/catalogstore implement it.

// RecordKey is the exactly-once key of a MUR.
type RecordKey struct {
	Client   string
	RecordID string
}

// SourceKey identifies a record across replays: where it came from.
type SourceKey struct {
	Client string
	FileID string
	Line   int64
	Part   int
}

// CounterKey addresses a cumulative usage counter.
type CounterKey struct {
	Client    string
	AccountID string
	UsageType string
	Month     rating.Month
}

// AllowanceKey addresses a free-unit allowance's use.
type AllowanceKey struct {
	Client     string
	AccountID  string
	DiscountID string
	Month      rating.Month
}

// Store runs rating transactions.
type Store interface {
	// Rate runs fn in one rating transaction and commits it: everything a
	// batch changes commits together, or nothing does. When the
	// transaction loses a race with another (a record id stored
	// meanwhile, a deadlock) it runs fn again from the start, so fn must
	// be repeatable.
	Rate(ctx context.Context, fn func(Tx) error) error
}

// Tx is one rating transaction.
type Tx interface {
	// ExistingMURs returns, for the record keys that already have a MUR,
	// the source that MUR came from.
	ExistingMURs(ctx context.Context, keys []RecordKey) (map[RecordKey]SourceKey, error)
	// LoadCounters locks and returns the usage counters of keys (decimal
	// text; missing ones are created at zero).
	LoadCounters(ctx context.Context, keys []CounterKey) (map[CounterKey]string, error)
	// SaveCounters writes new values of counters LoadCounters locked.
	SaveCounters(ctx context.Context, values map[CounterKey]string) error
	// SaveCountersChecked writes new values of counters: those
	// LoadCounters locked, and those in assumed, the values the stage
	// remembered and rated with, each written only if the row still holds
	// it. When one does not, it returns ErrStaleLedger and the
	// transaction must not commit.
	SaveCountersChecked(ctx context.Context, values, assumed map[CounterKey]string) error
	// LoadAllowances locks and returns the use of free-unit allowances
	// (missing ones are created at zero).
	LoadAllowances(ctx context.Context, keys []AllowanceKey) (map[AllowanceKey]string, error)
	// SaveAllowances writes new use of allowances LoadAllowances locked.
	SaveAllowances(ctx context.Context, values map[AllowanceKey]string) error
	// SaveAllowancesChecked writes new use of allowances as
	// SaveCountersChecked writes counters.
	SaveAllowancesChecked(ctx context.Context, values, assumed map[AllowanceKey]string) error
	// InsertMURs stores MURs and moves their files' counts. When a
	// record id already has a MUR it returns an error wrapping
	// ErrRecordStored and the transaction must not commit.
	InsertMURs(ctx context.Context, ms []murs.MUR) error
	// InsertExceptions stores exceptions and moves their files' counts.
	InsertExceptions(ctx context.Context, exs []exceptions.Exception) error
}

// ErrRecordStored means a record id of the batch already has a MUR: the
// batch did not look its record ids up first, or another transaction
// stored one after it looked. Nothing the batch did commits; Store.Rate
// runs it again from the start, and the stage then looks the record ids
// up (the record becomes a replay or a DUPLICATE_RECORD exception).
var ErrRecordStored = errors.New("a record id of the batch already has a MUR")

// CatalogSource is where Catalogs reads the clients' catalogs.
type CatalogSource interface {
	// CatalogVersion returns a client's catalog change counter (0 when
	// the client has no catalog).
	CatalogVersion(ctx context.Context, client string) (int64, error)
	// CatalogVersions returns the change counters of the given clients
	// (clients with no catalog are absent).
	CatalogVersions(ctx context.Context, clients []string) (map[string]int64, error)
	// LoadCatalogChanges returns the catalog rows of a client that
	// changed after version since, deleted ones included (since 0: every
	// live row), and the change counter they bring the catalog to, read
	// in one snapshot.
	LoadCatalogChanges(ctx context.Context, client string, since int64) ([]catalog.Row, int64, error)
	// ListenCatalog calls changed with the clients of every catalog change
	// as it commits, until ctx ends or the connection fails (the error is
	// returned). ready is called once listening has begun.
	ListenCatalog(ctx context.Context, ready func(), changed func(clients []string)) error
}
