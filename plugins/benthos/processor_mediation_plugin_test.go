package benthos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
	"vivace.dev/vivace/plugins/mediation"
)

// buildTelco builds the telco example plugin and returns its path and
// SHA-256.
func buildTelco(t *testing.T, dir string) (string, string) {
	t.Helper()
	bin := filepath.Join(dir, "telco")
	cmd := exec.Command("go", "build", "-o", bin, "../mediation/clients/telco")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the telco plugin: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return bin, hex.EncodeToString(sum[:])
}

func rawMsg(client string, line int, fields string) *service.Message {
	m := service.NewMessage(fmt.Appendf(nil, `{"client":%q,"file_id":"f1","line":%d,"fields":%s}`, client, line, fields))
	m.MetaSetMut(metaClient, client)
	m.MetaSetMut(metaFileID, "f1")
	m.MetaSetMut(metaLine, fmt.Sprint(line))
	return m
}

func TestMediationPluginProcessor(t *testing.T) {
	dir := t.TempDir()
	bin, sum := buildTelco(t, dir)
	settings := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(settings, fmt.Appendf(nil, `
clients:
  acme:
    plugin:
      path: %s
      sha256: %s
      timeout: 5s
      retries: 1
      config:
        test_msisdn_prefixes: ["4479000"]
  demo:
    validation: { max_age: 87600h }
`, filepath.Base(bin), sum), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcfg.Open(settings)
	if err != nil {
		t.Fatal(err)
	}
	proc := newMediationPluginProc(cfg, "mediate", service.MockResources())
	t.Cleanup(func() { _ = proc.Close(context.Background()) })
	norm := &normalizeProc{cfg: cfg, stage: "mediate", now: func() time.Time { return time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC) }}

	upstream := rawMsg("acme", 6, `{"call_id":"c6"}`)
	upstream.SetError(errors.New("failed by a rule"))
	batch := service.MessageBatch{
		rawMsg("acme", 2, `{"call_id":"c2","msisdn":"447700900123","duration_sec":"61","start_time":"2026-10-01 08:00:00"}`),
		rawMsg("demo", 3, `{"record_id":"d3","account_id":"A1","usage_type":"VOICE","quantity":"1","usage_time":"2026-10-01T08:00:00Z"}`),
		rawMsg("acme", 4, `{"call_id":"c4","msisdn":"447700900123","duration_sec":"10","start_time":"2026-10-01T09:00:00Z","roaming":"yes"}`),
		rawMsg("acme", 5, `{"call_id":"c5","msisdn":"4479000001","duration_sec":"10","start_time":"2026-10-01T09:00:00Z"}`),
		upstream,
		rawMsg("acme", 7, `{"call_id":"c7","msisdn":"447700900123","duration_sec":"ten","start_time":"2026-10-01T09:00:00Z"}`),
		// An escape: read by encoding/json rather than usage.ScanRaw.
		rawMsg("acme", 8, `{"call_id":"c\u00e98 \"x\"","msisdn":"447700900123","duration_sec":"1","start_time":"2026-10-01T09:00:00Z"}`),
	}
	outs, err := proc.ProcessBatch(context.Background(), batch)
	if err != nil || len(outs) != 1 {
		t.Fatalf("ProcessBatch: %v, %d batches", err, len(outs))
	}
	out := outs[0]
	if len(out) != 8 {
		t.Fatalf("%d messages, want 8 (the roaming call split in two)", len(out))
	}
	meta := func(m *service.Message, k string) string { v, _ := m.MetaGet(k); return v }

	// Mediated records go on through the normal-form checks.
	for _, c := range []struct {
		i                             int
		recordID, usageType, qty, key string
		line                          int64
		part                          int
	}{
		{0, "c2", "VOICE", "2", "447700900123", 2, 0},
		{1, "d3", "VOICE", "1", "", 3, 0}, // no plugin: unchanged
		{2, "c4", "VOICE", "1", "447700900123", 4, 0},
		{3, "c4-roaming", "VOICE_ROAMING", "1", "447700900123", 4, 1},
		{7, "cé8 \"x\"", "VOICE", "1", "447700900123", 8, 0},
	} {
		m := out[c.i]
		if m.GetError() != nil {
			t.Fatalf("message %d failed: %v", c.i, m.GetError())
		}
		if c.key != "" && (meta(m, metaKey) != c.key || meta(m, metaClient) != "acme" || meta(m, metaFileID) != "f1") {
			t.Errorf("message %d metadata: key %q client %q file %q", c.i, meta(m, metaKey), meta(m, metaClient), meta(m, metaFileID))
		}
		nb, err := norm.Process(context.Background(), m)
		if err != nil || nb[0].GetError() != nil {
			t.Fatalf("message %d normal form: %v %v", c.i, err, nb[0].GetError())
		}
		b, _ := nb[0].AsBytes()
		var rec struct {
			Line      int64  `json:"line"`
			Part      int    `json:"part"`
			RecordID  string `json:"record_id"`
			UsageType string `json:"usage_type"`
			Quantity  string `json:"quantity"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.RecordID != c.recordID || rec.UsageType != c.usageType || rec.Quantity != c.qty || rec.Line != c.line || rec.Part != c.part {
			t.Errorf("message %d: %s", c.i, b)
		}
	}

	// Filtered: marked FILTERED with its reason for the exceptions route;
	// the normal-form checks leave it alone.
	f := out[4]
	if f.GetError() == nil || meta(f, metaCode) != "FILTERED" || meta(f, metaMessage) != "test call: msisdn 4479000001 has test prefix 4479000" {
		t.Errorf("test call: error %v, code %q, message %q", f.GetError(), meta(f, metaCode), meta(f, metaMessage))
	}
	if nb, _ := norm.Process(context.Background(), f); meta(nb[0], metaCode) != "FILTERED" {
		t.Errorf("normalize replaced a filtered record's code with %q", meta(nb[0], metaCode))
	}

	// Failed upstream: untouched.
	if out[5] != upstream || out[5].GetError().Error() != "failed by a rule" {
		t.Errorf("the failed record changed: %v", out[5].GetError())
	}
	// Failed by the plugin: its code and field, and normalize keeps them.
	bad := out[6]
	nb, _ := norm.Process(context.Background(), bad)
	if meta(nb[0], metaCode) != string(codes.BadQuantity) || meta(nb[0], metaField) != "duration_sec" || nb[0].GetError() == nil {
		t.Errorf("bad duration: code %q field %q error %v", meta(bad, metaCode), meta(bad, metaField), bad.GetError())
	}
}

func TestMediationPluginProcessorWithoutPlugins(t *testing.T) {
	cfg, _ := clientcfg.Open("")
	proc := newMediationPluginProc(cfg, "mediate", service.MockResources())
	in := service.MessageBatch{rawMsg("demo", 2, `{"record_id":"r"}`)}
	outs, err := proc.ProcessBatch(context.Background(), in)
	if err != nil || len(outs) != 1 || len(outs[0]) != 1 || outs[0][0] != in[0] {
		t.Fatalf("without plugins the batch changed: %v %v", outs, err)
	}
}

func TestMediationPluginProcessorBadChecksum(t *testing.T) {
	dir := t.TempDir()
	bin, _ := buildTelco(t, dir)
	settings := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(settings, fmt.Appendf(nil, "clients:\n  acme:\n    plugin: { path: %s, sha256: %064d }\n", bin, 0), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcfg.Open(settings)
	if err != nil {
		t.Fatal(err)
	}
	proc := newMediationPluginProc(cfg, "mediate", service.MockResources())
	t.Cleanup(func() { _ = proc.Close(context.Background()) })
	outs, err := proc.ProcessBatch(context.Background(), service.MessageBatch{
		rawMsg("acme", 2, `{"call_id":"c2"}`), rawMsg("acme", 3, `{"call_id":"c3"}`)})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range outs[0] {
		code, _ := m.MetaGet(metaCode)
		msg, _ := m.MetaGet(metaMessage)
		if m.GetError() == nil || code != string(codes.PluginError) {
			t.Errorf("record %d: code %q, error %v", i, code, m.GetError())
		}
		if want := fmt.Sprintf("client acme, plugin %s, line %d: batch of 2 records failed after 1 attempt(s): binary not started: checksum does not match", bin, i+2); len(msg) < len(want) || msg[:len(want)] != want {
			t.Errorf("record %d message %q, want it to start %q", i, msg, want)
		}
	}
}

// appendRawJSON writes what json.Marshal writes for a usage.Raw.
func TestAppendRawJSONMatchesEncodingJSON(t *testing.T) {
	for _, c := range []struct {
		src    usage.Source
		fields map[string]string
	}{
		{usage.Source{Client: "acme", FileID: "f1", Line: 2}, map[string]string{"b": "2", "a": "1", "record_id": "r"}},
		{usage.Source{Client: "a\"c<m>e&", FileID: "f\\1", Line: -3, Part: 1, Parts: 2}, map[string]string{
			"tab\t": "new\nline", "ü": "ÿ\u2028", "bad": "\xff\xfe", "ctl": "\x01\x7f", "": ""}},
		{usage.Source{}, map[string]string{}},
	} {
		want, err := json.Marshal(usage.Raw{Source: c.src, Fields: c.fields})
		if err != nil {
			t.Fatal(err)
		}
		var f mediation.Fields
		for k, v := range c.fields {
			f = append(f, mediation.Field{Name: k, Value: v})
		}
		if got := appendRawJSON(nil, c.src, f); string(got) != string(want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
