package catalogstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// applier applies events to the catalog in st.
func applier(st *store.Store) *feed.Applier {
	return feed.NewApplier(catalogstore.New(st), catalog.ValidateData)
}

type ev struct {
	id, entity, entityID string
	version              int64
	op, data             string
}

func events(client string, evs ...ev) []feed.Event {
	out := make([]feed.Event, len(evs))
	for i, e := range evs {
		op := e.op
		if op == "" {
			op = feed.OpUpsert
		}
		out[i] = feed.Event{EventID: client + "/" + e.id, Client: client, Entity: e.entity, EntityID: e.entityID,
			Version: e.version, OccurredAt: time.Date(2026, 1, 1, 0, 0, int(e.version), 0, time.UTC), Op: op}
		if e.data != "" {
			out[i].Data = json.RawMessage(e.data)
		}
	}
	return out
}

func apply(t *testing.T, st *store.Store, evs []feed.Event) []string {
	t.Helper()
	fails := make([]error, len(evs))
	for i := range evs {
		fails[i] = evs[i].Validate(catalog.ValidateData)
	}
	out, err := applier(st).Apply(context.Background(), evs, fails)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(out))
	for i, o := range out {
		got[i] = string(o.Outcome)
		if o.EventID != evs[i].EventID {
			t.Fatalf("outcome %d is for %s, want %s", i, o.EventID, evs[i].EventID)
		}
	}
	return got
}

func entityData(t *testing.T, st *store.Store, client, entity, id string) (int64, string) {
	t.Helper()
	rows, _, err := catalogstore.New(st).LoadCatalog(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Entity == entity && r.EntityID == id {
			return r.Version, string(r.Data)
		}
	}
	return 0, ""
}

func TestApplyVersionsDuplicatesAndDeletes(t *testing.T) {
	st := pgtest.Store(t)
	c := "feed-" + store.NewID()[24:]
	got := apply(t, st, events(c,
		ev{"e1", "account", "A", 2, "", `{"currency":"USD","status":"active","name":"two"}`},
		ev{"e2", "account", "A", 1, "", `{"currency":"USD","status":"active","name":"one"}`}, // older: ignored
		ev{"e1", "account", "A", 2, "", `{"currency":"USD","status":"active","name":"two"}`}, // same id again
		ev{"e3", "account", "A", 3, "", `{"currency":"EUR","status":"active","name":"three"}`},
		ev{"e4", "account", "B", 5, feed.OpDelete, ""}, // delete before its create
		ev{"e5", "account", "B", 1, "", `{"currency":"USD","status":"active"}`},
		ev{"e6", "account", "C", 1, "", `{"currency":"USD","status":"active","name":"c1"}`},
		ev{"e7", "account", "C", 2, feed.OpDelete, ""},
		ev{"e8", "account", "D", 1, "", `{"currency":"usd","status":"active"}`}, // invalid currency
		ev{"e9", "acount", "D", 1, "", `{}`},                                    // unknown entity
	))
	want := []string{"applied", "ignored", "applied", "applied", "applied", "ignored", "applied", "applied", "failed", "failed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes\n got %v\nwant %v", got, want)
	}
	if v, d := entityData(t, st, c, "account", "A"); v != 3 || !strings.Contains(d, "three") {
		t.Fatalf("account A: version %d data %s", v, d)
	}
	if v, _ := entityData(t, st, c, "account", "B"); v != 0 {
		t.Fatalf("account B is live at version %d; it was deleted before it was created", v)
	}
	if v, _ := entityData(t, st, c, "account", "C"); v != 0 {
		t.Fatal("account C was deleted in the batch that created it")
	}
	// Redelivery of the whole batch changes nothing and reports the
	// first outcomes.
	again := apply(t, st, events(c, ev{"e3", "account", "A", 3, "", `{"currency":"EUR","status":"active","name":"three"}`},
		ev{"e8", "account", "D", 1, "", `{"currency":"usd","status":"active"}`}))
	if fmt.Sprint(again) != "[applied failed]" {
		t.Fatalf("redelivered: %v", again)
	}
	hist, err := catalogstore.New(st).EntityHistory(context.Background(), c, "account", "A")
	if err != nil || len(hist) != 2 || hist[0].Version != 2 || hist[1].Version != 3 || hist[1].AppliedAt == nil || hist[1].Source != "feed" {
		t.Fatalf("history: %+v %v", hist, err)
	}
	failed, err := catalogstore.New(st).ListFeedEvents(context.Background(), feed.EventFilter{Client: c, Outcome: feed.Failed})
	if err != nil || len(failed) != 2 || failed[0].Code != feed.CodeInvalidEvent || !strings.Contains(failed[0].Message, "currency") {
		t.Fatalf("failed events: %+v %v", failed, err)
	}
}

