package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// A client of its own (the package's tests share a database): usage
	// for more accounts than the catalog has, so that the rate stage
	// refuses some, and bad lines for the earlier stages.
	work := t.TempDir()
	client := "metrics" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cat, usage := filepath.Join(work, "catalog.jsonl"), filepath.Join(work, "usage.csv")
	start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	for _, args := range [][]string{
		{"feed", "generate", "--client", client, "--accounts", "20", "--plans", "2", "--out", cat},
		{"usage", "generate", "--client", client, "--records", "2000", "--accounts", "30", "--seed", "3",
			"--bad-every", "13", "--start", start, "--out", usage},
		{"feed", "publish", "--wait", cat},
		{"ingest", "--client", client, "--wait", usage},
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
	m := metrics(strings.Split(page, "\n"))
	for _, stage := range []string{"mediate", "rate"} {
		if m.sum("vivace_records_failed_total", `stage="`+stage+`"`) == 0 {
			t.Errorf("no failed records counted by code for the %s stage", stage)
		}
	}
	if m.sum("vivace_records_failed_total", `code="UNKNOWN_ACCOUNT",label="rate",path="root.output",stage="rate"`) == 0 {
		t.Error("the rate stage's UNKNOWN_ACCOUNT records are not counted by code")
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
