package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/retry"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/usage"
)

func filesInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Reads registered usage files record by record: the source of the ingest stage.").
		Description(`
Takes the oldest file waiting in the file registry (received from the inbox, an HTTP upload or
a bucket), leases it, and streams its records out in batches without loading the file into
memory. Each message is one raw record: its client, file id and line, and its fields with the
client's columns mapped to Vivace's names. Metadata: `+"`vivace_client`, `vivace_file_id`, `vivace_line`"+`, and
`+"`vivace_key`"+` (the account id, the Kafka key downstream).

A record that cannot be read (a malformed CSV line, a line that is not a JSON object) is
emitted failed with code `+"`MALFORMED_RECORD`"+` naming the line, and the rest of the file goes on.
Once every batch of a file has been acknowledged downstream, the file's record count is
stored; the file is done when its MURs, exceptions and filtered records add up to it.

A file an operator cancels while it is read (`+"`vivace files cancel`"+`) is read no further: the
reader looks every second, stops at its next batch, and stores how many records it had handed
out, so that the file's counts add up for them once they have ended.

Several readers share the registry safely: each file is leased to one reader and renewed while
it is read. A reader that stops releases its file; one that dies loses it when the lease runs
out, and the next reader reads the file again from the start (the rate stage recognises the
replayed records and changes nothing for them).`).
		Field(fieldDSN()).
		Field(fieldClientsFile("Path of the client settings file (column mapping, delimiter, format). Empty: defaults for every client.")).
		Field(service.NewIntField("batch_size").Description("Records per message batch.").Default(500).
			LintRule(`root = if this < 1 { ["batch_size must be at least 1"] }`)).
		Field(service.NewDurationField("poll_interval").Description("How often to look for new files when idle.").Default("500ms")).
		Field(service.NewDurationField("lease").Description("How long a file stays leased to a reader that stopped renewing it.").Default("60s")).
		Field(service.NewIntField("max_record_bytes").
			Description("Largest message, in bytes, a record may become on the topics. A record read larger (a 2 MiB JSON line, a CSV line with a huge field) "+
				"is not sent: it becomes a `MALFORMED_RECORD` exception stored directly in PostgreSQL with the message's bytes, and the file goes on. "+
				"Keep it below the brokers' limit (see `broker_check`).").
			Default(DefaultMaxRecordBytes).
			LintRule(`root = if this < 1024 { ["max_record_bytes must be at least 1024"] }`)).
		Field(service.NewObjectField("broker_check",
			append(kafkaConnFields(),
				service.NewStringListField("topics").Description("Topics the records and their exceptions are written to."))...,
		).Description("When set, Connect asks these brokers for the largest message each topic accepts (max.message.bytes, or the brokers' "+
			"message.max.bytes for a topic not created yet) and refuses to start when `max_record_bytes` and 1 KiB for the key and framing would not fit, "+
			"naming the topic and both limits.").Optional().Advanced()).
		Field(service.NewAutoRetryNacksToggleField()).
		Example("Ingest stage", "", `
input:
  vivace_files:
    dsn: ${DATABASE_URL}
    clients_file: ${VIVACE_CLIENTS_FILE:}
    batch_size: 500
`)
}

func init() {
	service.MustRegisterBatchInput("vivace_files", filesInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			in := &filesInput{log: mgr.Logger(), owner: readerID()}
			var err error
			if in.dsn, err = conf.FieldString("dsn"); err != nil {
				return nil, err
			}
			if in.cfg, err = clientSettings(conf); err != nil {
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
			if in.lease, err = conf.FieldDuration("lease"); err != nil {
				return nil, err
			}
			if in.maxRecord, err = conf.FieldInt("max_record_bytes"); err != nil {
				return nil, err
			}
			if in.maxRecord < 1024 {
				return nil, errors.New("max_record_bytes: must be at least 1024")
			}
			// The connection fields have defaults, so the object is there
			// even when not given: it is given when it names brokers.
			bc := conf.Namespace("broker_check")
			if b, berr := bc.FieldStringList("seed_brokers"); berr == nil && len(kafkax.Brokers(b)) > 0 {
				conn, err := kafkaConn(bc)
				if err != nil {
					return nil, fmt.Errorf("broker_check: %w", err)
				}
				if in.checkConn, err = conn.Opts(); err != nil {
					return nil, fmt.Errorf("broker_check: %w", err)
				}
				if in.checkTopics, err = bc.FieldStringList("topics"); err != nil {
					return nil, err
				}
			}
			in.filesRead = mgr.Metrics().NewCounter("vivace_ingest_files_read")
			in.recordsRead = mgr.Metrics().NewCounter("vivace_ingest_records_read")
			in.fileSeconds = mgr.Metrics().NewTimer("vivace_ingest_file_duration_ns")
			in.countFiles(mgr.Metrics())
			return service.AutoRetryNacksBatchedToggled(conf, in)
		})
}

func readerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), store.NewID()[24:])
}

type filesInput struct {
	storeConn
	cfg       *clientcfg.Watched
	batchSize int
	poll      time.Duration
	lease     time.Duration
	owner     string
	log       *service.Logger
	// maxRecord is the largest message a record may become; a larger one
	// is stored as an exception, not sent.
	maxRecord    int
	checkConn    []kgo.Opt // how to reach the brokers broker_check asks
	checkTopics  []string
	limitChecked bool

	filesRead, recordsRead *service.MetricCounter
	fileSeconds            *service.MetricTimer

	mu   sync.Mutex
	cur  *reading
	open map[string]*reading // files read to the end, waiting for acks
}

// reading is one file being read.
type reading struct {
	file    files.File
	f       *os.File
	rd      *usage.Reader
	enc     *usage.RawEncoder // CSV: the file's columns, ready to write
	keyCol  int               // CSV: the column of account_id, or -1
	avgBody int               // bytes a message took in the last batch
	emitted int64             // records handed out
	line    int64             // the line of the last record read
	pending int               // batches not yet acknowledged
	eof     bool
	// cancelled: an operator cancelled the file (vivace files cancel);
	// reading stops at the next batch, and stopped says it did.
	cancelled atomic.Bool
	stopped   bool
	started   time.Time
	stop      context.CancelFunc // ends lease renewal
}

func (in *filesInput) Connect(ctx context.Context) error {
	if in.st != nil {
		return nil
	}
	if len(in.checkConn) > 0 && !in.limitChecked {
		if err := checkMessageLimits(ctx, in.checkConn, in.checkTopics, in.maxRecord); err != nil {
			return err
		}
		in.limitChecked = true
	}
	if err := in.connect(ctx); err != nil {
		return err
	}
	in.open = map[string]*reading{}
	return nil
}

func (in *filesInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		in.mu.Lock()
		r := in.cur
		in.mu.Unlock()
		if r == nil {
			var err error
			if r, err = in.next(ctx); err != nil {
				return nil, nil, err
			}
			if r == nil {
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-time.After(in.poll):
				}
				continue
			}
		}
		batch, oversized, err := in.readSome(r)
		if len(oversized) > 0 {
			if serr := in.storeOversized(ctx, oversized); serr != nil {
				// Not stored and not sent: the file is read again from the
				// start by whoever leases it next.
				in.release(ctx, r, serr)
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				continue
			}
		}
		if err != nil {
			in.abandon(ctx, r, err)
			if len(batch) == 0 {
				continue
			}
		}
		if len(batch) == 0 {
			// End of file with nothing left to send.
			in.finishIfAcked(ctx, r)
			continue
		}
		in.mu.Lock()
		r.pending++
		in.mu.Unlock()
		in.recordsRead.Incr(int64(len(batch)))
		return batch, func(ctx context.Context, err error) error {
			if err != nil {
				// Without automatic replays a nack leaves the lease to run
				// out, and the file is read again.
				return nil
			}
			in.mu.Lock()
			r.pending--
			in.mu.Unlock()
			in.finishIfAcked(ctx, r)
			return nil
		}, nil
	}
}

