package benthos

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// knownMetrics are the names the streams can report: those with a help
// text here and those registered directly.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for n := range metricHelp {
		known[n] = true
	}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range []prometheus.Collector{batchRecords, pluginCalls, pluginCallSeconds, syncCallSeconds, syncRetries, syncOldestUnsynced} {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			known[m[1]] = true
		}
	}
	return known
}

// TestDashboardUsesKnownMetrics: every metric the Grafana dashboard of the
// chart queries is one Vivace reports, so a renamed metric cannot leave a
// panel empty.
func TestDashboardUsesKnownMetrics(t *testing.T) {
	known := knownMetrics(t)
	files, err := filepath.Glob("../../charts/vivace/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	ident := regexp.MustCompile(`\b(?:input|output|processor|batch|vivace)_[a-z0-9_]+`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		queried := 0
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				for _, name := range ident.FindAllString(tg.Expr, -1) {
					base := name
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						base = strings.TrimSuffix(base, s)
					}
					if !known[base] {
						t.Errorf("%s, panel %q: %s is not a metric Vivace reports", filepath.Base(f), p.Title, name)
					}
					queried++
				}
			}
		}
		if queried == 0 {
			t.Errorf("%s queries no metric", f)
		}
	}
}

// TestEveryMetricHasHelp: every metric a component of this package makes
// through Benthos has a help text, under the name it has on /metrics
// (counters with _total, timings in _seconds).
func TestEveryMetricHasHelp(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	made := regexp.MustCompile(`New(Counter|Timer|Gauge)\("([a-z_]+)"`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range made.FindAllStringSubmatch(string(b), -1) {
			name := metricName(m[2])
			switch m[1] {
			case "Counter":
				if !strings.HasSuffix(name, "_total") {
					name += "_total"
				}
			case "Timer":
				name = strings.TrimSuffix(name, "_ns") + "_seconds"
			}
			n++
			if _, ok := metricHelp[name]; !ok {
				t.Errorf("%s: metric %s has no help text in metrics_help.go", f, name)
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d metrics: is the pattern still right?", n)
	}
}
