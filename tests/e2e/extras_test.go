package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFeedExtrasTwin: a catalog generated with fields Vivace does not use
// everywhere — envelope extras, names, descriptions, unit prices on
// stairstep tiers, random fields at every level — applies completely
// through `vivace feed publish --wait`, and rates the same usage file to
// the same MURs as its narrow twin.
func TestFeedExtrasTwin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := startDev(t, "")
	stamp := fmt.Sprint(time.Now().UnixNano() % 1e9)
	narrow, wide := "narrow"+stamp, "wide"+stamp
	dir := t.TempDir()
	counts := map[string]struct{ Events, Applied, Ignored, Failed, Pending, Warned int }{}
	for _, c := range []string{narrow, wide} {
		file := filepath.Join(dir, c+".jsonl")
		args := []string{"feed", "generate", "--client", c, "--accounts", "300", "--plans", "5", "--currency", "USD,EUR", "--out", file}
		if c == wide {
			args = append(args, "--extras", "--seed", "7")
		}
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("feed generate: exit %d\n%s\n%s", code, out, errOut)
		}
		out, errOut, code := d.run(ctx, "feed", "publish", "--wait", file)
		if code != 0 {
			t.Fatalf("feed publish %s: exit %d\n%s\n%s", c, code, out, errOut)
		}
		cnt := counts[c]
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &cnt); err != nil {
			t.Fatalf("publish output %q: %v", out, err)
		}
		counts[c] = cnt
	}
	n, w := counts[narrow], counts[wide]
	if n.Applied != n.Events || n.Failed+n.Ignored+n.Pending+n.Warned != 0 {
		t.Fatalf("narrow catalog: %+v", n)
	}
	if w.Events != n.Events || w.Applied != w.Events || w.Failed+w.Ignored+w.Pending != 0 || w.Warned != w.Events {
		t.Fatalf("wide catalog: %+v (narrow %+v)", w, n)
	}
	out, errOut, code := d.run(ctx, "feed", "errors", "list", "--client", wide, "--warnings", "--limit", "5")
	if code != 0 || !strings.Contains(out, `"warnings":["data: `) || !strings.Contains(out, `not used by Vivace; ignored`) {
		t.Fatalf("errors list --warnings: exit %d\n%s\n%s", code, out, errOut)
	}

	usage := filepath.Join(dir, "usage.csv")
	if out, errOut, code := d.run(ctx, "usage", "generate", "--client", "twin", "--records", "3000", "--accounts", "300",
		"--spread", "6h", "--out", usage); code != 0 {
		t.Fatalf("usage generate: exit %d\n%s\n%s", code, out, errOut)
	}
	rated := map[string][]string{}
	for _, c := range []string{narrow, wide} {
		out, errOut, code := d.run(ctx, "ingest", "--client", c, "--wait", usage)
		res := decodeLines[fileResult](t, out)
		if code != 0 || len(res) != 1 || res[0].Status != "done" || res[0].MURs != 3000 {
			t.Fatalf("ingest for %s: exit %d %+v\n%s", c, code, res, errOut)
		}
		out, _, code = d.run(ctx, "murs", "export", "--client", c)
		if code != 0 {
			t.Fatalf("murs export exit %d", code)
		}
		// Everything but what names the client's own rows.
		for _, m := range decodeLines[map[string]json.RawMessage](t, out) {
			for _, k := range []string{"mur_id", "client", "file_id", "rated_at"} {
				delete(m, k)
			}
			b, _ := json.Marshal(m)
			rated[c] = append(rated[c], string(b))
		}
		slices.Sort(rated[c])
	}
	if len(rated[narrow]) != 3000 || !slices.Equal(rated[narrow], rated[wide]) {
		for i := range min(len(rated[narrow]), len(rated[wide])) {
			if rated[narrow][i] != rated[wide][i] {
				t.Fatalf("MURs differ (%d and %d); first:\nnarrow %s\n  wide %s", len(rated[narrow]), len(rated[wide]), rated[narrow][i], rated[wide][i])
			}
		}
		t.Fatalf("%d and %d MURs", len(rated[narrow]), len(rated[wide]))
	}
}