// next claims a file and opens it; nil when none is waiting.
func (in *filesInput) next(ctx context.Context) (*reading, error) {
	f, err := in.files().ClaimFile(ctx, in.owner, in.lease)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		in.log.Errorf("cannot look for files to read: %v", err)
		return nil, nil
	}
	r := &reading{file: f, started: time.Now()}
	if r.f, err = os.Open(f.Location); err != nil {
		in.failFile(ctx, f, fmt.Sprintf("the stored file cannot be opened: %v", err))
		return nil, nil
	}
	cfg, cerr := in.cfg.Current()
	if cerr != nil {
		in.log.Errorf("client settings not reloaded, keeping the previous ones: %v", cerr)
	}
	opts := cfg.ReaderOptions(f.Client)
	opts.Format = usage.Format(f.Format)
	if r.rd, err = usage.NewReader(r.f, f.Name, opts); err != nil {
		r.f.Close()
		in.failFile(ctx, f, err.Error())
		return nil, nil
	}
	if cols := r.rd.Columns(); cols != nil {
		r.enc = usage.NewRawEncoder(cols)
		r.keyCol = slices.Index(cols, usage.FieldAccountID)
	}
	lctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go in.renew(lctx, r)
	in.log.With("client", f.Client, "file_id", f.FileID, "file", f.Name).Info("reading file")
	in.mu.Lock()
	in.cur = r
	in.open[f.FileID] = r
	in.mu.Unlock()
	return r, nil
}

// renew keeps the lease on a file being read, and looks every second
// whether an operator cancelled it; then it tells the reader to stop.
func (in *filesInput) renew(ctx context.Context, r *reading) {
	id := r.file.FileID
	t := time.NewTicker(in.lease / 3)
	defer t.Stop()
	look := time.NewTicker(cancelCheck)
	defer look.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-look.C:
			if f, err := in.files().GetFile(ctx, id); err == nil && f.Status == files.Failed && f.CancelledAt != nil {
				in.log.Infof("file %s (%s) was cancelled by %s: reading stops", f.Name, id, f.CancelledBy)
				r.cancelled.Store(true)
				return
			}
		case <-t.C:
			if err := in.files().RenewLease(ctx, id, in.owner, in.lease); err != nil && ctx.Err() == nil {
				in.log.Warnf("lease on file %s not renewed: %v", id, err)
			}
		}
	}
}

// cancelCheck is how often a reader looks whether its file was cancelled.
const cancelCheck = time.Second

// readSome reads up to one batch. At the end of the file it marks r done
// reading and returns what it has.
func (in *filesInput) readSome(r *reading) (service.MessageBatch, []exceptions.Exception, error) {
	batch := make(service.MessageBatch, 0, in.batchSize)
	// The batch's bodies share one buffer, sized from the previous batch;
	// each message gets its own capped slice of it.
	buf := make([]byte, 0, in.batchSize*max(r.avgBody, 64)+1024)
	if r.cancelled.Load() {
		in.mu.Lock()
		r.eof, r.stopped = true, true
		if in.cur == r {
			in.cur = nil
		}
		in.mu.Unlock()
		return batch, nil, nil
	}
	var oversized []exceptions.Exception
	for len(batch) < in.batchSize {
		var row []string
		var fields map[string]string
		var line int64
		var err error
		if r.enc != nil {
			row, line, err = r.rd.NextRow()
		} else {
			fields, line, err = r.rd.Next()
		}
		if errors.Is(err, io.EOF) {
			in.mu.Lock()
			r.eof = true
			if in.cur == r {
				in.cur = nil
			}
			in.mu.Unlock()
			break
		}
		var re *usage.RecordError
		if err != nil && !errors.As(err, &re) {
			return batch, oversized, err
		}
		r.line = line
		src := usage.Source{Client: r.file.Client, FileID: r.file.FileID, Line: line}
		start := len(buf)
		var key string
		switch {
		case re != nil:
			raw := usage.Raw{Source: src, Fields: re.Fields}
			if raw.Fields == nil {
				raw.Fields = map[string]string{}
			}
			if re.Text != "" {
				raw.Fields["_text"] = re.Text
			}
			buf = usage.AppendRaw(buf, raw)
			key = raw.Fields[usage.FieldAccountID]
		case r.enc != nil:
			buf = r.enc.Append(buf, src, row)
			if r.keyCol >= 0 {
				key = row[r.keyCol]
			}
		default:
			buf = usage.AppendRaw(buf, usage.Raw{Source: src, Fields: fields})
			key = fields[usage.FieldAccountID]
		}
		if len(buf)-start > in.maxRecord {
			oversized = append(oversized, oversizedException(src, buf[start:], in.maxRecord))
			buf = buf[:start]
			r.emitted++
			continue
		}
		msg := service.NewMessage(buf[start:len(buf):len(buf)])
		msg.MetaSetMut(metaClient, r.file.Client)
		msg.MetaSetMut(metaFileID, r.file.FileID)
		msg.MetaSetMut(metaLine, itoa(line))
		msg.MetaSetMut(metaKey, key)
		if re != nil {
			fail(msg, "ingest", re.Err)
		}
		batch = append(batch, msg)
		r.emitted++
	}
	if len(batch) > 0 {
		r.avgBody = len(buf)/len(batch) + 1
	}
	return batch, oversized, nil
}

