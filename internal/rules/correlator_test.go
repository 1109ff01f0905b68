package rules_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The telco rule of the docs, written as Go queries instead of Bloblang:
// a call is complete with a START and a STOP; the merged record takes the
// START's fields and the sum of the durations.
func hasStartAndStop(v any) (any, error) {
	var start, stop bool
	for _, r := range v.(map[string]any)["records"].([]any) {
		switch r.(map[string]any)["fields"].(map[string]any)["record_type"] {
		case "START":
			start = true
		case "STOP":
			stop = true
		}
	}
	return start && stop, nil
}

func mergeCall(v any) (any, error) {
	g := v.(map[string]any)
	recs := g["records"].([]any)
	out := map[string]any{}
	var durations []string
	for i, r := range recs {
		fields := r.(map[string]any)["fields"].(map[string]any)
		if i == 0 || fields["record_type"] == "START" {
			for k, x := range fields {
				out[k] = x
			}
		}
		durations = append(durations, fields["duration"].(string))
	}
	delete(out, "record_type")
	delete(out, "duration")
	sum, err := rules.SumDecimals(durations)
	if err != nil {
		return nil, err
	}
	out["quantity"], out["record_id"] = sum, "call-"+g["key"].(string)
	return out, nil
}

type corrFixture struct {
	t            *testing.T
	client, file string
	now          time.Time
	db           *rulestore.Store
}

func newCorrFixture(t *testing.T) *corrFixture {
	return &corrFixture{t: t, client: "corr-" + store.NewID()[24:], file: store.NewID(),
		now: time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC), db: rulestore.New(pgtest.Store(t))}
}

