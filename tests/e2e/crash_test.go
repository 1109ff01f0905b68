package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/rating/reference"
)

type murLine struct {
	RecordID  string    `json:"record_id"`
	Line      int64     `json:"line"`
	AccountID string    `json:"account_id"`
	UsageType string    `json:"usage_type"`
	Quantity  string    `json:"quantity"`
	UsageTime time.Time `json:"usage_time"`
	Currency  string    `json:"currency"`
	Gross     string    `json:"gross_amount"`
	Discount  string    `json:"discount_amount"`
	NetAmount string    `json:"net_amount"`
}

// TestKillMidStream kills vivace dev (SIGKILL, no chance to clean up)
// several times while a file flows through ingest, mediate and rate, and
// checks that after the restarts the file ends with exactly the MURs,
// amounts and counts of an uninterrupted run of the same data. The
// catalog, loaded through the feed, uses all five pricing models, all
// three discount kinds and three currencies, so the cumulative tier and
// allowance counters are what the kills put at risk; the uninterrupted
// run is itself checked against the reference rater.
func TestKillMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts vivace dev")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Setenv("VIVACE_FILE_LEASE", "2s")
	d := startDev(t, "")
	work := t.TempDir()
	const records, accounts = 40000, 300
	// Both files carry the same usage times, so that their MURs compare.
	start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)

	prepare := func(client string) string {
		cat := filepath.Join(work, client+"-catalog.jsonl")
		usage := filepath.Join(work, client+"-usage.csv")
		for _, args := range [][]string{
			{"feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "5",
				"--currency", "USD,JPY,BHD", "--out", cat},
			{"usage", "generate", "--client", client, "--records", fmt.Sprint(records), "--accounts", fmt.Sprint(accounts),
				"--seed", "42", "--bad-every", "97", "--start", start, "--out", usage},
			{"feed", "publish", "--wait", cat},
		} {
			if out, errOut, code := d.run(ctx, args...); code != 0 {
				t.Fatalf("vivace %v: exit %d\n%s\n%s", args, code, out, errOut)
			}
		}
		return usage
	}
	// Fresh client names: counters of an earlier run (go test -count)
	// must not carry over into this one.
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	steady, crashy := "steady"+run, "crashy"+run
	refFile, crashFile := prepare(steady), prepare(crashy)
	steadyCatalog := filepath.Join(work, steady+"-catalog.jsonl")

	out, errOut, code := d.run(ctx, "ingest", "--client", steady, "--wait", refFile)
	if code != 0 {
		t.Fatalf("ingest steady: exit %d\n%s\n%s", code, out, errOut)
	}
	ref := decodeLines[fileResult](t, out)[0]

	out, errOut, code = d.run(ctx, "ingest", "--client", crashy, crashFile)
	if code != 0 {
		t.Fatalf("ingest crashy: exit %d\n%s\n%s", code, out, errOut)
	}
	crashID := decodeLines[fileResult](t, out)[0].FileID
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3 {
		time.Sleep(time.Duration(150+rng.IntN(500)) * time.Millisecond)
		before := fileStatus(ctx, d, crashID)
		d.kill()
		t.Logf("kill %d: file was %s with %d MURs and %d exceptions", i+1, before.Status, before.MURs, before.Exceptions)
		d.start()
	}
	got := waitFile(ctx, t, d, crashID)

	if ref.Status != "done" || got.Status != "done" {
		t.Fatalf("status: steady %s, crashy %s; want done", ref.Status, got.Status)
	}
	if got.Records != ref.Records || got.MURs != ref.MURs || got.Exceptions != ref.Exceptions || got.Filtered != ref.Filtered {
		t.Fatalf("counts after kills %+v, uninterrupted %+v", got, ref)
	}
	if got.Records != records || got.MURs+got.Exceptions+got.Filtered != got.Records {
		t.Fatalf("counts do not add up: %+v", got)
	}
	checkAgainstReference(t, steadyCatalog, exportMURs(ctx, t, d, steady))
	want := mursBySuffix(ctx, t, d, steady)
	have := mursBySuffix(ctx, t, d, crashy)
	if len(have) != len(want) {
		t.Fatalf("%d MURs after kills, %d uninterrupted", len(have), len(want))
	}
	for k, w := range want {
		if h := have[k]; h != w {
			t.Errorf("record %s: after kills %+v, uninterrupted %+v", k, h, w)
		}
	}
	d.checkBooks(ctx, crashy)
	d.checkBooks(ctx, steady)
}