func TestPendingUntilReferencesArrive(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	c := "pend-" + store.NewID()[24:]
	plan := `{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.05"}]}`
	got := apply(t, st, events(c,
		ev{"s1", "subscription", "S1", 1, "", `{"account_id":"A","plan_id":"P"}`},
		ev{"p1", "plan", "P", 1, "", plan},
		ev{"d1", "discount", "D1", 1, "", `{"account_id":"A","kind":"percent","value":"10"}`},
		ev{"x1", "subscription", "S9", 1, "", `{"account_id":"A","plan_id":"NOPE"}`},
	))
	if fmt.Sprint(got) != "[pending pending pending pending]" {
		t.Fatalf("outcomes %v", got)
	}
	pend, _ := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, Outcome: feed.Pending, EntityID: "S1"})
	if len(pend) != 1 || pend[0].Code != feed.CodeMissingReference || !strings.Contains(pend[0].Message, `account "A" and plan "P"`) {
		t.Fatalf("pending: %+v", pend)
	}
	// The usage type and the account arrive: the plan waiting for the
	// usage type applies, and with it the subscription and the discount
	// waiting for the plan and the account, within the same call.
	if got := apply(t, st, events(c, ev{"u1", "usage_type", "VOICE", 1, "", `{"unit":"minute"}`},
		ev{"a1", "account", "A", 1, "", `{"currency":"USD","status":"active"}`})); fmt.Sprint(got) != "[applied applied]" {
		t.Fatalf("outcomes %v", got)
	}
	if n, err := applier(st).RetryPending(ctx, c); err != nil || n != 0 {
		t.Fatalf("RetryPending applied %d, %v; want nothing left to apply", n, err)
	}
	for _, id := range []string{"P", "D1"} {
		if e, _ := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: id}); len(e) != 1 || e[0].Outcome != feed.Applied {
			t.Fatalf("%s: %+v", id, e)
		}
	}
	if v, _ := entityData(t, st, c, "subscription", "S1"); v != 1 {
		t.Fatal("subscription S1 not applied after its account and plan arrived")
	}
	s1, _ := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: "S1"})
	if len(s1) != 1 || s1[0].Source != feed.SourceRetry || s1[0].Attempts < 2 || s1[0].Code != "" {
		t.Fatalf("S1 on record: %+v", s1)
	}
	// The plan that never comes: the wait runs out.
	if n, err := applier(st).ExpirePending(ctx, 0); err != nil || n < 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	x, _ := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: "S9"})
	if len(x) != 1 || x[0].Outcome != feed.Failed || x[0].Code != feed.CodeMissingReference || !strings.Contains(x[0].Message, "gave up") {
		t.Fatalf("S9: %+v", x)
	}
	// An operator fixes the plan id and reprocesses it.
	edited := `{"client":"` + c + `","entity":"subscription","entity_id":"S9","version":1,"occurred_at":"2026-01-01T00:00:01Z","op":"upsert","data":{"account_id":"A","plan_id":"P"}}`
	o, err := applier(st).Edit(ctx, c+"/x1", []byte(edited), "ana")
	if err != nil || o.Outcome != feed.Applied {
		t.Fatalf("edit: %+v %v", o, err)
	}
	x, _ = catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: "S9"})
	if x[0].Source != "operator:ana" || !strings.Contains(string(x[0].OriginalPayload), "NOPE") || strings.Contains(string(x[0].Payload), "NOPE") {
		t.Fatalf("after edit: %+v", x[0])
	}
	// An applied event cannot be edited, and an unknown one is not found.
	if _, err := applier(st).Edit(ctx, c+"/x1", []byte(edited), "ana"); err == nil || !strings.Contains(err.Error(), "was applied") {
		t.Fatalf("editing an applied event: %v", err)
	}
	if _, err := applier(st).Reprocess(ctx, []string{"nope"}, "ana"); !errors.Is(err, feed.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

// TestRetryPendingSweepsMissedWakeUps covers the race the sweep is for: an
// event goes pending while the entity it names is committed by another
// transaction, so the other transaction's wake-up finds nothing waiting.
// The entities are written behind the feed's back here, which leaves the
// event in exactly that state; RetryPending must apply it.
func TestRetryPendingSweepsMissedWakeUps(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	c := "sweep-" + store.NewID()[24:]
	many := make([]ev, 0, 40)
	for i := range 40 {
		many = append(many, ev{fmt.Sprintf("s%d", i), "subscription", fmt.Sprintf("S%d", i), 1, "",
			fmt.Sprintf(`{"account_id":"A%d","plan_id":"P"}`, i)})
	}
	for _, o := range apply(t, st, events(c, many...)) {
		if o != string(feed.Pending) {
			t.Fatalf("outcome %s, want pending", o)
		}
	}
	plan := `{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.05"}]}`
	raw := []struct{ entity, id, data string }{{"usage_type", "VOICE", `{"unit":"minute"}`}, {"plan", "P", plan}}
	for i := range 40 {
		raw = append(raw, struct{ entity, id, data string }{"account", fmt.Sprintf("A%d", i), `{"currency":"USD","status":"active"}`})
	}
	for _, r := range raw {
		if _, err := st.Pool().Exec(ctx, `INSERT INTO catalog_entities (client, entity, entity_id, version, deleted, data, event_id, occurred_at)
			VALUES ($1, $2, $3, 1, false, $4, 'outside', now())`, c, r.entity, r.id, r.data); err != nil {
			t.Fatal(err)
		}
	}
	// As the catalog stage's sweep calls it: for every client.
	n, err := applier(st).RetryPending(ctx)
	if err != nil || n != 40 {
		t.Fatalf("RetryPending applied %d, %v; want 40", n, err)
	}
	left, _ := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, Outcome: feed.Pending})
	if len(left) != 0 {
		t.Fatalf("still pending: %d", len(left))
	}
	if n, err := applier(st).RetryPending(ctx, c); err != nil || n != 0 {
		t.Fatalf("second sweep applied %d, %v", n, err)
	}
}

