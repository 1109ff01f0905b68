package ratestage_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
)

// generated parses a generated catalog for client.
func generated(tb testing.TB, client string, accounts, plans int) []feed.Event {
	return generatedWith(tb, loadgen.CatalogOptions{Client: client, Accounts: accounts, Plans: plans})
}

// generatedWith parses the catalog loadgen writes for o.
func generatedWith(tb testing.TB, o loadgen.CatalogOptions) []feed.Event {
	tb.Helper()
	var buf bytes.Buffer
	if err := loadgen.Catalog(&buf, o); err != nil {
		tb.Fatal(err)
	}
	var evs []feed.Event
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		e, err := feed.Parse(sc.Bytes())
		if err != nil {
			tb.Fatal(err)
		}
		evs = append(evs, e)
	}
	return evs
}

func applyAll(tb testing.TB, st *store.Store, evs []feed.Event) {
	tb.Helper()
	out, err := feed.NewApplier(catalogstore.New(st), nil).Apply(context.Background(), evs, make([]error, len(evs)))
	if err != nil {
		tb.Fatal(err)
	}
	for _, o := range out {
		if o.Outcome != feed.Applied {
			tb.Fatalf("event %s: %s %s", o.EventID, o.Outcome, o.Message)
		}
	}
}

// describe renders what a snapshot answers for the given accounts, in a
// form two snapshots can be compared by.
func describe(s *catalog.Snapshot, accounts []string, at time.Time) string {
	var b bytes.Buffer
	for _, a := range accounts {
		acct := s.Account(a)
		if acct == nil {
			fmt.Fprintf(&b, "%s: none\n", a)
			continue
		}
		sub := s.SubscriptionAt(a, at)
		fmt.Fprintf(&b, "%s: %+v", a, *acct)
		if sub == nil {
			b.WriteString(" no subscription\n")
			continue
		}
		fmt.Fprintf(&b, " sub %s plan %s", sub.ID, sub.PlanID)
		for _, ut := range loadgen.UsageTypes {
			r := s.RateAt(sub.PlanID, ut.Code, acct.Currency, at)
			j, _ := json.Marshal(r)
			fmt.Fprintf(&b, " %s=%s", ut.Code, j)
			for _, d := range s.DiscountsAt(a, sub.PlanID, ut.Code, at) {
				fmt.Fprintf(&b, " -%s", d.ID)
			}
		}
		b.WriteString("\n")
	}
	problems := make([]string, 0)
	for _, p := range s.Problems() {
		problems = append(problems, p.Error())
	}
	sort.Strings(problems)
	fmt.Fprintf(&b, "problems: %q\n", problems)
	return b.String()
}

// TestCatalogRefreshMatchesFullLoad changes a cached catalog in every way
// the feed can (new, updated, deleted and re-created entities) and checks
// after each change that the refreshed snapshot, built from the changed
// rows only, answers exactly as one loaded from scratch.
func TestCatalogRefreshMatchesFullLoad(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := unique("refresh")
	evs := generated(t, client, 30, 4)
	applyAll(t, st, evs)
	cached := &ratestage.Catalogs{Store: catalogstore.New(st)}
	if _, err := cached.Get(ctx, client); err != nil {
		t.Fatal(err)
	}
	var accounts []string
	for i := range 32 {
		accounts = append(accounts, loadgen.AccountID(i))
	}
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	seq := 0
	ev := func(entity, id string, version int64, op, data string) feed.Event {
		seq++
		e := feed.Event{EventID: fmt.Sprintf("%s-change-%d", client, seq), Client: client, Entity: entity, EntityID: id,
			Version: version, OccurredAt: at, Op: op}
		if data != "" {
			e.Data = json.RawMessage(data)
		}
		return e
	}
	sub := func(acct, plan string) string {
		return `{"account_id":"` + acct + `","plan_id":"` + plan + `","effective_from":"2020-01-01T00:00:00Z"}`
	}
	steps := [][]feed.Event{
		{ev("account", loadgen.AccountID(3), 100, feed.OpUpsert, `{"currency":"USD","status":"suspended","name":"renamed"}`)},
		{ev("subscription", "SUB"+loadgen.AccountID(4)[3:], 100, feed.OpDelete, "")},
		{ev("account", loadgen.AccountID(30), 1, feed.OpUpsert, `{"currency":"USD","status":"active"}`),
			ev("subscription", "SUBNEW30", 1, feed.OpUpsert, sub(loadgen.AccountID(30), "PLAN002")),
			ev("discount", "NEWPCT30", 1, feed.OpUpsert, `{"account_id":"`+loadgen.AccountID(30)+`","kind":"percent","value":"5","priority":1}`)},
		{ev("account", loadgen.AccountID(30), 2, feed.OpDelete, "")},
		{ev("account", loadgen.AccountID(30), 3, feed.OpUpsert, `{"currency":"USD","status":"active","name":"back"}`),
			ev("plan", "PLAN002", 100, feed.OpUpsert, `{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.07"}]}`)},
	}
	for i, step := range steps {
		applyAll(t, st, step)
		got, err := cached.Get(ctx, client)
		if err != nil {
			t.Fatal(err)
		}
		want, err := (&ratestage.Catalogs{Store: catalogstore.New(st)}).Get(ctx, client)
		if err != nil {
			t.Fatal(err)
		}
		g, w := describe(got, accounts, at), describe(want, accounts, at)
		if g != w {
			t.Fatalf("step %d: refreshed snapshot differs from a full load\nrefreshed:\n%s\nfull:\n%s", i, g, w)
		}
	}
	if got, _ := cached.Get(ctx, client); got.Account(loadgen.AccountID(3)).Status != "suspended" ||
		got.SubscriptionAt(loadgen.AccountID(4), at) != nil || got.Account(loadgen.AccountID(30)).Name != "back" {
		t.Fatal("the changes are not in the refreshed snapshot")
	}
}

// TestWatchRefreshesInBackground checks that a committed change reaches
// the cache through the notification, with no batch asking for it.
func TestWatchRefreshesInBackground(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := pgtest.Store(t)
	client := unique("watch")
	applyAll(t, st, generated(t, client, 5, 4))
	cats := &ratestage.Catalogs{Store: catalogstore.New(st), PollInterval: time.Hour} // notifications only
	if _, err := cats.Get(ctx, client); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cats.Watch(ctx, func() { close(ready) })
	}()
	<-ready
	applyAll(t, st, []feed.Event{{EventID: client + "-late", Client: client, Entity: "account", EntityID: "LATE",
		Version: 1, OccurredAt: time.Now(), Op: feed.OpUpsert, Data: json.RawMessage(`{"currency":"USD","status":"active"}`)}})
	want, err := catalogstore.New(st).CatalogVersion(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, _ := cats.Version(client); v >= want {
			break
		}
		if time.Now().After(deadline) {
			v, _ := cats.Version(client)
			t.Fatalf("cache still at version %d, the database is at %d", v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
