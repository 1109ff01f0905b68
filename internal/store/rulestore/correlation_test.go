package rulestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
	"vivace.dev/vivace/internal/store/usagestore"
)

func corrPart(client, file string, line int64, key, typ string) rules.CorrelationPart {
	rec, _ := json.Marshal(map[string]any{"client": client, "file_id": file, "line": line,
		"fields": map[string]string{"call_id": key, "record_type": typ}})
	return rules.CorrelationPart{Client: client, FileID: file, Line: line, Key: key, Record: rec,
		Meta: map[string]string{"vivace_key": "A1"}}
}

// hasStop closes a group once it holds a STOP record.
func hasStop(t *testing.T, seen *[]int) rules.Decider {
	return func(g *rules.CorrelationGroup) (rules.Outcome, error) {
		*seen = append(*seen, len(g.Parts))
		for _, p := range g.Parts {
			var r struct{ Fields map[string]string }
			if err := json.Unmarshal(p.Record, &r); err != nil {
				t.Fatal(err)
			}
			if r.Fields["record_type"] == "STOP" {
				return rules.OutcomeComplete, nil
			}
		}
		return rules.OutcomeOpen, nil
	}
}

func TestCorrelationGroupLifecycle(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Store(t)
	st := rulestore.New(db)
	client := "corr-" + store.NewID()[24:]
	rule := "calls-" + client // sweeps are per rule: one per test
	file := store.NewID()
	t0 := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	var seen []int
	decide := hasStop(t, &seen)
	add := func(now time.Time, parts ...rules.CorrelationPart) rules.CorrelateResult {
		t.Helper()
		res, err := st.CorrelateParts(ctx, rule, parts, 30*time.Minute, now, decide)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// START and INTERMEDIATE: held, the group stays open.
	res := add(t0, corrPart(client, file, 2, "c1", "START"), corrPart(client, file, 3, "c1", "INTERMEDIATE"))
	if res.Held != 2 || res.Replayed != 0 || len(res.Emitted) != 0 {
		t.Fatalf("first batch: %+v", res)
	}
	// The same record again, alone or twice in one batch, changes nothing.
	res = add(t0.Add(time.Minute), corrPart(client, file, 2, "c1", "START"))
	if res.Held != 0 || res.Replayed != 1 {
		t.Fatalf("replay: %+v", res)
	}
	// STOP completes it: emitted with its records in arrival order.
	res = add(t0.Add(2*time.Minute), corrPart(client, file, 4, "c1", "STOP"), corrPart(client, file, 4, "c1", "STOP"))
	if res.Held != 1 || res.Replayed != 1 || len(res.Emitted) != 1 {
		t.Fatalf("stop: %+v", res)
	}
	g := res.Emitted[0]
	if g.Key != "c1" || g.Outcome != rules.OutcomeComplete || len(g.Parts) != 3 || g.Parts[0].Line != 2 ||
		g.Parts[2].Line != 4 || g.Parts[0].Meta["vivace_key"] != "A1" || !g.OpenedAt.Equal(t0) || !g.Deadline.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("emitted group: %+v", g)
	}
	if fmt.Sprint(seen) != "[2 3]" {
		t.Fatalf("decide saw groups of %v records", seen)
	}
	// A replay after the emission is still recognised.
	if res = add(t0.Add(3*time.Minute), corrPart(client, file, 3, "c1", "INTERMEDIATE")); res.Replayed != 1 || res.Held != 0 {
		t.Fatalf("replay after emission: %+v", res)
	}

	// Before resend_after: the sweep leaves it; after: nothing is recorded
	// for its records, so it is emitted again.
	emitted := t0.Add(2 * time.Minute)
	sw, err := st.SweepCorrelation(ctx, rule, emitted.Add(5*time.Minute), 10*time.Minute, 100, decide)
	if err != nil || len(sw.Resent)+len(sw.TimedOut)+sw.Cleaned != 0 {
		t.Fatalf("early sweep: %+v %v", sw, err)
	}
	sw, err = st.SweepCorrelation(ctx, rule, emitted.Add(11*time.Minute), 10*time.Minute, 100, decide)
	if err != nil || len(sw.Resent) != 1 || sw.Resent[0].Emissions != 2 || len(sw.Resent[0].Parts) != 3 ||
		sw.Resent[0].Outcome != rules.OutcomeComplete {
		t.Fatalf("resend sweep: %+v %v", sw, err)
	}
	// Outcomes recorded for two of the three: emitted again later.
	var outs []exceptions.Exception
	for _, line := range []int64{2, 3, 4} {
		outs = append(outs, exceptions.Exception{Client: client, FileID: file, Line: line, Stage: "mediate",
			Code: "FILTERED", Message: "test", Record: json.RawMessage(`{}`)})
	}
	if _, err := usagestore.New(db).InsertExceptions(ctx, outs[1:]); err != nil {
		t.Fatal(err)
	}
	sw, err = st.SweepCorrelation(ctx, rule, emitted.Add(25*time.Minute), 10*time.Minute, 100, decide)
	if err != nil || len(sw.Resent) != 1 || sw.Cleaned != 0 {
		t.Fatalf("partly recorded: %+v %v", sw, err)
	}
	// All recorded: the group is deleted.
	if _, err := usagestore.New(db).InsertExceptions(ctx, outs[:1]); err != nil {
		t.Fatal(err)
	}
	sw, err = st.SweepCorrelation(ctx, rule, emitted.Add(40*time.Minute), 10*time.Minute, 100, decide)
	if err != nil || len(sw.Resent) != 0 || sw.Cleaned != 1 {
		t.Fatalf("recorded: %+v %v", sw, err)
	}
	if gs, err := st.CorrelationGroups(ctx, rule, client); err != nil || len(gs) != 0 {
		t.Fatalf("groups left: %+v %v", gs, err)
	}
	// A replay of a record whose group is gone finds its outcome.
	if res = add(t0.Add(time.Hour), corrPart(client, file, 2, "c1", "START")); res.Replayed != 1 || res.Held != 0 {
		t.Fatalf("replay after clean-up: %+v", res)
	}
	if gs, _ := st.CorrelationGroups(ctx, rule, client); len(gs) != 0 {
		t.Fatalf("a replay opened a group: %+v", gs)
	}
}

