package fakecore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Faults are the failures the fake core puts on purpose into its answers
// to bulk calls. The zero value is a healthy core. Each kind fires on the
// next Next calls and then on a Fraction (0 to 1) of the calls after; a
// call is checked against them in this order:
//
//  1. HTTPError: answers the HTTP status (default 503), nothing stored;
//  2. Hang: no answer at all (the call is held until the caller gives up
//     or the server stops), nothing stored;
//  3. Refuse: answers the whole-call error Code (default 1001), nothing
//     stored;
//  4. the call is processed: authentication, validation, RejectAccounts,
//     storing;
//  5. Drop: the connection is closed without an answer, after storing;
//  6. Slow: the answer waits Delay, after storing.
type Faults struct {
	// RejectAccounts refuses every record of these accounts (by the
	// identifier the record is sent with) with the code given (default
	// 1009, account does not exist).
	RejectAccounts map[string]Rejection `json:"reject_accounts,omitempty"`
	HTTPError      HTTPErrorFault       `json:"http_error"`
	Hang           Trigger              `json:"hang"`
	Refuse         RefuseFault          `json:"refuse"`
	Drop           Trigger              `json:"drop"`
	Slow           SlowFault            `json:"slow"`
}

// Trigger says which calls a fault hits: the next Next calls, then each
// later call with probability Fraction.
type Trigger struct {
	Next     int     `json:"next,omitempty"`
	Fraction float64 `json:"fraction,omitempty"`
}

// Rejection is the per-record refusal of an account.
type Rejection struct {
	Code int64  `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

// HTTPErrorFault answers an HTTP error status instead of the call.
type HTTPErrorFault struct {
	Trigger
	Status int `json:"status,omitempty"`
}

// RefuseFault answers a whole-call error code.
type RefuseFault struct {
	Trigger
	Code int64  `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

// SlowFault delays the answer.
type SlowFault struct {
	Trigger
	Delay Duration `json:"delay,omitempty"`
}

// LogValue logs the faults as their JSON.
func (f Faults) LogValue() slog.Value {
	b, _ := json.Marshal(f)
	return slog.StringValue(string(b))
}

// Duration reads and writes a time.Duration as text ("1.5s", "200ms").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1.5s"-style text.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is text such as \"2s\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseFaults reads faults from JSON, refusing unknown keys (naming them)
// and values out of range. Keys absent from data keep their value in base,
// so that it can patch the current faults.
func ParseFaults(base Faults, data []byte) (Faults, error) {
	f := base.clone()
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return base, fmt.Errorf("faults: %w", err)
	}
	if d.More() {
		return base, errors.New("faults: more than one JSON value")
	}
	if err := f.Validate(); err != nil {
		return base, err
	}
	return f, nil
}

// Validate checks the ranges: counts ≥ 0, fractions in [0, 1], an HTTP
// status of 400 to 599, a non-zero refusal code, a delay ≥ 0.
func (f Faults) Validate() error {
	var errs []error
	for name, t := range map[string]Trigger{"http_error": f.HTTPError.Trigger, "hang": f.Hang, "refuse": f.Refuse.Trigger, "drop": f.Drop, "slow": f.Slow.Trigger} {
		if t.Next < 0 {
			errs = append(errs, fmt.Errorf("faults: %s.next %d: must not be negative", name, t.Next))
		}
		if !(t.Fraction >= 0 && t.Fraction <= 1) {
			errs = append(errs, fmt.Errorf("faults: %s.fraction %v: must be between 0 and 1", name, t.Fraction))
		}
	}
	if s := f.HTTPError.Status; s != 0 && (s < 400 || s > 599) {
		errs = append(errs, fmt.Errorf("faults: http_error.status %d: want 400 to 599", s))
	}
	if f.Refuse.Code < 0 {
		errs = append(errs, fmt.Errorf("faults: refuse.code %d: must be positive", f.Refuse.Code))
	}
	if f.Slow.Delay < 0 {
		errs = append(errs, fmt.Errorf("faults: slow.delay %s: must not be negative", time.Duration(f.Slow.Delay)))
	}
	for acct, r := range f.RejectAccounts {
		if r.Code < 0 {
			errs = append(errs, fmt.Errorf("faults: reject_accounts[%q].code %d: must be positive", acct, r.Code))
		}
	}
	return errors.Join(errs...)
}

func (f Faults) clone() Faults {
	c := f
	if f.RejectAccounts != nil {
		c.RejectAccounts = make(map[string]Rejection, len(f.RejectAccounts))
		for k, v := range f.RejectAccounts {
			c.RejectAccounts[k] = v
		}
	}
	return c
}

// fire reports whether a trigger hits this call, counting down Next.
func fire(t *Trigger, rng *rand.Rand) bool {
	if t.Next > 0 {
		t.Next--
		return true
	}
	return t.Fraction > 0 && rng.Float64() < t.Fraction
}

// plan is what the faults do to one call, decided when it arrives.
type plan struct {
	httpStatus int
	hang       bool
	refuse     *coreError
	drop       bool
	delay      time.Duration
	reject     map[string]Rejection
}

func (f *Faults) plan(rng *rand.Rand) plan {
	var p plan
	if fire(&f.HTTPError.Trigger, rng) {
		p.httpStatus = f.HTTPError.Status
		if p.httpStatus == 0 {
			p.httpStatus = 503
		}
		return p
	}
	if fire(&f.Hang, rng) {
		p.hang = true
		return p
	}
	if fire(&f.Refuse.Trigger, rng) {
		code := f.Refuse.Code
		if code == 0 {
			code = CodeUnexpected
		}
		p.refuse = &coreError{code: code, msg: f.Refuse.Msg}
		if p.refuse.msg == "" {
			p.refuse.msg = meanings[code]
		}
		return p
	}
	p.drop = fire(&f.Drop, rng)
	if fire(&f.Slow.Trigger, rng) {
		p.delay = time.Duration(f.Slow.Delay)
	}
	p.reject = f.RejectAccounts
	return p
}

func (r Rejection) refusal() *coreError {
	code := r.Code
	if code == 0 {
		code = CodeAccountNotFound
	}
	msg := r.Msg
	if msg == "" {
		msg = meanings[code]
	}
	return &coreError{code: code, msg: msg}
}