// TestConcurrentBatchesLeaveNothingPending applies accounts and the
// subscriptions naming them from concurrent batches, as the catalog stage
// does with several batches in flight. Whichever commits first, once every
// call has returned nothing may still be pending: no sweep is run here.
func TestConcurrentBatchesLeaveNothingPending(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	c := "conc-" + store.NewID()[24:]
	plan := `{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.05"}]}`
	apply(t, st, events(c, ev{"u", "usage_type", "VOICE", 1, "", `{"unit":"minute"}`}, ev{"p", "plan", "P", 1, "", plan}))
	const rounds, per = 10, 300
	errs := make(chan error, 2*rounds)
	for r := range rounds {
		var accts, subs []ev
		for i := range per {
			id := fmt.Sprintf("%d_%d", r, i)
			accts = append(accts, ev{"a" + id, "account", "A" + id, 1, "", `{"currency":"USD","status":"active"}`})
			subs = append(subs, ev{"s" + id, "subscription", "S" + id, 1, "", `{"account_id":"A` + id + `","plan_id":"P"}`})
		}
		for _, batch := range [][]ev{subs, accts} {
			go func() {
				_, err := applier(st).Apply(ctx, events(c, batch...), make([]error, len(batch)))
				errs <- err
			}()
		}
	}
	for range 2 * rounds {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	left, err := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, Outcome: feed.Pending})
	if err != nil || len(left) != 0 {
		t.Fatalf("%d events still pending (%v)", len(left), err)
	}
	applied, _ := catalogstore.New(st).ListFeedEvents(ctx, feed.EventFilter{Client: c, Outcome: feed.Applied, Limit: 10000})
	if len(applied) != 2+2*rounds*per {
		t.Fatalf("%d applied, want %d", len(applied), 2+2*rounds*per)
	}
}

