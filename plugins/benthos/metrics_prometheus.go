package benthos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// Registry is the Prometheus registry every stream of the process reports
// into; `vivace dev` serves it on /metrics next to its own metrics.
var Registry = prometheus.NewRegistry()

func prometheusSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Summary("Exposes the stream's metrics to Prometheus.").
		Description(`
All streams of one process share one registry, each metric labelled with its `+"`stream`"+`.
Under `+"`vivace dev`"+` and `+"`vivace serve`"+` the registry is served on `+"`/metrics`"+`; a stream run on its
own (`+"`vivace run`"+`) serves it when `+"`listen_address`"+` is set. Counter names end in `+"`_total`"+`; timings
are histograms in seconds, so that they add up across processes.`).
		Field(service.NewStringField("stream").Description("Value of the `stream` label.").Default("")).
		Field(service.NewStringField("listen_address").
			Description("When set, serve `/metrics` on this address (for a stream run on its own).").
			Default("")).
		Example("A stream of its own", "", `
metrics:
  vivace_prometheus:
    stream: rate
    listen_address: 0.0.0.0:9464
`)
}

func init() {
	service.MustRegisterMetricsExporter("vivace_prometheus", prometheusSpec(),
		func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
			stream, err := conf.FieldString("stream")
			if err != nil {
				return nil, err
			}
			addr, err := conf.FieldString("listen_address")
			if err != nil {
				return nil, err
			}
			e := &promExporter{stream: stream}
			if addr != "" {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return nil, err
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{}))
				e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() {
					if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						log.Errorf("metrics server: %v", err)
					}
				}()
			}
			return e, nil
		})
}

// vecs keeps one collector per metric name across every stream of the
// process: registering the same name twice is an error in Prometheus.
var vecs struct {
	sync.Mutex
	counters map[string]*prometheus.CounterVec
	gauges   map[string]*prometheus.GaugeVec
	timers   map[string]*prometheus.HistogramVec
}

func metricName(name string) string {
	r := strings.NewReplacer(".", "_", "-", "_", " ", "_")
	return r.Replace(name)
}

func vecKey(name string, labels []string) string { return name + "|" + strings.Join(labels, ",") }

type promExporter struct {
	stream string
	srv    *http.Server
}

func (e *promExporter) labels(keys []string) []string {
	return append([]string{"stream"}, keys...)
}

func (e *promExporter) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	name = metricName(name)
	if !strings.HasSuffix(name, "_total") {
		name += "_total" // Prometheus' naming of counters
	}
	keys := e.labels(labelKeys)
	vecs.Lock()
	if vecs.counters == nil {
		vecs.counters = map[string]*prometheus.CounterVec{}
	}
	k := vecKey(name, keys)
	v, ok := vecs.counters[k]
	if !ok {
		v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help(name, "counter")}, keys)
		if err := Registry.Register(v); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				v = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
		vecs.counters[k] = v
	}
	vecs.Unlock()
	return func(values ...string) service.MetricsExporterCounter {
		return promCounter{v.WithLabelValues(append([]string{e.stream}, values...)...)}
	}
}

func (e *promExporter) NewTimerCtor(name string, labelKeys ...string) service.MetricsExporterTimerCtor {
	name = metricName(strings.TrimSuffix(name, "_ns")) + "_seconds"
	keys := e.labels(labelKeys)
	vecs.Lock()
	if vecs.timers == nil {
		vecs.timers = map[string]*prometheus.HistogramVec{}
	}
	k := vecKey(name, keys)
	v, ok := vecs.timers[k]
	if !ok {
		// Histograms, not summaries: they add up across the processes of
		// a role (histogram_quantile over sum by (le)).
		v = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help(name, "histogram"), Buckets: latencyBuckets}, keys)
		if err := Registry.Register(v); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				v = are.ExistingCollector.(*prometheus.HistogramVec)
			}
		}
		vecs.timers[k] = v
	}
	vecs.Unlock()
	return func(values ...string) service.MetricsExporterTimer {
		return promTimer{v.WithLabelValues(append([]string{e.stream}, values...)...)}
	}
}

func (e *promExporter) NewGaugeCtor(name string, labelKeys ...string) service.MetricsExporterGaugeCtor {
	name = metricName(name)
	keys := e.labels(labelKeys)
	vecs.Lock()
	if vecs.gauges == nil {
		vecs.gauges = map[string]*prometheus.GaugeVec{}
	}
	k := vecKey(name, keys)
	v, ok := vecs.gauges[k]
	if !ok {
		v = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help(name, "gauge")}, keys)
		if err := Registry.Register(v); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				v = are.ExistingCollector.(*prometheus.GaugeVec)
			}
		}
		vecs.gauges[k] = v
	}
	vecs.Unlock()
	return func(values ...string) service.MetricsExporterGauge {
		return promGauge{v.WithLabelValues(append([]string{e.stream}, values...)...)}
	}
}

func (e *promExporter) Close(ctx context.Context) error {
	if e.srv != nil {
		return e.srv.Shutdown(ctx)
	}
	return nil
}

type promCounter struct{ c prometheus.Counter }

func (c promCounter) Incr(n int64) { c.c.Add(float64(n)) }

type promTimer struct{ o prometheus.Observer }

func (t promTimer) Timing(ns int64) { t.o.Observe(float64(ns) / 1e9) }

type promGauge struct{ g prometheus.Gauge }

func (g promGauge) Set(v int64) { g.g.Set(float64(v)) }
