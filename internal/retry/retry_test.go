package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	errLost    = errors.New("connection lost")
	errRefused = errors.New("refused")
)

func refused(err error) bool { return errors.Is(err, errRefused) }

func TestBackoffSequence(t *testing.T) {
	cases := []struct {
		name   string
		p      Policy
		random float64
		want   []time.Duration
	}{
		{"defaults", Policy{}, 0, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}},
		{"capped", Policy{First: time.Second, Max: 3 * time.Second}, 0,
			[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{"jitter takes up to its share", Policy{First: time.Second, Max: 4 * time.Second, Jitter: 0.5}, 1,
			[]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}},
		{"jitter half drawn", Policy{First: time.Second, Jitter: 0.2}, 0.5,
			[]time.Duration{900 * time.Millisecond, 1800 * time.Millisecond}},
		{"first above the default max", Policy{First: 20 * time.Second}, 0,
			[]time.Duration{20 * time.Second, 20 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.random = func() float64 { return c.random }
			b := c.p.Backoff()
			for i, w := range c.want {
				if got := b.Next(); got != w {
					t.Fatalf("pause %d = %v, want %v", i, got, w)
				}
			}
			b.Reset()
			if got := b.Next(); got != c.want[0] {
				t.Errorf("after Reset the pause is %v, want the first again, %v", got, c.want[0])
			}
		})
	}
}

func TestBackoffSet(t *testing.T) {
	b := Policy{First: time.Second, Max: 10 * time.Second}.Backoff()
	b.Set(3 * time.Second)
	if got := b.Next(); got != 3*time.Second {
		t.Errorf("after Set(3s) the pause is %v", got)
	}
	if got := b.Next(); got != 6*time.Second {
		t.Errorf("the pause after a set one is %v, want it doubled to 6s", got)
	}
	b.Set(time.Minute)
	if got := b.Next(); got != 10*time.Second {
		t.Errorf("Set above Max gave %v, want Max", got)
	}
}

// fails returns a function that fails with errs in turn, then succeeds.
func fails(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func TestDo(t *testing.T) {
	quick := Policy{First: time.Microsecond, Max: time.Microsecond, Refused: refused}
	cases := []struct {
		name      string
		p         Policy
		errs      []error
		wantCalls int
		wantErr   error // nil: success
	}{
		{"success at once", quick, nil, 1, nil},
		{"lost connections are waited out", quick, []error{errLost, errLost, errLost, errLost}, 5, nil},
		{"a refusal fails at once", quick, []error{errRefused}, 1, errRefused},
		{"refusals get their attempts", Policy{First: time.Microsecond, Refused: refused, Refusals: 3},
			[]error{errRefused, errLost, errRefused, errRefused}, 4, errRefused},
		{"refusals under their count then success", Policy{First: time.Microsecond, Refused: refused, Refusals: 3},
			[]error{errRefused, errRefused}, 3, nil},
		{"attempts bound every error", Policy{First: time.Microsecond, Attempts: 3},
			[]error{errLost, errLost, errLost, errLost}, 3, ErrExhausted},
		{"max wait bounds the waiting", Policy{First: time.Hour, MaxWait: time.Minute},
			[]error{errLost}, 1, ErrExhausted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := c.p.Do(context.Background(), fails(&calls, c.errs...))
			if calls != c.wantCalls {
				t.Errorf("%d calls, want %d", calls, c.wantCalls)
			}
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("error %v, want success", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("error %v, want %v", err, c.wantErr)
			}
			if c.wantErr == ErrExhausted && !errors.Is(err, c.errs[len(c.errs)-1]) {
				t.Errorf("exhausted error %v does not wrap the last failure", err)
			}
		})
	}
}

func TestDoEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Policy{First: time.Hour}.Do(ctx, func(context.Context) error {
		calls++
		if calls == 1 {
			go cancel() // ends the hour-long pause
		}
		return errLost
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errLost) {
		t.Errorf("error %v, want the last failure joined with the context's end", err)
	}
	if calls != 1 {
		t.Errorf("%d calls, want 1", calls)
	}
}

func TestDoWarns(t *testing.T) {
	var warnings []string
	p := Policy{First: time.Microsecond, WarnEvery: time.Hour,
		Warnf: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }}
	calls := 0
	if err := p.Do(context.Background(), fails(&calls, errLost, errLost, errLost)); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "connection lost; trying again in") {
		t.Errorf("warnings %q, want one naming the error and the pause", warnings)
	}
}

func TestValue(t *testing.T) {
	calls := 0
	v, err := Value(context.Background(), Policy{First: time.Microsecond}, func(ctx context.Context) (int, error) {
		if err := fails(&calls, errLost)(ctx); err != nil {
			return 0, err
		}
		return 42, nil
	})
	if err != nil || v != 42 {
		t.Errorf("Value = %d, %v; want 42 after one retry", v, err)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Policy{{First: -1}, {First: 2 * time.Second, Max: time.Second}, {Jitter: 1.5}, {Attempts: -1}} {
		if p.Validate() == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	if err := (Policy{First: time.Second, Max: time.Minute, Jitter: DefaultJitter}).Validate(); err != nil {
		t.Errorf("a good policy: %v", err)
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on an ended context = %v", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v", err)
	}
}

func ExamplePolicy_Do() {
	lost := errors.New("connection reset")
	p := Policy{First: time.Millisecond, Max: 10 * time.Millisecond, Jitter: DefaultJitter,
		Refused: func(err error) bool { return !errors.Is(err, lost) }}
	tries := 0
	err := p.Do(context.Background(), func(context.Context) error {
		if tries++; tries < 3 {
			return lost // waited out
		}
		return nil
	})
	fmt.Println(tries, err)
	// Output: 3 <nil>
}
