package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/usage"
)

// metaTick marks the timer messages vivace_correlate answers with the
// groups that timed out. It consumes them; no other processor sees one.
const metaTick = "vivace_tick"

func correlateSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Joins partial usage records (a call's start, intermediate and stop records) that share a key into one record, when the group is complete or its window has passed.").
		Description(`
A mediation rule. Each raw record for which `+"`when`"+` is true joins the open group of its
`+"`key`"+` (per client and rule); a record whose key is missing or empty fails with
`+"`MEDIATION_FAILED`"+` naming the field. A held record produces no output yet. After each new
record, `+"`complete`"+` is asked about the group; when it is true, `+"`merge`"+` makes the merged
record's fields. Both see the group as `+"`{\"key\": ..., \"records\": [raw, ...]}`"+`, the raw records
(`+"`client`"+`, `+"`file_id`"+`, `+"`line`"+`, `+"`fields`"+`) in arrival order.

The merged record takes the source position (file, line, part) of the group's first record; every
other record of the group leaves as a filtered record (code `+"`FILTERED`"+`, reason
"correlated into <file_id> line <n> (<key>=<value>)"), so each file's counts still add up. A
group still incomplete `+"`window`"+` after its first record arrived is emitted with what it has
and the field `+"`correlation`"+` set to `+"`incomplete`"+` (`+"`on_timeout: emit`"+`), or all its records
fail with `+"`MEDIATION_FAILED`"+`, saying the group timed out and what it had (`+"`on_timeout: fail`"+`).

Groups live in PostgreSQL (tables `+"`correlation_groups`"+`, `+"`correlation_parts`"+`), so they
survive restarts. A replayed record that a group holds, or that already has an outcome, changes
nothing. An emitted group is kept, and emitted again every `+"`resend_after`"+` until each of its
records is found as a MUR, an exception or a filtered record: the stage may have died before
writing it; downstream recognises a replay of the same source position.

Timeouts need a batch to answer in: messages with the metadata key `+"`vivace_tick`"+` (from a
`+"`generate`"+` input beside the `+"`kafka`"+` one in a `+"`broker`"+`) are consumed, never passed
on, and answered with the groups that timed out. Put this processor first in the pipeline so no
other processor sees a tick (with two correlation rules, the first sets `+"`forward_ticks`"+`). Without ticks, timeouts are still checked on data batches, at most
every `+"`sweep_interval`"+`.

Merge values must be strings, integers or booleans; sum decimal quantities with the Bloblang
method `+"`decimal_sum()`"+` (exact, never floating point).`).
		Field(service.NewStringField("name").
			Description("Names the rule's groups in the database; two correlation rules need two names. Empty: the processor's label.").
			Default("")).
		Field(service.NewBloblangField("when").Description("Only records for which this query is true take part; others pass untouched.").Optional()).
		Field(service.NewBloblangField("key").Description("The correlation key of a record, e.g. `this.fields.call_id`.")).
		Field(service.NewBloblangField("complete").Description("A query over the group (`this.records`): true when the group is complete.")).
		Field(service.NewBloblangField("merge").Description("A mapping from the group (`this.records`) to the merged record's fields.")).
		Field(service.NewDurationField("window").Description("How long a group may stay open after its first record arrived.")).
		Field(service.NewStringEnumField("on_timeout", rules.TimeoutEmit, rules.TimeoutFail).
			Description("What a group still incomplete at the end of its window becomes: `emit` the merged record marked `correlation: incomplete`, or `fail` every record with `MEDIATION_FAILED`.").
			Default(rules.TimeoutEmit)).
		Field(service.NewDurationField("resend_after").
			Description("How long after an emission a group whose records have no recorded outcome yet is emitted again. Longer than the time a record takes to be rated.").
			Default("10m")).
		Field(service.NewDurationField("sweep_interval").
			Description("Timed-out and unrecorded groups are looked for on every tick and, at most this often, on data batches.").
			Default("5s").Advanced()).
		Field(service.NewBoolField("forward_ticks").
			Description("Pass ticks on after answering them, for a second `vivace_correlate` right after this one; the last one of a stream leaves it false, so that no other processor sees a tick.").
			Default(false).Advanced()).
		Field(fieldDSN()).
		Field(service.NewStringField("stage").Description("Stage recorded on failures and filtered records.").Default("mediate")).
		Example("Telco partial CDRs joined by call id", `
Start, intermediate and stop records of a long call arrive as separate lines. The merged record
takes the start's time and the sum of the durations; the mediate stream's input gets a tick
every five seconds so that calls without a stop are emitted on time even when no traffic comes.`, `
input:
  broker:
    inputs:
      - kafka:
          seed_brokers: [ "${VIVACE_KAFKA_BROKERS:127.0.0.1:9092}" ]
          topics: [ usage.raw ]
          consumer_group: vivace-mediate
      - generate:
          interval: 5s
          mapping: |
            meta vivace_tick = "correlate"
            root = {}
pipeline:
  processors:
    - label: partial_calls
      vivace_correlate:
        dsn: ${DATABASE_URL}
        when: 'this.client == "telco" && this.fields.record_type.or("") != "FULL"'
        key: this.fields.call_id
        complete: 'this.records.any(r -> r.fields.record_type == "START") && this.records.any(r -> r.fields.record_type == "STOP")'
        merge: |
          let start = this.records.filter(r -> r.fields.record_type == "START").index(0).or(this.records.index(0))
          root = $start.fields.without("record_type", "duration")
          root.record_id = "call-" + this.key
          root.quantity = this.records.map_each(r -> r.fields.duration).decimal_sum()
        window: 2h
        on_timeout: emit
    - vivace_normalize: {}
`)
}

