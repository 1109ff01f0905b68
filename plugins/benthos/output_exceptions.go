package benthos

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/jsonx"
)

func exceptionsOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Stores exception messages (from `usage.exceptions`) in PostgreSQL and moves their files' counts.").
		Description(`
Each batch is written in one transaction: the exception rows and the counts of the files they
come from. A record's source position (client, file, line, part) is stored once, so a replayed
message changes nothing; a record that fails again after a reprocess updates its row. The
message is acknowledged only after the transaction commits, so the topic offset never runs
ahead of the database. A message that is not an exception (only Vivace's stages write that
topic, so a bug upstream) must neither stall the exceptions behind it nor be lost: one that
still names its file becomes a `+"`MALFORMED_RECORD`"+` exception of that file with its bytes kept,
any other is kept byte for byte in `+"`unreadable_messages`"+` with its topic position; both are
logged and counted in `+"`vivace_exceptions_skipped_total`"+`.`).
		Field(fieldDSN()).
		Field(service.NewOutputMaxInFlightField().Default(2)).
		Field(service.NewBatchPolicyField("batching")).
		Example("Store exceptions", "", `
output:
  vivace_exceptions:
    dsn: ${DATABASE_URL}
    batching: { count: 500, period: 200ms }
`)
}

func init() {
	service.MustRegisterBatchOutput("vivace_exceptions", exceptionsOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			db, mif, pol, err := dbOutputConf(conf, true)
			if err != nil {
				return nil, pol, 0, err
			}
			db.countFiles(mgr.Metrics())
			return &exceptionsOutput{storeConn: db, log: mgr.Logger(),
				skipped: mgr.Metrics().NewCounter("vivace_exceptions_skipped")}, pol, mif, nil
		})
}

type exceptionsOutput struct {
	storeConn
	log     *service.Logger
	skipped *service.MetricCounter
}

func (o *exceptionsOutput) Connect(ctx context.Context) error { return o.connect(ctx) }

func (o *exceptionsOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	exs := make([]exceptions.Exception, 0, len(batch))
	var bad []badMessage
	for _, msg := range batch {
		b, err := msg.AsBytes()
		if err != nil {
			return err
		}
		var m exceptionMsg
		if err := json.Unmarshal(b, &m); err != nil || m.Client == "" || !ids.Valid(m.FileID) || m.Code == "" {
			reason := "message is not an exception: "
			switch {
			case err != nil:
				reason += jsonx.Describe(err, "an exception").Error()
			case m.Message != "":
				// An exception of a record whose source could not be
				// read (a message the mediate stage could not read).
				reason = fmt.Sprintf("%s stage: %s", m.Stage, m.Message)
			default:
				reason += "it lacks client, a file_id of the registry or code"
			}
			stage := "exceptions"
			if m.Stage != "" && err == nil {
				stage = m.Stage
			}
			if err == nil && len(m.Raw) > 0 {
				b = m.Raw // the bytes the stage could not read
			}
			// Only Vivace's own stages write this topic, so this is a bug
			// upstream; retrying would stall every exception behind it,
			// dropping it would lose it.
			bad = append(bad, badMessage{msg: msg, body: b, stage: stage, reason: reason})
			continue
		}
		exs = append(exs, m.exception())
	}
	if err := o.keepBad(o.observing(ctx), o.log, bad); err != nil {
		return err
	}
	o.skipped.Incr(int64(len(bad)))
	_, err := o.usage().InsertExceptions(o.observing(ctx), exs)
	return err
}

func (o *exceptionsOutput) Close(context.Context) error {
	o.close()
	return nil
}
