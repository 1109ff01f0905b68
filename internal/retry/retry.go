// Package retry is how every component of Vivace waits out a failure that
// may pass: a lost connection, a server that is restarting, a plugin that
// crashed. One Policy says how long to pause between attempts (growing
// from First to Max, with jitter so that many waiting components do not
// all come back at once), how long to go on at most, and which errors are
// final: work the other side refused (a database's answer to a statement)
// would be refused again, so it fails after Refusals attempts, while an
// error that leaves the outcome unknown is tried again until the work is
// done, ctx ends or MaxWait is spent.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults of a Policy's zero fields.
const (
	DefaultFirst     = 100 * time.Millisecond
	DefaultMax       = 10 * time.Second
	DefaultWarnEvery = 5 * time.Second
	// DefaultJitter is the jitter the components use: each pause is drawn
	// from [80%, 100%] of its step.
	DefaultJitter = 0.2
)

// Policy is a retry policy. The zero Policy retries every error until ctx
// ends, pausing 100ms, 200ms, ... up to 10s, without jitter.
type Policy struct {
	// First is the first pause (DefaultFirst when 0); each further pause
	// doubles, up to Max (DefaultMax when 0).
	First, Max time.Duration
	// Jitter, in [0, 1], is the share of each pause drawn at random: a
	// pause of step d lasts between d*(1-Jitter) and d.
	Jitter float64
	// MaxWait, when positive, bounds the time spent waiting: an attempt
	// whose pause would end later than MaxWait after the first attempt
	// is not made, and the last error is returned naming the bound.
	MaxWait time.Duration
	// Attempts, when positive, is the most attempts made whatever the
	// error.
	Attempts int
	// Refused reports whether an error is a refusal: the other side got
	// the work and said no, so trying again would be refused again (nil:
	// no error is). A refused attempt counts towards Refusals.
	Refused func(error) bool
	// Refusals is how many refused attempts end the retries (1 when 0):
	// a refusal that may come from a race lost with another writer
	// deserves a few.
	Refusals int
	// Warnf, when set, hears about the waits, at most once per WarnEvery
	// (DefaultWarnEvery when 0).
	Warnf     func(format string, args ...any)
	WarnEvery time.Duration

	// random draws the jitter in [0, 1) (rand.Float64 when nil); tests
	// fix it.
	random func() float64
}

// Validate reports settings that cannot work.
func (p Policy) Validate() error {
	var errs []error
	if p.First < 0 || p.Max < 0 || p.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("retry pauses: first %s, max %s, max wait %s: none may be negative", p.First, p.Max, p.MaxWait))
	}
	if p.First > 0 && p.Max > 0 && p.Max < p.First {
		errs = append(errs, fmt.Errorf("retry pauses: max %s is shorter than first %s", p.Max, p.First))
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		errs = append(errs, fmt.Errorf("retry jitter %v: must be between 0 and 1", p.Jitter))
	}
	if p.Attempts < 0 || p.Refusals < 0 {
		errs = append(errs, fmt.Errorf("retry attempts %d, refusals %d: neither may be negative", p.Attempts, p.Refusals))
	}
	return errors.Join(errs...)
}

// ErrExhausted is what errors.Is finds in the error of retries that
// Attempts or MaxWait ended (an *ExhaustedError).
var ErrExhausted = errors.New("retries exhausted")

// ExhaustedError is the last error of retries that Attempts or MaxWait
// ended.
type ExhaustedError struct {
	Err      error
	Attempts int
	MaxWait  time.Duration // set when MaxWait ended them
}

func (e *ExhaustedError) Error() string {
	if e.MaxWait > 0 {
		return fmt.Sprintf("%v (no answer for %v)", e.Err, e.MaxWait)
	}
	return fmt.Sprintf("%v (after %d attempts)", e.Err, e.Attempts)
}

func (e *ExhaustedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrExhausted) true.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Do runs fn until it succeeds and returns nil, or returns the error that
// ended the retries: a refusal (after Refusals of them), the last error
// once Attempts or MaxWait are spent (an *ExhaustedError), or the last
// error joined with ctx's once ctx ends.
func (p Policy) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	b := p.Backoff()
	start := time.Now()
	refused, attempts := 0, 0
	var warned time.Time
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		attempts++
		if p.Refused != nil && p.Refused(err) {
			if refused++; refused >= max(p.Refusals, 1) {
				return err
			}
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if p.Attempts > 0 && attempts >= p.Attempts {
			return &ExhaustedError{Err: err, Attempts: attempts}
		}
		wait := b.Next()
		if p.MaxWait > 0 && time.Since(start)+wait > p.MaxWait {
			return &ExhaustedError{Err: err, Attempts: attempts, MaxWait: p.MaxWait}
		}
		if p.Warnf != nil && time.Since(warned) >= p.warnEvery() {
			p.Warnf("%v; trying again in %v", err, wait.Round(time.Millisecond))
			warned = time.Now()
		}
		if Sleep(ctx, wait) != nil {
			return errors.Join(err, ctx.Err())
		}
	}
}

// Value runs fn like Do and returns its value.
func Value[T any](ctx context.Context, p Policy, fn func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := p.Do(ctx, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

func (p Policy) warnEvery() time.Duration {
	if p.WarnEvery > 0 {
		return p.WarnEvery
	}
	return DefaultWarnEvery
}

// Backoff returns the sequence of p's pauses, for loops that decide
// themselves when to try again (a stream that reconnects, a listener).
func (p Policy) Backoff() *Backoff {
	b := &Backoff{p: p}
	b.Reset()
	return b
}

// Backoff is a sequence of growing pauses. It is not safe for concurrent
// use.
type Backoff struct {
	p    Policy
	step time.Duration
}

// Next returns the next pause and grows the one after it.
func (b *Backoff) Next() time.Duration {
	d := b.step
	b.step = min(2*b.step, b.max())
	if j := b.p.Jitter; j > 0 {
		r := b.p.random
		if r == nil {
			r = rand.Float64
		}
		d -= time.Duration(float64(d) * j * r())
	}
	return d
}

// Reset starts the sequence again from First, as after a success.
func (b *Backoff) Reset() {
	b.step = b.p.First
	if b.step <= 0 {
		b.step = DefaultFirst
	}
	b.step = min(b.step, b.max())
}

// Set makes d the next pause (a server's own reconnection delay); the
// ones after it grow from d.
func (b *Backoff) Set(d time.Duration) {
	if d > 0 {
		b.step = min(d, b.max())
	}
}

func (b *Backoff) max() time.Duration {
	if b.p.Max > 0 {
		return b.p.Max
	}
	return max(DefaultMax, b.p.First)
}

// Wait pauses for the next pause, or until ctx ends (then it returns
// ctx's error).
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep pauses for d or until ctx ends, whichever comes first, and
// returns ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
