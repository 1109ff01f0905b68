package rules

import (
	"time"

	"vivace.dev/vivace/internal/retry"
)

// storeRetry is how a rule waits out its store: work the store refused
// (see the configs' Refused) fails after refusals attempts, since nothing
// of it was committed; any other error (the connection dropped, the
// server is down) leaves that unknown, so the work is tried again, with a
// growing pause from first up to 5s, until it is done, ctx ends or, when
// maxWait is positive, maxWait is spent (vivace test sets one, so that a
// database that cannot be reached fails the test with the reason instead
// of hanging).
func storeRetry(refused func(error) bool, refusals int, first, maxWait time.Duration) retry.Policy {
	return retry.Policy{First: first, Max: 5 * time.Second, Jitter: retry.DefaultJitter, MaxWait: maxWait,
		Refused: refused, Refusals: refusals}
}
