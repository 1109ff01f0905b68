package benthos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/rulestore"
	"vivace.dev/vivace/internal/store/usagestore"
)

// correlateYAML is the telco rule of the docs: start, intermediate and
// stop records of one call joined by call id.
const correlateYAML = `
name: %s
dsn: %s
when: 'this.client == "%s" && this.fields.record_type.or("") != "FULL"'
key: this.fields.call_id
complete: 'this.records.any(r -> r.fields.record_type == "START") && this.records.any(r -> r.fields.record_type == "STOP")'
merge: |
  let start = this.records.filter(r -> r.fields.record_type == "START").index(0).or(this.records.index(0))
  root = $start.fields.without("record_type", "duration")
  root.record_id = "call-" + this.key
  root.quantity = this.records.map_each(r -> r.fields.duration).decimal_sum()
window: 30m
on_timeout: %s
resend_after: 10m
`

type corrTest struct {
	t      *testing.T
	dsn    string
	rule   string
	client string
	file   string
	now    time.Time
}

func newCorrTest(t *testing.T) *corrTest {
	suffix := store.NewID()[24:]
	return &corrTest{t: t, dsn: pgtest.DSN(t), rule: "calls-" + suffix, client: "telco-" + suffix,
		file: store.NewID(), now: time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)}
}

