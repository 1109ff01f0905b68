package benthos

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
)

func kafkaOutputSpec() *service.ConfigSpec {
	spec := service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Writes messages to Kafka (Redpanda or any Kafka-compatible broker), built on franz-go.").
		Description(`
A batch is acknowledged only once every message of it has been acknowledged by the brokers; a
message that could not be written is retried on its own, the others are not written twice.
With the default `+"`murmur2_hash`"+` partitioner a key goes to the partition the Java client and
rpk would choose, so records keyed by account land where other tools expect them. Records of
one key keep their order as long as batches reach this output in order and are written one at
a time per partition: behind the `+"`kafka`"+` input (one batch per partition in flight by
default) any `+"`max_in_flight`"+` does; behind an input that hands out batches without waiting
for acknowledgements, such as `+"`vivace_files`"+`, set `+"`max_in_flight: 1`"+`. Metadata
selected by `+"`metadata`"+` becomes record headers.`).
		Fields(kafkaConnFields()...).
		Field(service.NewInterpolatedStringField("topic").Description("Topic to write to.")).
		Field(service.NewInterpolatedStringField("key").Description("Record key; empty means no key.").Default("")).
		Field(service.NewStringEnumField("partitioner", "murmur2_hash", "round_robin", "manual").
			Description("How records are spread over partitions.").Default("murmur2_hash")).
		Field(service.NewInterpolatedStringField("partition").
			Description("Partition number for the `manual` partitioner.").Default("")).
		Field(service.NewMetadataFilterField("metadata").
			Description("Which metadata to write as record headers (none by default).").Optional()).
		Field(service.NewBoolField("allow_auto_topic_creation").
			Description("Let the broker create a missing topic (if the broker allows it).").Default(true).Advanced()).
		Field(service.NewBoolField("idempotent_write").
			Description("Idempotent producing: no duplicates from the producer's own retries.").Default(true).Advanced()).
		Field(service.NewStringEnumField("compression", "none", "gzip", "snappy", "lz4", "zstd").
			Description("Compression of record batches.").Default("lz4").Advanced()).
		Field(service.NewIntField("max_message_bytes").
			Description("Largest record batch sent to the broker, in bytes.").Default(1048576).Advanced()).
		Field(service.NewDurationField("timeout").
			Description("How long a record may take to be acknowledged before it fails.").Default("10s").Advanced()).
		Field(service.NewOutputMaxInFlightField().Default(10)).
		Field(service.NewBatchPolicyField("batching")).
		LintRule(`root = if this.partitioner == "manual" && this.partition.or("") == "" { ["partition is required with the manual partitioner"] }`).
		Example("Keyed by account", "Usage records keyed by account keep per-account order.", `
output:
  kafka:
    seed_brokers: [ "${VIVACE_KAFKA_BROKERS:127.0.0.1:9092}" ]
    topic: usage.mediated
    key: ${! meta("vivace_key") }
    metadata:
      include_prefixes: [ "vivace_" ]
`)
	return spec
}

func init() {
	service.MustRegisterBatchOutput("kafka", kafkaOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var pol service.BatchPolicy
			o, err := newKafkaOutput(conf, mgr)
			if err != nil {
				return nil, pol, 0, err
			}
			mif, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, pol, 0, err
			}
			if pol, err = conf.FieldBatchPolicy("batching"); err != nil {
				return nil, pol, 0, err
			}
			return o, pol, mif, nil
		})
}

type kafkaOutput struct {
	opts      []kgo.Opt
	topic     *service.InterpolatedString
	key       *service.InterpolatedString
	partition *service.InterpolatedString
	manual    bool
	meta      *service.MetadataFilter
	log       *service.Logger
	// keyMeta is the metadata key when key is nothing but a lookup of one
	// (the pipelines' ${! meta("vivace_key") }): read directly, it skips
	// the interpolation, a noticeable share of a record's cost.
	keyMeta string

	mu sync.Mutex
	cl *kgo.Client
}

