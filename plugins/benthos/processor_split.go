package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/usage"
)

func splitSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Vivace").
		Summary("Splits one raw record into several: a call into airtime and roaming, say.").
		Description(`
A mediation rule. For each raw record (`+"`usage.raw`"+`) for which `+"`when`"+` is true, every entry of
`+"`parts`"+` whose own `+"`when`"+` is true (or that has none) makes one record. A part starts as a copy
of the record's fields; its `+"`mapping`"+` (Bloblang on the raw record, `+"`this.fields.duration`"+`,
say) gives an object whose keys are laid over them, so a mapping names only what changes
(a key set to `+"`null`"+` removes that field). Values must be strings, integers or booleans; a
floating-point number fails the record, so keep quantities as strings
(`+"`this.fields.duration`"+`): Bloblang arithmetic on them is binary floating point.

When two or more parts apply, each becomes its own message with the record's file and
line, its position `+"`part`"+` (0, 1, …) and the number of parts `+"`parts`"+`, so the file's counts
wait for every part; the message key (`+"`vivace_key`"+`) is each part's account id. A part whose
mapping does not set `+"`record_id`"+` gets one derived from the record's: the first part keeps it,
part k (k ≥ 1) gets `+"`<record_id>-<k>`"+`, the same on every replay. Two parts with the same
record id fail the record. When one part applies, the record is rewritten by it and is not a
split (`+"`parts`"+` stays unset). When none applies, the record fails with `+"`MEDIATION_FAILED`"+`
naming the rule: a record the rule is for but cannot place is shown, not rated as it came.

A mapping or `+"`when`"+` that cannot be evaluated fails the record with `+"`MEDIATION_FAILED`"+` naming
the part. A record that a plugin already split is not split again (`+"`MEDIATION_FAILED`"+`). A
record already failed or filtered passes untouched.`).
		Field(service.NewObjectListField("parts",
			service.NewStringField("name").Description("The part's name, used in failures; default: its position in the list, from 1.").Default(""),
			service.NewBloblangField("when").Description("This part applies only when the query is true.").Optional(),
			service.NewBloblangField("mapping").Description("Bloblang on the raw record (`this`; metadata is not available to it) giving an object: the part's fields that differ from the record's."),
		).Description("The parts a record can become, in order.")).
		Field(service.NewBloblangField("when").Description("Split only records for which this query is true.").Optional()).
		Field(service.NewStringField("stage").Description("Stage recorded on failures.").Default("mediate")).
		Example("A call into airtime and roaming", "", `
pipeline:
  processors:
    - vivace_split:
        when: 'this.client == "telco" && this.fields.service == "MOC"'
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
`)
}

func init() {
	service.MustRegisterProcessor("vivace_split", splitSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Processor, error) {
			return newSplitProc(conf, mgr)
		})
}

type splitPart struct {
	name          string
	when, mapping *bloblang.Executor
}

type splitProc struct {
	rule, stage string
	when        *bloblang.Executor
	parts       []splitPart
	split       *service.MetricCounter
}

func newSplitProc(conf *service.ParsedConfig, mgr *service.Resources) (*splitProc, error) {
	p := &splitProc{rule: "split", split: mgr.Metrics().NewCounter("vivace_split_records")}
	if l := mgr.Label(); l != "" {
		p.rule = "split " + l
	}
	var err error
	if p.stage, p.when, err = ruleConf(conf); err != nil {
		return nil, err
	}
	list, err := conf.FieldObjectList("parts")
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, errors.New("parts: empty; a split needs at least one part")
	}
	names := map[string]bool{}
	for i, pc := range list {
		var sp splitPart
		if sp.name, err = pc.FieldString("name"); err != nil {
			return nil, err
		}
		if sp.name == "" {
			sp.name = strconv.Itoa(i + 1)
		}
		if names[sp.name] {
			return nil, fmt.Errorf("parts[%d].name: %q names two parts", i, sp.name)
		}
		names[sp.name] = true
		if sp.mapping, err = pc.FieldBloblang("mapping"); err != nil {
			return nil, fmt.Errorf("parts[%d].mapping: %w", i, err)
		}
		if pc.Contains("when") {
			if sp.when, err = pc.FieldBloblang("when"); err != nil {
				return nil, fmt.Errorf("parts[%d].when: %w", i, err)
			}
		}
		p.parts = append(p.parts, sp)
	}
	return p, nil
}