func init() {
	service.MustRegisterBatchProcessor("vivace_correlate", correlateSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return newCorrelateProc(conf, mgr)
		})
	err := bloblang.RegisterMethodV2("decimal_sum",
		bloblang.NewPluginSpec().
			Category("Vivace").
			Description("Adds an array of decimal strings (or integers) exactly and returns the sum as a decimal string. Empty strings count as nothing. Unlike `sum()`, it never goes through floating point, so quantities keep every digit."),
		func(*bloblang.ParsedParams) (bloblang.Method, error) {
			return func(v any) (any, error) {
				arr, ok := v.([]any)
				if !ok {
					return nil, fmt.Errorf("decimal_sum: expected an array, got %T", v)
				}
				vals := make([]string, len(arr))
				for i, x := range arr {
					s, err := exactString(x)
					if err != nil {
						return nil, fmt.Errorf("decimal_sum: item %d: %w", i, err)
					}
					vals[i] = s
				}
				return rules.SumDecimals(vals)
			}, nil
		})
	if err != nil {
		panic(err)
	}
}

type correlateProc struct {
	storeConn
	name                    string
	stage                   string
	when, key               *bloblang.Executor
	complete, merge         *bloblang.Executor
	corr                    rules.Correlation
	resendAfter, sweepEvery time.Duration
	keyField                string // the field the key names, when it is a plain this.fields.X
	forwardTicks            bool
	now                     func() time.Time
	log                     *service.Logger

	mu        sync.Mutex // guards lastSweep and the store connection: pipeline threads share the processor
	lastSweep time.Time

	held, emitted, timedOut, resent, cleaned *service.MetricCounter
}

// keyPath finds the field of a key query of the form this.fields.X.
var keyPath = regexp.MustCompile(`^\s*this\.fields\.([A-Za-z_][A-Za-z0-9_]*)\s*$`)

func newCorrelateProc(conf *service.ParsedConfig, mgr *service.Resources) (*correlateProc, error) {
	p := &correlateProc{now: time.Now, log: mgr.Logger()}
	var err error
	if p.name, err = conf.FieldString("name"); err != nil {
		return nil, err
	}
	if p.name == "" {
		p.name = mgr.Label()
	}
	if p.name == "" {
		return nil, errors.New("name: required when the processor has no label; it names the rule's groups in the database")
	}
	if p.stage, p.when, err = ruleConf(conf); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		to   **bloblang.Executor
	}{{"key", &p.key}, {"complete", &p.complete}, {"merge", &p.merge}} {
		if *f.to, err = conf.FieldBloblang(f.name); err != nil {
			return nil, err
		}
	}
	keySrc, _ := conf.FieldString("key")
	if m := keyPath.FindStringSubmatch(keySrc); m != nil {
		p.keyField = m[1]
	}
	if p.corr.Window, err = conf.FieldDuration("window"); err != nil {
		return nil, err
	}
	if p.corr.OnTimeout, err = conf.FieldString("on_timeout"); err != nil {
		return nil, err
	}
	p.corr.KeyName = p.keyField
	if err := p.corr.Validate(); err != nil {
		return nil, err
	}
	if p.resendAfter, err = conf.FieldDuration("resend_after"); err != nil {
		return nil, err
	}
	if p.resendAfter <= 0 {
		return nil, errors.New("resend_after: must be positive")
	}
	if p.sweepEvery, err = conf.FieldDuration("sweep_interval"); err != nil {
		return nil, err
	}
	if p.forwardTicks, err = conf.FieldBool("forward_ticks"); err != nil {
		return nil, err
	}
	if p.dsn, err = conf.FieldString("dsn"); err != nil {
		return nil, err
	}
	m := mgr.Metrics()
	p.held = m.NewCounter("vivace_correlate_held", "rule")
	p.emitted = m.NewCounter("vivace_correlate_emitted", "rule", "outcome")
	p.timedOut = m.NewCounter("vivace_correlate_timed_out", "rule")
	p.resent = m.NewCounter("vivace_correlate_resent", "rule")
	p.cleaned = m.NewCounter("vivace_correlate_cleaned", "rule")
	return p, nil
}

