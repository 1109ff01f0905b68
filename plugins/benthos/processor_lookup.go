package benthos

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/usage"
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
		Field(service.NewStringEnumField("on_missing", rules.OnMissingFail, rules.OnMissingKeep, rules.OnMissingDefault).
			Description("What a key without an entry does.").Default(rules.OnMissingFail)).
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

// lookupProc turns messages into the keys a rules.Lookup resolves and
// sets the fields it answers; the rule's behaviour (the cache, the reads
// and their retries, what a missing entry does) is the Lookup's.
type lookupProc struct {
	rule      *rules.Lookup
	db        *ruleStore
	stage     string
	key, when *bloblang.Executor

	hits, misses, queried *service.MetricCounter
}

// keyField recognises the simple key query this.fields.NAME, to name the
// field in failures.
var keyField = regexp.MustCompile(`^\s*(?:this\.)?fields\.([A-Za-z0-9_]+)\s*$`)

func newLookupProc(conf *service.ParsedConfig, mgr *service.Resources) (*lookupProc, error) {
	p := &lookupProc{db: &ruleStore{}}
	cfg := rules.LookupConfig{Reader: p.db, Refused: store.Refused, Warnf: mgr.Logger().Warnf, MaxWait: databaseWaitBound()}
	var err error
	if p.db.conn.dsn, err = conf.FieldString("dsn"); err != nil {
		return nil, err
	}
	if p.db.conn.dsn == "" {
		return nil, errors.New("dsn: a database connection URL is required (the lookup tables are in PostgreSQL)")
	}
	if cfg.Lookup, err = conf.FieldString("lookup"); err != nil {
		return nil, err
	}
	if p.key, err = conf.FieldBloblang("key"); err != nil {
		return nil, err
	}
	keyText, _ := conf.FieldString("key")
	cfg.KeyName = strings.TrimSpace(keyText)
	if m := keyField.FindStringSubmatch(keyText); m != nil {
		cfg.KeyName = m[1]
	}
	if cfg.Set, err = conf.FieldStringMap("set"); err != nil {
		return nil, err
	}
	if cfg.OnMissing, err = conf.FieldString("on_missing"); err != nil {
		return nil, err
	}
	if cfg.Defaults, err = conf.FieldStringMap("defaults"); err != nil {
		return nil, err
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
	cfg.Cache = rules.NewLookupCache[rules.LookupKey](ttl, missTTL, size, nil)
	if p.rule, err = rules.NewLookup(cfg); err != nil {
		return nil, err
	}
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
	k            rules.LookupKey
}

func (p *lookupProc) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	targets := make([]lookupTarget, 0, len(batch))
	keys := make([]rules.LookupKey, 0, len(batch))
	for _, msg := range batch {
		root, fields, ok := ruleTarget(msg, p.when, p.stage, "lookup")
		if !ok {
			continue
		}
		key, err := queryString(root, p.key)
		if err != nil {
			fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "lookup %s key: %v", p.rule.Lookup, err))
			continue
		}
		client, _ := root["client"].(string)
		k := rules.LookupKey{Client: client, Key: strings.TrimSpace(key)}
		targets = append(targets, lookupTarget{msg: msg, root: root, fields: fields, k: k})
		keys = append(keys, k)
	}
	answers := p.rule.Resolve(ctx, keys)
	p.hits.Incr(int64(answers.Hits))
	p.misses.Incr(int64(answers.Misses))
	p.queried.Incr(int64(answers.Reads))
	for _, t := range targets {
		vals, err := p.rule.Fields(answers, t.k)
		if err != nil {
			fail(t.msg, p.stage, err)
			continue
		}
		if vals == nil {
			continue
		}
		for f, v := range vals {
			t.fields[f] = v
		}
		t.msg.SetStructuredMut(t.root)
		if _, ok := vals[usage.FieldAccountID]; ok {
			t.msg.MetaSetMut(metaKey, strings.TrimSpace(vals[usage.FieldAccountID]))
		}
	}
	return []service.MessageBatch{batch}, nil
}

func (p *lookupProc) Close(context.Context) error {
	p.db.close()
	return nil
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
	return rules.ExactString(v)
}
