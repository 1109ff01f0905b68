package benthos

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/usage"
)

func rateOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Rates usage records in normal form (from `usage.mediated`) and stores MURs and exceptions in PostgreSQL.").
		Description(`
Each batch is rated in one database transaction: the duplicate check on `+"`record_id`"+`, the
catalog checks (`+"`UNKNOWN_ACCOUNT`, `ACCOUNT_CLOSED`, `UNKNOWN_USAGE_TYPE`, `NO_SUBSCRIPTION`, `NO_RATE`"+`),
pricing and discounts, the MUR rows, the exception rows, the cumulative tier counters and
free-unit allowances, and the files' counts. The batch is acknowledged only after the
transaction commits, so the Kafka offset never runs ahead of the database, and a batch
replayed after a crash finds its MURs and changes nothing.

Records are rated in batch order. Read `+"`usage.mediated`"+` (keyed by account) with the `+"`kafka`"+`
input's `+"`partition_in_flight: 1`"+` and without output batching, so that batches of one partition
are rated one after another and each account's records keep their order, which tiered
rating depends on.

A message that is not a record in normal form (only the mediate stage writes the topic, so a
bug upstream) neither stalls the records behind it nor is lost: one that still names its file
becomes a `+"`MALFORMED_RECORD`"+` exception of that file at the rate stage with its bytes kept, any
other is kept byte for byte in `+"`unreadable_messages`"+` with its topic position; both are logged
and counted in `+"`vivace_rate_skipped_total`"+`.

The catalog is cached per client and checked against the database's change counter at the
start of every batch: a catalog change committed before a batch starts is always seen by it.`).
		Field(fieldDSN()).
		Field(service.NewOutputMaxInFlightField().Default(4)).
		Example("Rate stage", "", `
input:
  kafka:
    seed_brokers: [ "${VIVACE_KAFKA_BROKERS}" ]
    topics: [ usage.mediated ]
    consumer_group: vivace-rate
output:
  vivace_rate:
    dsn: ${DATABASE_URL}
`)
}

func init() {
	service.MustRegisterBatchOutput("vivace_rate", rateOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			db, mif, pol, err := dbOutputConf(conf, false)
			if err != nil {
				return nil, pol, 0, err
			}
			m := mgr.Metrics()
			db.countFiles(m)
			return &rateOutput{storeConn: db, log: mgr.Logger(),
				murs:       m.NewCounter("vivace_rate_murs"),
				exceptions: m.NewCounter("vivace_rate_exceptions"),
				replayed:   m.NewCounter("vivace_rate_replayed"),
				skipped:    m.NewCounter("vivace_rate_skipped"),
				failed:     m.NewCounter("vivace_records_failed", "stage", "code"),
			}, pol, mif, nil
		})
}

type rateOutput struct {
	storeConn
	log                                         *service.Logger
	murs, exceptions, replayed, skipped, failed *service.MetricCounter
	stage                                       *ratestage.Stage
	stopWatch                                   context.CancelFunc
	watchDone                                   chan struct{}
}

func (o *rateOutput) Connect(ctx context.Context) error {
	if err := o.connect(ctx); err != nil {
		return err
	}
	if o.stage == nil {
		o.stage = ratestage.New(o.usage(), o.catalog(), nil)
		// Catalog changes are loaded as they commit, off the batches' path.
		bg, cancel := context.WithCancel(context.Background())
		o.stopWatch, o.watchDone = cancel, make(chan struct{})
		go func() {
			defer close(o.watchDone)
			o.stage.Catalogs.Watch(bg, nil)
		}()
	}
	return nil
}

func (o *rateOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if o.stage == nil {
		return service.ErrNotConnected
	}
	items := make([]ratestage.Item, 0, len(batch))
	var bad []badMessage
	for _, msg := range batch {
		b, err := msg.AsBytes()
		if err != nil {
			return err
		}
		it := ratestage.Item{Body: json.RawMessage(b)}
		if it.Record, err = usage.ReadRecord(b); err != nil {
			// Only the mediate stage writes this topic, so this is a bug
			// upstream; retrying would stall every record behind it, and
			// dropping it would leave its file short of a record.
			bad = append(bad, badMessage{msg: msg, body: b, stage: "rate",
				reason: fmt.Sprintf("message is not a usage record in normal form: %v", err)})
			continue
		}
		items = append(items, it)
	}
	if err := o.keepBad(o.observing(ctx), o.log, bad); err != nil {
		return err
	}
	o.skipped.Incr(int64(len(bad)))
	sum, err := o.stage.Rate(o.observing(ctx), items)
	if err != nil {
		return fmt.Errorf("rate batch of %d records: %w", len(items), err)
	}
	o.murs.Incr(int64(sum.MURs))
	o.exceptions.Incr(int64(sum.Exceptions))
	for code, n := range sum.ByCode {
		o.failed.Incr(int64(n), "rate", string(code))
	}
	o.replayed.Incr(int64(sum.Replayed))
	return nil
}

func (o *rateOutput) Close(context.Context) error {
	if o.stopWatch != nil {
		o.stopWatch()
		<-o.watchDone
		o.stopWatch = nil
	}
	o.close()
	o.stage = nil
	return nil
}
