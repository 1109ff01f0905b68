package benthos

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/catalog"
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
soft and versioned too — so redelivered, repeated and late events change nothing.

Fields Vivace does not use, at any level of an event (the envelope, the data, a rate schedule,
a tier, a discount), are kept with the event as received and ignored; so are fields the
entity's model does not use (a `+"`unit_price`"+` on a `+"`stairstep`"+` tier). The outcome
carries a warning naming each (names and descriptions aside), counted in
`+"`vivace_feed_warnings`"+`. An event that cannot be applied because something needed is
missing, of the wrong type or invalid (not JSON, a missing field, an unknown entity or op, a
currency that is not ISO 4217, tiers out of order) is recorded as failed with its reason,
`+"`INVALID_EVENT`"+`; it never stops the stream.

An event that names an entity the catalog does not hold yet (a subscription whose plan is still
on its way) is pending: it is tried again whenever entities arrive, and fails with
`+"`MISSING_REFERENCE`"+` after `+"`dependency_wait`"+`. One that names an entity whose own event
failed fails at once with `+"`REFERENCE_FAILED`"+`, naming that event and its reason, and applies
as soon as that entity is repaired. Every event's outcome
(`+"`applied`, `ignored`, `pending`, `failed`"+`) is kept with the event, which is what
`+"`vivace feed publish --wait`"+` reports and what `+"`vivace feed errors list|reprocess|edit`"+`
works on.`).
		Field(fieldDSN()).
		Field(service.NewDurationField("dependency_wait").
			Description("How long an event that names an entity not in the catalog yet (a subscription before its plan) stays pending, tried again as entities arrive, before it fails with `MISSING_REFERENCE`.").
			Default("5m")).
		Field(service.NewDurationField("retry_interval").
			Description("How often pending events are tried again and expired, besides after every batch that applied something.").
			Default("5s").Advanced()).
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
			o := &catalogOutput{storeConn: db, log: mgr.Logger(),
				applied:  m.NewCounter("vivace_feed_events_applied"),
				ignored:  m.NewCounter("vivace_feed_events_ignored"),
				pending:  m.NewCounter("vivace_feed_events_pending"),
				failed:   m.NewCounter("vivace_feed_events_failed"),
				warnings: m.NewCounter("vivace_feed_warnings")}
			if o.wait, err = conf.FieldDuration("dependency_wait"); err != nil {
				return nil, pol, 0, err
			}
			if o.every, err = conf.FieldDuration("retry_interval"); err != nil {
				return nil, pol, 0, err
			}
			return o, pol, mif, nil
		})
}

type catalogOutput struct {
	storeConn
	log                               *service.Logger
	applied, ignored, pending, failed *service.MetricCounter
	warnings                          *service.MetricCounter // fields ignored, one per warning
	wait, every                       time.Duration

	mu   sync.Mutex
	stop context.CancelFunc
	done chan struct{}
}

func (o *catalogOutput) Connect(ctx context.Context) error {
	if err := o.connect(ctx); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stop == nil {
		bg, cancel := context.WithCancel(context.Background())
		o.stop, o.done = cancel, make(chan struct{})
		go o.sweep(bg)
	}
	return nil
}

// sweep tries pending events again and expires those that waited too
// long, every retry_interval.
func (o *catalogOutput) sweep(ctx context.Context) {
	defer close(o.done)
	t := time.NewTicker(o.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o.retryPending(ctx)
		n, err := o.applier().ExpirePending(ctx, o.wait)
		if err != nil && ctx.Err() == nil {
			o.log.Errorf("expire pending feed events: %v", err)
		}
		if n > 0 {
			o.failed.Incr(int64(n))
			o.log.Warnf("%d feed events failed: the entities they name did not arrive within %s", n, o.wait)
		}
	}
}

func (o *catalogOutput) retryPending(ctx context.Context) {
	n, err := o.applier().RetryPending(ctx)
	if err != nil && ctx.Err() == nil {
		o.log.Errorf("retry pending feed events: %v", err)
	}
	if n > 0 {
		o.applied.Incr(int64(n))
		o.log.Infof("%d pending feed events applied now that the entities they name arrived", n)
	}
}

func (o *catalogOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	events := make([]feed.Event, 0, len(batch))
	fails := make([]error, 0, len(batch))
	for i, msg := range batch {
		b, err := msg.AsBytes()
		if err != nil {
			return err
		}
		// The applier checks what could be read.
		e, err := feed.Parse(b)
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
	outs, err := o.applier().Apply(ctx, events, fails)
	if err != nil {
		return err
	}
	for _, out := range outs {
		if len(out.Warnings) > 0 {
			o.warnings.Incr(int64(len(out.Warnings)))
		}
		switch out.Outcome {
		case feed.Applied:
			o.applied.Incr(1)
		case feed.Ignored:
			o.ignored.Incr(1)
		case feed.Pending:
			o.pending.Incr(1)
		default:
			o.failed.Incr(1)
			o.log.Warnf("feed event %s failed: %s", out.EventID, out.Message)
		}
	}
	return nil
}

// applier applies events to the catalog in the component's database.
func (o *catalogOutput) applier() *feed.Applier {
	return feed.NewApplier(o.catalog(), validateEventData)
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
	o.mu.Lock()
	stop, done := o.stop, o.done
	o.stop = nil
	o.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	o.close()
	return nil
}

// validateEventData checks an upsert's data against the catalog model.
var validateEventData feed.DataValidator = catalog.ValidateData
