package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type murLine struct {
	RecordID  string `json:"record_id"`
	NetAmount string `json:"net_amount"`
	Gross     string `json:"gross_amount"`
}

// TestKillMidStream kills vivace dev (SIGKILL, no chance to clean up)
// several times while a file flows through ingest, mediate and rate, and
// checks that after the restarts the file ends with exactly the MURs,
// amounts and counts of an uninterrupted run of the same data.
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

	prepare := func(client string) string {
		cat := filepath.Join(work, client+"-catalog.jsonl")
		usage := filepath.Join(work, client+"-usage.csv")
		for _, args := range [][]string{
			{"feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "5", "--out", cat},
			{"usage", "generate", "--client", client, "--records", fmt.Sprint(records), "--accounts", fmt.Sprint(accounts),
				"--seed", "42", "--bad-every", "97", "--out", usage},
			{"feed", "publish", "--wait", cat},
		} {
			if out, errOut, code := d.run(ctx, args...); code != 0 {
				t.Fatalf("vivace %v: exit %d\n%s\n%s", args, code, out, errOut)
			}
		}
		return usage
	}
	refFile, crashFile := prepare("steady"), prepare("crashy")

	out, errOut, code := d.run(ctx, "ingest", "--client", "steady", "--wait", refFile)
	if code != 0 {
		t.Fatalf("ingest steady: exit %d\n%s\n%s", code, out, errOut)
	}
	ref := decodeLines[fileResult](t, out)[0]

	out, errOut, code = d.run(ctx, "ingest", "--client", "crashy", crashFile)
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
	want := mursBySuffix(ctx, t, d, "steady")
	have := mursBySuffix(ctx, t, d, "crashy")
	if len(have) != len(want) {
		t.Fatalf("%d MURs after kills, %d uninterrupted", len(have), len(want))
	}
	for k, w := range want {
		if h := have[k]; h != w {
			t.Errorf("record %s: after kills %+v, uninterrupted %+v", k, h, w)
		}
	}
}

// mursBySuffix maps each MUR by its record id without the client prefix.
func mursBySuffix(ctx context.Context, t *testing.T, d *devProcess, client string) map[string]murLine {
	t.Helper()
	out, errOut, code := d.run(ctx, "murs", "export", "--client", client)
	if code != 0 {
		t.Fatalf("murs export: exit %d: %s", code, errOut)
	}
	m := map[string]murLine{}
	for _, l := range decodeLines[murLine](t, out) {
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
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.API+"/api/v1/files/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return f
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&f)
	return f
}
