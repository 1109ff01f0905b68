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

func renameSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Renames a raw record's fields: a client's or a plugin's names to Vivace's.").
		Description(`
A mediation rule. For each raw record (`+"`this.fields`"+` of `+"`usage.raw`"+`) for which `+"`when`"+` is
true, every field named on the left of `+"`fields`"+` takes the name on the right. A field the record
does not have is left out, unless it is listed in `+"`required`"+`: then the record fails with
`+"`MEDIATION_FAILED`"+` naming it. A renamed field never overwrites one the record already has
under the new name; that fails the record too, naming both, because one of the two values
would be lost. Renames happen all at once, so `+"`{a: b, b: a}`"+` swaps two fields.

The client settings' `+"`columns:`"+` mapping renames CSV and JSON Lines columns as the file is read;
this rule is for names that appear later (a plugin's output, a correlation's merge) or that
differ by record within one file. A record already failed or filtered passes untouched.`).
		Field(service.NewStringMapField("fields").Description("Old name → new name.")).
		Field(service.NewStringListField("required").Description("Old names the record must have.").Default([]any{})).
		Field(service.NewBloblangField("when").Description("Rename only in records for which this query is true.").Optional()).
		Field(service.NewStringField("stage").Description("Stage recorded on failures.").Default("mediate")).
		Example("A client's names", "", `
pipeline:
  processors:
    - vivace_rename:
        when: 'this.client == "acme"'
        fields: { msisdn: account_id, event_time: usage_time, units: quantity }
        required: [ msisdn ]
`)
}

func init() {
	service.MustRegisterProcessor("vivace_rename", renameSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			return newRenameProc(conf)
		})
}

func newRenameProc(conf *service.ParsedConfig) (*renameProc, error) {
	p := &renameProc{}
	var err error
	if p.fields, err = conf.FieldStringMap("fields"); err != nil {
		return nil, err
	}
	if len(p.fields) == 0 {
		return nil, fmt.Errorf("fields: empty; name at least one field to rename")
	}
	targets := map[string]string{}
	for from, to := range p.fields {
		if strings.TrimSpace(from) == "" || strings.TrimSpace(to) == "" {
			return nil, fmt.Errorf("fields: %q → %q: names must not be empty", from, to)
		}
		if prev, dup := targets[to]; dup {
			return nil, fmt.Errorf("fields: %q and %q are both renamed to %q", prev, from, to)
		}
		targets[to] = from
		p.order = append(p.order, from)
	}
	sort.Strings(p.order)
	if p.required, err = conf.FieldStringList("required"); err != nil {
		return nil, err
	}
	for _, r := range p.required {
		if _, ok := p.fields[r]; !ok {
			return nil, fmt.Errorf("required: %q is not one of the fields renamed", r)
		}
	}
	if p.stage, p.when, err = ruleConf(conf); err != nil {
		return nil, err
	}
	return p, nil
}

type renameProc struct {
	fields   map[string]string
	order    []string // the old names, sorted, so failures name fields the same way every time
	required []string
	stage    string
	when     *bloblang.Executor
}

func (p *renameProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	root, fields, ok := ruleTarget(msg, p.when, p.stage, "rename")
	if !ok {
		return service.MessageBatch{msg}, nil
	}
	for _, r := range p.required {
		if _, has := fields[r]; !has {
			fail(msg, p.stage, codes.Errorf(codes.MediationFailed, r, "field %s is missing; it is renamed to %s", r, p.fields[r]))
			return service.MessageBatch{msg}, nil
		}
	}
	moved := make(map[string]any, len(p.fields))
	for _, from := range p.order {
		if v, has := fields[from]; has {
			moved[from] = v
		}
	}
	for _, from := range p.order {
		to := p.fields[from]
		if _, has := moved[from]; !has {
			continue
		}
		if _, taken := fields[to]; taken {
			if _, leaving := moved[to]; !leaving {
				fail(msg, p.stage, codes.Errorf(codes.MediationFailed, from,
					"field %s cannot be renamed to %s: the record already has a field %s", from, to, to))
				return service.MessageBatch{msg}, nil
			}
		}
	}
	for from := range moved {
		delete(fields, from)
	}
	for from, v := range moved {
		fields[p.fields[from]] = v
	}
	msg.SetStructuredMut(root)
	return service.MessageBatch{msg}, nil
}

func (p *renameProc) Close(context.Context) error { return nil }