func (p *splitProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	root, _, ok := ruleTarget(msg, p.when, p.stage, p.rule)
	if !ok {
		return service.MessageBatch{msg}, nil
	}
	src, fields, err := splitSource(root)
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err))
		return service.MessageBatch{msg}, nil
	}
	recs, err := p.apply(root, fields)
	if err != nil {
		fail(msg, p.stage, err)
		return service.MessageBatch{msg}, nil
	}
	if len(recs) > 1 && (src.Parts > 1 || src.Part > 0) {
		fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "%s: the record is already part %d of %d of a split line; a line is split once",
			p.rule, src.Part, src.Parts))
		return service.MessageBatch{msg}, nil
	}

	out := make(service.MessageBatch, len(recs))
	bodies := make([][]byte, len(recs))
	for j, f := range recs {
		s := src
		if len(recs) > 1 {
			s.Part, s.Parts = j, len(recs)
		}
		if bodies[j], err = json.Marshal(usage.Raw{Source: s, Fields: f}); err != nil {
			return nil, err
		}
	}
	for j, f := range recs {
		m := msg
		if j < len(recs)-1 {
			m = msg.Copy()
		}
		m.SetBytes(bodies[j])
		m.MetaSetMut(metaKey, strings.TrimSpace(f[usage.FieldAccountID]))
		out[j] = m
	}
	if len(recs) > 1 {
		p.split.Incr(1)
	}
	return out, nil
}

// apply evaluates the parts on a record: the fields of each part that
// applies, record ids derived where the mapping set none.
func (p *splitProc) apply(root map[string]any, fields map[string]string) ([]map[string]string, error) {
	var recs []map[string]string
	var setID []bool
	for _, sp := range p.parts {
		if sp.when != nil {
			v, err := sp.when.Query(root)
			ok, isBool := v.(bool)
			if err == nil && !isBool {
				err = fmt.Errorf("gave %s, not a boolean", bloblangType(v))
			}
			if err != nil {
				return nil, codes.Errorf(codes.MediationFailed, "", "%s, part %s, when: %v", p.rule, sp.name, err)
			}
			if !ok {
				continue
			}
		}
		// On the record's structure: a query on the message would give a
		// result to parse as JSON again.
		v, err := sp.mapping.Query(root)
		if errors.Is(err, bloblang.ErrRootDeleted) {
			err = errors.New("the mapping deleted the record")
		}
		obj, isObj := v.(map[string]any)
		if err == nil && !isObj {
			err = fmt.Errorf("gave %s, not an object of fields", bloblangType(v))
		}
		if err != nil {
			return nil, codes.Errorf(codes.MediationFailed, "", "%s, part %s, mapping: %v", p.rule, sp.name, err)
		}
		f := make(map[string]string, len(fields)+len(obj))
		for k, v := range fields {
			f[k] = v
		}
		for k, v := range obj {
			if v == nil {
				delete(f, k)
				continue
			}
			s, err := rules.ExactString(v)
			if err != nil {
				return nil, codes.Errorf(codes.MediationFailed, k, "%s, part %s, mapping: field %s: %v", p.rule, sp.name, k, err)
			}
			f[k] = s
		}
		_, set := obj[usage.FieldRecordID]
		recs = append(recs, f)
		setID = append(setID, set)
	}
	if len(recs) == 0 {
		return nil, codes.Errorf(codes.MediationFailed, "", "%s: none of its parts applies to the record", p.rule)
	}
	if len(recs) == 1 {
		return recs, nil
	}
	seen := map[string]int{}
	for j, f := range recs {
		if id := fields[usage.FieldRecordID]; !setID[j] && j > 0 && id != "" {
			f[usage.FieldRecordID] = id + "-" + strconv.Itoa(j)
		}
		id := f[usage.FieldRecordID]
		if k, dup := seen[id]; dup && id != "" {
			return nil, codes.Errorf(codes.MediationFailed, usage.FieldRecordID,
				"%s: parts %d and %d have the same record_id %q", p.rule, k, j, clip(id, 64))
		}
		seen[id] = j
	}
	return recs, nil
}

func (p *splitProc) Close(context.Context) error { return nil }

// splitSource reads a raw record's source and fields, the fields as text,
// from the record as parsed.
func splitSource(root map[string]any) (usage.Source, map[string]string, error) {
	var src usage.Source
	src.Client, _ = root["client"].(string)
	src.FileID, _ = root["file_id"].(string)
	var err error
	if src.Line, err = intOf(root["line"]); err != nil {
		return src, nil, fmt.Errorf("line: %w", err)
	}
	part, err := intOf(root["part"])
	if err != nil {
		return src, nil, fmt.Errorf("part: %w", err)
	}
	parts, err := intOf(root["parts"])
	if err != nil {
		return src, nil, fmt.Errorf("parts: %w", err)
	}
	src.Part, src.Parts = int(part), int(parts)
	raw, _ := root["fields"].(map[string]any)
	fields := make(map[string]string, len(raw))
	for k, v := range raw {
		s, err := rules.ExactString(v)
		if err != nil {
			return src, nil, fmt.Errorf("field %s: %v", k, err)
		}
		fields[k] = s
	}
	return src, fields, nil
}

// bloblangType names a Bloblang value's type as an operator knows it.
func bloblangType(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	default:
		if _, err := intOf(v); err == nil {
			return "a number"
		}
		return fmt.Sprintf("%T", v)
	}
}
