package benthos

import (
	"context"
	"encoding/json"
	"vivace.dev/vivace/internal/catalog"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/store"
)

func catalogOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Applies core feed events (from `core.feed`) to the catalog and account tables.").
		Description(`
Each batch is applied in one transaction, in message order, and acknowledged only after it
commits. An event applies only when its version is newer than the stored one — deletes are
soft and versioned too — so redelivered, repeated and late events change nothing. An event
that cannot be applied (not JSON, a missing field, an unknown entity or op, invalid data) is
recorded as failed with its reason; it never stops the stream. Every event's outcome
(`+"`applied`, `ignored`, `failed`"+`) is kept, which is what `+"`vivace feed publish --wait`"+` reports.`).
		Field(fieldDSN()).
		Field(service.NewOutputMaxInFlightField().Default(1)).
		Field(service.NewBatchPolicyField("batching")).
		Example("Catalog sync", "", `
output:
  vivace_catalog:
    dsn: ${DATABASE_URL}
    batching: { count: 500, period: 100ms }
`)
}

func init() {
	service.MustRegisterBatchOutput("vivace_catalog", catalogOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			db, mif, pol, err := dbOutputConf(conf, true)
			if err != nil {
				return nil, pol, 0, err
			}
			m := mgr.Metrics()
			return &catalogOutput{storeConn: db, log: mgr.Logger(),
				applied: m.NewCounter("vivace_feed_events_applied"),
				ignored: m.NewCounter("vivace_feed_events_ignored"),
				failed:  m.NewCounter("vivace_feed_events_failed")}, pol, mif, nil
		})
}

type catalogOutput struct {
	storeConn
	log                      *service.Logger
	applied, ignored, failed *service.MetricCounter
}

func (o *catalogOutput) Connect(ctx context.Context) error { return o.connect(ctx) }

func (o *catalogOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	events := make([]feed.Event, 0, len(batch))
	fails := make([]error, 0, len(batch))
	for i, msg := range batch {
		b, err := msg.AsBytes()
		if err != nil {
			return err
		}
		e, err := feed.Parse(b)
		if err == nil {
			err = e.Validate(validateEventData)
		}
		if e.EventID == "" {
			// Without an id the outcome cannot be looked up; key it by
			// where it sat in the topic so it is still on record.
			e.EventID = unidentifiedEventID(msg, i)
		}
		if err != nil {
			payload, _ := json.Marshal(map[string]string{"raw": clipBytes(b)})
			if e.Data == nil {
				e.Data = payload
			}
		}
		events = append(events, e)
		fails = append(fails, err)
	}
	outs, err := o.st.ApplyEvents(ctx, events, fails)
	if err != nil {
		return err
	}
	for _, out := range outs {
		switch out.Outcome {
		case feed.Applied:
			o.applied.Incr(1)
		case feed.Ignored:
			o.ignored.Incr(1)
		default:
			o.failed.Incr(1)
			o.log.Warnf("feed event %s failed: %s", out.EventID, out.Message)
		}
	}
	return nil
}

func unidentifiedEventID(msg *service.Message, i int) string {
	topic, _ := msg.MetaGet("kafka_topic")
	part, _ := msg.MetaGet("kafka_partition")
	off, _ := msg.MetaGet("kafka_offset")
	if off == "" {
		return "unidentified/" + store.NewID() + "/" + itoa(int64(i))
	}
	return "unidentified/" + topic + "/" + part + "/" + off
}

func (o *catalogOutput) Close(context.Context) error {
	o.close()
	return nil
}

// validateEventData checks an upsert's data against the catalog model.
var validateEventData feed.DataValidator = catalog.ValidateData
