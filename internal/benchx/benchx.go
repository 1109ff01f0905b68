// Package benchx holds helpers shared by benchmarks in several packages.
package benchx

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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

// ProcessCPU is the user and system CPU time this process has used.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
