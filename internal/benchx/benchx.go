// Package benchx holds helpers shared by benchmarks in several packages.
package benchx

import (
	"sync"
	"sync/atomic"
	"testing"
)

// InFlight runs call b.N times with up to n calls at once (one after the
// other when n is 1), failing the benchmark on the first error.
func InFlight(b *testing.B, n int, call func() error) {
	b.Helper()
	if n <= 1 {
		for b.Loop() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
