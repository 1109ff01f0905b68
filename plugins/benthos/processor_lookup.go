package benthos

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/mediation"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/usage"
)

// What a lookup does with a key that has no entry.
const (
	onMissingFail    = "fail"
	onMissingKeep    = "keep"
	onMissingDefault = "default"
)

func lookupSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Vivace").
		Summary("Enriches raw records from a lookup table in PostgreSQL: a phone number to its account id and region, say.").
		Description(`
A mediation rule. Evaluates `+"`key`"+` on each raw record (`+"`usage.raw`"+`), looks it up in the
client's lookup table `+"`lookup`"+` (loaded with `+"`vivace lookup load`"+`; each client has its own
tables) and copies the entry's value columns into the record's fields as `+"`set`"+` says
(record field → value column). Setting `+"`account_id`"+` also sets the message's key
(`+"`vivace_key`"+`), so the record is partitioned by the account it now belongs to.

A key without an entry (or an empty key) fails the record with `+"`MEDIATION_FAILED`"+` naming the
lookup, the key field and the value (`+"`on_missing: fail`"+`), leaves it unchanged
(`+"`on_missing: keep`"+`), or sets the fields in `+"`defaults`"+` (`+"`on_missing: default`"+`).
An entry without a column `+"`set`"+` names fails the record, naming the column.

Answers are cached in memory per client and key: entries for `+"`cache_ttl`"+`, keys without an
entry for `+"`miss_ttl`"+`, so a change loaded into the table reaches the pipeline within
`+"`cache_ttl`"+` (0 turns the cache off). The keys of a batch that are not cached are read in
one query. While the database cannot be reached the batch waits and tries again (under
`+"`vivace test`"+` for a few seconds at most); an error the database answers (no such database,
a refused login, no such table: run `+"`vivace migrate`"+`) fails the batch's records that
needed it with `+"`MEDIATION_FAILED`"+` and the reason.

Only records for which `+"`when`"+` is true are looked up; a record already failed or filtered
passes untouched.`).
		Field(fieldDSN()).
		Field(service.NewStringField("lookup").Description("The lookup table's name, as given to `vivace lookup load --lookup`.")).
		Field(service.NewBloblangField("key").Description("A Bloblang query on the raw record (`this`; metadata is not available to it) giving the key: `this.fields.msisdn`, say.")).
		Field(service.NewStringMapField("set").Description("Record field → value column of the lookup table.")).
		Field(service.NewStringEnumField("on_missing", onMissingFail, onMissingKeep, onMissingDefault).
			Description("What a key without an entry does.").Default(onMissingFail)).
		Field(service.NewStringMapField("defaults").Description("With `on_missing: default`: record field → value set when the key has no entry.").Default(map[string]any{})).
		Field(service.NewDurationField("cache_ttl").Description("How long an entry read from the table is used before it is read again; 0: not cached.").Default("1m")).
		Field(service.NewDurationField("miss_ttl").Description("How long a key without an entry is remembered as missing (at most `cache_ttl`).").Default("10s")).
		Field(service.NewIntField("cache_size").Description("At most this many answers are cached.").Default(100000).Advanced()).
		Field(service.NewBloblangField("when").Description("Look up only records for which this query is true.").Optional()).
		Field(service.NewStringField("stage").Description("Stage recorded on failures.").Default("mediate")).
		Example("A phone number to its account and region", "", `
pipeline:
  processors:
    - vivace_lookup:
        when: 'this.client == "telco"'
        dsn: ${DATABASE_URL}
        lookup: msisdn_accounts
        key: this.fields.msisdn
        set: { account_id: account_id, qualifier_1: region }
        on_missing: fail
        cache_ttl: 5m
`)
}

func init() {
	service.MustRegisterBatchProcessor("vivace_lookup", lookupSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			p, err := newLookupProc(conf, mgr)
			if err != nil {
				return nil, err
			}
			return p, nil
		})
}

type lookupProc struct {
	db                     storeConn
	lookup, stage, keyName string
	key, when              *bloblang.Executor
	set, defaults          map[string]string
	setFields              []string // the keys of set, sorted
	onMissing              string
	cache                  *mediation.LookupCache[store.LookupKey]
	log                    *service.Logger
	queries                atomic.Int64

	hits, misses, queried *service.MetricCounter

	mu sync.Mutex // guards db.connect
}

// keyField recognises the simple key query this.fields.NAME, to name the
// field in failures.
var keyField = regexp.MustCompile(`^\s*(?:this\.)?fields\.([A-Za-z0-9_]+)\s*$`)

