package e2e

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/pgtest"
)

// vivace runs the binary with extra environment variables and returns its
// output (stdout and stderr together) and exit code. Every command here
// must return by itself; the context only ends a run that hangs, which
// fails the test.
func vivace(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vivace %s did not return:\n%s", strings.Join(args, " "), out.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vivace %v: %v", args, err)
	}
	return out.String(), code
}

// TestHelpSaysWhatVivaceIs: the top-level help is Vivace's, not the
// Benthos tagline and examples, and the binary alone shows it.
func TestHelpSaysWhatVivaceIs(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {}} {
		out, code := vivace(t, nil, args...)
		if code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s", args, code, out)
		}
		for _, want := range []string{"vivace - usage files in, rated and discounted usage records (MURs) out",
			"vivace ingest --client acme --wait usage.csv", "vivace dev ", "docs/cli.md"} {
			if !strings.Contains(out, want) {
				t.Errorf("vivace %v lacks %q:\n%s", args, want, out)
			}
		}
		for _, not := range []string{"mundane", "create kafka//file", "benthos.dev"} {
			if strings.Contains(out, not) {
				t.Errorf("vivace %v still says %q:\n%s", args, not, out)
			}
		}
	}
	out, _ := vivace(t, nil, "feed", "publish", "--help")
	if strings.Contains(out, `\n`) {
		t.Errorf("vivace feed publish --help prints a literal \\n:\n%s", out)
	}
}

// TestFlagsAfterFiles: flags may follow the file names; --wait after the
// file is the flag, not a second file.
func TestFlagsAfterFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f.csv")
	writeFile(t, f, "record_id,account_id,usage_type,quantity,usage_time\n")
	out, code := vivace(t, nil, "ingest", "--client", "acme", f, "--wait", "--api", "http://127.0.0.1:1")
	if code == 0 || strings.Contains(out, "--wait") || strings.Contains(out, "--api") ||
		!strings.Contains(out, "f.csv") || !strings.Contains(out, "is vivace running at http://127.0.0.1:1?") {
		t.Fatalf("exit %d; want the upload of f.csv to the given API to fail, and no file named after a flag:\n%s", code, out)
	}
	// A required flag after the file counts too.
	out, code = vivace(t, nil, "ingest", f, "--client", "acme", "--api", "http://127.0.0.1:1")
	if code == 0 || strings.Contains(out, "Required flag") || !strings.Contains(out, "is vivace running") {
		t.Fatalf("--client after the file: exit %d\n%s", code, out)
	}
	// After --, everything is a file.
	out, code = vivace(t, nil, "ingest", "--client", "acme", "--api", "http://127.0.0.1:1", "--", "--wait")
	if code == 0 || !strings.Contains(out, "--wait: open --wait: no such file") {
		t.Fatalf("-- then a name like a flag: exit %d\n%s", code, out)
	}
}

// TestPipelineTestWithoutItsDatabase: vivace test on a pipeline whose
// lookup table's database is missing, or whose server does not answer,
// returns and fails the test with the reason, its log lines naming Vivace.
func TestPipelineTestWithoutItsDatabase(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "lookup.yaml"), `
input:
  stdin: {}
pipeline:
  processors:
    - vivace_lookup:
        dsn: ${DATABASE_URL}
        lookup: msisdn_accounts
        key: this.fields.msisdn
        set: { account_id: account_id }
output:
  drop: {}
`)
	writeFile(t, filepath.Join(dir, "lookup_benthos_test.yaml"), `
tests:
  - name: a number becomes an account
    target_processors: /pipeline/processors
    input_batch:
      - content: '{"client":"telco","file_id":"f1","line":2,"fields":{"msisdn":"4917000001"}}'
    output_batches:
      - - bloblang: '!errored() && this.fields.account_id == "A-1"'
`)
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database_for_vivace_test"
	missing := u.String()
	out, code := vivace(t, []string{"DATABASE_URL=" + missing}, "test", "--log", "warn", dir+"/...")
	if code == 0 || !strings.Contains(out, "MEDIATION_FAILED: lookup msisdn_accounts") ||
		!strings.Contains(out, `database "no_such_database_for_vivace_test" does not exist`) {
		t.Fatalf("a missing database: exit %d\n%s", code, out)
	}

	// Nothing listens: the test waits a few seconds for the server, then fails.
	out, code = vivace(t, []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/vivace?sslmode=disable"}, "test", "--log", "warn", dir+"/...")
	if code == 0 || !strings.Contains(out, "connection refused (no answer for 5s)") {
		t.Fatalf("an unreachable server: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "@service=vivace") || strings.Contains(out, "benthos") {
		t.Errorf("vivace test's log lines do not name Vivace:\n%s", out)
	}
}

// TestRunLogsNameVivace: a stream run with vivace run logs as Vivace.
func TestRunLogsNameVivace(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "one.yaml")
	writeFile(t, conf, "input:\n  generate: { count: 1, interval: '', mapping: 'root = \"x\"' }\noutput:\n  drop: {}\n")
	out, code := vivace(t, nil, "run", conf)
	if code != 0 || !strings.Contains(out, "@service=vivace") || strings.Contains(out, "@service=benthos") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