func newKafkaOutput(conf *service.ParsedConfig, mgr *service.Resources) (*kafkaOutput, error) {
	conn, err := kafkaConn(conf)
	if err != nil {
		return nil, err
	}
	opts, err := conn.Opts()
	if err != nil {
		return nil, err
	}
	o := &kafkaOutput{log: mgr.Logger()}
	if o.topic, err = conf.FieldInterpolatedString("topic"); err != nil {
		return nil, err
	}
	if o.key, err = conf.FieldInterpolatedString("key"); err != nil {
		return nil, err
	}
	if raw, err := conf.FieldString("key"); err == nil {
		o.keyMeta = metaKeyName(raw)
	}
	if o.partition, err = conf.FieldInterpolatedString("partition"); err != nil {
		return nil, err
	}
	part, err := conf.FieldString("partitioner")
	if err != nil {
		return nil, err
	}
	switch part {
	case "murmur2_hash":
		opts = append(opts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	case "round_robin":
		opts = append(opts, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	case "manual":
		o.manual = true
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if conf.Contains("metadata") {
		if o.meta, err = conf.FieldMetadataFilter("metadata"); err != nil {
			return nil, err
		}
	}
	if auto, err := conf.FieldBool("allow_auto_topic_creation"); err != nil {
		return nil, err
	} else if auto {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	if idem, err := conf.FieldBool("idempotent_write"); err != nil {
		return nil, err
	} else if !idem {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	comp, err := conf.FieldString("compression")
	if err != nil {
		return nil, err
	}
	codec := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}[comp]
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	maxBytes, err := conf.FieldInt("max_message_bytes")
	if err != nil {
		return nil, err
	}
	if maxBytes < 1024 {
		return nil, errors.New("max_message_bytes: must be at least 1024")
	}
	opts = append(opts, kgo.ProducerBatchMaxBytes(int32(maxBytes)))
	timeout, err := conf.FieldDuration("timeout")
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.RecordDeliveryTimeout(timeout), kgo.ProducerLinger(time.Millisecond))
	o.opts = opts
	return o, nil
}

func (o *kafkaOutput) Connect(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cl != nil {
		return nil
	}
	cl, err := connectClient(ctx, o.opts)
	if err != nil {
		return err
	}
	o.cl = cl
	return nil
}

func (o *kafkaOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.Lock()
	cl := o.cl
	o.mu.Unlock()
	if cl == nil {
		return service.ErrNotConnected
	}
	// One allocation for the batch's records and one for the callback;
	// a failed record's position is found by its address.
	records := make([]kgo.Record, len(batch))
	// An executor converts the batch once; resolving each message through
	// the batch itself would convert it once per message.
	ex := interpolators{topic: batch.InterpolationExecutor(o.topic), key: batch.InterpolationExecutor(o.key), n: len(batch)}
	if o.manual {
		ex.partition = batch.InterpolationExecutor(o.partition)
	}
	var keys []byte // the batch's keys, one after the other
	for i, msg := range batch {
		if err := o.record(&records[i], &keys, &ex, i, msg); err != nil {
			return err
		}
	}
	errs := make([]error, len(records))
	var wg sync.WaitGroup
	wg.Add(len(records))
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			for i := range records {
				if &records[i] == r {
					errs[i] = err
				}
			}
		}
		wg.Done()
	}
	for i := range records {
		cl.Produce(ctx, &records[i], promise)
	}
	wg.Wait()
	var berr *service.BatchError
	for i, err := range errs {
		if err == nil {
			continue
		}
		if berr == nil {
			berr = service.NewBatchError(batch, fmt.Errorf("kafka: %w", err))
		}
		_ = berr.Failed(i, err) // it returns berr itself, for chaining
	}
	if berr != nil {
		return berr
	}
	return nil
}

type interpolators struct {
	topic, key, partition *service.MessageBatchInterpolationExecutor
	n                     int // messages in the batch
}

func (o *kafkaOutput) record(r *kgo.Record, keys *[]byte, ex *interpolators, i int, msg *service.Message) error {
	topic, err := ex.topic.TryString(i)
	if err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if topic == "" {
		return errors.New("topic: interpolates to an empty name")
	}
	value, err := msg.AsBytes()
	if err != nil {
		return err
	}
	r.Topic, r.Value = topic, value
	key, ok := "", false
	if o.keyMeta != "" {
		v, found := msg.MetaGetMut(o.keyMeta)
		key, ok = v.(string)
		ok = ok && found
	}
	if !ok {
		if key, err = ex.key.TryString(i); err != nil {
			return fmt.Errorf("key: %w", err)
		}
	}
	if key != "" {
		if *keys == nil {
			*keys = make([]byte, 0, 32*ex.n)
		}
		start := len(*keys)
		*keys = append(*keys, key...)
		r.Key = (*keys)[start:len(*keys):len(*keys)]
	}
	if o.manual {
		p, err := ex.partition.TryString(i)
		if err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("partition: %q is not a partition number", p)
		}
		r.Partition = int32(n)
	}
	if o.meta != nil {
		_ = o.meta.WalkMut(msg, func(k string, v any) error {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(fmt.Sprint(v))})
			return nil
		})
	}
	return nil
}

var metaLookupRE = regexp.MustCompile(`^\$\{!\s*meta\("([A-Za-z0-9_.-]+)"\)\s*\}$`)

// metaKeyName returns the metadata key that an interpolation consisting
// of a single meta("name") call reads, or "".
func metaKeyName(interp string) string {
	if m := metaLookupRE.FindStringSubmatch(strings.TrimSpace(interp)); m != nil {
		return m[1]
	}
	return ""
}

func (o *kafkaOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	cl := o.cl
	o.cl = nil
	o.mu.Unlock()
	if cl != nil {
		_ = cl.Flush(ctx)
		cl.Close()
	}
	return nil
}
