package benthos

import (
	"context"
	"errors"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
)

func filterSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Drops raw usage records on purpose (test traffic, internal accounts), counting them as filtered.").
		Description(`
A mediation rule. Each message for which `+"`check`"+` is true is marked filtered with `+"`reason`"+`.
A filtered record is never silently lost: it leaves the pipeline by the exceptions route with
code `+"`FILTERED`"+` and is stored in `+"`filtered_records`"+`, where it counts towards its file's
filtered records (records = MURs + exceptions + filtered). Later processors leave it alone.
A `+"`check`"+` that cannot be evaluated for a record (a field of the wrong type, say) fails
that record with `+"`MEDIATION_FAILED`"+` naming the error, rather than guessing.

The message is the raw record of `+"`usage.raw`"+`: `+"`this.client`"+`, `+"`this.file_id`"+`,
`+"`this.line`"+` and the client's columns under `+"`this.fields`"+`.`).
		Field(service.NewBloblangField("check").Description("A Bloblang query; records for which it is true are filtered.")).
		Field(service.NewStringField("reason").Description("Why these records are dropped; kept with each of them.")).
		Field(service.NewStringField("stage").Description("Stage recorded with the filtered records.").Default("mediate")).
		Example("Drop a client's test calls", "", `
pipeline:
  processors:
    - vivace_filter:
        check: 'this.client == "acme" && this.fields.account_id.has_prefix("TEST-")'
        reason: test traffic
    - vivace_normalize: {}
`)
}

func init() {
	service.MustRegisterProcessor("vivace_filter", filterSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			check, err := conf.FieldBloblang("check")
			if err != nil {
				return nil, err
			}
			reason, err := conf.FieldString("reason")
			if err != nil {
				return nil, err
			}
			if reason == "" {
				return nil, errors.New("reason: required, it is kept with every filtered record")
			}
			stage, err := conf.FieldString("stage")
			if err != nil {
				return nil, err
			}
			return &filterProc{check: check, reason: reason, stage: stage}, nil
		})
}

type filterProc struct {
	check         *bloblang.Executor
	reason, stage string
}

func (p *filterProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	if msg.GetError() != nil {
		return service.MessageBatch{msg}, nil
	}
	drop, err := queryBool(msg, p.check)
	if err != nil {
		fail(msg, p.stage, codes.Errorf(codes.MediationFailed, "", "filter check: %v", err))
		return service.MessageBatch{msg}, nil
	}
	if drop {
		fail(msg, p.stage, codes.Errorf(codes.Filtered, "", "%s", p.reason))
	}
	return service.MessageBatch{msg}, nil
}

func (p *filterProc) Close(context.Context) error { return nil }
