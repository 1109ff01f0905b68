package benthos

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Stage metrics that are not Benthos counters: histograms of batch sizes
// and of client plugin calls. They go straight into Registry, labelled by
// what identifies them across streams (the consumer group, the client).
var (
	batchRecords = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vivace_batch_records",
		Help:    "Records per batch the kafka input handed out, by consumer group.",
		Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000},
	}, []string{"group"})
	pluginCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vivace_plugin_calls_total",
		Help: "Calls to client mediation plugins (one per batch of a client), by client and outcome (ok, error).",
	}, []string{"client", "outcome"})
	pluginCallSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vivace_plugin_call_seconds",
		Help:    "Time of one call to a client's mediation plugin, retries included, by client.",
		Buckets: latencyBuckets,
	}, []string{"client"})
)

func init() {
	Registry.MustRegister(batchRecords, pluginCalls, pluginCallSeconds)
}
