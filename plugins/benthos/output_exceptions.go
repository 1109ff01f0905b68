package benthos

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/exceptions"
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
ahead of the database. A message that is not an exception is logged with an error that
says why, and is skipped (counted in `+"`vivace_exceptions_skipped`"+`): only Vivace's stages write
that topic, so such a message is a bug upstream and must not stall the exceptions behind it.`).
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
	for i, msg := range batch {
		b, err := msg.AsBytes()
		if err != nil {
			return err
		}
		var m exceptionMsg
		if err := json.Unmarshal(b, &m); err != nil || m.Client == "" || m.FileID == "" || m.Code == "" {
			if err == nil {
				err = fmt.Errorf("exception message lacks client, file_id or code")
			}
			// Only Vivace's own stages write this topic, so this is a bug
			// upstream; retrying would stall every exception behind it.
			o.log.Errorf("skipping message %d of the batch, it is not an exception (%v): %s", i, err, clipBytes(b))
			o.skipped.Incr(1)
			continue
		}
		exs = append(exs, m.exception())
	}
	_, err := o.usage().InsertExceptions(o.observing(ctx), exs)
	return err
}

func (o *exceptionsOutput) Close(context.Context) error {
	o.close()
	return nil
}
