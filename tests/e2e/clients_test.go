package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"vivace.dev/vivace/pipelines"
)

// TestExampleClientsEndToEnd runs a file of each example client through
// the running pipelines: ingest, the client's YAML rules (correlation of
// partial calls, an account lookup table, a filter, a mapping), its plugin
// (a real process, checksum-verified), the normal-form checks and rating,
// to MURs, exceptions and filtered records. Every line's outcome is listed
// in tests/testdata/clients/README.md.
func TestExampleClientsEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	root := repoRoot(t)
	data := filepath.Join(root, "tests/testdata/clients")
	dir := t.TempDir()

	sums := map[string]string{}
	for _, name := range []string{"telco", "cloud"} {
		bin := filepath.Join(dir, "plugins", name+"-1.0.0")
		build := exec.Command("go", "build", "-o", bin, "./plugins/mediation/clients/"+name)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build plugin %s: %v\n%s", name, err, out)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		sums[name] = hex.EncodeToString(sum[:])
	}
	clients := filepath.Join(dir, "clients.yaml")
	writeFile(t, clients, fmt.Sprintf(`clients:
  telco:
    validation: { max_age: 87600h }
    plugin:
      path: plugins/telco-1.0.0
      sha256: %s
      config:
        test_msisdn_prefixes: ["447790"]
  cloud:
    columns: { account: account_id }
    validation: { max_age: 87600h }
    plugin:
      path: plugins/cloud-1.0.0
      sha256: %s
      config:
        services: { object-storage-egress: STORAGE_EGRESS_GB, cdn: CDN_GB }
        free_services: [internal-backup]
`, sums["telco"], sums["cloud"]))

	// The default streams, with the example clients' mediate stage.
	pipeDir := filepath.Join(dir, "pipelines")
	defs, err := pipelines.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		writeFile(t, filepath.Join(pipeDir, d.Name+".yaml"), d.YAML)
	}
	mediate, err := os.ReadFile(filepath.Join(root, "pipelines/examples/mediate_clients.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pipeDir, "mediate.yaml"), string(mediate))

	// A call still open 3 s after its first record leaves incomplete; the
	// tick that sends it comes every half second.
	t.Setenv("VIVACE_TELCO_CALL_WINDOW", "3s")
	t.Setenv("VIVACE_CORRELATE_TICK", "500ms")
	d := startDev(t, "", "--clients", clients, "--pipelines", pipeDir)
	out, errOut, code := d.run(ctx, "feed", "publish", "--wait", filepath.Join(data, "catalog.jsonl"))
	if code != 0 || out == "" {
		t.Fatalf("feed publish: exit %d\n%s\n%s\n%s", code, out, errOut, d.log.String())
	}
	out, errOut, code = d.run(ctx, "lookup", "load", "--client", "telco", "--lookup", "msisdn_accounts",
		filepath.Join(data, "telco-msisdns.csv"))
	if code != 0 {
		t.Fatalf("lookup load: exit %d\n%s\n%s", code, out, errOut)
	}

	ingest := func(client, file string) fileResult {
		t.Helper()
		out, errOut, code := d.run(ctx, "ingest", "--client", client, "--wait", filepath.Join(data, file))
		res := decodeLines[fileResult](t, out)
		if code != 0 || len(res) != 1 {
			t.Fatalf("ingest %s: exit %d\n%s\n%s\n%s", file, code, out, errOut, d.log.String())
		}
		return res[0]
	}
	// telco: 12 lines, two of them roaming calls split in two, three of
	// them the parts of one call.
	if r := ingest("telco", "telco-cdrs.csv"); r.Status != "done" || r.Records != 14 || r.Split != 2 ||
		r.MURs != 5 || r.Exceptions != 5 || r.Filtered != 4 {
		t.Fatalf("telco file: %+v", r)
	}
	if r := ingest("cloud", "cloud-metering.jsonl"); r.Status != "done" || r.Records != 7 || r.Split != 0 ||
		r.MURs != 4 || r.Exceptions != 2 || r.Filtered != 1 {
		t.Fatalf("cloud file: %+v", r)
	}

	type mur struct {
		RecordID   string            `json:"record_id"`
		Line       int64             `json:"line"`
		Part       int               `json:"part"`
		UsageType  string            `json:"usage_type"`
		Quantity   string            `json:"quantity"`
		NetAmount  string            `json:"net_amount"`
		AccountID  string            `json:"account_id"`
		Qualifiers map[string]string `json:"qualifiers"`
		Attributes map[string]string `json:"attributes"`
	}
	export := func(what, client string) string {
		t.Helper()
		out, errOut, code := d.run(ctx, what, "export", "--client", client)
		if code != 0 {
			t.Fatalf("%s export %s: exit %d: %s", what, client, code, errOut)
		}
		return out
	}
	murs := func(client string) map[string]mur {
		m := map[string]mur{}
		for _, x := range decodeLines[mur](t, export("murs", client)) {
			m[x.RecordID] = x
		}
		return m
	}
	check := func(got map[string]mur, want []mur) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%d MURs, want %d: %+v", len(got), len(want), got)
		}
		for _, w := range want {
			g, ok := got[w.RecordID]
			if !ok {
				t.Errorf("no MUR for %s", w.RecordID)
				continue
			}
			if g.Line != w.Line || g.Part != w.Part || g.UsageType != w.UsageType || g.Quantity != w.Quantity ||
				g.NetAmount != w.NetAmount || fmt.Sprint(g.Qualifiers) != fmt.Sprint(w.Qualifiers) ||
				g.AccountID != w.AccountID || g.Attributes["correlation"] != w.Attributes["correlation"] {
				t.Errorf("MUR %s:\n got %+v\nwant %+v", w.RecordID, g, w)
			}
		}
	}
	check(murs("telco"), []mur{
		{RecordID: "c1", Line: 2, AccountID: "T-1001", UsageType: "VOICE", Quantity: "2", NetAmount: "0.20",
			Qualifiers: map[string]string{"qualifier_1": "airtime", "qualifier_2": "UK"}},
		{RecordID: "c2", Line: 3, AccountID: "T-1001", UsageType: "VOICE", Quantity: "2", NetAmount: "0.20",
			Qualifiers: map[string]string{"qualifier_1": "airtime", "qualifier_2": "FR"}},
		{RecordID: "c2-roaming", Line: 3, Part: 1, AccountID: "T-1001", UsageType: "VOICE_ROAMING", Quantity: "2", NetAmount: "1.00",
			Qualifiers: map[string]string{"qualifier_1": "roaming", "qualifier_2": "FR", "qualifier_3": "FR"}},
		// START, INTERMEDIATE and STOP: 600 + 600 + 95 s = 22 started minutes.
		{RecordID: "c8", Line: 10, AccountID: "T-1002", UsageType: "VOICE", Quantity: "22", NetAmount: "2.20",
			Qualifiers: map[string]string{"qualifier_1": "airtime", "qualifier_2": "UK"}},
		// A START alone, sent on when its window ran out.
		{RecordID: "c9", Line: 13, AccountID: "T-1001", UsageType: "VOICE", Quantity: "5", NetAmount: "0.50",
			Qualifiers: map[string]string{"qualifier_1": "airtime", "qualifier_2": "DE"},
			Attributes: map[string]string{"correlation": "incomplete"}},
	})
	check(murs("cloud"), []mur{
		{RecordID: "e1", Line: 1, AccountID: "acct-1", UsageType: "STORAGE_EGRESS_GB", Quantity: "2.5", NetAmount: "0.23",
			Qualifiers: map[string]string{"qualifier_1": "EU"}},
		{RecordID: "e2", Line: 2, AccountID: "acct-1", UsageType: "STORAGE_EGRESS_GB", Quantity: "9.001", NetAmount: "0.75",
			Qualifiers: map[string]string{"qualifier_1": "EU"}},
		{RecordID: "e3", Line: 3, AccountID: "acct-1", UsageType: "CDN_GB", Quantity: "0.001", NetAmount: "0.00",
			Qualifiers: map[string]string{"qualifier_1": "US"}},
		{RecordID: "e7", Line: 7, AccountID: "acct-2", UsageType: "CDN_GB", Quantity: "1", NetAmount: "0.02",
			Qualifiers: map[string]string{"qualifier_1": "ap-south-1"}},
	})

	type exc struct {
		Line  int64  `json:"line"`
		Part  int    `json:"part"`
		Stage string `json:"stage"`
		Code  string `json:"code"`
		Field string `json:"field"`
	}
	exceptions := func(client string) map[string]exc {
		m := map[string]exc{}
		for _, x := range decodeLines[exc](t, export("exceptions", client)) {
			m[fmt.Sprintf("%d/%d", x.Line, x.Part)] = x
		}
		return m
	}
	checkExc := func(got map[string]exc, want map[string]exc) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%d exceptions, want %d: %+v", len(got), len(want), got)
		}
		for k, w := range want {
			g := got[k]
			if g.Stage != w.Stage || g.Code != w.Code || g.Field != w.Field {
				t.Errorf("exception at line/part %s: got %+v, want %+v", k, g, w)
			}
		}
	}
	checkExc(exceptions("telco"), map[string]exc{
		"6/0": {Stage: "mediate", Code: "BAD_QUANTITY", Field: "duration_sec"},
		"7/0": {Stage: "rate", Code: "ACCOUNT_CLOSED", Field: "account_id"},
		"8/0": {Stage: "rate", Code: "UNKNOWN_ACCOUNT", Field: "account_id"},
		"8/1": {Stage: "rate", Code: "UNKNOWN_ACCOUNT", Field: "account_id"},
		"9/0": {Stage: "rate", Code: "DUPLICATE_RECORD", Field: "record_id"},
	})
	checkExc(exceptions("cloud"), map[string]exc{
		"5/0": {Stage: "mediate", Code: "MEDIATION_FAILED", Field: "service"},
		"6/0": {Stage: "mediate", Code: "BAD_QUANTITY", Field: "bytes"},
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
