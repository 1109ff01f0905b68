// Package synctest helps the MUR sync's tests and benchmarks: it puts
// MURs into a database as the rate stage would leave them, and compares
// what the fake core holds with the MURs, to the minor unit.
package synctest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5/pgxpool"

	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/store"
)

// Spec says what MURs Seed makes.
type Spec struct {
	Client   string
	MURs     int
	Accounts int // spread over A0001.. (default 20); every fifth account is billed in JPY, the rest in USD
	Types    []string
	Days     int       // usage spread over this many UTC days (default 3)
	From     time.Time // first day (default 2026-01-01)
	Seed     uint64    // also part of the record ids: seeds of one client must differ
}

// Seed inserts MURs with decimal quantities and net amounts at their
// currency's minor unit, unsynced, and returns their number.
func Seed(ctx context.Context, pool *pgxpool.Pool, s Spec) (int, error) {
	if s.Accounts <= 0 {
		s.Accounts = 20
	}
	if len(s.Types) == 0 {
		s.Types = []string{"calls", "data", "sms"}
	}
	if s.Days <= 0 {
		s.Days = 3
	}
	if s.From.IsZero() {
		s.From = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(s.Seed, uint64(len(s.Client))))
	fileID := store.NewID()
	const chunk = 20000
	for from := 0; from < s.MURs; from += chunk {
		n := min(chunk, s.MURs-from)
		ids, recs, accts, types, curs, qtys, nets, quals := make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		lines := make([]int64, n)
		times := make([]time.Time, n)
		for i := 0; i < n; i++ {
			k := from + i
			a := rng.IntN(s.Accounts)
			ids[i], recs[i], lines[i] = store.NewID(), fmt.Sprintf("%s-%d-r%07d", s.Client, s.Seed, k), int64(k+1)
			accts[i], types[i] = fmt.Sprintf("A%04d", a), s.Types[rng.IntN(len(s.Types))]
			times[i] = s.From.Add(time.Duration(rng.Int64N(int64(s.Days) * int64(24*time.Hour))))
			qtys[i] = fmt.Sprintf("%d.%03d", rng.IntN(500), rng.IntN(1000))
			if a%5 == 4 {
				curs[i], nets[i] = "JPY", fmt.Sprintf("%d", rng.IntN(5000))
			} else {
				curs[i], nets[i] = "USD", fmt.Sprintf("%d.%02d", rng.IntN(50), rng.IntN(100))
			}
			quals[i] = `{}`
			if rng.IntN(4) == 0 {
				quals[i] = `{"qualifier_1":"roaming"}`
			}
		}
		if _, err := pool.Exec(ctx, `INSERT INTO murs (mur_id, client, record_id, file_id, line, account_id, usage_type,
				quantity, usage_time, currency, gross_amount, discount_amount, net_amount, rate_detail, qualifiers)
			SELECT id, $1, r, $2, l, a, t, q::numeric, ut, c, n::numeric, 0, n::numeric, '{}', qu::jsonb
			FROM unnest($3::uuid[], $4::text[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
				$10::text[], $11::text[], $12::text[]) AS x(id, r, l, a, t, q, ut, c, n, qu)`,
			s.Client, fileID, ids, recs, lines, accts, types, qtys, times, curs, nets, quals); err != nil {
			return from, fmt.Errorf("seed MURs: %w", err)
		}
	}
	return s.MURs, nil
}

// Counts are a client's MURs by sync status.
type Counts map[string]int

// StatusCounts counts the client's MURs by sync_status.
func StatusCounts(ctx context.Context, pool *pgxpool.Pool, client string) (Counts, error) {
	rows, err := pool.Query(ctx, `SELECT sync_status, count(*) FROM murs WHERE client = $1 GROUP BY 1`, client)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	c := Counts{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		c[s] = n
	}
	return c, rows.Err()
}

type key struct{ account, usageType string }

type sums struct {
	units, amount apd.Decimal
	n             int
}

// CheckTotals fails t unless the totals the fake core holds for
// clientNo, per account and usage type, equal those of the client's
// synced MURs exactly, and every record the core holds was sent once
// per aggregated record (no record counted twice). It returns the number
// of synced MURs.
func CheckTotals(t testing.TB, ctx context.Context, pool *pgxpool.Pool, core *fakecore.Core, client string, clientNo int64) int {
	t.Helper()
	want := map[key]*sums{}
	rows, err := pool.Query(ctx, `SELECT account_id, usage_type, sum(quantity)::text, sum(net_amount)::text, count(*)
		FROM murs WHERE client = $1 AND sync_status = 'synced' GROUP BY 1, 2`, client)
	if err != nil {
		t.Fatal(err)
	}
	synced := 0
	for rows.Next() {
		var k key
		var u, a string
		var n int
		if err := rows.Scan(&k.account, &k.usageType, &u, &a, &n); err != nil {
			t.Fatal(err)
		}
		s := &sums{n: n}
		mustSet(t, &s.units, u)
		mustSet(t, &s.amount, a)
		want[k] = s
		synced += n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	totals, err := core.Totals(fakecore.Filter{ClientNo: clientNo})
	if err != nil {
		t.Fatal(err)
	}
	got := map[key]*sums{}
	for _, tot := range totals {
		s := &sums{n: tot.Records}
		mustSet(t, &s.units, tot.Units)
		mustSet(t, &s.amount, tot.Amount)
		got[key{tot.Account, tot.UsageType}] = s
		if tot.WithoutAmt != 0 {
			t.Errorf("%s/%s: %d records reached the core without an amount", tot.Account, tot.UsageType, tot.WithoutAmt)
		}
	}
	var problems []string
	for k, w := range want {
		g := got[k]
		switch {
		case g == nil:
			problems = append(problems, fmt.Sprintf("%s/%s: the core holds nothing; MURs: units %s amount %s", k.account, k.usageType, w.units.String(), w.amount.String()))
		case g.units.Cmp(&w.units) != 0 || g.amount.Cmp(&w.amount) != 0:
			problems = append(problems, fmt.Sprintf("%s/%s: the core holds units %s amount %s; MURs: units %s amount %s",
				k.account, k.usageType, g.units.String(), g.amount.String(), w.units.String(), w.amount.String()))
		}
	}
	for k, g := range got {
		if want[k] == nil {
			problems = append(problems, fmt.Sprintf("%s/%s: the core holds units %s amount %s; no synced MUR", k.account, k.usageType, g.units.String(), g.amount.String()))
		}
	}
	// Each record at the core is one aggregated record of synced MURs.
	var records int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sync_aggregates WHERE client = $1 AND status = 'synced'`, client).Scan(&records); err != nil {
		t.Fatal(err)
	}
	held := len(core.Records(fakecore.Filter{ClientNo: clientNo}))
	if held != records {
		problems = append(problems, fmt.Sprintf("the core holds %d records; %d aggregated records are synced", held, records))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		t.Fatalf("core totals differ from the MURs':\n%s", strings.Join(problems, "\n"))
	}
	return synced
}

func mustSet(t testing.TB, d *apd.Decimal, s string) {
	t.Helper()
	if _, _, err := d.SetString(s); err != nil {
		t.Fatalf("decimal %q: %v", s, err)
	}
}

// StartCore runs a fake core on a free loopback port for the rest of the
// test, letting in the credentials given.
func StartCore(tb testing.TB, creds ...fakecore.Credential) *fakecore.Server {
	tb.Helper()
	core, err := fakecore.Start("127.0.0.1:0", fakecore.Config{Credentials: creds})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = core.Close() })
	return core
}