// DefaultMaxRecordBytes is the default max_record_bytes: below the
// default message limit of Kafka and Redpanda brokers (1 MiB and a
// little) with room for the key and the record batch's framing.
const DefaultMaxRecordBytes = 1000000

// messageOverhead is what a record's message needs besides its body on
// the broker: the key, the record and batch headers.
const messageOverhead = 1024

// oversizedException is the MALFORMED_RECORD exception of a record whose
// message body would be larger than limit: the body is kept as its raw
// bytes, the record column shows its fields clipped.
func oversizedException(src usage.Source, body []byte, limit int) exceptions.Exception {
	ex := exceptions.Exception{Client: src.Client, FileID: src.FileID, Line: src.Line, Part: src.Part,
		Stage: "ingest", Code: codes.MalformedRecord,
		Message: fmt.Sprintf("line %d: the record is %d bytes as a message, more than the %d the topics take (max_record_bytes); "+
			"it is kept with this exception, not sent", src.Line, len(body), limit),
		Raw: slices.Clone(body)}
	shown := map[string]string{}
	if raw, err := usage.DecodeRaw(body); err == nil {
		ex.RecordID = raw.Fields[usage.FieldRecordID]
		for k, v := range raw.Fields {
			shown[k] = clip(v, 256)
		}
	}
	ex.Record, _ = json.Marshal(shown)
	return ex
}

// storeOversized stores the exceptions of records too large to send,
// waiting out the database as the other stages do.
func (in *filesInput) storeOversized(ctx context.Context, exs []exceptions.Exception) error {
	err := dbRetry().Do(ctx, func(ctx context.Context) error {
		_, err := in.usage().InsertExceptions(in.observing(ctx), exs)
		return err
	})
	if err == nil {
		in.log.Warnf("%d record(s) larger than max_record_bytes (%d) kept as MALFORMED_RECORD exceptions, first: %s",
			len(exs), in.maxRecord, exs[0].Message)
	}
	return err
}

// release gives up a file being read without failing it: its lease is
// left to run out, and it is read again from the start.
func (in *filesInput) release(ctx context.Context, r *reading, err error) {
	in.mu.Lock()
	if in.cur == r {
		in.cur = nil
	}
	delete(in.open, r.file.FileID)
	in.mu.Unlock()
	in.closeReading(r)
	if ctx.Err() == nil {
		in.log.Errorf("file %s (%s): reading stopped, to be read again once its lease runs out: %v", r.file.Name, r.file.FileID, err)
	}
}

// checkMessageLimits refuses a max_record_bytes that the brokers' message
// limit on any of topics cannot take.
func checkMessageLimits(ctx context.Context, conn []kgo.Opt, topics []string, maxRecord int) error {
	cl, err := connectClient(ctx, conn)
	if err != nil {
		return err
	}
	defer cl.Close()
	limits, err := kafkax.MessageLimits(ctx, cl, topics...)
	if err != nil {
		return fmt.Errorf("broker_check: %w", err)
	}
	var errs []error
	for _, t := range topics {
		if n := limits[t]; maxRecord+messageOverhead > n {
			errs = append(errs, fmt.Errorf("max_record_bytes %d (plus %d for key and framing) is more than topic %s accepts (max.message.bytes %d): "+
				"lower max_record_bytes (VIVACE_MAX_RECORD_BYTES) or raise the topic's limit", maxRecord, messageOverhead, t, n))
		}
	}
	return errors.Join(errs...)
}

