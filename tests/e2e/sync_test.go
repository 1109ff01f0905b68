package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/synctest"
)

// The test's own client has a client_no of its own at the fake core
// (e2eClientNo), so that what the core holds for it is only its own: the
// MURs other tests left in the database go to the default client_no.
const (
	e2eClientNo   = 7707
	e2eAuthKey    = "e2e-core-key"
	e2eKeyEnv     = "VIVACE_E2E_CORE_KEY"
	otherClientNo = 7700
)

type syncCounts struct {
	Aggregates int   `json:"aggregates"`
	Batches    int   `json:"batches"`
	Synced     int   `json:"synced"`
	Failed     int   `json:"failed"`
	MURs       int64 `json:"murs"`
}

// startCore runs a fake core in the test process, where it outlives the
// vivace dev processes the test kills, and writes client settings that
// give a client of a fresh name its own client_no there. It returns the
// core, the client and the vivace dev flags that point at both.
func startCore(t *testing.T, prefix string) (*fakecore.Server, string, []string) {
	t.Helper()
	core := synctest.StartCore(t, fakecore.Credential{ClientNo: e2eClientNo, AuthKey: e2eAuthKey},
		fakecore.Credential{ClientNo: otherClientNo, AuthKey: "others"})
	t.Setenv("VIVACE_CORE_CLIENT_NO", strconv.Itoa(otherClientNo))
	t.Setenv("VIVACE_CORE_AUTH_KEY", "others")
	t.Setenv(e2eKeyEnv, e2eAuthKey)
	client := prefix + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	demo, err := os.ReadFile(filepath.Join(repoRoot(t), "tests/testdata/demo/clients.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	settings := filepath.Join(t.TempDir(), "clients.yaml")
	body := string(demo) + fmt.Sprintf("  %s:\n    core:\n      client_no: %d\n      auth_key_env: %s\n", client, e2eClientNo, e2eKeyEnv)
	if err := os.WriteFile(settings, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return core, client, []string{"--core-url", core.URL(), "--clients", settings}
}

// prepareClient loads a generated catalog for the client and writes a
// generated usage file for it, which it returns.
func prepareClient(ctx context.Context, t testing.TB, d *devProcess, client string, records, accounts int) string {
	t.Helper()
	work := t.TempDir()
	cat, usage := filepath.Join(work, "catalog.jsonl"), filepath.Join(work, "usage.csv")
	start := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	for _, args := range [][]string{
		{"feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "4", "--currency", "USD,JPY,BHD", "--out", cat},
		{"usage", "generate", "--client", client, "--records", fmt.Sprint(records), "--accounts", fmt.Sprint(accounts),
			"--seed", "7", "--start", start, "--out", usage},
		{"feed", "publish", "--wait", cat},
	} {
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}
	return usage
}

func ingestWait(ctx context.Context, t *testing.T, d *devProcess, client, file string) fileResult {
	t.Helper()
	out, errOut, code := d.run(ctx, "ingest", "--client", client, "--wait", file)
	if code != 0 {
		t.Fatalf("ingest: exit %d\n%s\n%s", code, out, errOut)
	}
	r := decodeLines[fileResult](t, out)[0]
	if r.Status != "done" || r.MURs == 0 {
		t.Fatalf("file %+v", r)
	}
	return r
}

func syncRun(ctx context.Context, t *testing.T, d *devProcess, wantCode int, args ...string) syncCounts {
	t.Helper()
	out, errOut, code := d.run(ctx, append([]string{"sync"}, args...)...)
	if code != wantCode {
		t.Fatalf("vivace sync %v: exit %d, want %d\n%s\n%s", args, code, wantCode, out, errOut)
	}
	var c syncCounts
	if strings.TrimSpace(out) == "" {
		return c
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &c); err != nil {
		t.Fatalf("vivace sync %v printed %q: %v", args, out, err)
	}
	// Exactly the five counts, nothing else.
	var keys map[string]any
	_ = json.Unmarshal([]byte(out), &keys)
	if len(keys) != 5 {
		t.Fatalf("vivace sync %v printed %s", args, out)
	}
	return c
}

func openDB(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// anAccount returns the account of the usage file's first record.
func anAccount(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range head {
		if h == "account_id" {
			return row[i]
		}
	}
	t.Fatal("no account_id column")
	return ""
}

// TestSyncThroughTheService drives MUR sync with the commands an operator
// uses: settings, a cycle with records the core refuses, their resend
// after the fix, a whole-call refusal.
func TestSyncThroughTheService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	core, client, flags := startCore(t, "sync")
	d := startDev(t, "", flags...)
	usage := prepareClient(ctx, t, d, client, 3000, 60)
	file := ingestWait(ctx, t, d, client, usage)
	db := openDB(t)

	out, errOut, code := d.run(ctx, "config", "set", "mur_sync.batch_size", "25")
	if code != 0 || !strings.Contains(out, `"value":25`) {
		t.Fatalf("config set: exit %d: %s %s", code, out, errOut)
	}
	if _, errOut, code := d.run(ctx, "config", "set", "mur_sync.batch_size", "lots"); code == 0 || !strings.Contains(errOut, "mur_sync.batch_size") {
		t.Fatalf("config set of a bad value: exit %d: %s", code, errOut)
	}
	t.Cleanup(func() { d.run(context.Background(), "config", "reset", "mur_sync.batch_size") })

	refused := anAccount(t, usage)
	if err := core.SetFaults(fakecore.Faults{RejectAccounts: map[string]fakecore.Rejection{refused: {}}}); err != nil {
		t.Fatal(err)
	}
	c := syncRun(ctx, t, d, 0, "run", "--client", client)
	if c.MURs != file.MURs || c.Failed == 0 || c.Synced+c.Failed != c.Aggregates || c.Batches != (c.Aggregates+24)/25 {
		t.Fatalf("first cycle %+v for %d MURs", c, file.MURs)
	}
	out, _, code = d.run(ctx, "sync", "failed", "--client", client)
	failed := decodeLines[struct {
		AccountID string `json:"account_id"`
		Code      int64  `json:"record_error_code"`
	}](t, out)
	if code != 0 || len(failed) != c.Failed {
		t.Fatalf("sync failed: exit %d, %d records, want %d", code, len(failed), c.Failed)
	}
	for _, f := range failed {
		if f.AccountID != refused || f.Code != 1009 {
			t.Fatalf("failed record %+v", f)
		}
	}
	synctest.CheckTotals(t, ctx, db.Pool(), core.Core, client, e2eClientNo)

	// The account exists at the core now: the failed records go again.
	if err := core.SetFaults(fakecore.Faults{}); err != nil {
		t.Fatal(err)
	}
	r := syncRun(ctx, t, d, 0, "retry", "--client", client, "--failed")
	if r.Aggregates != c.Failed || r.Synced != c.Failed || r.Failed != 0 {
		t.Fatalf("retry %+v after %d failed", r, c.Failed)
	}
	if got := synctest.CheckTotals(t, ctx, db.Pool(), core.Core, client, e2eClientNo); int64(got) != file.MURs {
		t.Fatalf("%d of %d MURs synced", got, file.MURs)
	}
	syncRun(ctx, t, d, 1, "retry", "--client", client, "--failed") // nothing left to send
	if n := syncRun(ctx, t, d, 0, "run", "--client", client); n.Aggregates != 0 || n.MURs != 0 {
		t.Fatalf("a cycle with nothing to do sent %+v", n)
	}

	// Credentials refused: the cycle could not run.
	more, usage2 := client, strings.TrimSuffix(usage, ".csv")+"-2.csv"
	if out, errOut, code := d.run(ctx, "usage", "generate", "--client", more, "--records", "300", "--accounts", "60",
		"--seed", "8", "--start", time.Now().UTC().Add(-24*time.Hour).Truncate(time.Hour).Format(time.RFC3339),
		"--out", usage2); code != 0 {
		t.Fatalf("usage generate: %s %s", out, errOut)
	}
	// Record ids of a second generated file must not be the first's.
	body, _ := os.ReadFile(usage2)
	if err := os.WriteFile(usage2, []byte(strings.ReplaceAll(string(body), more+"-", more+"-b-")), 0o644); err != nil {
		t.Fatal(err)
	}
	file2 := ingestWait(ctx, t, d, client, usage2)
	if err := core.SetFaults(fakecore.Faults{Refuse: fakecore.RefuseFault{Trigger: fakecore.Trigger{Fraction: 1}, Code: 1004, Msg: "authentication error"}}); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = d.run(ctx, "sync", "run", "--client", client)
	if code != 1 || !strings.Contains(errOut, "1004") {
		t.Fatalf("sync run with credentials refused: exit %d: %s", code, errOut)
	}
	if err := core.SetFaults(fakecore.Faults{}); err != nil {
		t.Fatal(err)
	}
	out, _, _ = d.run(ctx, "sync", "batches", "--client", client, "--status", "failed")
	batches := decodeLines[struct {
		BatchID   string `json:"batch_id"`
		Failure   string `json:"failure"`
		ErrorCode int64  `json:"error_code"`
	}](t, out)
	if len(batches) == 0 || batches[0].Failure != "refused" || batches[0].ErrorCode != 1004 {
		t.Fatalf("failed batches %s", out)
	}
	for _, b := range batches {
		syncRun(ctx, t, d, 0, "retry", "--client", client, "--batch", b.BatchID)
	}
	if got := synctest.CheckTotals(t, ctx, db.Pool(), core.Core, client, e2eClientNo); int64(got) != file.MURs+file2.MURs {
		t.Fatalf("%d of %d MURs synced", got, file.MURs+file2.MURs)
	}
	out, _, _ = d.run(ctx, "sync", "jobs", "--client", client)
	if jobs := decodeLines[struct{ Status, Trigger string }](t, out); len(jobs) < 5 {
		t.Fatalf("jobs %s", out)
	}
	d.checkBooks(ctx, client)
}

// TestSyncKilledBetweenCallAndMark kills vivace dev (SIGKILL) after the
// core stored a batch and before the answer came back to be marked. After
// the restart the batch is delivered again and sent again with the same
// client_record_ids: the core replaces what it holds, every MUR ends
// synced, and the core's totals equal the MURs'.
func TestSyncKilledBetweenCallAndMark(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts vivace dev")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	core, client, flags := startCore(t, "kill")
	d := startDev(t, "", flags...)
	usage := prepareClient(ctx, t, d, client, 2000, 40)
	file := ingestWait(ctx, t, d, client, usage)
	db := openDB(t)

	// Every answer waits after the core has stored the batch.
	if err := core.SetFaults(fakecore.Faults{Slow: fakecore.SlowFault{Trigger: fakecore.Trigger{Fraction: 1}, Delay: fakecore.Duration(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	// The cycle waits for the answer; the process that asked ends with
	// vivace dev.
	asker := exec.CommandContext(ctx, binary, "sync", "run", "--client", client, "--timeout", "2m")
	asker.Env = append(os.Environ(), "VIVACE_API="+d.API, "VIVACE_DATA_DIR="+d.DataDir)
	if err := asker.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = asker.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for len(core.Records(fakecore.Filter{ClientNo: e2eClientNo})) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the core stored nothing; log:\n%s", d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill()
	stored := len(core.Records(fakecore.Filter{ClientNo: e2eClientNo}))
	var sending int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM sync_batches WHERE client = $1 AND status = 'sending'`, client).Scan(&sending); err != nil {
		t.Fatal(err)
	}
	c, err := synctest.StatusCounts(ctx, db.Pool(), client)
	if err != nil {
		t.Fatal(err)
	}
	// The cycle was waiting for the answer: its MURs are as it found them.
	if sending == 0 || c["synced"] != 0 || c["unsynced"] != int(file.MURs) {
		t.Fatalf("at the kill: %d batches sending, MURs %v, %d records stored at the core", sending, c, stored)
	}
	t.Logf("killed with %d batches sent and unmarked, %d records stored at the core", sending, stored)

	if err := core.SetFaults(fakecore.Faults{}); err != nil {
		t.Fatal(err)
	}
	d.start(flags...)
	deadline = time.Now().Add(2 * time.Minute)
	for {
		c, err = synctest.StatusCounts(ctx, db.Pool(), client)
		if err != nil {
			t.Fatal(err)
		}
		if c["synced"] == int(file.MURs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart MURs are %v; log:\n%s", c, d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	synctest.CheckTotals(t, ctx, db.Pool(), core.Core, client, e2eClientNo)
	// The records stored before the kill came a second time and replaced
	// themselves.
	again := 0
	for _, rec := range core.Records(fakecore.Filter{ClientNo: e2eClientNo}) {
		if rec.Received > 1 {
			again++
		}
	}
	if again < stored {
		t.Fatalf("%d records came twice; %d were stored before the kill", again, stored)
	}
	var attempts int
	if err := db.Pool().QueryRow(ctx, `SELECT max(attempts) FROM sync_batches WHERE client = $1`, client).Scan(&attempts); err != nil || attempts < 2 {
		t.Fatalf("most attempts of a batch %d, %v", attempts, err)
	}
	d.checkBooks(ctx, client)
}
