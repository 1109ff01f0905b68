package benthos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
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
}

// correlateProc turns messages into the records a rules.Correlator holds
// and the groups it emits back into messages; the rule's behaviour
// (retries, sweeps, what a group becomes) is the Correlator's.
type correlateProc struct {
	name         string
	stage        string
	when, key    *bloblang.Executor
	corr         rules.Correlation
	c            *rules.Correlator
	db           *ruleStore
	forwardTicks bool
	now          func() time.Time
	log          *service.Logger

	held, emitted, timedOut, resent, cleaned *service.MetricCounter
}

// keyPath finds the field of a key query of the form this.fields.X.
var keyPath = regexp.MustCompile(`^\s*this\.fields\.([A-Za-z_][A-Za-z0-9_]*)\s*$`)

func newCorrelateProc(conf *service.ParsedConfig, mgr *service.Resources) (*correlateProc, error) {
	p := &correlateProc{now: time.Now, log: mgr.Logger()}
	cfg := rules.CorrelatorConfig{Refused: store.Refused, Warnf: p.log.Warnf, MaxWait: databaseWaitBound(),
		Now: func() time.Time { return p.now() }}
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
	var complete, merge *bloblang.Executor
	for _, f := range []struct {
		name string
		to   **bloblang.Executor
	}{{"key", &p.key}, {"complete", &complete}, {"merge", &merge}} {
		if *f.to, err = conf.FieldBloblang(f.name); err != nil {
			return nil, err
		}
	}
	cfg.Complete, cfg.Merge = complete.Query, merge.Query
	keySrc, _ := conf.FieldString("key")
	if m := keyPath.FindStringSubmatch(keySrc); m != nil {
		cfg.KeyName = m[1]
	}
	if cfg.Window, err = conf.FieldDuration("window"); err != nil {
		return nil, err
	}
	if cfg.OnTimeout, err = conf.FieldString("on_timeout"); err != nil {
		return nil, err
	}
	if cfg.ResendAfter, err = conf.FieldDuration("resend_after"); err != nil {
		return nil, err
	}
	if cfg.SweepEvery, err = conf.FieldDuration("sweep_interval"); err != nil {
		return nil, err
	}
	if p.forwardTicks, err = conf.FieldBool("forward_ticks"); err != nil {
		return nil, err
	}
	p.db = &ruleStore{}
	if p.db.conn.dsn, err = conf.FieldString("dsn"); err != nil {
		return nil, err
	}
	cfg.Rule, cfg.Store = p.name, p.db
	if p.c, err = rules.NewCorrelator(cfg); err != nil {
		return nil, err
	}
	p.corr = cfg.Correlation
	m := mgr.Metrics()
	p.held = m.NewCounter("vivace_correlate_held", "rule")
	p.emitted = m.NewCounter("vivace_correlate_emitted", "rule", "outcome")
	p.timedOut = m.NewCounter("vivace_correlate_timed_out", "rule")
	p.resent = m.NewCounter("vivace_correlate_resent", "rule")
	p.cleaned = m.NewCounter("vivace_correlate_cleaned", "rule")
	return p, nil
}

func (p *correlateProc) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	out := make(service.MessageBatch, 0, len(batch))
	var parts []rules.CorrelationPart
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
	if len(parts) > 0 {
		res, err := p.c.Add(ctx, parts)
		if err != nil {
			for _, msg := range partMsgs {
				fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "correlation state: %v", err))
				out = append(out, msg)
			}
		} else {
			p.held.Incr(int64(res.Held), p.name)
			for _, e := range res.Emitted {
				out = append(out, p.messages(e)...)
			}
		}
	}
	sw, err := p.c.Sweep(ctx, tick)
	if err != nil {
		p.log.Warnf("vivace_correlate %s: %v", p.name, err)
	}
	for _, e := range sw.TimedOut {
		p.timedOut.Incr(1, p.name)
		out = append(out, p.messages(e)...)
	}
	for _, e := range sw.Resent {
		p.resent.Incr(1, p.name)
		out = append(out, p.messages(e)...)
	}
	p.cleaned.Incr(int64(sw.Cleaned), p.name)
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

// take reads a record that takes part in the rule: it skips records
// already failed or filtered and those when does not select, and fails
// those it cannot read or whose key is missing. ok is false when the
// record is not held (it goes on as it is).
func (p *correlateProc) take(msg *service.Message) (rules.CorrelationPart, bool) {
	var part rules.CorrelationPart
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
	b, err := msg.AsBytes()
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err))
		return part, false
	}
	src, err := rawRecord(b)
	if err != nil {
		fail(msg, p.stage, err)
		return part, false
	}
	v, err := msg.AsStructured()
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err))
		return part, false
	}
	key, err := p.corr.KeyFrom(p.key.Query(v))
	if err != nil {
		fail(msg, p.stage, err)
		return part, false
	}
	return rules.CorrelationPart{Client: src.Client, FileID: src.FileID, Line: src.Line, Part: src.Part,
		Key: key, Record: b, Meta: metaStrings(msg)}, true
}

// messages turns an emitted group into messages: each record with the
// metadata it arrived with, failed or filtered as the rule says.
func (p *correlateProc) messages(e rules.Emitted) service.MessageBatch {
	p.emitted.Incr(1, p.name, string(e.Group.Outcome))
	out := make(service.MessageBatch, len(e.Records))
	for i, r := range e.Records {
		msg := service.NewMessage(r.Body)
		for _, k := range slices.Sorted(maps.Keys(r.Meta)) {
			msg.MetaSetMut(k, r.Meta[k])
		}
		if r.Err != nil {
			fail(msg, p.stage, r.Err)
		}
		out[i] = msg
	}
	return out
}

// metaStrings is a message's metadata as text.
func metaStrings(msg *service.Message) map[string]string {
	meta := map[string]string{}
	_ = msg.MetaWalkMut(func(k string, v any) error {
		if s, ok := v.(string); ok {
			meta[k] = s
		} else {
			meta[k] = fmt.Sprint(v)
		}
		return nil
	})
	return meta
}

func (p *correlateProc) Close(context.Context) error {
	p.db.close()
	return nil
}
