package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/codes"
)

func TestNormalizeThenException(t *testing.T) {
	cfg, _ := clientcfg.Open("")
	norm := &normalizeProc{cfg: cfg, stage: "mediate", now: func() time.Time {
		return time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC)
	}}
	exc := &exceptionProc{stage: "mediate", code: string(codes.MediationFailed)}
	ctx := context.Background()

	in := service.NewMessage([]byte(`{"client":"c","file_id":"f","line":9,"fields":{"record_id":"r9","account_id":"A","usage_type":"V","quantity":"ten","usage_time":"2026-10-01T00:00:00Z"}}`))
	out, err := norm.Process(ctx, in)
	if err != nil || len(out) != 1 || out[0].GetError() == nil {
		t.Fatalf("normalize: %v %v", out, err)
	}
	out, err = exc.Process(ctx, out[0])
	if err != nil || len(out) != 1 || out[0].GetError() != nil {
		t.Fatalf("exception: %v %v", out, err)
	}
	b, _ := out[0].AsBytes()
	var m exceptionMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Client != "c" || m.FileID != "f" || m.Line != 9 || m.RecordID != "r9" || m.Code != "BAD_QUANTITY" ||
		m.Field != "quantity" || m.Stage != "mediate" {
		t.Fatalf("exception message = %+v", m)
	}
	var rec map[string]string
	if err := json.Unmarshal(m.Record, &rec); err != nil || rec["quantity"] != "ten" {
		t.Fatalf("record = %s", m.Record)
	}
}

func TestExceptionDefaultCodeAndPassThrough(t *testing.T) {
	exc := &exceptionProc{stage: "mediate", code: string(codes.MediationFailed)}
	ctx := context.Background()
	ok := service.NewMessage([]byte(`{"x":1}`))
	out, _ := exc.Process(ctx, ok)
	if b, _ := out[0].AsBytes(); string(b) != `{"x":1}` {
		t.Fatalf("a message without error changed: %s", b)
	}
	// A failure from a Bloblang rule carries no code: the default applies.
	bad := service.NewMessage([]byte(`{"client":"c","file_id":"f","line":3,"fields":{"record_id":"r3"}}`))
	bad.SetError(errors.New("mapping failed: field cdr_type: expected string"))
	out, _ = exc.Process(ctx, bad)
	b, _ := out[0].AsBytes()
	var m exceptionMsg
	_ = json.Unmarshal(b, &m)
	if m.Code != "MEDIATION_FAILED" || m.Message != "mapping failed: field cdr_type: expected string" || m.Line != 3 {
		t.Fatalf("exception = %+v", m)
	}
	// Garbage is kept readable rather than lost.
	junk := service.NewMessage([]byte("\x00not json"))
	junk.SetError(errors.New("boom"))
	out, _ = exc.Process(ctx, junk)
	b, _ = out[0].AsBytes()
	_ = json.Unmarshal(b, &m)
	var rec map[string]string
	if err := json.Unmarshal(m.Record, &rec); err != nil || rec["raw"] != "\x00not json" {
		t.Fatalf("record = %s", m.Record)
	}
}

func TestSpecsLint(t *testing.T) {
	env := service.GlobalEnvironment()
	for _, y := range []string{
		"vivace_normalize: {}",
		"vivace_exception: { stage: rate }",
		"vivace_lookup: { dsn: 'postgres://db/vivace', lookup: msisdn, key: this.fields.msisdn, set: { account_id: account_id } }",
		"vivace_split: { parts: [ { name: a, mapping: 'root.usage_type = \"A\"' }, { when: 'true', mapping: 'root = {}' } ] }",
	} {
		if err := env.NewStreamBuilder().AddProcessorYAML(y); err != nil {
			t.Fatal(err)
		}
	}
	b := env.NewStreamBuilder()
	if err := b.AddProcessorYAML(`vivace_exception: { default_code: NOT_A_CODE }`); err == nil {
		t.Fatal("an unknown default_code passed the lint rule")
	}
}

func TestFilterMarksAndNormalizeLeavesAlone(t *testing.T) {
	ctx := context.Background()
	exec, err := bloblang.Parse(`this.fields.account_id.has_prefix("TEST-")`)
	if err != nil {
		t.Fatal(err)
	}
	filter := &filterProc{check: exec, reason: "test traffic", stage: "mediate"}
	cfg, _ := clientcfg.Open("")
	norm := &normalizeProc{cfg: cfg, stage: "mediate", now: time.Now}
	exc := &exceptionProc{stage: "mediate", code: string(codes.MediationFailed)}
	run := func(body string) *service.Message {
		msg := service.NewMessage([]byte(body))
		for _, p := range []service.Processor{filter, norm, exc} {
			out, err := p.Process(ctx, msg)
			if err != nil || len(out) != 1 {
				t.Fatalf("%T: %v %v", p, out, err)
			}
			msg = out[0]
		}
		return msg
	}
	b, _ := run(`{"client":"c","file_id":"f","line":4,"fields":{"record_id":"r4","account_id":"TEST-9"}}`).AsBytes()
	var m exceptionMsg
	if err := json.Unmarshal(b, &m); err != nil || m.Code != "FILTERED" || m.Message != "test traffic" || m.Line != 4 {
		t.Fatalf("filtered record became %s (%v)", b, err)
	}
	// A check that cannot be evaluated fails the record, naming why.
	b, _ = run(`{"client":"c","file_id":"f","line":5,"fields":{"record_id":"r5"}}`).AsBytes()
	if err := json.Unmarshal(b, &m); err != nil || m.Code != "MEDIATION_FAILED" || !strings.Contains(m.Message, "filter check") {
		t.Fatalf("unreadable check gave %s (%v)", b, err)
	}
}

// Process runs the normal-form checks on one message, as a batch of one.
func (p *normalizeProc) Process(ctx context.Context, msg *service.Message) (service.MessageBatch, error) {
	out, err := p.ProcessBatch(ctx, service.MessageBatch{msg})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}
