package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/usage"
)

const callSplit = `
when: 'this.fields.service == "MOC"'
parts:
  - name: airtime
    mapping: |
      root.usage_type = "VOICE"
      root.quantity = this.fields.duration
  - name: roaming
    when: 'this.fields.roaming == "Y"'
    mapping: |
      root.usage_type = "ROAMING"
      root.quantity = this.fields.duration
      root.account_id = this.fields.roaming_account.or(this.fields.account_id)
      root.duration = null
`

func newTestSplit(t *testing.T, yaml string) *splitProc {
	t.Helper()
	conf, err := splitSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newSplitProc(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func splitRun(t *testing.T, p *splitProc, msg *service.Message) (service.MessageBatch, []usage.Raw) {
	t.Helper()
	out, err := p.Process(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	raws := make([]usage.Raw, len(out))
	for i, m := range out {
		b, _ := m.AsBytes()
		if err := json.Unmarshal(b, &raws[i]); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return out, raws
}

func call(t *testing.T, roaming string, extra ...string) *service.Message {
	f := map[string]string{"record_id": "c1", "account_id": "A1", "service": "MOC", "duration": "61",
		"usage_time": "2026-10-01T08:00:00Z", "roaming": roaming}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	m := recordMsg(t, "telco", 7, f)
	m.MetaSetMut(metaClient, "telco")
	m.MetaSetMut(metaLine, "7")
	return m
}

func TestSplitTwoParts(t *testing.T) {
	p := newTestSplit(t, callSplit)
	out, raws := splitRun(t, p, call(t, "Y", "roaming_account", "R-0009", "duration", "0061"))
	if len(out) != 2 {
		t.Fatalf("%d parts, want 2", len(out))
	}
	air, roam := raws[0], raws[1]
	if air.Source != (usage.Source{Client: "telco", FileID: "f1", Line: 7, Part: 0, Parts: 2}) ||
		roam.Source != (usage.Source{Client: "telco", FileID: "f1", Line: 7, Part: 1, Parts: 2}) {
		t.Fatalf("sources %+v %+v", air.Source, roam.Source)
	}
	if f := air.Fields; f["record_id"] != "c1" || f["usage_type"] != "VOICE" || f["quantity"] != "0061" || f["account_id"] != "A1" || f["duration"] != "0061" {
		t.Fatalf("airtime %v", f)
	}
	if f := roam.Fields; f["record_id"] != "c1-1" || f["usage_type"] != "ROAMING" || f["quantity"] != "0061" || f["account_id"] != "R-0009" {
		t.Fatalf("roaming %v", f)
	}
	if _, ok := roam.Fields["duration"]; ok {
		t.Fatal("a null in the mapping did not remove the field")
	}
	for i, want := range []string{"A1", "R-0009"} {
		if k, _ := out[i].MetaGetMut(metaKey); k != want {
			t.Fatalf("part %d: vivace_key %v, want %s", i, k, want)
		}
		if l, _ := out[i].MetaGetMut(metaLine); l != "7" {
			t.Fatalf("part %d: vivace_line %v", i, l)
		}
	}
}

func TestSplitOnePartIsNoSplit(t *testing.T) {
	p := newTestSplit(t, callSplit)
	out, raws := splitRun(t, p, call(t, "N"))
	if len(out) != 1 || out[0].GetError() != nil {
		t.Fatalf("%d messages, error %v", len(out), out[0].GetError())
	}
	if s := raws[0].Source; s.Part != 0 || s.Parts != 0 || s.Line != 7 {
		t.Fatalf("source %+v", s)
	}
	if f := raws[0].Fields; f["record_id"] != "c1" || f["usage_type"] != "VOICE" || f["quantity"] != "61" {
		t.Fatalf("fields %v", f)
	}
	// A record the rule is not for passes unchanged.
	other := recordMsg(t, "telco", 8, map[string]string{"record_id": "s1", "service": "SMS"})
	out, raws = splitRun(t, p, other)
	if len(out) != 1 || out[0].GetError() != nil || raws[0].Fields["usage_type"] != "" {
		t.Fatalf("not selected: %v %v", raws, out[0].GetError())
	}
	// So does one already failed.
	failed := call(t, "Y")
	failed.SetError(errors.New("earlier"))
	if out, _ := splitRun(t, p, failed); len(out) != 1 || out[0].GetError().Error() != "earlier" {
		t.Fatal("a failed record was split")
	}
}

func TestSplitNoPartApplies(t *testing.T) {
	p := newTestSplit(t, `
parts:
  - { name: airtime, when: 'this.fields.duration != "0"', mapping: 'root.usage_type = "VOICE"' }
  - { name: roaming, when: 'this.fields.roaming == "Y"', mapping: 'root.usage_type = "ROAMING"' }
`)
	out, _ := splitRun(t, p, call(t, "N", "duration", "0"))
	if len(out) != 1 {
		t.Fatalf("%d messages", len(out))
	}
	checkFailed(t, out[0], "MEDIATION_FAILED", "", "split: none of its parts applies")
	if b, _ := out[0].AsBytes(); !strings.Contains(string(b), `"record_id":"c1"`) {
		t.Fatalf("the failed record lost its body: %s", b)
	}
	// Only the second part: the record becomes it, unsplit, with its own id.
	out, raws := splitRun(t, p, call(t, "Y", "duration", "0"))
	if len(out) != 1 || out[0].GetError() != nil || raws[0].Fields["usage_type"] != "ROAMING" || raws[0].Fields["record_id"] != "c1" {
		t.Fatalf("second part only: %+v %v", raws, out[0].GetError())
	}
}

func TestSplitRecordIDs(t *testing.T) {
	p := newTestSplit(t, `
parts:
  - mapping: 'root.usage_type = "A"'
  - mapping: 'root.usage_type = "B"'
  - { mapping: 'root.usage_type = "C"', when: 'this.fields.roaming == "Y"' }
  - mapping: |
      root.usage_type = "D"
      root.record_id = this.fields.record_id + "-fee"
`)
	_, raws := splitRun(t, p, call(t, "N"))
	var ids []string
	for i, r := range raws {
		ids = append(ids, r.Fields["usage_type"]+"="+r.Fields["record_id"])
		if r.Part != i || r.Parts != 3 {
			t.Fatalf("part %d: %+v", i, r.Source)
		}
	}
	if got := strings.Join(ids, " "); got != "A=c1 B=c1-1 D=c1-fee" {
		t.Fatalf("ids %s", got)
	}
	_, raws = splitRun(t, p, call(t, "Y"))
	if got := raws[2].Fields["record_id"] + " " + raws[3].Fields["record_id"]; got != "c1-2 c1-fee" {
		t.Fatalf("ids with all four parts: %s", got)
	}

	dup := newTestSplit(t, `
parts:
  - mapping: 'root.usage_type = "A"'
  - mapping: 'root.record_id = this.fields.record_id'
`)
	out, _ := splitRun(t, dup, call(t, "N"))
	checkFailed(t, out[0], "MEDIATION_FAILED", "record_id", `parts 0 and 1 have the same record_id "c1"`)
}

func TestSplitFailures(t *testing.T) {
	p := newTestSplit(t, callSplit)
	// A part of a line a plugin split already is not split again.
	m := service.NewMessage([]byte(`{"client":"telco","file_id":"f1","line":7,"part":1,"parts":2,"fields":{"record_id":"c1","service":"MOC","duration":"1","roaming":"Y"}}`))
	out, _ := splitRun(t, p, m)
	checkFailed(t, out[0], "MEDIATION_FAILED", "", "already part 1 of 2")
	m = service.NewMessage([]byte(`{"client":"telco","file_id":"f1","line":"seven","fields":{"service":"MOC"}}`))
	if out, err := p.Process(context.Background(), m); err != nil || len(out) != 1 {
		t.Fatalf("%v %v", out, err)
	}
	checkFailed(t, m, "MALFORMED_RECORD", "", "line: seven is not an integer")

	bad := newTestSplit(t, `
parts:
  - { name: airtime, mapping: 'root.usage_type = "VOICE"' }
  - { name: fee, mapping: 'root.quantity = this.fields.duration.int64() + 1' }
  - { name: float, when: 'this.fields.roaming == "F"', mapping: 'root.quantity = this.fields.duration.number() / 60' }
  - { name: broken, when: 'this.fields.roaming == "Y"', mapping: 'root.qualifier_1 = this.fields.nothing.uppercase()' }
  - { name: nested, when: 'this.fields.roaming == "X"', mapping: 'root.qualifier_2 = { "a": 1 }' }
  - { name: scalar, when: 'this.fields.roaming == "S"', mapping: 'root = "x"' }
`)
	out, raws := splitRun(t, bad, call(t, "N"))
	if len(out) != 2 || raws[1].Fields["quantity"] != "62" {
		t.Fatalf("number from a mapping: %+v", raws)
	}
	for roaming, want := range map[string]string{
		"Y": "split, part broken, mapping:",
		"X": "split, part nested, mapping: field qualifier_2: a map",
		"S": "split, part scalar, mapping: gave a string, not an object",
		"F": "split, part float, mapping: field quantity: 1.0166666666666666 is a floating-point number",
	} {
		out, _ = splitRun(t, bad, call(t, roaming))
		if len(out) != 1 {
			t.Fatalf("%s: %d messages", roaming, len(out))
		}
		checkFailed(t, out[0], "MEDIATION_FAILED", map[string]string{"X": "qualifier_2", "F": "quantity"}[roaming], want)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"parts: []", "parts: empty"},
		{"parts: [ { name: a, mapping: 'root.x = 1' }, { name: a, mapping: 'root.y = 1' } ]", `parts[1].name: "a" names two parts`},
	} {
		conf, err := splitSpec().ParseYAML(tc.yaml, nil)
		if err == nil {
			_, err = newSplitProc(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// BenchmarkSplit measures roaming calls split into airtime and roaming,
// one message at a time as the pipeline hands them over.
func BenchmarkSplit(b *testing.B) {
	conf, err := splitSpec().ParseYAML(callSplit, nil)
	if err != nil {
		b.Fatal(err)
	}
	p, err := newSplitProc(conf, service.MockResources())
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"client":"telco","file_id":"f1","line":7,"fields":{"record_id":"c1","account_id":"A1","service":"MOC","duration":"61","usage_time":"2026-10-01T08:00:00Z","roaming":"Y","msisdn":"4917001","cell":"26201-1234"}}`)
	b.ReportAllocs()
	for b.Loop() {
		out, err := p.Process(context.Background(), service.NewMessage(body))
		if err != nil || len(out) != 2 {
			b.Fatal(err, len(out))
		}
	}
}
