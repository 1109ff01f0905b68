package rules

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// retry is how a rule waits out its store: work the store refused (see
// Refused) fails after refusals attempts, since nothing of it was
// committed; any other error (the connection dropped, the server is down)
// leaves that unknown, so the work is tried again, with a growing pause,
// until it is done or ctx ends.
type retry struct {
	refused  func(error) bool // nil: no error is a refusal
	refusals int              // refused attempts before giving up (at least 1)
	first    time.Duration    // the first pause; it doubles up to most
	most     time.Duration
	warnf    func(format string, args ...any) // nil: quiet
	// maxWait, when positive, bounds how long errors other than refusals
	// are waited out (vivace test sets one, so that a database that cannot
	// be reached fails the test with the reason instead of hanging).
	maxWait time.Duration
}

// warnEvery spaces out the warnings of one wait.
const warnEvery = 5 * time.Second

func (r retry) do(ctx context.Context, fn func() error) error {
	wait := r.first
	refused := 0
	start := time.Now()
	var warned time.Time
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if r.refused != nil && r.refused(err) {
			if refused++; refused >= max(r.refusals, 1) {
				return err
			}
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if r.maxWait > 0 && time.Since(start)+wait > r.maxWait {
			return fmt.Errorf("%w (no answer for %v)", err, r.maxWait)
		}
		if r.warnf != nil && time.Since(warned) >= warnEvery {
			r.warnf("%v; trying again in %v", err, wait)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, r.most)
	}
}
