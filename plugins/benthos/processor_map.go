package benthos

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
)

func mapSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Maps a raw record's field through a table: a client's service codes to catalog usage types, say.").
		Description(`
A mediation rule. Looks the value of `+"`field`"+` (in `+"`this.fields`"+` of a raw record) up in
`+"`table`"+` and writes what it finds to `+"`target`"+` (the same field when empty). A value the
table does not hold is left as it is (`+"`missing: keep`"+`) or fails the record with
`+"`MEDIATION_FAILED`"+` naming the field and the value (`+"`missing: fail`"+`), so that an unknown
code is seen rather than rated as something else. Only records for which `+"`when`"+` is true are
mapped; a record already failed or filtered passes untouched.`).
		Field(service.NewStringField("field").Description("The field whose value is looked up.")).
		Field(service.NewStringField("target").Description("The field to write; empty: `field` itself.").Default("")).
		Field(service.NewStringMapField("table").Description("Value → replacement.")).
		Field(service.NewStringEnumField("missing", "keep", "fail").Description("What a value not in the table does.").Default("fail")).
		Field(service.NewBloblangField("when").Description("Map only records for which this query is true.").Optional()).
		Field(service.NewStringField("stage").Description("Stage recorded on failures.").Default("mediate")).
		Example("A client's service codes to usage types", "", `
pipeline:
  processors:
    - vivace_map:
        when: 'this.client == "acme"'
        field: service
        target: usage_type
        table: { MOC: VOICE, SMS-MO: SMS, GPRS: DATA }
`)
}

func init() {
	service.MustRegisterProcessor("vivace_map", mapSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			p := &mapProc{}
			var err error
			if p.field, err = conf.FieldString("field"); err != nil {
				return nil, err
			}
			if p.field == "" {
				return nil, fmt.Errorf("field: required")
			}
			if p.target, err = conf.FieldString("target"); err != nil {
				return nil, err
			}
			if p.target == "" {
				p.target = p.field
			}
			if p.table, err = conf.FieldStringMap("table"); err != nil {
				return nil, err
			}
			if len(p.table) == 0 {
				return nil, fmt.Errorf("table: empty; a mapping needs at least one entry")
			}
			missing, err := conf.FieldString("missing")
			if err != nil {
				return nil, err
			}
			p.failMissing = missing == "fail"
			if p.stage, p.when, err = ruleConf(conf); err != nil {
				return nil, err
			}
			return p, nil
		})
}

type mapProc struct {
	field, target, stage string
	table                map[string]string
	failMissing          bool
	when                 *bloblang.Executor
}

func (p *mapProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	root, fields, ok := ruleTarget(msg, p.when, p.stage, "map")
	if !ok {
		return service.MessageBatch{msg}, nil
	}
	val := fmt.Sprint(fields[p.field])
	if fields[p.field] == nil {
		val = ""
	}
	to, found := p.table[val]
	if !found {
		if p.failMissing {
			fail(msg, p.stage, codes.Errorf(codes.MediationFailed, p.field, "%s %q is not in the mapping table (known: %s)",
				p.field, clip(val, 64), p.known()))
		}
		return service.MessageBatch{msg}, nil
	}
	fields[p.target] = to
	msg.SetStructuredMut(root)
	return service.MessageBatch{msg}, nil
}

func (p *mapProc) known() string {
	keys := make([]string, 0, len(p.table))
	for k := range p.table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 10 {
		keys = append(keys[:10], "...")
	}
	return strings.Join(keys, ", ")
}

func (p *mapProc) Close(context.Context) error { return nil }