func (f *corrFixture) correlator(onTimeout string, st rules.CorrelationStore) *rules.Correlator {
	f.t.Helper()
	if st == nil {
		st = f.db
	}
	c, err := rules.NewCorrelator(rules.CorrelatorConfig{
		Rule:        "calls-" + f.client,
		Correlation: rules.Correlation{Window: 30 * time.Minute, OnTimeout: onTimeout, KeyName: "call_id"},
		ResendAfter: 10 * time.Minute, SweepEvery: 5 * time.Second,
		Complete: hasStartAndStop, Merge: mergeCall,
		Store: st, Refused: store.ServerError,
		Now: func() time.Time { return f.now },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *corrFixture) part(line int64, typ, dur string) rules.CorrelationPart {
	rec, _ := json.Marshal(map[string]any{"client": f.client, "file_id": f.file, "line": line,
		"fields": map[string]string{"call_id": "c1", "record_type": typ, "duration": dur, "account_id": "A1"}})
	return rules.CorrelationPart{Client: f.client, FileID: f.file, Line: line, Key: "c1", Record: rec,
		Meta: map[string]string{"vivace_key": "A1"}}
}

// body reads an emitted record's line and fields.
func body(t *testing.T, r rules.EmittedRecord) (int64, map[string]string) {
	t.Helper()
	var raw struct {
		Line   int64             `json:"line"`
		Fields map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("%s: %v", r.Body, err)
	}
	return raw.Line, raw.Fields
}

func TestCorrelatorAddEmitsCompleteGroups(t *testing.T) {
	ctx := context.Background()
	f := newCorrFixture(t)
	c := f.correlator(rules.TimeoutEmit, nil)
	res, err := c.Add(ctx, []rules.CorrelationPart{f.part(2, "START", "60"), f.part(3, "INTERMEDIATE", "60.5")})
	if err != nil || res.Held != 2 || len(res.Emitted) != 0 {
		t.Fatalf("first batch: %+v %v", res, err)
	}
	f.now = f.now.Add(time.Minute)
	res, err = c.Add(ctx, []rules.CorrelationPart{f.part(7, "STOP", "12"), f.part(2, "START", "60")})
	if err != nil || res.Held != 1 || res.Replayed != 1 || len(res.Emitted) != 1 {
		t.Fatalf("second batch: %+v %v", res, err)
	}
	e := res.Emitted[0]
	if e.Group.Outcome != rules.OutcomeComplete || len(e.Records) != 3 {
		t.Fatalf("emitted: %+v", e)
	}
	line, fields := body(t, e.Records[0])
	if e.Records[0].Err != nil || line != 2 || fields["quantity"] != "132.5" || fields["record_id"] != "call-c1" ||
		fields["record_type"] != "" || fields[rules.IncompleteField] != "" || e.Records[0].Meta["vivace_key"] != "A1" {
		t.Fatalf("merged record: line %d %v %+v", line, fields, e.Records[0])
	}
	for _, r := range e.Records[1:] {
		line, fields := body(t, r)
		if r.Err == nil || r.Err.Code != codes.Filtered || fields["record_type"] == "" ||
			r.Err.Message != fmt.Sprintf("correlated into %s line 2 (call_id=c1)", f.file) || r.Meta["vivace_key"] != "A1" {
			t.Fatalf("member line %d: %+v", line, r)
		}
	}
}

func TestCorrelatorSweep(t *testing.T) {
	ctx := context.Background()
	for _, onTimeout := range []string{rules.TimeoutEmit, rules.TimeoutFail} {
		t.Run(onTimeout, func(t *testing.T) {
			f := newCorrFixture(t)
			c := f.correlator(onTimeout, nil)
			// The first data batch starts the sweep clock; data batches
			// sweep at most every SweepEvery, ticks always.
			if sw, err := c.Sweep(ctx, false); err != nil || sw.Swept {
				t.Fatalf("first batch swept: %+v %v", sw, err)
			}
			if _, err := c.Add(ctx, []rules.CorrelationPart{f.part(2, "START", "60"), f.part(5, "INTERMEDIATE", "30")}); err != nil {
				t.Fatal(err)
			}
			f.now = f.now.Add(4 * time.Second)
			if sw, _ := c.Sweep(ctx, false); sw.Swept {
				t.Fatal("a data batch swept before sweep_interval")
			}
			f.now = f.now.Add(time.Second)
			if sw, err := c.Sweep(ctx, false); err != nil || !sw.Swept || len(sw.TimedOut) != 0 {
				t.Fatalf("data batch at sweep_interval, before the deadline: %+v %v", sw, err)
			}
			f.now = f.now.Add(30 * time.Minute)
			sw, err := c.Sweep(ctx, true)
			if err != nil || len(sw.TimedOut) != 1 || len(sw.TimedOut[0].Records) != 2 {
				t.Fatalf("tick after the deadline: %+v %v", sw, err)
			}
			recs := sw.TimedOut[0].Records
			switch onTimeout {
			case rules.TimeoutEmit:
				_, fields := body(t, recs[0])
				if sw.TimedOut[0].Group.Outcome != rules.OutcomeIncomplete || recs[0].Err != nil ||
					fields[rules.IncompleteField] != rules.IncompleteValue || fields["quantity"] != "90" || recs[1].Err.Code != codes.Filtered {
					t.Fatalf("timed out, emitted: %+v", sw.TimedOut[0])
				}
			case rules.TimeoutFail:
				for _, r := range recs {
					if r.Err == nil || r.Err.Code != codes.MediationFailed ||
						!strings.Contains(r.Err.Message, fmt.Sprintf("call_id=c1 timed out 30m0s after it opened, incomplete with 2 records (file %s line 2, 5)", f.file)) {
						t.Fatalf("timed out, failed: %+v", r)
					}
				}
			}
			// Nobody recorded the outcomes: after resend_after the group
			// leaves again, the same.
			f.now = f.now.Add(11 * time.Minute)
			again, err := c.Sweep(ctx, true)
			if err != nil || len(again.Resent) != 1 || fmt.Sprint(again.Resent[0].Records) != fmt.Sprint(recs) {
				t.Fatalf("resent: %+v %v", again, err)
			}
		})
	}
}

// refusing stands between a Correlator and its store: the first fails
// calls answer err instead of reaching the store.
type refusing struct {
	rules.CorrelationStore
	mu    sync.Mutex
	fails int
	calls int
	err   error
}

func (r *refusing) CorrelateParts(ctx context.Context, rule string, parts []rules.CorrelationPart, window time.Duration,
	now time.Time, decide rules.Decider) (rules.CorrelateResult, error) {
	r.mu.Lock()
	r.calls++
	fail := r.calls <= r.fails
	r.mu.Unlock()
	if fail {
		return rules.CorrelateResult{}, r.err
	}
	return r.CorrelationStore.CorrelateParts(ctx, rule, parts, window, now, decide)
}

func TestCorrelatorRetries(t *testing.T) {
	ctx := context.Background()
	refusal := func() error {
		// A real refusal: PostgreSQL's answer to a statement it rejects.
		_, err := pgtest.Store(t).Pool().Exec(ctx, "SELECT 1/0")
		if !store.ServerError(err) {
			t.Fatalf("not a server error: %v", err)
		}
		return err
	}()

	// Refused every time: the records fail after CorrelationAttempts.
	f := newCorrFixture(t)
	r := &refusing{CorrelationStore: f.db, fails: 1 << 30, err: refusal}
	if _, err := f.correlator(rules.TimeoutEmit, r).Add(ctx, []rules.CorrelationPart{f.part(2, "START", "1")}); err == nil ||
		!errors.Is(err, refusal) || r.calls != rules.CorrelationAttempts {
		t.Fatalf("refused: %v after %d calls", err, r.calls)
	}
	// Lost on the way (not the server's answer): waited out, however often.
	lost := errors.New("connection reset by peer")
	r = &refusing{CorrelationStore: f.db, fails: rules.CorrelationAttempts + 1, err: lost}
	res, err := f.correlator(rules.TimeoutEmit, r).Add(ctx, []rules.CorrelationPart{f.part(2, "START", "1")})
	if err != nil || res.Held != 1 || r.calls != rules.CorrelationAttempts+2 {
		t.Fatalf("lost connection: %+v %v after %d calls", res, err, r.calls)
	}
	// ...until ctx ends.
	r = &refusing{CorrelationStore: f.db, fails: 1 << 30, err: lost}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := f.correlator(rules.TimeoutEmit, r).Add(cctx, []rules.CorrelationPart{f.part(3, "START", "1")}); !errors.Is(err, lost) ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lost until ctx ends: %v", err)
	}
}

func TestCorrelatorConfig(t *testing.T) {
	_, err := rules.NewCorrelator(rules.CorrelatorConfig{Correlation: rules.Correlation{OnTimeout: "drop"}})
	for _, want := range []string{"name", "window", "on_timeout", "resend_after", "complete and merge", "store"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewCorrelator = %v, want a problem naming %s", err, want)
		}
	}
}