func newLookupProc(conf *service.ParsedConfig, mgr *service.Resources) (*lookupProc, error) {
	p := &lookupProc{log: mgr.Logger()}
	var err error
	if p.db.dsn, err = conf.FieldString("dsn"); err != nil {
		return nil, err
	}
	if p.db.dsn == "" {
		return nil, errors.New("dsn: a database connection URL is required (the lookup tables are in PostgreSQL)")
	}
	if p.lookup, err = conf.FieldString("lookup"); err != nil {
		return nil, err
	}
	if err := (store.LookupLoad{Client: "-", Lookup: p.lookup}).Validate(); err != nil {
		return nil, err
	}
	if p.key, err = conf.FieldBloblang("key"); err != nil {
		return nil, err
	}
	keyText, _ := conf.FieldString("key")
	p.keyName = strings.TrimSpace(keyText)
	if m := keyField.FindStringSubmatch(keyText); m != nil {
		p.keyName = m[1]
	}
	if p.set, err = conf.FieldStringMap("set"); err != nil {
		return nil, err
	}
	if len(p.set) == 0 {
		return nil, errors.New("set: empty; name at least one record field and the value column it takes")
	}
	for f, col := range p.set {
		if f == "" || col == "" {
			return nil, fmt.Errorf("set: %q: %q: both the record field and the value column are needed", f, col)
		}
		p.setFields = append(p.setFields, f)
	}
	sort.Strings(p.setFields)
	if p.onMissing, err = conf.FieldString("on_missing"); err != nil {
		return nil, err
	}
	if p.defaults, err = conf.FieldStringMap("defaults"); err != nil {
		return nil, err
	}
	switch {
	case p.onMissing == onMissingDefault && len(p.defaults) == 0:
		return nil, errors.New("defaults: on_missing is default, so defaults must name the fields to set")
	case p.onMissing != onMissingDefault && len(p.defaults) > 0:
		return nil, fmt.Errorf("defaults: only used with on_missing: default (it is %s)", p.onMissing)
	}
	for f := range p.defaults {
		if _, ok := p.set[f]; !ok {
			return nil, fmt.Errorf("defaults: %q is not a field of set", f)
		}
	}
	ttl, err := conf.FieldDuration("cache_ttl")
	if err != nil {
		return nil, err
	}
	missTTL, err := conf.FieldDuration("miss_ttl")
	if err != nil {
		return nil, err
	}
	size, err := conf.FieldInt("cache_size")
	if err != nil {
		return nil, err
	}
	p.cache = mediation.NewLookupCache[store.LookupKey](ttl, missTTL, size, nil)
	if p.stage, p.when, err = ruleConf(conf); err != nil {
		return nil, err
	}
	m := mgr.Metrics()
	p.hits = m.NewCounter("vivace_lookup_cache_hits")
	p.misses = m.NewCounter("vivace_lookup_cache_misses")
	p.queried = m.NewCounter("vivace_lookup_queries")
	return p, nil
}

// lookupTarget is a record of the batch that needs a lookup.
type lookupTarget struct {
	msg          *service.Message
	root, fields map[string]any
	k            store.LookupKey
}

func (p *lookupProc) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	targets := make([]lookupTarget, 0, len(batch))
	for _, msg := range batch {
		root, fields, ok := ruleTarget(msg, p.when, p.stage, "lookup")
		if !ok {
			continue
		}
		key, err := queryString(root, p.key)
		if err != nil {
			fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "lookup %s key: %v", p.lookup, err))
			continue
		}
		client, _ := root["client"].(string)
		targets = append(targets, lookupTarget{msg: msg, root: root, fields: fields,
			k: store.LookupKey{Client: client, Key: strings.TrimSpace(key)}})
	}

	found := make(map[store.LookupKey]map[string]string, len(targets))
	var need []store.LookupKey
	unread := map[store.LookupKey]struct{}{}
	for _, t := range targets {
		if t.k.Key == "" || !storable(t.k.Key) {
			continue // no entry can have it
		}
		if _, seen := found[t.k]; seen {
			continue
		}
		if v, ok := p.cache.Get(t.k); ok {
			found[t.k] = v
			p.hits.Incr(1)
			continue
		}
		found[t.k] = nil
		unread[t.k] = struct{}{}
		need = append(need, t.k)
	}
	if len(need) > 0 {
		p.misses.Incr(int64(len(need)))
		got, err := p.read(ctx, need)
		if err != nil {
			// Only the records whose keys were not cached wait for the
			// database; they fail with the reason, the others go on.
			for _, t := range targets {
				if _, asked := unread[t.k]; asked {
					fail(t.msg, p.stage, codes.Errorf(codes.MediationFailed, "", "%v", err)) // err names the lookup
				}
			}
		} else {
			for _, k := range need {
				found[k] = got[k]
				p.cache.Put(k, got[k])
			}
		}
	}

	for _, t := range targets {
		if t.msg.GetError() == nil {
			p.apply(t, found[t.k])
		}
	}
	return []service.MessageBatch{batch}, nil
}

