package rules_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
)

// countingReader counts the keys a Lookup reads from the real table, and
// can answer err instead.
type countingReader struct {
	rules.LookupReader
	keys [][]rules.LookupKey
	err  error
}

func (c *countingReader) LookupValues(ctx context.Context, lookup string, keys []rules.LookupKey) (map[rules.LookupKey]map[string]string, error) {
	c.keys = append(c.keys, keys)
	if c.err != nil {
		return nil, c.err
	}
	return c.LookupReader.LookupValues(ctx, lookup, keys)
}

func loadTable(t *testing.T, db *rulestore.Store, client, body string) {
	t.Helper()
	rows, err := rules.NewLookupCSV("msisdn.csv", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LoadLookup(context.Background(), rules.LookupLoad{Client: client, Lookup: "msisdn", Replace: true}, rows); err != nil {
		t.Fatal(err)
	}
}

func TestLookupResolveAndFields(t *testing.T) {
	ctx := context.Background()
	db := rulestore.New(pgtest.Store(t))
	client := "lk-" + store.NewID()[24:]
	loadTable(t, db, client, "msisdn,account_id,region\n491,A1,EU\n492,A2,\n")
	key := func(k string) rules.LookupKey { return rules.LookupKey{Client: client, Key: k} }

	for _, tc := range []struct {
		name      string
		onMissing string
		defaults  map[string]string
		set       map[string]string
		key       string
		want      map[string]string // nil: unchanged
		err       string
	}{
		{"an entry sets its columns", rules.OnMissingFail, nil, map[string]string{"account_id": "account_id", "qualifier_1": "region"},
			"491", map[string]string{"account_id": "A1", "qualifier_1": "EU"}, ""},
		{"an empty value is a value", rules.OnMissingFail, nil, map[string]string{"qualifier_1": "region"},
			"492", map[string]string{"qualifier_1": ""}, ""},
		{"no entry fails", rules.OnMissingFail, nil, map[string]string{"account_id": "account_id"},
			"999", nil, `lookup msisdn: no entry for msisdn "999" (client ` + client + ")"},
		{"an empty key fails", rules.OnMissingFail, nil, map[string]string{"account_id": "account_id"},
			"", nil, "lookup msisdn: msisdn is empty (client " + client + ")"},
		{"no entry kept", rules.OnMissingKeep, nil, map[string]string{"account_id": "account_id"}, "999", nil, ""},
		{"no entry takes the defaults", rules.OnMissingDefault, map[string]string{"account_id": "UNASSIGNED"},
			map[string]string{"account_id": "account_id"}, "999", map[string]string{"account_id": "UNASSIGNED"}, ""},
		{"an entry without the column fails", rules.OnMissingFail, nil, map[string]string{"plan": "plan"},
			"491", nil, `lookup msisdn: the entry for msisdn "491" has no column "plan" (it has: account_id, region)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := rules.NewLookup(rules.LookupConfig{Lookup: "msisdn", KeyName: "msisdn", Set: tc.set,
				OnMissing: tc.onMissing, Defaults: tc.defaults, Reader: db})
			if err != nil {
				t.Fatal(err)
			}
			got, ferr := l.Fields(l.Resolve(ctx, []rules.LookupKey{key(tc.key)}), key(tc.key))
			switch {
			case tc.err != "":
				if ferr == nil || ferr.Code != codes.MediationFailed || ferr.Field != "msisdn" || ferr.Message != tc.err {
					t.Fatalf("Fields = %v, %v; want MEDIATION_FAILED on msisdn: %s", got, ferr, tc.err)
				}
			case ferr != nil || len(got) != len(tc.want):
				t.Fatalf("Fields = %v, %v; want %v", got, ferr, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("Fields = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// A batch reads each key it needs once, in one read, and the cache
// answers the next batch.
func TestLookupReadsOnceAndCaches(t *testing.T) {
	ctx := context.Background()
	db := rulestore.New(pgtest.Store(t))
	client := "lk-" + store.NewID()[24:]
	loadTable(t, db, client, "msisdn,account_id\n491,A1\n492,A2\n")
	now := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	r := &countingReader{LookupReader: db}
	l, err := rules.NewLookup(rules.LookupConfig{Lookup: "msisdn", KeyName: "msisdn", Set: map[string]string{"account_id": "account_id"},
		OnMissing: rules.OnMissingFail, Reader: r,
		Cache: rules.NewLookupCache[rules.LookupKey](time.Minute, 10*time.Second, 100, func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	k1, k2, k9 := rules.LookupKey{Client: client, Key: "491"}, rules.LookupKey{Client: client, Key: "492"}, rules.LookupKey{Client: client, Key: "999"}
	a := l.Resolve(ctx, []rules.LookupKey{k1, k2, k1, k9, {Client: client, Key: "4\x0091"}})
	if len(r.keys) != 1 || len(r.keys[0]) != 3 || a.Hits != 0 || a.Misses != 3 || a.Reads != 1 {
		t.Fatalf("first batch read %v (hits %d, misses %d)", r.keys, a.Hits, a.Misses)
	}
	a = l.Resolve(ctx, []rules.LookupKey{k1, k9})
	if len(r.keys) != 1 || a.Hits != 2 {
		t.Fatalf("second batch read %v (hits %d)", r.keys, a.Hits)
	}
	if got, err := l.Fields(a, k1); err != nil || got["account_id"] != "A1" {
		t.Fatalf("cached entry: %v %v", got, err)
	}
	// The miss expires sooner than the entry.
	now = now.Add(11 * time.Second)
	if a = l.Resolve(ctx, []rules.LookupKey{k1, k9}); len(r.keys) != 2 || len(r.keys[1]) != 1 || r.keys[1][0] != k9 || a.Hits != 1 {
		t.Fatalf("after miss_ttl read %v (hits %d)", r.keys, a.Hits)
	}
	if l.Queries() != 2 {
		t.Fatalf("Queries = %d", l.Queries())
	}
}

// A refused read fails only the keys it was for, at once; cached keys go on.
func TestLookupRefusedRead(t *testing.T) {
	ctx := context.Background()
	db := rulestore.New(pgtest.Store(t))
	client := "lk-" + store.NewID()[24:]
	loadTable(t, db, client, "msisdn,account_id\n491,A1\n")
	cache := rules.NewLookupCache[rules.LookupKey](time.Minute, time.Minute, 100, nil)
	k1, k2 := rules.LookupKey{Client: client, Key: "491"}, rules.LookupKey{Client: client, Key: "492"}
	cache.Put(k1, map[string]string{"account_id": "A1"})
	// The reader answers what the database answers without the table.
	l, err := rules.NewLookup(rules.LookupConfig{Lookup: "msisdn", KeyName: "msisdn", Set: map[string]string{"account_id": "account_id"},
		OnMissing: rules.OnMissingFail, Cache: cache, Reader: &countingReader{LookupReader: db, err: errNoTable},
		Refused: func(err error) bool { return errors.Is(err, errNoTable) }})
	if err != nil {
		t.Fatal(err)
	}
	a := l.Resolve(ctx, []rules.LookupKey{k1, k2})
	if a.Err() == nil || a.Reads != 1 {
		t.Fatalf("refused read: %v after %d reads", a.Err(), a.Reads)
	}
	if got, err := l.Fields(a, k1); err != nil || got["account_id"] != "A1" {
		t.Fatalf("cached key: %v %v", got, err)
	}
	if _, err := l.Fields(a, k2); err == nil || err.Code != codes.MediationFailed || !strings.Contains(err.Message, errNoTable.Error()) {
		t.Fatalf("unread key: %v", err)
	}
}

var errNoTable = errors.New(`lookup msisdn: relation "lookup_entries" does not exist`)

func TestLookupConfig(t *testing.T) {
	_, err := rules.NewLookup(rules.LookupConfig{Lookup: "bad name", Set: map[string]string{"": "x"},
		OnMissing: rules.OnMissingKeep, Defaults: map[string]string{"account_id": "X"}})
	for _, want := range []string{`lookup "bad name"`, `set: "": "x"`, "defaults: only used with on_missing: default",
		`defaults: "account_id" is not a field of set`, "reader"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewLookup = %v, want a problem naming %s", err, want)
		}
	}
}