// A rule whose queries misbehave fails the group's records, naming why.
func TestCorrelatorRuleErrors(t *testing.T) {
	ctx := context.Background()
	f := newCorrFixture(t)
	c, err := rules.NewCorrelator(rules.CorrelatorConfig{
		Rule: "calls-" + f.client, Correlation: rules.Correlation{Window: time.Minute, OnTimeout: rules.TimeoutEmit, KeyName: "call_id"},
		ResendAfter: time.Minute, Store: f.db, Now: func() time.Time { return f.now },
		Complete: func(any) (any, error) { return true, nil },
		Merge:    func(any) (any, error) { return map[string]any{"quantity": 1.5}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Add(ctx, []rules.CorrelationPart{f.part(2, "START", "1"), f.part(3, "START", "1")})
	if err != nil || len(res.Emitted) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, r := range res.Emitted[0].Records {
		if r.Err == nil || r.Err.Code != codes.MediationFailed || !strings.Contains(r.Err.Message, "merge: field quantity: 1.5 is a floating-point number") {
			t.Fatalf("float merge: %+v", r)
		}
	}
}

func TestCorrelationKeyFrom(t *testing.T) {
	c := rules.Correlation{KeyName: "call_id"}
	for _, tc := range []struct {
		v    any
		qerr error
		want string
		err  string
	}{
		{"c1", nil, "c1", ""},
		{int64(42), nil, "42", ""},
		{json.Number("7"), nil, "7", ""},
		{"", nil, "", "call_id: the correlation key is missing or empty"},
		{nil, nil, "", "call_id: the correlation key is missing or empty"},
		{1.5, nil, "", "call_id: the correlation key is 1.5 is a floating-point number"},
		{nil, errors.New("boom"), "", "call_id: cannot read the correlation key: boom"},
	} {
		got, err := c.KeyFrom(tc.v, tc.qerr)
		ce, _ := codes.As(err)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("KeyFrom(%v) = %q, %v; want %q", tc.v, got, err, tc.want)
		case tc.err != "" && (ce == nil || ce.Code != codes.MediationFailed || ce.Field != "call_id" || !strings.Contains(ce.Message, tc.err)):
			t.Errorf("KeyFrom(%v, %v) = %v; want MEDIATION_FAILED on call_id: %s", tc.v, tc.qerr, err, tc.err)
		}
	}
}