// correlationAttempts is how often a batch's database work that
// PostgreSQL refused is tried before its records fail.
const correlationAttempts = 3

func (p *correlateProc) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	out := make(service.MessageBatch, 0, len(batch))
	var parts []store.CorrelationPart
	var partMsgs []*service.Message
	tick := false
	for _, msg := range batch {
		if _, ok := msg.MetaGetMut(metaTick); ok {
			tick = true
			if p.forwardTicks {
				out = append(out, msg)
			}
			continue
		}
		part, ok := p.take(msg)
		if !ok {
			out = append(out, msg)
			continue
		}
		parts, partMsgs = append(parts, part), append(partMsgs, msg)
	}
	now := p.now()
	read := groupsRead{}
	if len(parts) > 0 {
		var res store.CorrelateResult
		err := p.retry(ctx, func(st *store.Store) error {
			var err error
			res, err = st.CorrelateParts(ctx, p.name, parts, p.corr.Window, now, p.decide(now, read))
			return err
		})
		if err != nil {
			for _, msg := range partMsgs {
				fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "correlation state: %v", err))
				out = append(out, msg)
			}
		} else {
			p.held.Incr(int64(res.Held), p.name)
			for _, g := range res.Emitted {
				out = append(out, p.emit(g, read)...)
			}
		}
	}
	if p.sweepDue(tick, now) {
		out = append(out, p.sweep(ctx, now)...)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

// take reads a record that takes part in the rule: it skips records
// already failed or filtered and those when does not select, and fails
// those it cannot read or whose key is missing. ok is false when the
// record is not held (it goes on as it is).
func (p *correlateProc) take(msg *service.Message) (store.CorrelationPart, bool) {
	var part store.CorrelationPart
	if msg.GetError() != nil {
		return part, false
	}
	if p.when != nil {
		sel, err := queryBool(msg, p.when)
		if err != nil {
			fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "correlate when: %v", err))
			return part, false
		}
		if !sel {
			return part, false
		}
	}
	v, err := msg.AsStructured()
	var src usage.Source
	if err == nil {
		src, err = rawSource(v)
	}
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err))
		return part, false
	}
	key, err := p.keyOf(v)
	if err != nil {
		fail(msg, p.stage, err)
		return part, false
	}
	b, err := msg.AsBytes()
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err))
		return part, false
	}
	meta := map[string]string{}
	_ = msg.MetaWalkMut(func(k string, v any) error {
		if s, ok := v.(string); ok {
			meta[k] = s
		} else {
			meta[k] = fmt.Sprint(v)
		}
		return nil
	})
	return store.CorrelationPart{Client: src.Client, FileID: src.FileID, Line: src.Line, Part: src.Part,
		Key: key, Record: b, Meta: meta}, true
}

// rawSource checks that a parsed message is a raw usage record (client,
// file_id, line, fields of strings) and returns its source.
func rawSource(v any) (usage.Source, error) {
	var src usage.Source
	root, ok := v.(map[string]any)
	if !ok {
		return src, fmt.Errorf("a %T, not an object", v)
	}
	src.Client, _ = root["client"].(string)
	src.FileID, _ = root["file_id"].(string)
	if src.Client == "" || src.FileID == "" {
		return src, errors.New("no client or file_id")
	}
	if !isUUID(src.FileID) {
		// The registry's file ids are UUIDs; one that is not would fail
		// the whole batch's transaction, not just this record.
		return src, fmt.Errorf("file_id %q is not a file id of the registry", clip(src.FileID, 64))
	}
	var err error
	if src.Line, err = intOf(root["line"]); err != nil {
		return src, fmt.Errorf("line: %w", err)
	}
	part, err := intOf(root["part"])
	if err != nil {
		return src, fmt.Errorf("part: %w", err)
	}
	src.Part = int(part)
	fields, ok := root["fields"].(map[string]any)
	if !ok {
		return src, errors.New("no fields")
	}
	for k, x := range fields {
		if _, ok := x.(string); !ok {
			return src, fmt.Errorf("field %s is a %T, not a string", k, x)
		}
	}
	return src, nil
}