// proc builds a processor instance, as a (re)started stage would.
func (c *corrTest) proc(onTimeout string) *correlateProc {
	c.t.Helper()
	conf, err := correlateSpec().ParseYAML(fmt.Sprintf(correlateYAML, c.rule, c.dsn, c.client, onTimeout), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	p, err := newCorrelateProc(conf, service.MockResources())
	if err != nil {
		c.t.Fatal(err)
	}
	p.now = func() time.Time { return c.now }
	c.t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func (c *corrTest) cdr(line int, typ, callID, dur string) *service.Message {
	m := service.NewMessage([]byte(fmt.Sprintf(`{"client":%q,"file_id":%q,"line":%d,"fields":{"record_id":"r%d","account_id":"A1","usage_type":"VOICE","usage_time":"2026-10-01T08:%02d:00Z","record_type":%q,"call_id":%q,"duration":%q}}`,
		c.client, c.file, line, line, line, typ, callID, dur)))
	m.MetaSetMut(metaKey, "A1")
	return m
}

func tick() *service.Message {
	m := service.NewMessage([]byte(`{}`))
	m.MetaSetMut(metaTick, "correlate")
	return m
}

// run processes one batch and returns its output (one batch or none).
func (c *corrTest) run(p *correlateProc, msgs ...*service.Message) service.MessageBatch {
	c.t.Helper()
	out, err := p.ProcessBatch(context.Background(), service.MessageBatch(msgs))
	if err != nil {
		c.t.Fatal(err)
	}
	if len(out) > 1 {
		c.t.Fatalf("%d batches out", len(out))
	}
	if len(out) == 0 {
		return nil
	}
	for _, m := range out[0] {
		if _, ok := m.MetaGetMut(metaTick); ok {
			c.t.Fatal("a tick was passed on")
		}
	}
	return out[0]
}

// outMsg is an output message read back: its body and routing.
type outMsg struct {
	line             int64
	code, msg, field string
	fields           map[string]string
	key              string
}

func read(t *testing.T, batch service.MessageBatch) []outMsg {
	t.Helper()
	var outs []outMsg
	for _, m := range batch {
		b, _ := m.AsBytes()
		var raw struct {
			Line   int64             `json:"line"`
			Fields map[string]string `json:"fields"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatalf("output %s: %v", b, err)
		}
		o := outMsg{line: raw.Line, fields: raw.Fields}
		if m.GetError() != nil {
			code, _ := m.MetaGetMut(metaCode)
			msg, _ := m.MetaGetMut(metaMessage)
			o.code, o.msg = code.(string), msg.(string)
			if f, ok := m.MetaGetMut(metaField); ok {
				o.field = f.(string)
			}
		}
		if k, ok := m.MetaGetMut(metaKey); ok {
			o.key = k.(string)
		}
		outs = append(outs, o)
	}
	slices.SortFunc(outs, func(a, b outMsg) int { return int(a.line - b.line) })
	return outs
}

func TestCorrelateCompletesAcrossBatchesAndCountsAddUp(t *testing.T) {
	ctx := context.Background()
	c := newCorrTest(t)
	p := c.proc("emit")

	// A FULL record and another client's pass untouched; START and
	// INTERMEDIATE are held.
	other := service.NewMessage([]byte(`{"client":"other","file_id":"f","line":1,"fields":{"call_id":"x"}}`))
	out := read(t, c.run(p, c.cdr(2, "START", "c1", "60"), c.cdr(3, "FULL", "c2", "5"),
		c.cdr(4, "INTERMEDIATE", "c1", "60.5"), other))
	if len(out) != 2 || out[0].line != 1 || out[1].line != 3 || out[1].code != "" {
		t.Fatalf("first batch: %+v", out)
	}
	// STOP in the next batch completes the call.
	c.now = c.now.Add(20 * time.Minute)
	batch := c.run(p, c.cdr(7, "STOP", "c1", "12"))
	out = read(t, batch)
	if len(out) != 3 {
		t.Fatalf("second batch: %+v", out)
	}
	m := out[0]
	if m.line != 2 || m.code != "" || m.key != "A1" || m.fields["quantity"] != "132.5" || m.fields["record_id"] != "call-c1" ||
		m.fields["usage_time"] != "2026-10-01T08:02:00Z" || m.fields["record_type"] != "" || m.fields["correlation"] != "" {
		t.Fatalf("merged record: %+v", m)
	}
	for _, f := range out[1:] {
		if f.code != "FILTERED" || f.msg != fmt.Sprintf("correlated into %s line 2 (call_id=c1)", c.file) {
			t.Fatalf("member: %+v", f)
		}
	}

	// Accounting: the file's three correlated lines end as one outcome
	// each. The filtered ones take the exceptions route; the merged record
	// stands in for what the rate stage writes (here: an exception).
	st := pgtest.Store(t)
	f := files.File{FileID: c.file, Client: c.client, Name: "cdr.csv", Source: "http", Location: "/a/cdr.csv",
		Format: "csv", SizeBytes: 1, SHA256: c.file}
	if _, err := filestore.New(st).RegisterFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := filestore.New(st).ClaimFile(ctx, "test", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got.FileID == c.file {
			break
		}
	}
	if _, err := filestore.New(st).FileRead(ctx, c.file, 3); err != nil {
		t.Fatal(err)
	}
	var exs []exceptions.Exception
	exc := &exceptionProc{stage: "mediate", code: string(codes.MediationFailed)}
	for _, msg := range batch {
		if msg.GetError() == nil {
			fail(msg, "rate", codes.Errorf(codes.UnknownAccount, "account_id", "unknown account A1"))
		}
		res, err := exc.Process(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := res[0].AsBytes()
		var em exceptionMsg
		if err := json.Unmarshal(b, &em); err != nil {
			t.Fatal(err)
		}
		exs = append(exs, em.exception())
	}
	if _, err := usagestore.New(st).InsertExceptions(ctx, exs); err != nil {
		t.Fatal(err)
	}
	got, err := filestore.New(st).GetFile(ctx, c.file)
	if err != nil || got.Status != files.Done || got.Records == nil || *got.Records != 3 ||
		got.Exceptions != 1 || got.Filtered != 2 || got.MURs != 0 {
		t.Fatalf("file after correlation: %+v %v", got, err)
	}
}

func TestCorrelateReplayChangesNothing(t *testing.T) {
	c := newCorrTest(t)
	p := c.proc("emit")
	if out := c.run(p, c.cdr(2, "START", "c1", "60"), c.cdr(3, "INTERMEDIATE", "c1", "60")); len(out) != 0 {
		t.Fatalf("held records gave output: %+v", read(t, out))
	}
	// The same records again (Kafka redelivers the batch): nothing.
	if out := c.run(p, c.cdr(2, "START", "c1", "60"), c.cdr(3, "INTERMEDIATE", "c1", "60")); len(out) != 0 {
		t.Fatalf("replay gave output: %+v", read(t, out))
	}
	out := read(t, c.run(p, c.cdr(4, "STOP", "c1", "1"), c.cdr(2, "START", "c1", "60")))
	if len(out) != 3 || out[0].fields["quantity"] != "121" {
		t.Fatalf("completion with a replay in the batch: %+v", out)
	}
	// Replays after the emission (the reader re-reads the file): nothing,
	// and no new group is opened.
	if out := c.run(p, c.cdr(2, "START", "c1", "60"), c.cdr(4, "STOP", "c1", "1")); len(out) != 0 {
		t.Fatalf("replay after emission gave output: %+v", read(t, out))
	}
	gs, err := rulestore.New(pgtest.Store(t)).CorrelationGroups(context.Background(), c.rule, c.client)
	if err != nil || len(gs) != 1 || gs[0].Emissions != 1 {
		t.Fatalf("groups: %+v %v", gs, err)
	}
}

func TestCorrelateTimeout(t *testing.T) {
	for _, onTimeout := range []string{"emit", "fail"} {
		t.Run(onTimeout, func(t *testing.T) {
			c := newCorrTest(t)
			p := c.proc(onTimeout)
			if out := c.run(p, c.cdr(2, "START", "c1", "60"), c.cdr(5, "INTERMEDIATE", "c1", "30")); len(out) != 0 {
				t.Fatalf("held records gave output: %+v", read(t, out))
			}
			// A tick before the deadline: nothing, and the tick is consumed
			// (run checks that none comes out).
			c.now = c.now.Add(29 * time.Minute)
			if out := c.run(p, tick()); len(out) != 0 {
				t.Fatalf("tick before the deadline: %+v", read(t, out))
			}
			c.now = c.now.Add(time.Minute)
			out := read(t, c.run(p, tick()))
			if len(out) != 2 {
				t.Fatalf("tick at the deadline: %+v", out)
			}
			switch onTimeout {
			case "emit":
				if out[0].code != "" || out[0].fields["correlation"] != "incomplete" || out[0].fields["quantity"] != "90" ||
					out[1].code != "FILTERED" {
					t.Fatalf("timed out, emitted: %+v", out)
				}
			case "fail":
				for _, o := range out {
					if o.code != "MEDIATION_FAILED" || !strings.Contains(o.msg, "call_id=c1 timed out 30m0s") ||
						!strings.Contains(o.msg, fmt.Sprintf("2 records (file %s line 2, 5)", c.file)) ||
						o.fields["record_type"] == "" {
						t.Fatalf("timed out, failed: %+v", o)
					}
				}
			}
			// A late STOP opens a new group rather than joining the emitted
			// one; that group times out in its turn (and the first group,
			// whose outcome nobody recorded, is sent again).
			if out := c.run(p, c.cdr(9, "STOP", "c1", "1")); len(out) != 0 {
				t.Fatalf("late stop: %+v", read(t, out))
			}
			c.now = c.now.Add(30 * time.Minute)
			again := read(t, c.run(p, tick()))
			if len(again) != 3 || again[2].line != 9 || fmt.Sprint(again[:2]) != fmt.Sprint(out) {
				t.Fatalf("late stop timed out: %+v", again)
			}
		})
	}
}

func TestCorrelateRestartCompletesOpenGroup(t *testing.T) {
	c := newCorrTest(t)
	first := c.proc("emit")
	if out := c.run(first, c.cdr(2, "START", "c1", "60")); len(out) != 0 {
		t.Fatal("held record gave output")
	}
	_ = first.Close(context.Background())
	second := c.proc("emit")
	c.now = c.now.Add(time.Minute)
	out := read(t, c.run(second, c.cdr(3, "STOP", "c1", "10")))
	if len(out) != 2 || out[0].line != 2 || out[0].fields["quantity"] != "70" || out[1].code != "FILTERED" {
		t.Fatalf("after restart: %+v", out)
	}
}

func TestCorrelateResendsUntilOutcomeRecorded(t *testing.T) {
	ctx := context.Background()
	c := newCorrTest(t)
	p := c.proc("emit")
	c.run(p, c.cdr(2, "START", "c1", "60"))
	emitted := read(t, c.run(p, c.cdr(3, "STOP", "c1", "10")))
	if len(emitted) != 2 {
		t.Fatalf("emission: %+v", emitted)
	}
	// The stage dies before the output is written: the messages are lost.
	_ = p.Close(ctx)
	p = c.proc("emit")
	c.now = c.now.Add(9 * time.Minute)
	if out := c.run(p, tick()); len(out) != 0 {
		t.Fatalf("resent before resend_after: %+v", read(t, out))
	}
	c.now = c.now.Add(2 * time.Minute)
	again := c.run(p, tick())
	if got := read(t, again); fmt.Sprint(got) != fmt.Sprint(emitted) {
		t.Fatalf("re-emitted %+v, want %+v", got, emitted)
	}
	// This time the output is written: the outcomes are recorded.
	st := pgtest.Store(t)
	var exs []exceptions.Exception
	for _, o := range read(t, again) {
		code, msg := o.code, o.msg
		if code == "" {
			code, msg = string(codes.UnknownAccount), "unknown account"
		}
		exs = append(exs, exceptions.Exception{Client: c.client, FileID: c.file, Line: o.line, Stage: "mediate",
			Code: codes.Code(code), Message: msg, Record: json.RawMessage(`{}`)})
	}
	if _, err := usagestore.New(st).InsertExceptions(ctx, exs); err != nil {
		t.Fatal(err)
	}
	c.now = c.now.Add(11 * time.Minute)
	if out := c.run(p, tick()); len(out) != 0 {
		t.Fatalf("resent after the outcome was recorded: %+v", read(t, out))
	}
	if gs, err := rulestore.New(st).CorrelationGroups(ctx, c.rule, c.client); err != nil || len(gs) != 0 {
		t.Fatalf("groups left after clean-up: %+v %v", gs, err)
	}
}

func TestCorrelateMissingKey(t *testing.T) {
	c := newCorrTest(t)
	p := c.proc("emit")
	out := read(t, c.run(p, c.cdr(2, "START", "", "60")))
	if len(out) != 1 || out[0].code != "MEDIATION_FAILED" || out[0].field != "call_id" ||
		!strings.Contains(out[0].msg, "call_id: the correlation key is missing or empty") {
		t.Fatalf("empty key: %+v", out)
	}
	m := service.NewMessage([]byte(fmt.Sprintf(`{"client":%q,"file_id":%q,"line":3,"fields":{"record_type":"START"}}`, c.client, c.file)))
	out = read(t, c.run(p, m))
	if len(out) != 1 || out[0].code != "MEDIATION_FAILED" || out[0].field != "call_id" {
		t.Fatalf("missing key: %+v", out)
	}
}

func TestCorrelateRefusesWhatIsNotARawRecord(t *testing.T) {
	c := newCorrTest(t)
	p := c.proc("emit")
	r := strings.NewReplacer("CLIENT", c.client, "FILE", c.file)
	for body, want := range map[string]string{
		`{"client":"CLIENT","file_id":"f1","line":2,"fields":{"call_id":"c1"}}`:                 "not a file id",
		`{"client":"CLIENT","file_id":"FILE","line":"two","fields":{"call_id":"c1"}}`:           "line",
		`{"client":"CLIENT","file_id":"FILE","line":2,"fields":{"call_id":"c1","duration":60}}`: "duration",
		`{"client":"CLIENT","file_id":"FILE","line":2}`:                                         "no fields",
	} {
		body = r.Replace(body)
		out := c.run(p, service.NewMessage([]byte(body)))
		if len(out) != 1 || out[0].GetError() == nil {
			t.Fatalf("%s: %d messages out, or not failed", body, len(out))
		}
		code, _ := out[0].MetaGetMut(metaCode)
		msg, _ := out[0].MetaGetMut(metaMessage)
		if code != "MALFORMED_RECORD" || !strings.Contains(msg.(string), want) {
			t.Errorf("%s: %v %v, want MALFORMED_RECORD naming %s", body, code, msg, want)
		}
	}
}

func TestCorrelateConfigErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		`{dsn: x, key: this.fields.c, complete: "true", merge: "root = {}", window: 1m}`:                            "name",
		`{dsn: x, name: x, key: this.fields.c, complete: "true", merge: "root = {}", window: 0s}`:                   "window",
		`{dsn: x, name: x, key: this.fields.c, complete: "true", merge: "root = {}", window: 1m, on_timeout: drop}`: "on_timeout",
	} {
		conf, err := correlateSpec().ParseYAML(yaml, nil)
		if err == nil {
			_, err = newCorrelateProc(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one naming %s", yaml, err, want)
		}
	}
}

// TestCorrelateStreamTicks runs the wiring of the example pipeline: a
// broker of the kafka input and a generate input of ticks. A call that
// never gets its STOP leaves on a tick once its window has passed, and no
// processor after vivace_correlate sees a tick.
func TestCorrelateStreamTicks(t *testing.T) {
	c := newCorrTest(t)
	addr := newCluster(t, "raw")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b, _ := c.cdr(2, "START", "c1", "60").AsBytes()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "raw", Key: []byte("A1"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sb := service.NewStreamBuilder()
	if err := sb.AddInputYAML(fmt.Sprintf(`broker:
  inputs:
    - %s
    - generate:
        interval: 20ms
        mapping: |
          meta vivace_tick = "correlate"
          root = {}
`, strings.ReplaceAll(inputYAML(addr, "raw", "g-"+c.rule, ""), "\n", "\n      "))); err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(fmt.Sprintf(correlateYAML, c.rule, c.dsn, c.client, "emit"), "window: 30m", "window: 1ms", 1)
	if err := sb.AddProcessorYAML("vivace_correlate:\n" + indent(yaml)); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddProcessorYAML(`mapping: 'root = if @vivace_tick != null { throw("a tick leaked") } else { this }'`); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	if err := sb.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		b, _ := m.AsBytes()
		s := string(b)
		if err := m.GetError(); err != nil {
			s = "error: " + err.Error()
		}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	s, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Run(context.Background()); close(done) }()
	waitFor(t, "the timed-out call", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if len(got) != 1 || !strings.Contains(got[0], `"correlation":"incomplete"`) || !strings.Contains(got[0], `"line":2`) {
		t.Fatalf("stream output: %q", got)
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}

// BenchmarkCorrelate runs batches of 1000 partial records through the
// processor against PostgreSQL: each batch completes the 500 calls the
// previous one opened (STOP) and opens 500 more (START).
func BenchmarkCorrelate(b *testing.B) {
	suffix := store.NewID()[24:]
	c := &corrTest{dsn: pgtest.DSN(b), rule: "bench-" + suffix, client: "telco-" + suffix,
		file: store.NewID(), now: time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)}
	conf, err := correlateSpec().ParseYAML(fmt.Sprintf(correlateYAML, c.rule, c.dsn, c.client, "emit"), nil)
	if err != nil {
		b.Fatal(err)
	}
	p, err := newCorrelateProc(conf, service.MockResources())
	if err != nil {
		b.Fatal(err)
	}
	p.now = func() time.Time { return c.now }
	defer p.Close(context.Background())
	const calls = 500
	line := 0
	batch := func(i int) service.MessageBatch {
		msgs := make(service.MessageBatch, 0, 2*calls)
		for k := 0; k < calls; k++ {
			line++
			if i > 0 {
				msgs = append(msgs, c.cdr(line, "STOP", fmt.Sprintf("c%d-%d", i-1, k), "30"))
				line++
			}
			msgs = append(msgs, c.cdr(line, "START", fmt.Sprintf("c%d-%d", i, k), "60"))
		}
		return msgs
	}
	ctx := context.Background()
	if _, err := p.ProcessBatch(ctx, batch(0)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		msgs := batch(i)
		out, err := p.ProcessBatch(ctx, msgs)
		if err != nil || len(out) != 1 || len(out[0]) != 2*calls {
			b.Fatalf("batch %d: %d batches, %v", i, len(out), err)
		}
	}
	b.ReportMetric(float64(b.N*2*calls)/b.Elapsed().Seconds(), "records/s")
}

func TestCorrelateForwardsTicksWhenTold(t *testing.T) {
	c := newCorrTest(t)
	p := c.proc("emit")
	p.forwardTicks = true
	out, err := p.ProcessBatch(context.Background(), service.MessageBatch{tick()})
	if err != nil || len(out) != 1 || len(out[0]) != 1 {
		t.Fatalf("forwarded: %v %v", out, err)
	}
	if _, ok := out[0][0].MetaGetMut(metaTick); !ok {
		t.Fatal("the forwarded message is not a tick")
	}
}

// flakyDB stands between a processor and PostgreSQL: until up is set it
// accepts connections and drops them at once, as a database that went
// away does; then it forwards them.
type flakyDB struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	up       bool
	attempts int
}

func newFlakyDB(t *testing.T, target string) *flakyDB {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyDB{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			up := f.up
			f.attempts++
			f.mu.Unlock()
			if !up {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", f.target)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c) }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	return f
}

func (f *flakyDB) tries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

func (f *flakyDB) bringUp() {
	f.mu.Lock()
	f.up = true
	f.mu.Unlock()
}

// TestCorrelateWaitsForTheDatabase: while the database cannot be reached,
// whether a batch's transaction committed is unknown, so its records are
// not failed (that could give a held record an exception too): the batch
// waits and completes once the database is back.
func TestCorrelateWaitsForTheDatabase(t *testing.T) {
	c := newCorrTest(t)
	u, err := url.Parse(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	flaky := newFlakyDB(t, u.Host)
	u.Host = flaky.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	c.dsn = u.String()
	p := c.proc("emit")
	done := make(chan service.MessageBatch, 1)
	go func() { done <- c.run(p, c.cdr(2, "START", "c-1", "600"), c.cdr(3, "STOP", "c-1", "30")) }()
	// More tries than a refused transaction gets before its records fail.
	deadline := time.Now().Add(60 * time.Second)
	for flaky.tries() <= rules.CorrelationAttempts+1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d connection attempts in 60 s", flaky.tries())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case out := <-done:
		t.Fatalf("the batch ended while the database was down: %+v", read(t, out))
	default:
	}
	flaky.bringUp()
	var out service.MessageBatch
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the batch did not complete after the database came back")
	}
	got := read(t, out)
	if len(got) != 2 || got[0].code != "" || got[0].fields["record_id"] != "call-c-1" || got[1].code != string(codes.Filtered) {
		t.Fatalf("after the database came back: %+v", got)
	}
}
