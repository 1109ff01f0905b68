package benthos

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
)

func kafkaInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Reads from Kafka topics (Redpanda or any Kafka-compatible broker) as a consumer group, built on franz-go.").
		Description(`
Offsets are committed only for messages that have been acknowledged downstream — written by
the output, or committed to the database by a processor — so a crash never skips a record:
what was not acknowledged is delivered again.

Each batch holds records of one partition, in offset order. With `+"`partition_in_flight: 1`"+`
(the default) the next batch of a partition is handed out only after the previous one was
acknowledged, so records with the same key (Vivace keys usage by account) are processed in
order even when the pipeline runs several threads; batches of different partitions are
processed side by side. Offsets are committed every `+"`commit_period`"+`, when partitions are
revoked in a rebalance, and on shutdown.

Metadata: `+"`kafka_key`, `kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp_unix`, `kafka_timestamp_ms`"+`,
and every record header.`).
		Fields(kafkaConnFields()...).
		Field(service.NewStringListField("topics").Description("Topics to consume.")).
		Field(service.NewStringField("consumer_group").Description("Consumer group; instances with the same group share the partitions.")).
		Field(service.NewBoolField("start_from_oldest").
			Description("Where a group with no committed offset starts: the oldest record (true) or the newest.").Default(true)).
		Field(service.NewIntField("max_batch_records").Description("Most records in one batch.").Default(1000).
			LintRule(`root = if this < 1 { ["max_batch_records must be at least 1"] }`)).
		Field(service.NewIntField("partition_in_flight").
			Description("Batches of one partition that may be unacknowledged at once; 1 keeps strict per-partition order.").
			Default(1).LintRule(`root = if this < 1 { ["partition_in_flight must be at least 1"] }`)).
		Field(service.NewDurationField("fetch_max_wait").Description("How long the broker may hold a fetch waiting for data.").Default("250ms").Advanced()).
		Field(service.NewDurationField("commit_period").Description("How often acknowledged offsets are committed.").Default("1s").Advanced()).
		Field(service.NewStringField("rack_id").Description("Rack of this consumer, for follower fetching.").Default("").Advanced()).
		Field(service.NewAutoRetryNacksToggleField()).
		Example("The rate stage", "", `
input:
  kafka:
    seed_brokers: [ "${VIVACE_KAFKA_BROKERS:127.0.0.1:9092}" ]
    topics: [ usage.mediated ]
    consumer_group: vivace-rate
    max_batch_records: 2000
`)
}

func init() {
	service.MustRegisterBatchInput("kafka", kafkaInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			in, err := newKafkaInput(conf, mgr)
			if err != nil {
				return nil, err
			}
			return service.AutoRetryNacksBatchedToggled(conf, in)
		})
}

type tp struct {
	topic string
	part  int32
}

// partState is what the input knows of one assigned partition.
type partState struct {
	queue       []*kgo.Record // fetched, not handed out
	outstanding []*pendingBatch
	epoch       int // changes when the partition is revoked
	// For the lag: the partition's high watermark at the last fetch, and
	// the offset after the last acknowledged record (before any ack, the
	// first record fetched).
	hwm, done int64
	partLabel string
}

type pendingBatch struct {
	last  *kgo.Record
	acked bool
}

type kafkaInput struct {
	opts          []kgo.Opt
	maxBatch      int
	inFlight      int
	log           *service.Logger
	lag           *service.MetricGauge
	batchSize     prometheus.Observer
	queueLimit    int
	commitTimeout time.Duration

	mu       sync.Mutex
	cond     *sync.Cond
	cl       *kgo.Client
	parts    map[tp]*partState
	order    []tp // rotation for fairness
	next     int
	queued   int
	closed   bool
	stopPoll context.CancelFunc
	pollDone chan struct{}
}

