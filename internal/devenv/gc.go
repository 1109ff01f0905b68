package devenv

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target (GOGC) that vivace dev runs
// with when the GOGC environment variable does not choose one. The
// pipelines allocate briefly for every record; collecting at twice the
// live heap instead of at once its size takes about a tenth less CPU per
// record in the stages, for a larger heap (docs/benchmarks.md).
const GCPercent = 200

// TuneGC sets the garbage collector's target to GCPercent unless GOGC is
// set, and returns a function that puts back the previous target.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(GCPercent)
	return func() { debug.SetGCPercent(prev) }
}