// apply sets a record's fields from its entry (nil: none). A record
// that fails keeps its fields as they came.
func (p *lookupProc) apply(t lookupTarget, entry map[string]string) {
	var vals map[string]string
	switch {
	case entry != nil:
		vals = make(map[string]string, len(p.set))
		for _, f := range p.setFields {
			col := p.set[f]
			v, ok := entry[col]
			if !ok {
				fail(t.msg, p.stage, codes.Errorf(codes.MediationFailed, p.keyField(),
					"lookup %s: the entry for %s %q has no column %q (it has: %s)", p.lookup, p.keyName, clip(t.k.Key, 64), col, columns(entry)))
				return
			}
			vals[f] = v
		}
	case p.onMissing == onMissingKeep:
		return
	case p.onMissing == onMissingDefault:
		vals = p.defaults
	default:
		what := fmt.Sprintf("no entry for %s %q", p.keyName, clip(t.k.Key, 64))
		if t.k.Key == "" {
			what = fmt.Sprintf("%s is empty", p.keyName)
		}
		fail(t.msg, p.stage, codes.Errorf(codes.MediationFailed, p.keyField(), "lookup %s: %s (client %s)", p.lookup, what, t.k.Client))
		return
	}
	for f, v := range vals {
		t.fields[f] = v
	}
	t.msg.SetStructuredMut(t.root)
	if _, ok := vals[usage.FieldAccountID]; ok {
		t.msg.MetaSetMut(metaKey, strings.TrimSpace(vals[usage.FieldAccountID]))
	}
}

// keyField is the record field failures name: the key's field when the
// key query is this.fields.NAME.
func (p *lookupProc) keyField() string {
	if strings.ContainsAny(p.keyName, " .()") {
		return ""
	}
	return p.keyName
}

// read queries the table for keys, waiting and trying again while the
// database cannot be reached; an error the database answers is returned.
func (p *lookupProc) read(ctx context.Context, keys []store.LookupKey) (map[store.LookupKey]map[string]string, error) {
	wait := 100 * time.Millisecond
	start := time.Now()
	for {
		p.mu.Lock()
		err := p.db.connect(ctx)
		st := p.db.st
		p.mu.Unlock()
		if err != nil {
			err = fmt.Errorf("lookup %s: %w", p.lookup, err) // the store's own errors name it
			if store.ServerError(err) {
				// The server answered: a database that does not exist or a
				// refused login does not go away by waiting.
				return nil, err
			}
		} else {
			var got map[store.LookupKey]map[string]string
			p.queries.Add(1)
			p.queried.Incr(1)
			got, err = st.LookupValues(ctx, p.lookup, keys)
			if err == nil {
				return got, nil
			}
			if store.ServerError(err) {
				return nil, err
			}
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if bound, ok := waitedEnough(start, wait); ok {
			return nil, fmt.Errorf("%w (no answer for %v)", err, bound)
		}
		p.log.Warnf("%v; trying again in %v", err, wait)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (p *lookupProc) Close(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.db.close()
	return nil
}

// storable reports whether PostgreSQL text can hold s: valid UTF-8
// without NUL bytes.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func columns(m map[string]string) string {
	cols := make([]string, 0, len(m))
	for c := range m {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	return strings.Join(cols, ", ")
}

// queryString runs a Bloblang query on a raw record for a scalar: a
// string, a number or a boolean as text; null is "". It queries the
// record's structure directly: a query on the message would hand a string
// result back as bytes to be parsed as JSON again, which an account id
// like A-100 is not.
func queryString(record any, q *bloblang.Executor) (string, error) {
	v, err := q.Query(record)
	if errors.Is(err, bloblang.ErrRootDeleted) {
		return "", errors.New("the query deleted the message")
	}
	if err != nil {
		return "", err
	}
	return exactString(v)
}