// isUUID reports whether s is a UUID in its canonical text form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// intOf reads a JSON integer as Benthos parsed it; a missing one is 0.
func intOf(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		return x.Int64()
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

func (p *correlateProc) keyOf(rec any) (string, error) {
	name := p.keyField
	if name == "" {
		name = "correlation key"
	}
	v, err := p.key.Query(rec)
	if err != nil {
		return "", codes.Errorf(codes.MediationFailed, p.keyField, "%s: cannot read the correlation key: %v", name, err)
	}
	key, err := exactString(v)
	if err == nil && key == "" {
		err = errors.New("missing or empty")
	}
	if err != nil {
		return "", codes.Errorf(codes.MediationFailed, p.keyField, "%s: the correlation key is %v", name, err)
	}
	return key, nil
}

// retry runs the database work of a batch, connecting first, a few times
// with a growing pause.
// retry runs fn until it succeeds. An error PostgreSQL answered means the
// transaction did not commit, so after correlationAttempts of them the
// records can fail safely. Any other error (the connection dropped, the
// server is down) leaves it unknown whether the transaction committed:
// failing the records then could give a record held in a group an
// exception too, so retry keeps trying, with a growing pause, until the
// work is done (a replay of committed work changes nothing) or ctx ends.
func (p *correlateProc) retry(ctx context.Context, fn func(*store.Store) error) error {
	wait := 200 * time.Millisecond
	refused := 0
	var lastLog time.Time
	for {
		st, err := p.store(ctx)
		if err == nil {
			if err = fn(st); err == nil {
				return nil
			}
		}
		if store.ServerError(err) {
			if refused++; refused >= correlationAttempts {
				return err
			}
		}
		if time.Since(lastLog) >= 5*time.Second {
			p.log.Warnf("vivace_correlate %s: %v; trying again", p.name, err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (p *correlateProc) sweepDue(tick bool, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastSweep.IsZero() && !tick { // the first data batch: count from here
		p.lastSweep = now
		return false
	}
	if !tick && now.Sub(p.lastSweep) < p.sweepEvery {
		return false
	}
	p.lastSweep = now
	return true
}

// sweepLimit bounds the groups of each kind one sweep emits.
const sweepLimit = 500

// sweep emits the groups that timed out and those emitted before whose
// outcome is not recorded yet; failures are logged and tried on the next
// tick.
func (p *correlateProc) sweep(ctx context.Context, now time.Time) service.MessageBatch {
	st, err := p.store(ctx)
	if err != nil {
		p.log.Warnf("vivace_correlate %s: sweep: %v", p.name, err)
		return nil
	}
	read := groupsRead{}
	res, err := st.SweepCorrelation(ctx, p.name, now, p.resendAfter, sweepLimit, p.decide(now, read))
	if err != nil {
		p.log.Warnf("vivace_correlate %s: sweep: %v", p.name, err)
		return nil
	}
	var out service.MessageBatch
	for _, g := range res.TimedOut {
		p.timedOut.Incr(1, p.name)
		out = append(out, p.emit(g, read)...)
	}
	for _, g := range res.Resent {
		p.resent.Incr(1, p.name)
		out = append(out, p.emit(g, read)...)
	}
	p.cleaned.Incr(int64(res.Cleaned), p.name)
	return out
}

// decide answers the outcome of a group now: complete, timed out or open.
// A complete check that cannot be evaluated fails the group.
func (p *correlateProc) decide(now time.Time, read groupsRead) store.CorrelationDecider {
	return func(g *store.CorrelationGroup) (string, error) {
		complete, err := p.isComplete(read.get(g).value)
		if err != nil {
			return rules.OutcomeFailed, nil
		}
		return p.corr.Decide(complete, g.Deadline, now), nil
	}
}

func (p *correlateProc) isComplete(group map[string]any) (bool, error) {
	v, err := p.complete.Query(group)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("returned %T, not a boolean", v)
	}
	return b, nil
}

// groupsRead keeps the groups of one batch as read back, by id, so that
// deciding and emitting a group parse its records once.
type groupsRead map[int64]groupRead

type groupRead struct {
	parts   int
	members []usage.Raw
	value   map[string]any
}

func (r groupsRead) get(g *store.CorrelationGroup) groupRead {
	if gr, ok := r[g.GroupID]; ok && gr.parts == len(g.Parts) {
		return gr
	}
	ms := members(g)
	gr := groupRead{parts: len(g.Parts), members: ms, value: groupValue(g.Key, ms)}
	r[g.GroupID] = gr
	return gr
}

// members reads a group's held records back, in arrival order.
func members(g *store.CorrelationGroup) []usage.Raw {
	ms := make([]usage.Raw, len(g.Parts))
	for i, part := range g.Parts {
		_ = json.Unmarshal(part.Record, &ms[i]) // stored only after it was read once
		ms[i].Client, ms[i].FileID = part.Client, part.FileID
		ms[i].Line, ms[i].Part = part.Line, part.Part
	}
	return ms
}

// groupValue is what complete and merge see: the key and the raw records
// in arrival order.
func groupValue(key string, ms []usage.Raw) map[string]any {
	recs := make([]any, len(ms))
	for i, m := range ms {
		fields := make(map[string]any, len(m.Fields))
		for k, v := range m.Fields {
			fields[k] = v
		}
		r := map[string]any{"client": m.Client, "file_id": m.FileID, "line": m.Line, "fields": fields}
		if m.Part != 0 || m.Parts != 0 {
			r["part"], r["parts"] = int64(m.Part), int64(m.Parts)
		}
		recs[i] = r
	}
	return map[string]any{"key": key, "records": recs}
}

// emit turns an emitted group into messages: the merged record and the
// filtered others, or every record failed.
func (p *correlateProc) emit(g store.CorrelationGroup, read groupsRead) service.MessageBatch {
	p.emitted.Incr(1, p.name, g.Outcome)
	r := read.get(&g)
	mg := rules.Group{Key: g.Key, OpenedAt: g.OpenedAt, Members: r.members}
	gv := r.value
	var merged map[string]string
	var ruleErr error
	switch g.Outcome {
	case rules.OutcomeComplete, rules.OutcomeIncomplete:
		if merged, ruleErr = p.mergeGroup(gv); ruleErr != nil {
			ruleErr = fmt.Errorf("merge: %w", ruleErr)
		}
	default:
		if _, err := p.isComplete(gv); err != nil {
			ruleErr = fmt.Errorf("complete: %w", err)
		}
	}
	e := p.corr.Emit(mg, g.Outcome, merged, ruleErr)
	out := make(service.MessageBatch, 0, len(g.Parts))
	for i, part := range g.Parts {
		var msg *service.Message
		switch {
		case i == 0 && e.Merged != nil:
			b, err := json.Marshal(e.Merged)
			if err != nil {
				b = part.Record
			}
			msg = service.NewMessage(b)
		default:
			msg = service.NewMessage(part.Record)
		}
		keys := make([]string, 0, len(part.Meta))
		for k := range part.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			msg.MetaSetMut(k, part.Meta[k])
		}
		if ce := e.Filtered[i]; ce != nil {
			fail(msg, p.stage, ce)
		} else if ce := e.Failed[i]; ce != nil {
			fail(msg, p.stage, ce)
		}
		out = append(out, msg)
	}
	return out
}

// mergeGroup runs the merge mapping and insists on flat, exact fields.
func (p *correlateProc) mergeGroup(group map[string]any) (map[string]string, error) {
	v, err := p.merge.Query(group)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("returned %T, not an object of fields", v)
	}
	fields := make(map[string]string, len(obj))
	for k, x := range obj {
		if x == nil {
			continue
		}
		s, err := exactString(x)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		fields[k] = s
	}
	return fields, nil
}

// exactString is a Bloblang value as a field's string: strings, integers
// and booleans only; a float would lose digits of a quantity.
func exactString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return "", fmt.Errorf("%v is a floating-point number; keep quantities as strings and add them with decimal_sum()", x)
	default:
		return "", fmt.Errorf("a %T, not a string", v)
	}
}

// store connects on first use.
func (p *correlateProc) store(ctx context.Context) (*store.Store, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.connect(ctx); err != nil {
		return nil, err
	}
	return p.st, nil
}

func (p *correlateProc) Close(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.close()
	return nil
}
