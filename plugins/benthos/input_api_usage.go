package benthos

import (
	"context"
	"errors"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/store/tmfstore"
	"vivace.dev/vivace/internal/usage"
)

func apiUsageInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Reads the usages posted to the TMF635 API (POST /usage): the ingest stage's second source.").
		Description(`
Each usage posted to `+"`/tmf-api/usageManagement/v4/usage`"+` is stored as one line of its client's
"api" submission of the day (a file with source `+"`api`"+`), in the transaction that answers the
request. This input hands those records out as raw records, exactly as the files input hands out a
file's lines: the same message body and metadata (`+"`vivace_client`, `vivace_file_id`, `vivace_line`, `vivace_key`"+`), so they are mediated, rated and counted as file lines are, and the submission's
counts add up as theirs do.

It sends one batch at a time, oldest first, and marks a batch sent once it has been acknowledged
downstream; a batch not acknowledged (a crash, a nack) is sent again, and the rate stage
recognises the replayed records. It wakes as soon as a usage is posted (a PostgreSQL
notification), and looks every `+"`poll_interval`"+` besides.`).
		Field(fieldDSN()).
		Field(service.NewIntField("batch_size").Description("Records per message batch.").Default(500).
			LintRule(`root = if this < 1 { ["batch_size must be at least 1"] }`)).
		Field(service.NewDurationField("poll_interval").Description("How often to look for posted usages when no notification came.").Default("1s")).
		Example("Ingest stage", "", `
input:
  vivace_api_usage:
    dsn: ${DATABASE_URL}
    batch_size: 500
`)
}

func init() {
	service.MustRegisterBatchInput("vivace_api_usage", apiUsageInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			in := &apiUsageInput{log: mgr.Logger(), wake: make(chan struct{}, 1), acked: make(chan struct{}, 1)}
			var err error
			if in.dsn, err = conf.FieldString("dsn"); err != nil {
				return nil, err
			}
			if in.batchSize, err = conf.FieldInt("batch_size"); err != nil {
				return nil, err
			}
			if in.batchSize < 1 {
				return nil, errors.New("batch_size: must be at least 1")
			}
			if in.poll, err = conf.FieldDuration("poll_interval"); err != nil {
				return nil, err
			}
			in.acked <- struct{}{}
			in.recordsRead = mgr.Metrics().NewCounter("vivace_api_usage_records_read")
			return in, nil
		})
}

type apiUsageInput struct {
	storeConn
	batchSize   int
	poll        time.Duration
	log         *service.Logger
	wake        chan struct{}
	acked       chan struct{} // holds a token while no batch is out
	stopListen  context.CancelFunc
	recordsRead *service.MetricCounter
}

func (in *apiUsageInput) Connect(ctx context.Context) error {
	if in.st != nil {
		return nil
	}
	if err := in.connect(ctx); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.Background())
	in.stopListen = cancel
	ts := tmfstore.New(in.st)
	go func() {
		for lctx.Err() == nil {
			err := ts.Listen(lctx, in.signal)
			if lctx.Err() != nil {
				return
			}
			in.log.Warnf("api usage notifications: %v; polling every %v meanwhile", err, in.poll)
			select {
			case <-lctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}()
	return nil
}

func (in *apiUsageInput) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *apiUsageInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	// One batch out at a time: the next read starts after its ack, so a
	// record is never handed out twice while the first copy travels.
	select {
	case <-in.acked:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	ts := tmfstore.New(in.st)
	for {
		rs, err := ts.Unsent(ctx, in.batchSize)
		if err != nil {
			in.acked <- struct{}{}
			return nil, nil, err
		}
		if len(rs) > 0 {
			batch := make(service.MessageBatch, len(rs))
			for i, r := range rs {
				msg := service.NewMessage(usage.AppendRaw(nil, r))
				msg.MetaSetMut(metaClient, r.Client)
				msg.MetaSetMut(metaFileID, r.FileID)
				msg.MetaSetMut(metaLine, itoa(r.Line))
				msg.MetaSetMut(metaKey, r.Fields[usage.FieldAccountID])
				batch[i] = msg
			}
			in.recordsRead.Incr(int64(len(rs)))
			return batch, func(ctx context.Context, err error) error {
				defer func() { in.acked <- struct{}{} }()
				if err != nil {
					return nil // sent again on the next read
				}
				return ts.MarkSent(ctx, rs)
			}, nil
		}
		select {
		case <-ctx.Done():
			in.acked <- struct{}{}
			return nil, nil, ctx.Err()
		case <-in.wake:
		case <-time.After(in.poll):
		}
	}
}

func (in *apiUsageInput) Close(ctx context.Context) error {
	if in.stopListen != nil {
		in.stopListen()
	}
	in.close()
	return nil
}