// finishIfAcked stores the record count once the whole file was read and
// every batch acknowledged.
func (in *filesInput) finishIfAcked(ctx context.Context, r *reading) {
	in.mu.Lock()
	if !r.eof || r.pending > 0 || in.open[r.file.FileID] != r {
		in.mu.Unlock()
		return
	}
	delete(in.open, r.file.FileID)
	in.mu.Unlock()
	defer in.closeReading(r)
	if r.stopped {
		in.stopRead(ctx, r, false)
		return
	}
	var f files.File
	err := countRetry.Do(ctx, func(ctx context.Context) error {
		var err error
		f, err = in.files().FileRead(ctx, r.file.FileID, r.emitted)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		// Not processing any more: cancelled after the last record was
		// read (or failed); a cancelled file gets its count.
		in.stopRead(ctx, r, true)
		return
	}
	if err == nil && f.Status == files.Done && f.FinishedAt != nil {
		// Every record had ended before the count was stored.
		in.fileDone(files.Finished{FileID: f.FileID, Client: f.Client, Took: f.FinishedAt.Sub(f.ReceivedAt)})
	}
	if err != nil {
		// The lease runs out and the file is read again; replays are harmless.
		in.log.Errorf("file %s read to the end but its count was not stored: %v", r.file.FileID, err)
		return
	}
	in.filesRead.Incr(1)
	in.fileSeconds.Timing(time.Since(r.started).Nanoseconds())
	in.log.With("client", r.file.Client, "file_id", r.file.FileID, "file", r.file.Name, "records", r.emitted).Info("file read")
}

// countRetry is how storing a file's count waits out the database (the
// lease is renewed meanwhile); after five minutes the lease is left to
// run out and the file is read again.
var countRetry = retry.Policy{First: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.DefaultJitter,
	MaxWait: 5 * time.Minute, Refused: func(err error) bool { return errors.Is(err, store.ErrNotFound) || store.Refused(err) }}

// stopRead stores how far the reader of a cancelled file got, so that its
// counts add up for the records it read; complete says it had read them
// all.
func (in *filesInput) stopRead(ctx context.Context, r *reading, complete bool) {
	f, err := in.files().StopRead(ctx, r.file.FileID, r.emitted, r.line, complete)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not cancelled (failed otherwise), or its count was stored.
	case err != nil:
		in.log.Errorf("cancelled file %s: how far it was read is not stored: %v", r.file.FileID, err)
	default:
		in.log.Infof("cancelled file %s (%s): %d records read", f.Name, f.FileID, r.emitted)
	}
}

// abandon stops reading a file that failed part-way.
func (in *filesInput) abandon(ctx context.Context, r *reading, err error) {
	in.mu.Lock()
	if in.cur == r {
		in.cur = nil
	}
	delete(in.open, r.file.FileID)
	in.mu.Unlock()
	in.closeReading(r)
	in.failFile(ctx, r.file, fmt.Sprintf("reading stopped after %d records (the last on line %d): %v", r.emitted, r.line, err))
}

func (in *filesInput) failFile(ctx context.Context, f files.File, reason string) {
	in.log.With("client", f.Client, "file_id", f.FileID, "file", f.Name).Errorf("file failed: %s", reason)
	if err := in.files().FailFile(ctx, f.FileID, reason); err != nil {
		in.log.Errorf("file %s: cannot record the failure: %v", f.FileID, err)
	}
}

func (in *filesInput) closeReading(r *reading) {
	if r.stop != nil {
		r.stop()
	}
	if r.rd != nil {
		_ = r.rd.Close()
	}
	if r.f != nil {
		_ = r.f.Close()
	}
}

func (in *filesInput) Close(ctx context.Context) error {
	in.mu.Lock()
	open := in.open
	in.open, in.cur = map[string]*reading{}, nil
	in.mu.Unlock()
	for id, r := range open {
		in.closeReading(r)
		if in.st != nil && !r.eof {
			_ = in.files().ReleaseLease(ctx, id, in.owner)
		}
	}
	in.close()
	return nil
}