// checkAgainstReference rates the records of murs (in file order, which
// is each account's order) with the reference rater over the catalog in
// the feed file, and compares every amount.
func checkAgainstReference(t *testing.T, catalogFile string, murs []murLine) {
	t.Helper()
	f, err := os.Open(catalogFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b catalog.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, err := feed.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Add(e.Entity, e.EntityID, e.Data); err != nil {
			t.Fatal(err)
		}
	}
	snap := b.Snapshot("")
	ref := reference.New()
	models := map[catalog.Model]int{}
	discounted := 0
	for _, m := range murs {
		want, err := ref.Rate(snap, m.AccountID, m.UsageType, m.Quantity, m.UsageTime)
		if err != nil {
			t.Fatalf("record %s: %v", m.RecordID, err)
		}
		got := reference.Amounts{Currency: m.Currency, Gross: m.Gross, Discount: m.Discount, Net: m.NetAmount}
		if got != want {
			t.Fatalf("record %s (line %d, %s %s %s): MUR %+v, reference %+v", m.RecordID, m.Line, m.AccountID, m.UsageType, m.Quantity, got, want)
		}
		sub := snap.SubscriptionAt(m.AccountID, m.UsageTime)
		models[snap.RateAt(sub.PlanID, m.UsageType, m.Currency, m.UsageTime).Model]++
		if m.Discount != "0" && strings.Trim(m.Discount, "0.") != "" {
			discounted++
		}
	}
	if len(models) != 5 || discounted == 0 {
		t.Fatalf("the data did not exercise every model and discounts: models %v, %d discounted MURs", models, discounted)
	}
	t.Logf("%d MURs match the reference; per model %v; %d discounted", len(murs), models, discounted)
}

// exportMURs returns a client's MURs in file order.
func exportMURs(ctx context.Context, t *testing.T, d *devProcess, client string) []murLine {
	t.Helper()
	out, errOut, code := d.run(ctx, "murs", "export", "--client", client)
	if code != 0 {
		t.Fatalf("murs export: exit %d: %s", code, errOut)
	}
	return decodeLines[murLine](t, out)
}

// mursBySuffix maps each MUR by its record id without the client prefix.
func mursBySuffix(ctx context.Context, t *testing.T, d *devProcess, client string) map[string]murLine {
	t.Helper()
	m := map[string]murLine{}
	for _, l := range exportMURs(ctx, t, d, client) {
		k := strings.TrimPrefix(l.RecordID, client+"-")
		if _, dup := m[k]; dup {
			t.Fatalf("record %s has two MURs", l.RecordID)
		}
		l.RecordID = k
		m[k] = l
	}
	return m
}

// waitFile polls the API until the file is done, failed or rejected.
func waitFile(ctx context.Context, t *testing.T, d *devProcess, id string) fileResult {
	t.Helper()
	for {
		if f := fileStatus(ctx, d, id); f.Status == "done" || f.Status == "failed" || f.Status == "rejected" {
			return f
		}
		select {
		case <-ctx.Done():
			t.Fatalf("file %s not finished: %v\n%s", id, ctx.Err(), d.log.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fileStatus reads a file's registry entry; a zero value when the API
// does not answer.
func fileStatus(ctx context.Context, d *devProcess, id string) fileResult {
	var f fileResult
	resp, err := d.get(ctx, "/api/v1/files/"+id)
	if err != nil {
		return f
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&f)
	return f
}