func newKafkaInput(conf *service.ParsedConfig, mgr *service.Resources) (*kafkaInput, error) {
	conn, err := kafkaConn(conf)
	if err != nil {
		return nil, err
	}
	opts, err := conn.Opts()
	if err != nil {
		return nil, err
	}
	in := &kafkaInput{log: mgr.Logger(), parts: map[tp]*partState{}, commitTimeout: 10 * time.Second,
		lag: mgr.Metrics().NewGauge("vivace_consumer_lag", "topic", "partition")}
	in.cond = sync.NewCond(&in.mu)
	topics, err := conf.FieldStringList("topics")
	if err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return nil, errors.New("topics: at least one topic is required")
	}
	group, err := conf.FieldString("consumer_group")
	if err != nil {
		return nil, err
	}
	if group == "" {
		return nil, errors.New("consumer_group: required")
	}
	in.batchSize = batchRecords.WithLabelValues(group)
	oldest, err := conf.FieldBool("start_from_oldest")
	if err != nil {
		return nil, err
	}
	if in.maxBatch, err = conf.FieldInt("max_batch_records"); err != nil {
		return nil, err
	}
	if in.maxBatch < 1 {
		return nil, errors.New("max_batch_records: must be at least 1")
	}
	if in.inFlight, err = conf.FieldInt("partition_in_flight"); err != nil {
		return nil, err
	}
	if in.inFlight < 1 {
		return nil, errors.New("partition_in_flight: must be at least 1")
	}
	wait, err := conf.FieldDuration("fetch_max_wait")
	if err != nil {
		return nil, err
	}
	commitPeriod, err := conf.FieldDuration("commit_period")
	if err != nil {
		return nil, err
	}
	if commitPeriod < 100*time.Millisecond {
		return nil, errors.New("commit_period: must be at least 100ms")
	}
	rack, err := conf.FieldString("rack_id")
	if err != nil {
		return nil, err
	}
	in.queueLimit = 4 * in.maxBatch * max(in.inFlight, 1) * 8
	reset := kgo.NewOffset().AtEnd()
	if oldest {
		reset = kgo.NewOffset().AtStart()
	}
	opts = append(opts,
		kgo.ConsumeTopics(topics...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchMaxWait(wait),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(commitPeriod),
		kgo.OnPartitionsRevoked(in.onRevoked),
		kgo.OnPartitionsLost(in.onLost),
	)
	if rack != "" {
		opts = append(opts, kgo.Rack(rack))
	}
	in.opts = opts
	return in, nil
}

func (in *kafkaInput) Connect(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cl != nil {
		return nil
	}
	cl, err := connectClient(ctx, in.opts)
	if err != nil {
		return err
	}
	in.cl = cl
	in.closed = false
	pctx, cancel := context.WithCancel(context.Background())
	in.stopPoll = cancel
	in.pollDone = make(chan struct{})
	go in.poll(pctx, cl, in.pollDone)
	return nil
}

// poll fetches records into per-partition queues, holding back while the
// queues are full.
func (in *kafkaInput) poll(ctx context.Context, cl *kgo.Client, done chan struct{}) {
	defer close(done)
	for {
		in.mu.Lock()
		for in.queued >= in.queueLimit && !in.closed && ctx.Err() == nil {
			in.cond.Wait()
		}
		in.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		fetches := cl.PollRecords(ctx, in.maxBatch*4)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.log.Warnf("fetch from %s/%d: %v", topic, p, err)
			}
		})
		in.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Err != nil {
				return
			}
			k := tp{p.Topic, p.Partition}
			st, ok := in.parts[k]
			if !ok {
				if len(p.Records) == 0 {
					return
				}
				st = &partState{done: p.Records[0].Offset, partLabel: strconv.Itoa(int(p.Partition))}
				in.parts[k] = st
				in.order = append(in.order, k)
			}
			if len(st.queue) == 0 && len(st.outstanding) == 0 && len(p.Records) > 0 {
				// Nothing held: whatever came before these was done (or
				// belonged to an earlier owner of the partition).
				st.done = p.Records[0].Offset
			}
			st.hwm = max(st.hwm, p.HighWatermark)
			st.queue = append(st.queue, p.Records...)
			in.queued += len(p.Records)
			in.reportLag(k, st)
		})
		in.cond.Broadcast()
		in.mu.Unlock()
	}
}

