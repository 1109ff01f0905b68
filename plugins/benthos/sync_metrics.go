package benthos

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The MUR sync's metrics that are not Benthos counters: a histogram of
// the core's call latency, the retries of calls, and the age of the
// oldest MUR not yet synced. They go straight into Registry; the counts
// of batches and records are the vivace_core_sync processor's own
// (Benthos) counters.
var (
	syncCallSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vivace_sync_call_seconds",
		Help:    "Time of one try of a bulk_record_usage_m call to the core, by client and outcome (accepted, refused, unavailable, bad_answer, invalid, canceled).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"client", "outcome"})
	syncRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vivace_sync_call_retries_total",
		Help: "Tries of bulk calls to the core that failed and were tried again (timeouts, lost connections, 5xx), by client.",
	}, []string{"client"})
	syncOldestUnsynced = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vivace_sync_oldest_unsynced_seconds",
		Help: "Age of the oldest MUR of the client not synced to the core yet (since it was rated); 0 when everything is synced.",
	}, []string{"client"})
)

func init() {
	Registry.MustRegister(syncCallSeconds, syncRetries, syncOldestUnsynced)
}

// SyncBacklog sets the age of a client's oldest unsynced MUR, for the
// process that runs the sync cycles.
func SyncBacklog(client string, seconds float64) {
	syncOldestUnsynced.WithLabelValues(client).Set(seconds)
}

// ForgetSyncBacklog removes a client's backlog gauge.
func ForgetSyncBacklog(client string) {
	syncOldestUnsynced.DeleteLabelValues(client)
}