func TestCorrelationTimeoutAndRules(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Store(t)
	st := rulestore.New(db)
	client := "corr-" + store.NewID()[24:]
	rule := "calls-" + client // sweeps are per rule: one per test
	file := store.NewID()
	t0 := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	var seen []int
	stop := hasStop(t, &seen)
	timeout := func(g *rules.CorrelationGroup) (rules.Outcome, error) {
		if o, _ := stop(g); o != rules.OutcomeOpen {
			return o, nil
		}
		return rules.OutcomeIncomplete, nil
	}
	// Two rules keep their own groups for one key and record.
	for _, rule := range []string{rule, rule + "-other"} {
		res, err := st.CorrelateParts(ctx, rule, []rules.CorrelationPart{corrPart(client, file, 2, "c9", "START")},
			30*time.Minute, t0, stop)
		if err != nil || res.Held != 1 {
			t.Fatalf("%s: %+v %v", rule, res, err)
		}
	}
	sw, err := st.SweepCorrelation(ctx, rule, t0.Add(29*time.Minute), time.Minute, 100, timeout)
	if err != nil || len(sw.TimedOut) != 0 {
		t.Fatalf("before the deadline: %+v %v", sw, err)
	}
	sw, err = st.SweepCorrelation(ctx, rule, t0.Add(30*time.Minute), time.Minute, 100, timeout)
	if err != nil || len(sw.TimedOut) != 1 || sw.TimedOut[0].Outcome != rules.OutcomeIncomplete ||
		len(sw.TimedOut[0].Parts) != 1 {
		t.Fatalf("at the deadline: %+v %v", sw, err)
	}
	// A record arriving after its group was emitted opens a new group.
	res, err := st.CorrelateParts(ctx, rule, []rules.CorrelationPart{corrPart(client, file, 7, "c9", "STOP")},
		30*time.Minute, t0.Add(31*time.Minute), stop)
	if err != nil || len(res.Emitted) != 1 || len(res.Emitted[0].Parts) != 1 || res.Emitted[0].Parts[0].Line != 7 {
		t.Fatalf("late record: %+v %v", res, err)
	}
	gs, err := st.CorrelationGroups(ctx, rule+"-other", client)
	if err != nil || len(gs) != 1 || !gs[0].EmittedAt.IsZero() || gs[0].Outcome != "" {
		t.Fatalf("the other rule's group: %+v %v", gs, err)
	}
}

// TestCorrelationConcurrentBatches adds records of the same keys from
// several goroutines, each batch naming the keys in another order: they
// queue on the groups' locks instead of deadlocking, and each key ends
// with one group holding every record.
func TestCorrelationConcurrentBatches(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Store(t)
	st := rulestore.New(db)
	client := "corr-" + store.NewID()[24:]
	rule := "calls-" + client // sweeps are per rule: one per test
	file := store.NewID()
	t0 := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	keep := func(*rules.CorrelationGroup) (rules.Outcome, error) { return rules.OutcomeOpen, nil }
	const workers, keys = 6, 5
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			var parts []rules.CorrelationPart
			for k := 0; k < keys; k++ {
				key := fmt.Sprintf("k%d", (k+w)%keys) // another order per worker
				if w%2 == 1 {
					key = fmt.Sprintf("k%d", (keys-1-k+w)%keys)
				}
				parts = append(parts, corrPart(client, file, int64(w*keys+k+2), key, "INTERMEDIATE"))
			}
			_, err := st.CorrelateParts(ctx, rule, parts, time.Hour, t0, keep)
			errs <- err
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	gs, err := st.CorrelationGroups(ctx, rule, client)
	if err != nil || len(gs) != keys {
		t.Fatalf("%d groups, want %d: %v", len(gs), keys, err)
	}
	for _, g := range gs {
		if len(g.Parts) != workers {
			t.Fatalf("group %s holds %d records, want %d", g.Key, len(g.Parts), workers)
		}
	}
}
