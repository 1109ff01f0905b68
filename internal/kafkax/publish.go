package kafkax

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/mursync"
)

// SyncBatches publishes MUR sync batches (mursync.Broker) to a topic,
// keyed by batch id, and returns once the broker has acknowledged every
// one.
type SyncBatches struct {
	Client *kgo.Client
	Topic  string
}

var _ mursync.Broker = (*SyncBatches)(nil)

// SyncProducerOpts are the producer options of the batches: compressed
// (a batch of a thousand records is a few hundred kilobytes of JSON that
// compresses well), spread over the partitions by key.
func SyncProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
}

// Publish produces the messages and waits for them.
func (p *SyncBatches) Publish(ctx context.Context, msgs []mursync.Message) error {
	topic := p.Topic
	if topic == "" {
		topic = TopicMURSyncBatches
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value}
	}
	var errs []error
	for _, r := range p.Client.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("publish batch %s to %s: %w", r.Record.Key, topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Reprocess sends records of exceptions back into the pipeline
// (exceptions.Publisher): to usage.raw for the mediate stage, to
// usage.mediated for the rate stage, keyed by account with the
// pipelines' partitioner, so that the record reaches the partition its
// account's records use. Its client needs
// kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), the default.
type Reprocess struct {
	Client *kgo.Client
	// Raw and Mediated name the topics; empty means the defaults.
	Raw, Mediated string
}

var _ exceptions.Publisher = (*Reprocess)(nil)

// Publish produces the messages and waits for the broker to have them.
func (p *Reprocess) Publish(ctx context.Context, msgs []exceptions.Message) error {
	raw, mediated := p.Raw, p.Mediated
	if raw == "" {
		raw = TopicUsageRaw
	}
	if mediated == "" {
		mediated = TopicUsageMediated
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		topic := raw
		if m.Topic == exceptions.Mediated {
			topic = mediated
		}
		recs[i] = &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value}
	}
	var errs []error
	for _, r := range p.Client.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("send record again to %s: %w", r.Record.Topic, r.Err))
			if len(errs) == 3 {
				break
			}
		}
	}
	return errors.Join(errs...)
}
