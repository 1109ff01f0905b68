package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func recordMsg(t *testing.T, client string, line int64, fields map[string]string) *service.Message {
	t.Helper()
	b, err := json.Marshal(map[string]any{"client": client, "file_id": "f1", "line": line, "fields": fields})
	if err != nil {
		t.Fatal(err)
	}
	m := service.NewMessage(b)
	m.MetaSetMut(metaKey, fields["account_id"])
	return m
}

func rawFields(t *testing.T, m *service.Message) map[string]string {
	t.Helper()
	b, _ := m.AsBytes()
	var r struct {
		Fields map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return r.Fields
}

func loadLookup(t *testing.T, client, lookup, body string) {
	t.Helper()
	st := pgtest.Store(t)
	rows, err := rules.NewLookupCSV(lookup+".csv", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rulestore.New(st).LoadLookup(context.Background(), rules.LookupLoad{Client: client, Lookup: lookup, Replace: true}, rows); err != nil {
		t.Fatal(err)
	}
}

func newTestLookup(t *testing.T, yaml string, clock *testClock) *lookupProc {
	t.Helper()
	conf, err := lookupSpec().ParseYAML("dsn: "+pgtest.DSN(t)+"\n"+yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newLookupProc(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		ttl, _ := conf.FieldDuration("cache_ttl")
		miss, _ := conf.FieldDuration("miss_ttl")
		p.rule.Cache = rules.NewLookupCache[rules.LookupKey](ttl, miss, 1000, clock.now)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func runBatch(t *testing.T, p service.BatchProcessor, msgs ...*service.Message) service.MessageBatch {
	t.Helper()
	out, err := p.ProcessBatch(context.Background(), msgs)
	if err != nil || len(out) != 1 {
		t.Fatalf("process: %v %v", out, err)
	}
	return out[0]
}

const msisdnTable = "msisdn,account_id,region\n4917001,A100,EU\n4917002,A200,US\n004917005,A-500,EU\nsip:alice,A-600,\n"

func TestLookupHitAndMissing(t *testing.T) {
	client := "lk-" + store.NewID()[24:]
	loadLookup(t, client, "msisdn_accounts", msisdnTable)
	const rule = `
lookup: msisdn_accounts
key: this.fields.msisdn
set: { account_id: account_id, qualifier_1: region }
when: 'this.fields.usage_type != "SKIP"'
`
	p := newTestLookup(t, rule, nil)
	already := recordMsg(t, client, 6, map[string]string{"msisdn": "4917001"})
	already.SetError(errors.New("failed upstream"))
	out := runBatch(t, p,
		recordMsg(t, client, 2, map[string]string{"msisdn": " 4917001 ", "record_id": "r2"}),
		recordMsg(t, client, 3, map[string]string{"msisdn": "4917999", "account_id": "old"}),
		recordMsg(t, client, 4, map[string]string{"record_id": "r4"}),
		recordMsg(t, client, 5, map[string]string{"msisdn": "4917001", "usage_type": "SKIP"}),
		already,
		recordMsg(t, "other-"+client, 7, map[string]string{"msisdn": "4917001"}),
		recordMsg(t, client, 8, map[string]string{"msisdn": "004917005"}),
		recordMsg(t, client, 9, map[string]string{"msisdn": "sip:alice", "qualifier_1": "x"}),
	)
	if len(out) != 8 {
		t.Fatalf("%d messages out", len(out))
	}
	if f := rawFields(t, out[0]); out[0].GetError() != nil || f["account_id"] != "A100" || f["qualifier_1"] != "EU" || f["record_id"] != "r2" {
		t.Fatalf("hit: %v %v", f, out[0].GetError())
	}
	if k, _ := out[0].MetaGetMut(metaKey); k != "A100" {
		t.Fatalf("hit: vivace_key = %v", k)
	}
	checkFailed(t, out[1], "MEDIATION_FAILED", "msisdn", `lookup msisdn_accounts: no entry for msisdn "4917999" (client `+client+`)`)
	checkFailed(t, out[2], "MEDIATION_FAILED", "msisdn", "lookup msisdn_accounts: msisdn is empty")
	if f := rawFields(t, out[3]); out[3].GetError() != nil || f["account_id"] != "" {
		t.Fatalf("when false: %v", f)
	}
	if out[4].GetError().Error() != "failed upstream" || rawFields(t, out[4])["account_id"] != "" {
		t.Fatal("an already failed record was changed")
	}
	checkFailed(t, out[5], "MEDIATION_FAILED", "msisdn", "no entry") // another client's table
	// Keys and values are text, taken as they are: leading zeros stay.
	if f := rawFields(t, out[6]); out[6].GetError() != nil || f["account_id"] != "A-500" || f["qualifier_1"] != "EU" {
		t.Fatalf("leading zeros: %v %v", f, out[6].GetError())
	}
	if f := rawFields(t, out[7]); out[7].GetError() != nil || f["account_id"] != "A-600" || f["qualifier_1"] != "" {
		t.Fatalf("text key, empty value: %v %v", f, out[7].GetError())
	}
	if n := p.rule.Queries(); n != 1 {
		t.Fatalf("%d queries for one batch", n)
	}

	keep := newTestLookup(t, rule+"on_missing: keep\n", nil)
	out = runBatch(t, keep, recordMsg(t, client, 3, map[string]string{"msisdn": "4917999", "account_id": "old"}))
	if f := rawFields(t, out[0]); out[0].GetError() != nil || f["account_id"] != "old" || f["qualifier_1"] != "" {
		t.Fatalf("keep: %v %v", f, out[0].GetError())
	}
	if k, _ := out[0].MetaGetMut(metaKey); k != "old" {
		t.Fatalf("keep: vivace_key = %v", k)
	}

	def := newTestLookup(t, rule+"on_missing: default\ndefaults: { account_id: UNASSIGNED }\n", nil)
	out = runBatch(t, def, recordMsg(t, client, 3, map[string]string{"msisdn": "4917999", "account_id": "old", "qualifier_1": "q"}))
	if f := rawFields(t, out[0]); out[0].GetError() != nil || f["account_id"] != "UNASSIGNED" || f["qualifier_1"] != "q" {
		t.Fatalf("default: %v %v", f, out[0].GetError())
	}
	if k, _ := out[0].MetaGetMut(metaKey); k != "UNASSIGNED" {
		t.Fatalf("default: vivace_key = %v", k)
	}

	// An entry without a column the rule sets fails, naming the column.
	col := newTestLookup(t, "lookup: msisdn_accounts\nkey: this.fields.msisdn\nset: { account_id: account }\n", nil)
	out = runBatch(t, col, recordMsg(t, client, 2, map[string]string{"msisdn": "4917001"}))
	checkFailed(t, out[0], "MEDIATION_FAILED", "msisdn", `has no column "account" (it has: account_id, region)`)
	col = newTestLookup(t, "lookup: msisdn_accounts\nkey: this.fields.msisdn\nset: { qualifier_1: region, qualifier_2: zone }\n", nil)
	out = runBatch(t, col, recordMsg(t, client, 2, map[string]string{"msisdn": "4917001"}))
	checkFailed(t, out[0], "MEDIATION_FAILED", "msisdn", `has no column "zone"`)
	if f := rawFields(t, out[0]); f["qualifier_1"] != "" {
		t.Fatalf("a failed record kept part of the lookup: %v", f)
	}
}

func checkFailed(t *testing.T, m *service.Message, code, field, msg string) {
	t.Helper()
	c, _ := m.MetaGetMut(metaCode)
	f, _ := m.MetaGetMut(metaField)
	text, _ := m.MetaGetMut(metaMessage)
	if m.GetError() == nil || c != code || f != field || !strings.Contains(text.(string), msg) {
		t.Fatalf("got error %v code %v field %v message %q; want %s %s %q", m.GetError(), c, f, text, code, field, msg)
	}
}

func TestLookupConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"dsn: x\nlookup: t\nkey: this.fields.a\nset: {}\n", "set: empty"},
		{"dsn: x\nlookup: t\nkey: this.fields.a\nset: { a: b }\non_missing: default\n", "defaults: on_missing is default"},
		{"dsn: x\nlookup: t\nkey: this.fields.a\nset: { a: b }\ndefaults: { a: z }\n", "defaults: only used with on_missing: default"},
		{"dsn: x\nlookup: t\nkey: this.fields.a\nset: { a: b }\non_missing: default\ndefaults: { c: z }\n", `defaults: "c" is not a field of set`},
		{"dsn: ''\nlookup: t\nkey: this.fields.a\nset: { a: b }\n", "dsn: a database connection URL is required"},
		{"dsn: x\nlookup: 'a b'\nkey: this.fields.a\nset: { a: b }\n", `lookup "a b"`},
	} {
		conf, err := lookupSpec().ParseYAML(tc.yaml, nil)
		if err == nil {
			_, err = newLookupProc(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// A change loaded into the table reaches the pipeline within the TTL:
// entries after cache_ttl, keys that had no entry after miss_ttl.
func TestLookupCacheTTL(t *testing.T) {
	client := "lk-" + store.NewID()[24:]
	loadLookup(t, client, "msisdn_accounts", msisdnTable)
	clock := &testClock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	p := newTestLookup(t, `
lookup: msisdn_accounts
key: this.fields.msisdn
set: { account_id: account_id }
on_missing: keep
cache_ttl: 1m
miss_ttl: 10s
`, clock)
	batch := func() (a100, a300 string) {
		out := runBatch(t, p,
			recordMsg(t, client, 2, map[string]string{"msisdn": "4917001"}),
			recordMsg(t, client, 3, map[string]string{"msisdn": "4917003"}),
			recordMsg(t, client, 4, map[string]string{"msisdn": "4917001"}))
		if rawFields(t, out[0])["account_id"] != rawFields(t, out[2])["account_id"] {
			t.Fatal("the same key got two answers in one batch")
		}
		return rawFields(t, out[0])["account_id"], rawFields(t, out[1])["account_id"]
	}
	queries := func(want int64) {
		t.Helper()
		if n := p.rule.Queries(); n != want {
			t.Fatalf("%d queries, want %d", n, want)
		}
	}

	if a, b := batch(); a != "A100" || b != "" {
		t.Fatalf("first batch: %q %q", a, b)
	}
	queries(1)
	if a, b := batch(); a != "A100" || b != "" {
		t.Fatalf("cached: %q %q", a, b)
	}
	queries(1) // both answers, the miss included, came from the cache

	loadLookup(t, client, "msisdn_accounts", "msisdn,account_id\n4917001,A111\n4917003,A300\n")
	clock.add(9 * time.Second)
	if a, b := batch(); a != "A100" || b != "" {
		t.Fatalf("within both TTLs: %q %q", a, b)
	}
	queries(1)
	clock.add(2 * time.Second) // the miss has expired, the entry has not
	if a, b := batch(); a != "A100" || b != "A300" {
		t.Fatalf("after miss_ttl: %q %q", a, b)
	}
	queries(2)
	clock.add(50 * time.Second) // 61 s after the entry was read
	if a, b := batch(); a != "A111" || b != "A300" {
		t.Fatalf("after cache_ttl: %q %q", a, b)
	}
	queries(3)
}

// The keys of a batch that are not cached are read in one query, however
// many records and clients the batch holds.
func TestLookupOneQueryPerBatch(t *testing.T) {
	c1, c2 := "lk-"+store.NewID()[24:], "lk-"+store.NewID()[24:]
	loadLookup(t, c1, "msisdn_accounts", msisdnTable)
	loadLookup(t, c2, "msisdn_accounts", "msisdn,account_id,region\n4917001,B100,EU\n")
	p := newTestLookup(t, "lookup: msisdn_accounts\nkey: this.fields.msisdn\nset: { account_id: account_id }\ncache_ttl: 0s\n", nil)
	var msgs service.MessageBatch
	for i := range 200 {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		msgs = append(msgs, recordMsg(t, c, int64(i+2), map[string]string{"msisdn": []string{"4917001", "4917002"}[i%4/2]}))
	}
	out := runBatch(t, p, msgs...)
	if n := p.rule.Queries(); n != 1 {
		t.Fatalf("%d queries for one batch", n)
	}
	for i, m := range out {
		want := map[int]string{0: "A100", 1: "B100", 2: "A200"}[i%4]
		if i%4 == 3 {
			checkFailed(t, m, "MEDIATION_FAILED", "msisdn", `no entry for msisdn "4917002"`)
			continue
		}
		if got := rawFields(t, m)["account_id"]; got != want || m.GetError() != nil {
			t.Fatalf("record %d: %q %v, want %q", i, got, m.GetError(), want)
		}
	}
	// With the cache off, every batch reads again.
	runBatch(t, p, recordMsg(t, c1, 2, map[string]string{"msisdn": "4917001"}))
	if n := p.rule.Queries(); n != 2 {
		t.Fatalf("%d queries after a second batch without cache", n)
	}
}

// BenchmarkLookup measures a 1,000-record batch through vivace_lookup on a
// 100,000-entry table: from the cache, and read from PostgreSQL (one query
// for the batch's 1,000 keys).
func BenchmarkLookup(b *testing.B) {
	client := "lkb-" + store.NewID()[24:]
	var csv strings.Builder
	csv.WriteString("msisdn,account_id,region\n")
	for i := range 100000 {
		fmt.Fprintf(&csv, "49%09d,A%d,EU\n", i, i%5000)
	}
	st := pgtest.Store(b)
	rows, err := rules.NewLookupCSV("bench.csv", strings.NewReader(csv.String()))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rulestore.New(st).LoadLookup(context.Background(), rules.LookupLoad{Client: client, Lookup: "bench"}, rows); err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"client":%q,"file_id":"f1","line":%d,"fields":{"record_id":"r%d","msisdn":"49%09d","quantity":"61"}}`,
			client, i+2, i, (i*97)%100000)
	}
	for _, ttl := range []string{"1m", "0s"} {
		name := map[string]string{"1m": "cached", "0s": "uncached"}[ttl]
		b.Run(name, func(b *testing.B) {
			conf, err := lookupSpec().ParseYAML("dsn: "+pgtest.DSN(b)+"\nlookup: bench\nkey: this.fields.msisdn\n"+
				"set: { account_id: account_id, qualifier_1: region }\ncache_ttl: "+ttl+"\n", nil)
			if err != nil {
				b.Fatal(err)
			}
			p, err := newLookupProc(conf, service.MockResources())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			batch := make(service.MessageBatch, len(bodies))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i, body := range bodies {
					batch[i] = service.NewMessage(body)
				}
				out, err := p.ProcessBatch(context.Background(), batch)
				if err != nil || out[0][0].GetError() != nil {
					b.Fatal(err, out[0][0].GetError())
				}
			}
			b.ReportMetric(float64(b.N*len(bodies))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// unreachableDSN names a server nothing listens on.
const unreachableDSN = "postgres://postgres@127.0.0.1:1/vivace?connect_timeout=1"

// lookupOn is a msisdn lookup on the database at dsn, closed at test end.
func lookupOn(t *testing.T, dsn string) *lookupProc {
	t.Helper()
	conf, err := lookupSpec().ParseYAML("dsn: "+dsn+"\nlookup: msisdn_accounts\nkey: this.fields.msisdn\nset: { account_id: account_id }\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newLookupProc(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// A stream that stops while the database cannot be reached fails the
// records whose keys were not cached, with the reason; those answered from
// the cache go on.
func TestLookupDatabaseDown(t *testing.T) {
	p := lookupOn(t, unreachableDSN)
	p.rule.Cache.Put(rules.LookupKey{Client: "c", Key: "4917001"}, map[string]string{"account_id": "A100"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := p.ProcessBatch(ctx, service.MessageBatch{
		recordMsg(t, "c", 2, map[string]string{"msisdn": "4917001"}),
		recordMsg(t, "c", 3, map[string]string{"msisdn": "4917002"})})
	if err != nil {
		t.Fatal(err)
	}
	out := got[0]
	if f := rawFields(t, out[0]); out[0].GetError() != nil || f["account_id"] != "A100" {
		t.Fatalf("cached: %v %v", f, out[0].GetError())
	}
	checkFailed(t, out[1], "MEDIATION_FAILED", "", "lookup msisdn_accounts: ")
}

// A key no table can hold (a NUL byte, invalid UTF-8) has no entry; it is
// not sent to the database, where it would fail the batch's query.
func TestLookupImpossibleKey(t *testing.T) {
	client := "lk-" + store.NewID()[24:]
	loadLookup(t, client, "msisdn_accounts", msisdnTable)
	p := newTestLookup(t, "lookup: msisdn_accounts\nkey: this.fields.msisdn\nset: { account_id: account_id }\n", nil)
	out := runBatch(t, p,
		recordMsg(t, client, 2, map[string]string{"msisdn": "4917\x00001"}),
		recordMsg(t, client, 3, map[string]string{"msisdn": "4917\xff"}),
		recordMsg(t, client, 4, map[string]string{"msisdn": "4917002"}))
	checkFailed(t, out[0], "MEDIATION_FAILED", "msisdn", "no entry for msisdn")
	checkFailed(t, out[1], "MEDIATION_FAILED", "msisdn", "no entry for msisdn")
	if f := rawFields(t, out[2]); out[2].GetError() != nil || f["account_id"] != "A200" {
		t.Fatalf("good key in the same batch: %v %v", f, out[2].GetError())
	}
}

// TestLookupDatabaseAnswersNo: a database the server says does not exist
// is not waited for: the batch's records fail at once, naming the
// database, even with no bound on the wait for an unreachable one.
func TestLookupDatabaseAnswersNo(t *testing.T) {
	SetDatabaseWait(0)
	p := lookupOn(t, strings.Replace(pgtest.DSN(t), "/vivace_test_", "/no_such_database_", 1))
	out := runBatch(t, p, recordMsg(t, "c", 2, map[string]string{"msisdn": "4917001"}))
	checkFailed(t, out[0], "MEDIATION_FAILED", "", `database "no_such_database_`)
}

// TestLookupDatabaseWaitBound: with a bound on the wait (as under vivace
// test), an unreachable database fails the records with the reason.
func TestLookupDatabaseWaitBound(t *testing.T) {
	SetDatabaseWait(time.Millisecond)
	defer SetDatabaseWait(0)
	p := lookupOn(t, unreachableDSN)
	out := runBatch(t, p, recordMsg(t, "c", 2, map[string]string{"msisdn": "4917001"}))
	checkFailed(t, out[0], "MEDIATION_FAILED", "", "(no answer for 1ms)")
}
