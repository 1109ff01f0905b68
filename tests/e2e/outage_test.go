package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/devenv"
)

// privateCluster is a PostgreSQL cluster of the test's own, which the
// test may stop and start again on the same port.
type privateCluster struct {
	t    *testing.T
	dir  string
	port int
	pg   *devenv.Postgres
	dsn  string // the test's database on it
}

// startCluster starts a private cluster (as vivace dev does when no
// server listens) with a database for the test; it is stopped at the
// end.
func startCluster(t *testing.T, ctx context.Context) *privateCluster {
	t.Helper()
	base, err := os.MkdirTemp("", "vivace-e2e-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	// The server may run as another user (postgres, when the test runs as
	// root), who must reach the directory.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &privateCluster{t: t, dir: filepath.Join(base, "pg")}
	c.start(ctx)
	u, err := url.Parse(c.pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if c.port, err = strconv.Atoi(u.Port()); err != nil {
		t.Fatal(err)
	}
	if c.dsn, err = devenv.EnsureDatabase(ctx, c.pg.DSN(), "vivace_outage"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.pg.Stop(sctx)
	})
	return c
}

func (c *privateCluster) start(ctx context.Context) {
	c.t.Helper()
	pg, err := devenv.StartPostgres(ctx, devenv.PGConfig{DataDir: c.dir, Port: c.port})
	if err == devenv.ErrNoPostgres {
		c.t.Skip(err)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.pg = pg
}

func (c *privateCluster) stop(ctx context.Context) {
	c.t.Helper()
	if err := c.pg.Stop(ctx); err != nil {
		c.t.Fatal(err)
	}
}

// outageDuration is how long TestDatabaseOutage keeps the database away:
// VIVACE_OUTAGE (a Go duration; 30s for the full scenario), else 8s.
func outageDuration(t *testing.T) time.Duration {
	if s := os.Getenv("VIVACE_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("VIVACE_OUTAGE=%q: %v", s, err)
		}
		return d
	}
	return 8 * time.Second
}

// readyz returns the status and body of /readyz.
func readyz(d *devProcess) (int, string) {
	resp, err := http.Get(d.API + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDatabaseOutage stops vivace dev's PostgreSQL mid-file and starts it
// again: every stage waits the outage out and goes on without a restart,
// /readyz answers 503 naming the database meanwhile, and the file ends
// with its counts adding up, every amount as the reference rater gives
// in file order (a record rated twice would move its account's tiers)
// and the books balanced.
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts a PostgreSQL cluster")
	}
	outage := outageDuration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute+2*outage)
	defer cancel()
	pg := startCluster(t, ctx)
	t.Setenv("VIVACE_FILE_LEASE", "2s")
	d := newDev(t, "")
	d.DSN = pg.dsn
	d.start()

	client, cat, id := sendOutageFile(ctx, t, d, "outage", 7, d.log.String)

	// Mid-file: some records rated, most not.
	f := waitMidFile(ctx, t, d, id, d.log.String)
	t.Logf("stopping the database with the file %s at %d MURs, %d exceptions", f.Status, f.MURs, f.Exceptions)
	pg.stop(ctx)
	down := time.Now()
	// /readyz says the database is away, for as long as it is.
	sawDown := false
	for time.Since(down) < outage {
		code, body := readyz(d)
		switch {
		case code == http.StatusServiceUnavailable && (strings.Contains(body, "database: connection refused") ||
			strings.Contains(body, "database: the server is starting up or shutting down") ||
			strings.Contains(body, "database: the server ended the connection")):
			sawDown = true
		case code == http.StatusServiceUnavailable && strings.Contains(body, "database"):
			t.Logf("/readyz during the outage: %s", body)
			sawDown = true
		case code == http.StatusOK:
			t.Fatalf("/readyz answered 200 with the database stopped: %s", body)
		case code != http.StatusServiceUnavailable:
			t.Fatalf("/readyz during the outage: %d %s", code, body)
		}
		select {
		case <-d.done:
			t.Fatalf("vivace dev exited during the outage:\n%s", d.log.String())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !sawDown {
		t.Fatal("/readyz never said why the database was away")
	}
	pg.start(ctx)
	t.Logf("database back after %s", time.Since(down).Round(time.Second))

	checkAfterOutage(ctx, t, d, outcome{id: id, client: client, catalog: cat, records: outageRecords,
		exited: closed(d.done), log: d.log.String}, "connect", "database")
	for {
		if code, _ := readyz(d); code == http.StatusOK {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("/readyz not 200 after the database came back")
		case <-time.After(200 * time.Millisecond):
		}
	}
	d.checkBooks(ctx, client)
	lines := strings.Count(d.log.String(), "\n")
	t.Logf("vivace dev logged %d lines (at warn) over the outage and the rest of the run", lines)
	if testing.Verbose() {
		t.Logf("log:\n%s", d.log.String())
	}
}

// waitMidFile waits until file id has MURs and is not done yet: the
// moment to take something away from the pipeline. log is what the
// process logged, for a failure.
func waitMidFile(ctx context.Context, t *testing.T, d *devProcess, id string, log func() string) fileResult {
	t.Helper()
	for {
		f := fileStatus(ctx, d, id)
		if f.Status == "done" {
			t.Fatalf("the file was done before the outage: make it larger (%+v)", f)
		}
		if f.MURs > 0 {
			return f
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no MUR before the outage:\n%s", log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// outcome is a file an outage test sent through the pipeline, and the
// process that ran it.
type outcome struct {
	id, client, catalog string
	records             int64
	exited              func() bool   // the process has ended
	log                 func() string // what it logged
}

// checkAfterOutage waits for the file to end and wants what an
// uninterrupted run gives: done with its counts adding up, both MURs and
// exceptions, every MUR as the reference rater gives it in file order (a
// record rated twice would have moved its account's tiers), and no
// exception whose message holds one of the outage's words.
func checkAfterOutage(ctx context.Context, t *testing.T, d *devProcess, o outcome, outageWords ...string) {
	t.Helper()
	got := waitFile(ctx, t, d, o.id)
	if o.exited() {
		t.Fatalf("the process exited:\n%s", o.log())
	}
	if got.Status != "done" || got.Records != o.records || got.MURs+got.Exceptions+got.Filtered != got.Records {
		t.Fatalf("after the outage the file is %+v; log:\n%s", got, o.log())
	}
	if got.Exceptions == 0 || got.MURs == 0 {
		t.Fatalf("the data made no exceptions or no MURs: %+v", got)
	}
	murs := exportMURs(ctx, t, d, o.client)
	if int64(len(murs)) != got.MURs {
		t.Fatalf("%d MURs exported, the file counts %d", len(murs), got.MURs)
	}
	checkAgainstReference(t, o.catalog, murs)
	// Only the bad lines are exceptions: none came from the outage.
	out, _, _ := d.run(ctx, "exceptions", "export", "--client", o.client)
	for _, e := range decodeLines[struct{ Code, Message string }](t, out) {
		for _, w := range outageWords {
			if strings.Contains(e.Message, w) {
				t.Errorf("an exception from the outage: %+v", e)
			}
		}
	}
}

// closed reports, when called, whether ch is closed: a process's end.
func closed(ch chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// outageRecords is the size of an outage test's file: large enough to
// be mid-way when the outage starts.
const outageRecords = 30000

// sendOutageFile generates a catalog and a file of outageRecords records
// over 200 accounts for a new client named from prefix (every 101st line
// bad), publishes the catalog, submits the file and returns the client,
// the catalog's path and the file's id. log is what the process logged,
// for a failure.
func sendOutageFile(ctx context.Context, t *testing.T, d *devProcess, prefix string, seed int, log func() string) (client, cat, id string) {
	t.Helper()
	const accounts = 200
	work := t.TempDir()
	client = prefix + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cat, usage := filepath.Join(work, "catalog.jsonl"), filepath.Join(work, "usage.csv")
	start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	for _, args := range [][]string{
		{"feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "5",
			"--currency", "USD,JPY,BHD", "--out", cat},
		{"usage", "generate", "--client", client, "--records", fmt.Sprint(outageRecords), "--accounts", fmt.Sprint(accounts),
			"--seed", fmt.Sprint(seed), "--bad-every", "101", "--start", start, "--out", usage},
		{"feed", "publish", "--wait", cat},
	} {
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s\n%s\nlog:\n%s", args, code, out, errOut, log())
		}
	}
	out, errOut, code := d.run(ctx, "ingest", "--client", client, usage)
	if code != 0 {
		t.Fatalf("ingest: exit %d\n%s\n%s", code, out, errOut)
	}
	return client, cat, decodeLines[fileResult](t, out)[0].FileID
}
