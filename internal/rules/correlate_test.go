package rules

import (
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

func TestCorrelationValidate(t *testing.T) {
	err := Correlation{OnTimeout: "drop"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "window") || !strings.Contains(err.Error(), "on_timeout") {
		t.Fatalf("Validate = %v, want both problems", err)
	}
	if err := (Correlation{Window: time.Minute, OnTimeout: TimeoutEmit}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCorrelationDecide(t *testing.T) {
	open := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	emit := Correlation{Window: 30 * time.Minute, OnTimeout: TimeoutEmit}
	fail := Correlation{Window: 30 * time.Minute, OnTimeout: TimeoutFail}
	deadline := emit.Deadline(open)
	for _, tc := range []struct {
		name     string
		c        Correlation
		complete bool
		now      time.Time
		want     Outcome
	}{
		{"complete within the window", emit, true, open.Add(time.Minute), OutcomeComplete},
		{"complete after the window still merges whole", fail, true, open.Add(time.Hour), OutcomeComplete},
		{"incomplete within the window waits", emit, false, deadline.Add(-time.Nanosecond), OutcomeOpen},
		{"incomplete at the deadline, emit", emit, false, deadline, OutcomeIncomplete},
		{"incomplete after the deadline, fail", fail, false, deadline.Add(time.Second), OutcomeFailed},
	} {
		if got := tc.c.Decide(tc.complete, deadline, tc.now); got != tc.want {
			t.Errorf("%s: Decide = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func cdr(line int64, typ, dur string) usage.Raw {
	return usage.Raw{Source: usage.Source{Client: "telco", FileID: "f1", Line: line},
		Fields: map[string]string{"call_id": "c1", "record_type": typ, "duration": dur}}
}

func TestCorrelationEmit(t *testing.T) {
	c := Correlation{Window: 30 * time.Minute, OnTimeout: TimeoutEmit, KeyName: "call_id"}
	g := Group{Key: "c1", Members: []usage.Raw{cdr(3, "START", "60"), cdr(5, "INTERMEDIATE", "60"), cdr(9, "STOP", "12")}}
	merged := map[string]string{"record_id": "c1", "quantity": "132"}

	e := c.Emit(g, OutcomeComplete, merged, nil)
	if e.Merged == nil || e.Merged.Line != 3 || e.Merged.FileID != "f1" || e.Merged.Fields["quantity"] != "132" ||
		e.Merged.Fields[IncompleteField] != "" || len(e.Failed) != 0 {
		t.Fatalf("complete: %+v", e)
	}
	if len(e.Filtered) != 2 || e.Filtered[0] != nil {
		t.Fatalf("filtered = %v, want members 1 and 2", e.Filtered)
	}
	if f := e.Filtered[2]; f.Code != codes.Filtered || f.Message != "correlated into f1 line 3 (call_id=c1)" {
		t.Fatalf("filtered reason = %+v", f)
	}
	merged["quantity"] = "changed"
	if e.Merged.Fields["quantity"] != "132" {
		t.Fatal("the merged record shares the merge's map")
	}

	e = c.Emit(g, OutcomeIncomplete, merged, nil)
	if e.Merged.Fields[IncompleteField] != IncompleteValue || len(e.Filtered) != 2 {
		t.Fatalf("incomplete: %+v", e)
	}

	c.OnTimeout = TimeoutFail
	e = c.Emit(Group{Key: "c1", Members: g.Members[:2]}, OutcomeFailed, nil, nil)
	if e.Merged != nil || len(e.Failed) != 2 || len(e.Filtered) != 0 {
		t.Fatalf("failed: %+v", e)
	}
	msg := e.Failed[1].Message
	if e.Failed[1].Code != codes.MediationFailed || !strings.Contains(msg, "call_id=c1 timed out 30m0s") ||
		!strings.Contains(msg, "2 records (file f1 line 3, 5)") {
		t.Fatalf("timeout message = %q", msg)
	}

	e = c.Emit(g, OutcomeComplete, nil, errStr("merge: no STOP"))
	if e.Merged != nil || len(e.Failed) != 3 || e.Failed[0].Message != "correlation group call_id=c1: merge: no STOP" {
		t.Fatalf("merge error: %+v", e)
	}
}

type errStr string

func (e errStr) Error() string { return string(e) }

func TestSumDecimals(t *testing.T) {
	got, err := SumDecimals([]string{"0.1", "0.2", "", " 60 ", "1e2"})
	if err != nil || got != "160.3" {
		t.Fatalf("SumDecimals = %q, %v", got, err)
	}
	if got, err := SumDecimals(nil); err != nil || got != "0" {
		t.Fatalf("empty = %q, %v", got, err)
	}
	if _, err := SumDecimals([]string{"1", "NaN"}); err == nil || !strings.Contains(err.Error(), "item 1") {
		t.Fatalf("NaN: %v", err)
	}
}