func (in *kafkaInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	stop := context.AfterFunc(ctx, func() {
		in.mu.Lock()
		in.cond.Broadcast()
		in.mu.Unlock()
	})
	defer stop()
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		if in.closed || in.cl == nil {
			return nil, nil, service.ErrNotConnected
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if k, st, ok := in.ready(); ok {
			n := min(len(st.queue), in.maxBatch)
			recs := st.queue[:n:n]
			st.queue = st.queue[n:]
			in.queued -= n
			pb := &pendingBatch{last: recs[n-1]}
			st.outstanding = append(st.outstanding, pb)
			epoch := st.epoch
			in.cond.Broadcast() // room in the queues for the poller
			in.batchSize.Observe(float64(n))
			batch := make(service.MessageBatch, n)
			// Topic and partition are the batch's; boxed once for all.
			topic, part := any(k.topic), any(st.partLabel)
			for i, r := range recs {
				batch[i] = recordMessage(r, topic, part)
			}
			return batch, func(_ context.Context, err error) error {
				// A nack reaches here only with auto_replay_nacks off: the
				// batch is let go, as that setting says.
				in.ack(k, epoch, pb)
				return nil
			}, nil
		}
		in.cond.Wait()
	}
}

// ready picks the next partition with queued records and room in flight.
func (in *kafkaInput) ready() (tp, *partState, bool) {
	for i := 0; i < len(in.order); i++ {
		k := in.order[(in.next+i)%len(in.order)]
		st := in.parts[k]
		if st == nil || len(st.queue) == 0 || len(st.outstanding) >= in.inFlight {
			continue
		}
		in.next = (in.next + i + 1) % len(in.order)
		return k, st, true
	}
	return tp{}, nil, false
}

// ack marks a batch done and commits the partition's contiguous acked
// prefix.
func (in *kafkaInput) ack(k tp, epoch int, pb *pendingBatch) {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.parts[k]
	if st == nil || st.epoch != epoch {
		return // revoked meanwhile: the new owner reads these again
	}
	pb.acked = true
	var last *kgo.Record
	for len(st.outstanding) > 0 && st.outstanding[0].acked {
		last = st.outstanding[0].last
		st.outstanding = st.outstanding[1:]
	}
	if last != nil {
		st.done = last.Offset + 1
		in.reportLag(k, st)
		if in.cl != nil {
			in.cl.MarkCommitRecords(last)
		}
	}
	in.cond.Broadcast()
}

// reportLag sets the partition's lag: records on the partition not yet
// acknowledged downstream, fetched or not.
func (in *kafkaInput) reportLag(k tp, st *partState) {
	in.lag.Set(max(st.hwm-st.done, 0), k.topic, st.partLabel)
}

// recordMessage turns a record into a message; topic and partition are
// the record's, as metadata values.
func recordMessage(r *kgo.Record, topic, partition any) *service.Message {
	msg := service.NewMessage(r.Value)
	msg.MetaSetMut("kafka_key", string(r.Key))
	msg.MetaSetMut("kafka_topic", topic)
	msg.MetaSetMut("kafka_partition", partition)
	msg.MetaSetMut("kafka_offset", strconv.FormatInt(r.Offset, 10))
	msg.MetaSetMut("kafka_timestamp_unix", strconv.FormatInt(r.Timestamp.Unix(), 10))
	msg.MetaSetMut("kafka_timestamp_ms", strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
	for _, h := range r.Headers {
		msg.MetaSetMut(h.Key, string(h.Value))
	}
	return msg
}

// onRevoked commits what was acknowledged and forgets the revoked
// partitions; their unacknowledged records go to the new owner.
func (in *kafkaInput) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	in.forget(revoked)
	cctx, cancel := context.WithTimeout(ctx, in.commitTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		in.log.Warnf("commit on rebalance: %v", err)
	}
}

func (in *kafkaInput) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	in.forget(lost)
}

func (in *kafkaInput) forget(parts map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			if st, ok := in.parts[k]; ok {
				in.queued -= len(st.queue)
				st.queue = nil
				st.outstanding = nil
				st.epoch++
				// Its lag is the new owner's to report.
				in.lag.Set(0, topic, st.partLabel)
			}
		}
	}
	in.cond.Broadcast()
}

func (in *kafkaInput) Close(ctx context.Context) error {
	in.mu.Lock()
	cl := in.cl
	in.cl = nil
	in.closed = true
	stop, done := in.stopPoll, in.pollDone
	in.cond.Broadcast()
	in.mu.Unlock()
	if cl == nil {
		return nil
	}
	stop()
	<-done
	cctx, cancel := context.WithTimeout(ctx, in.commitTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		in.log.Warnf("commit on close: %v", err)
	}
	cl.Close()
	return nil
}
