package kafkax

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

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