// TestFailedReferenceFailsAtOnce: an event naming an entity whose own
// event failed fails at once, naming that event and its reason, instead of
// waiting out the dependency wait: a subscription already pending when
// its plan fails, and one arriving after. Once the plan is repaired both
// apply, with nothing else to do.
func TestFailedReferenceFailsAtOnce(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	cs := catalogstore.New(st)
	c := "reffail-" + store.NewID()[24:]
	badPlan := `{"rates":[{"usage_type":"VOICE","currency":"usd","model":"per_unit","unit_price":"0.05"}]}`
	got := apply(t, st, events(c,
		ev{"u1", "usage_type", "VOICE", 1, "", `{"unit":"minute"}`},
		ev{"a1", "account", "A", 1, "", `{"currency":"USD","status":"active"}`},
		ev{"s1", "subscription", "S1", 1, "", `{"account_id":"A","plan_id":"P"}`}, // pending: P has not arrived
	))
	if fmt.Sprint(got) != "[applied applied pending]" {
		t.Fatalf("outcomes %v", got)
	}
	// The plan arrives and fails: within the same call the pending
	// subscription fails too, naming it.
	if got := apply(t, st, events(c, ev{"p1", "plan", "P", 1, "", badPlan})); fmt.Sprint(got) != "[failed]" {
		t.Fatalf("plan: %v", got)
	}
	s1, _ := cs.ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: "S1"})
	if len(s1) != 1 || s1[0].Outcome != feed.Failed || s1[0].Code != feed.CodeReferenceFailed ||
		!strings.Contains(s1[0].Message, `plan "P", whose event `+c+`/p1 failed (data: rates[0].currency: "usd" must be written in upper case (USD))`) {
		t.Fatalf("S1 on record: %+v", s1)
	}
	// A subscription naming the failed plan fails in its own batch.
	if got := apply(t, st, events(c, ev{"s2", "subscription", "S2", 1, "", `{"account_id":"A","plan_id":"P"}`})); fmt.Sprint(got) != "[failed]" {
		t.Fatalf("S2: %v", got)
	}
	failed, _ := cs.ListFeedEvents(ctx, feed.EventFilter{Client: c, Code: feed.CodeReferenceFailed})
	if len(failed) != 2 {
		t.Fatalf("%d events failed for the plan, want 2: %+v", len(failed), failed)
	}
	// Reprocessed while the plan is still broken, S2 stays failed.
	if o, err := applier(st).Reprocess(ctx, []string{c + "/s2"}, "ana"); err != nil || o[0].Code != feed.CodeReferenceFailed {
		t.Fatalf("reprocessed early: %+v %v", o, err)
	}
	// The plan repaired: both subscriptions apply on their own.
	fixed := `{"client":"` + c + `","entity":"plan","entity_id":"P","version":1,"occurred_at":"2026-01-01T00:00:01Z","op":"upsert",` +
		`"data":{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.05"}]}}`
	if o, err := applier(st).Edit(ctx, c+"/p1", []byte(fixed), "ana"); err != nil || o.Outcome != feed.Applied {
		t.Fatalf("edit: %+v %v", o, err)
	}
	for _, id := range []string{"S1", "S2"} {
		e, _ := cs.ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: id})
		if len(e) != 1 || e[0].Outcome != feed.Applied || e[0].Source != feed.SourceRetry {
			t.Fatalf("%s after the repair: %+v", id, e)
		}
	}
	if v, _ := entityData(t, st, c, "subscription", "S2"); v != 1 {
		t.Fatal("S2 not in the catalog after its plan was repaired")
	}
}

// TestExpiredReferenceFailsWaitingEvents: when an event's wait runs out,
// the events waiting for what it would have brought fail with it.
func TestExpiredReferenceFailsWaitingEvents(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	cs := catalogstore.New(st)
	c := "expire-" + store.NewID()[24:]
	plan := `{"rates":[{"usage_type":"NOPE","currency":"USD","model":"per_unit","unit_price":"0.05"}]}`
	if got := apply(t, st, events(c, ev{"p1", "plan", "P", 1, "", plan},
		ev{"a1", "account", "A", 1, "", `{"currency":"USD","status":"active"}`})); fmt.Sprint(got) != "[pending applied]" {
		t.Fatalf("outcomes %v", got)
	}
	if got := apply(t, st, events(c, ev{"s1", "subscription", "S1", 1, "", `{"account_id":"A","plan_id":"P"}`})); fmt.Sprint(got) != "[pending]" {
		t.Fatalf("S1: %v", got)
	}
	// Only the plan has waited an hour.
	if _, err := st.Pool().Exec(ctx, `UPDATE catalog_events SET received_at = now() - interval '2 hours' WHERE event_id = $1`, c+"/p1"); err != nil {
		t.Fatal(err)
	}
	if n, err := applier(st).ExpirePending(ctx, time.Hour); err != nil || n < 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	s1, _ := cs.ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: "S1"})
	if len(s1) != 1 || s1[0].Code != feed.CodeReferenceFailed || !strings.Contains(s1[0].Message, "gave up after waiting 1h0m0s") {
		t.Fatalf("S1: %+v", s1)
	}
}

