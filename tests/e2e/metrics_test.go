package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetricsLint runs the sample data set through vivace dev and checks
// its /metrics with promtool check metrics (Prometheus' own linter:
// counter names ending in _total, units in names, help texts), and that
// every metric of Vivace's streams says what it is.
func TestMetricsLint(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (scripts/install-deps.sh installs Debian's prometheus package)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startDev(t, "")
	demo := filepath.Join(repoRoot(t), "tests/testdata/demo")
	for _, args := range [][]string{
		{"feed", "publish", "--wait", filepath.Join(demo, "catalog.jsonl")},
		{"ingest", "--client", "demo", "--wait", filepath.Join(demo, "usage.csv")},
	} {
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}
	page := strings.Join(scrape(ctx, t, d.API), "\n")
	for _, name := range []string{"input_received_total", "output_sent_total", "vivace_records_failed_total",
		"vivace_rate_murs_total", "vivace_consumer_lag", "vivace_batch_records_bucket", "output_latency_seconds_bucket",
		"vivace_files_done_total", "vivace_file_duration_seconds_bucket"} {
		if !strings.Contains(page, "\n"+name+"{") {
			t.Errorf("/metrics has no %s after a file went through", name)
		}
	}
	if !strings.Contains(page, `vivace_records_failed_total{code="BAD_QUANTITY",label="",path="root.output.switch.cases.0.output.processors.0",stage="mediate",stream="mediate"} 2`) {
		for _, l := range strings.Split(page, "\n") {
			if strings.HasPrefix(l, "vivace_records_failed") {
				t.Log(l)
			}
		}
		t.Error("no failed-record count by stage and code for the sample's BAD_QUANTITY lines")
	}
	if !strings.Contains(page, `vivace_records_failed_total{code="UNKNOWN_ACCOUNT",label="rate",path="root.output",stage="rate",stream="rate"} 1`) {
		t.Error("no failed-record count of the rate stage's UNKNOWN_ACCOUNT line")
	}
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(page + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "# HELP ") && strings.Contains(l, "(no description yet)") {
			t.Errorf("a metric without a description: %s (add it to plugins/benthos/metrics_help.go)", l)
		}
	}
}
