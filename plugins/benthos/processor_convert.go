package benthos

import (
	"context"
	"errors"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/rules"
)

func convertSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Converts a raw record's quantity between units (bytes to GB, seconds to minutes), with a stated rounding.").
		Description(`
A mediation rule. Converts the field `+"`field`"+` of a raw record (`+"`this.fields`"+` of
`+"`usage.raw`"+`) from `+"`from`"+` to `+"`to`"+` in exact decimal arithmetic, then rounds to `+"`scale`"+`
decimal places: `+"`up`"+` (away from zero, so a started unit counts whole: 61 s is 2 min),
`+"`down`"+`, `+"`half_up`"+` or `+"`none`"+` (keep the exact quotient). Units: B, kB, MB, GB, TB
(powers of 1000), KiB, MiB, GiB, TiB (powers of 1024), ms, s, min, h.

Only records for which `+"`when`"+` is true are converted (all records when it is empty). A value
that is not a non-negative decimal fails the record with `+"`BAD_QUANTITY`"+` naming the field; a
record that is already failed or filtered passes untouched.`).
		Field(service.NewStringField("field").Description("The field to convert.").Default("quantity")).
		Field(service.NewStringField("from").Description("The unit the client sends.")).
		Field(service.NewStringField("to").Description("The unit the catalog prices in.")).
		Field(service.NewStringEnumField("round", rules.RoundNone, rules.RoundUp, rules.RoundDown, rules.RoundHalfUp).
			Description("How the result is rounded to `scale` places.").Default(rules.RoundNone)).
		Field(service.NewIntField("scale").Description("Decimal places kept when rounding.").Default(0)).
		Field(service.NewBloblangField("when").Description("Convert only records for which this query is true.").Optional()).
		Field(service.NewStringField("stage").Description("Stage recorded on failures.").Default("mediate")).
		Example("Call seconds to started minutes", "", `
pipeline:
  processors:
    - vivace_convert:
        when: 'this.client == "acme" && this.fields.usage_type == "VOICE"'
        from: s
        to: min
        round: up
`)
}

func init() {
	service.MustRegisterProcessor("vivace_convert", convertSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			p := &convertProc{}
			var err error
			if p.field, err = conf.FieldString("field"); err != nil {
				return nil, err
			}
			if p.stage, p.when, err = ruleConf(conf); err != nil {
				return nil, err
			}
			from, err := conf.FieldString("from")
			if err != nil {
				return nil, err
			}
			to, err := conf.FieldString("to")
			if err != nil {
				return nil, err
			}
			round, err := conf.FieldString("round")
			if err != nil {
				return nil, err
			}
			scale, err := conf.FieldInt("scale")
			if err != nil {
				return nil, err
			}
			if p.conv, err = rules.NewConverter(from, to, round, scale); err != nil {
				return nil, err
			}
			return p, nil
		})
}

type convertProc struct {
	field, stage string
	conv         *rules.Converter
	when         *bloblang.Executor
}

func (p *convertProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	root, fields, ok := ruleTarget(msg, p.when, p.stage, "convert")
	if !ok {
		return service.MessageBatch{msg}, nil
	}
	q, ok := fields[p.field].(string)
	if !ok {
		if fields[p.field] == nil {
			return service.MessageBatch{msg}, nil // missing: the normal-form checks name it
		}
		q = fmt.Sprint(fields[p.field])
	}
	out, err := p.conv.Convert(q)
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.BadQuantity, p.field, "%s: %v", p.field, err))
		return service.MessageBatch{msg}, nil
	}
	fields[p.field] = out
	msg.SetStructuredMut(root)
	return service.MessageBatch{msg}, nil
}

func (p *convertProc) Close(context.Context) error { return nil }

// queryBool runs a Bloblang query on a message and insists on a boolean.
func queryBool(msg *service.Message, q *bloblang.Executor) (bool, error) {
	out, err := msg.BloblangQuery(q)
	if err != nil {
		return false, err
	}
	if out == nil {
		return false, fmt.Errorf("the query deleted the message")
	}
	res, err := out.AsStructured()
	if err != nil {
		return false, err
	}
	b, ok := res.(bool)
	if !ok {
		return false, fmt.Errorf("returned %T, not a boolean", res)
	}
	return b, nil
}

// ruleConf reads the fields every declarative rule with a when query has:
// the stage recorded on its failures, and when itself (nil: every record).
func ruleConf(conf *service.ParsedConfig) (stage string, when *bloblang.Executor, err error) {
	if stage, err = conf.FieldString("stage"); err != nil {
		return "", nil, err
	}
	if conf.Contains("when") {
		if when, err = conf.FieldBloblang("when"); err != nil {
			return "", nil, err
		}
	}
	return stage, when, nil
}

// ruleTarget is the common start of a declarative rule: it skips records
// already failed or filtered and those the rule's when query does not
// select (failing the record when the query cannot be evaluated), and
// returns the raw record and its fields, to be changed in place and set
// back with SetStructuredMut. ok is false when the rule does not apply.
func ruleTarget(msg *service.Message, when *bloblang.Executor, stage, rule string) (root, fields map[string]any, ok bool) {
	if msg.GetError() != nil {
		return nil, nil, false
	}
	if when != nil {
		sel, err := queryBool(msg, when)
		if err != nil {
			fail(msg, stage, codes.Errorf(codes.MediationFailed, "", "%s when: %v", rule, err))
			return nil, nil, false
		}
		if !sel {
			return nil, nil, false
		}
	}
	v, err := msg.AsStructuredMut()
	if err == nil {
		root, _ = v.(map[string]any)
		fields, _ = root["fields"].(map[string]any)
	}
	if fields == nil {
		if err == nil {
			err = errors.New("no fields")
		}
		fail(msg, stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err))
		return nil, nil, false
	}
	return root, fields, true
}