// TestWarningsAndExtrasOnRecord: what an event carries that Vivace does
// not use is on record with it and named in its outcome's warnings; the
// catalog keeps only what it uses.
func TestWarningsAndExtrasOnRecord(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	cs := catalogstore.New(st)
	c := "warn-" + store.NewID()[24:]
	line := `{"event_id":"` + c + `/p1","client":"` + c + `","entity":"plan","entity_id":"P","version":1,` +
		`"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","source":"core","trace_id":"t-1","data":{"name":"Gold","rates":[` +
		`{"usage_type":"VOICE","currency":"USD","model":"stairstep","legacy":{"id":7},"tiers":[{"up_to":null,"unit_price":"0.5","flat_fee":"9"}]}]}}`
	e, err := feed.Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	evs := append(events(c, ev{"u1", "usage_type", "VOICE", 1, "", `{"unit":"minute","name":"Voice"}`}), e)
	if got := apply(t, st, evs); fmt.Sprint(got) != "[applied applied]" {
		t.Fatalf("outcomes %v", got)
	}
	warned, err := cs.ListFeedEvents(ctx, feed.EventFilter{Client: c, Warned: true})
	if err != nil || len(warned) != 1 || warned[0].EventID != c+"/p1" {
		t.Fatalf("warned: %+v %v", warned, err)
	}
	w := strings.Join(warned[0].Warnings, "|")
	if w != "data: rates[0].legacy: not used by Vivace; ignored|data: rates[0].tiers[0].unit_price: not used by the stairstep model (it charges the flat_fee of each tier entered); ignored" {
		t.Fatalf("warnings %q", w)
	}
	for _, want := range []string{`"source": "core"`, `"trace_id": "t-1"`, `"legacy": {"id": 7}`, `"name": "Gold"`} {
		if !strings.Contains(string(warned[0].Payload), want) {
			t.Errorf("payload %s lacks %s", warned[0].Payload, want)
		}
	}
	if _, d := entityData(t, st, c, "plan", "P"); d != `{"rates": [{"model": "stairstep", "tiers": [{"up_to": null, "flat_fee": "9"}], "currency": "USD", "usage_type": "VOICE"}]}` {
		t.Fatalf("stored plan %s", d)
	}
	if o, err := cs.EventOutcomes(ctx, []string{c + "/p1"}); err != nil || len(o[c+"/p1"].Warnings) != 2 {
		t.Fatalf("outcome %+v %v", o, err)
	}
}

// TestInvalidEventsWithExtrasStillFail: extra fields do not make an
// invalid event valid; each fails naming its field.
func TestInvalidEventsWithExtrasStillFail(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	cs := catalogstore.New(st)
	c := "inval-" + store.NewID()[24:]
	cases := []struct{ entity, data, want string }{
		{"account", `{"currency":"usd","status":"active","x":1}`, `data: currency: "usd" must be written in upper case (USD)`},
		{"account", `{"currency":"USD","x":1}`, "data: status: required"},
		{"account", `{"currency":"USD","status":["active"],"x":1}`, "data: status: a JSON array is not allowed here"},
		{"plan", `{"rates":[{"usage_type":"V","currency":"USD","model":"graduated","x":1,"tiers":[{"up_to":"10","unit_price":"1"},{"up_to":"5","unit_price":"1"},{"up_to":null,"unit_price":"1"}]}]}`,
			"data: rates[0].tiers[1].up_to: must be greater than the previous tier's up_to"},
		{"plan", `{"rates":[{"usage_type":"V","currency":"USD","model":"flat","x":{"value":"bad"}}]}`, `data: rates[0].model: "flat" is not one of`},
		{"plan", `{"rates":[{"usage_type":"V","currency":"USD","model":"per_unit","unit_price":"1,5","x":{"unit_price":"bad"}}]}`,
			`data: rates[0].unit_price: invalid decimal "1,5"`},
		{"subscription", `{"plan_id":"P","x":[]}`, "data: account_id: required"},
		{"discount", `{"plan_id":"P","kind":"percent","value":"150","x":null}`, "data: value: a percent must be between 0 and 100"},
		{"discount", `{"plan_id":"P","kind":"percent","value":"5","effective_from":"2026-03-01","x":true}`, `data: effective_from: "2026-03-01" is not an RFC 3339 timestamp`},
	}
	var evs []ev
	for i, k := range cases {
		evs = append(evs, ev{fmt.Sprint("e", i), k.entity, fmt.Sprint("X", i), 1, "", k.data})
	}
	batch := events(c, evs...)
	batch[0].Extra = map[string]json.RawMessage{"source": json.RawMessage(`"core"`)}
	for _, o := range apply(t, st, batch) {
		if o != "failed" {
			t.Fatalf("outcome %s", o)
		}
	}
	for i, k := range cases {
		e, _ := cs.ListFeedEvents(ctx, feed.EventFilter{Client: c, EntityID: fmt.Sprint("X", i)})
		if len(e) != 1 || e[0].Code != feed.CodeInvalidEvent || !strings.Contains(e[0].Message, k.want) {
			t.Errorf("%s %s: %+v, want …%s…", k.entity, k.data, e, k.want)
		}
	}
	// Envelope faults too: an op it does not know, a version that is not
	// a number, a line that is not JSON (the catalog stage records those
	// with a reason as well).
	bad := events(c, ev{"o1", "account", "Y", 1, "merge", `{"currency":"USD","status":"active"}`})
	bad[0].Extra = map[string]json.RawMessage{"trace_id": json.RawMessage(`"t"`)}
	if o := apply(t, st, bad); o[0] != "failed" {
		t.Fatalf("unknown op: %v", o)
	}
	if _, err := feed.Parse([]byte(`{"event_id":"x","version":"1","source":"core"}`)); err == nil || !strings.Contains(err.Error(), "not a feed event") {
		t.Fatalf("a string version: %v", err)
	}
}

// TestCountOpenFeedEvents: every failed and pending event of the clients
// asked for is counted, past any page size, and no other client's.
func TestCountOpenFeedEvents(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	c, other := "count-"+store.NewID()[24:], "count-other-"+store.NewID()[24:]
	var evs []ev
	for i := range 1205 { // failed: the currency is not one
		evs = append(evs, ev{fmt.Sprintf("bad%d", i), "account", fmt.Sprintf("B%d", i), 1, "", `{"currency":"usd","status":"active"}`})
	}
	for i := range 3 { // pending: the account and plan are not there yet
		evs = append(evs, ev{fmt.Sprintf("wait%d", i), "subscription", fmt.Sprintf("S%d", i), 1, "", `{"account_id":"A","plan_id":"P"}`})
	}
	evs = append(evs, ev{"ok", "account", "A", 1, "", `{"currency":"USD","status":"active"}`})
	apply(t, st, events(c, evs...))
	apply(t, st, events(other, ev{"bad", "account", "X", 1, "", `{"currency":"usd","status":"active"}`}))
	cs := catalogstore.New(st)
	failed, pending, err := cs.CountOpenFeedEvents(ctx, []string{c})
	if err != nil || failed != 1205 || pending != 3 {
		t.Fatalf("counts of %s: %d failed, %d pending, %v; want 1205 and 3", c, failed, pending, err)
	}
	failed, pending, err = cs.CountOpenFeedEvents(ctx, []string{c, other})
	if err != nil || failed != 1206 || pending != 3 {
		t.Fatalf("counts of both: %d failed, %d pending, %v; want 1206 and 3", failed, pending, err)
	}
	all, _, err := cs.CountOpenFeedEvents(ctx, nil)
	if err != nil || all < 1206 {
		t.Fatalf("counts of every client: %d failed, %v; want at least 1206", all, err)
	}
}
