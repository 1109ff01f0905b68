package benthos

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/retry"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/rulestore"
	"vivace.dev/vivace/internal/store/usagestore"
)

// Metadata keys our components read and write; doc.go says what each
// means, who sets it and who reads it.
const (
	metaClient  = "vivace_client"
	metaFileID  = "vivace_file_id"
	metaLine    = "vivace_line"
	metaKey     = "vivace_key"
	metaStage   = "vivace_stage"
	metaCode    = "vivace_code"
	metaField   = "vivace_field"
	metaMessage = "vivace_message"
)

// databaseWait bounds how long a component waits for a database it cannot
// reach before it fails the records that need it; 0, the default, is no
// bound: a running pipeline waits out an outage rather than turn every
// record into an exception.
var databaseWait atomic.Int64

// SetDatabaseWait bounds the wait for an unreachable database (0: none).
// `vivace test` sets a bound, so that a YAML test whose database is down
// fails with the reason instead of waiting for ever.
func SetDatabaseWait(d time.Duration) { databaseWait.Store(int64(d)) }

// databaseWaitBound is the bound SetDatabaseWait set (0: none), for the
// components built after it.
func databaseWaitBound() time.Duration { return time.Duration(databaseWait.Load()) }

// dbRetry is how a component's own database work waits out the
// database: a lost connection is tried again with growing pauses (until
// the context ends, or the bound SetDatabaseWait set), a refusal the
// database made fails at once.
func dbRetry() retry.Policy {
	return retry.Policy{First: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.DefaultJitter,
		MaxWait: databaseWaitBound(), Refused: store.Refused}
}

// fieldDSN is the database connection field shared by our components.
func fieldDSN() *service.ConfigField {
	return service.NewStringField("dsn").
		Description("PostgreSQL connection URL. Pipelines usually take it from the environment: `${DATABASE_URL}`.").
		Example("postgres://vivace@db:5432/vivace?sslmode=require").
		Secret()
}

// fieldClientsFile is the clients_file field of the components that read
// the client settings file; desc says what they take from it.
func fieldClientsFile(desc string) *service.ConfigField {
	return service.NewStringField("clients_file").Description(desc).Default("")
}

// clientSettings opens the client settings file a component's
// clients_file names (an empty name: defaults for every client).
func clientSettings(conf *service.ParsedConfig) (*clientcfg.Watched, error) {
	path, err := conf.FieldString("clients_file")
	if err != nil {
		return nil, err
	}
	return clientcfg.Open(path)
}

// fail marks a message as failed with a stable code, so the pipeline can
// route it to the exceptions topic, where it becomes an exception row.
func fail(msg *service.Message, stage string, err error) {
	ce, ok := codes.As(err)
	if !ok {
		ce = &codes.Error{Message: err.Error()}
	}
	msg.MetaSetMut(metaStage, stage)
	if ce.Code != "" {
		msg.MetaSetMut(metaCode, string(ce.Code))
	}
	if ce.Field != "" {
		msg.MetaSetMut(metaField, ce.Field)
	}
	msg.MetaSetMut(metaMessage, ce.Message)
	msg.SetError(err)
}

// storeConn is a component's hold on the process-wide database pool for
// dsn. Components embed it: connect takes the hold once, close gives it
// back.
type storeConn struct {
	dsn     string
	st      *store.Store
	release func()

	// Files this component finishes, and their time from receipt to done;
	// nil until countFiles.
	filesDone *service.MetricCounter
	fileTook  *service.MetricTimer
}

// countFiles makes the component count the files it finishes
// (vivace_files_done) and time them from receipt to done
// (vivace_file_duration_seconds).
func (c *storeConn) countFiles(m *service.Metrics) {
	c.filesDone = m.NewCounter("vivace_files_done")
	c.fileTook = m.NewTimer("vivace_file_duration_ns")
}

// fileDone records one finished file.
func (c *storeConn) fileDone(f files.Finished) {
	if c.filesDone != nil {
		c.filesDone.Incr(1)
		c.fileTook.Timing(f.Took.Nanoseconds())
	}
}

// observing returns ctx under which the store reports the files a
// transaction finishes.
func (c *storeConn) observing(ctx context.Context) context.Context {
	return files.WithObserver(ctx, c.fileDone)
}

// The subject stores over the component's pool (after connect).
func (c *storeConn) files() *filestore.Store      { return filestore.New(c.st) }
func (c *storeConn) usage() *usagestore.Store     { return usagestore.New(c.st) }
func (c *storeConn) catalog() *catalogstore.Store { return catalogstore.New(c.st) }

// dbOutputConf reads the fields every database output has: dsn,
// max_in_flight and, for outputs whose spec has it, batching.
func dbOutputConf(conf *service.ParsedConfig, batching bool) (c storeConn, maxInFlight int, pol service.BatchPolicy, err error) {
	if c.dsn, err = conf.FieldString("dsn"); err != nil {
		return
	}
	if maxInFlight, err = conf.FieldMaxInFlight(); err != nil {
		return
	}
	if batching {
		pol, err = conf.FieldBatchPolicy("batching")
	}
	return
}

func (c *storeConn) connect(ctx context.Context) error {
	if c.st != nil {
		return nil
	}
	if c.dsn == "" {
		return errors.New("dsn: a database connection URL is required")
	}
	st, release, err := store.Shared(ctx, c.dsn)
	if err != nil {
		return err
	}
	c.st, c.release = st, release
	return nil
}

func (c *storeConn) close() {
	if c.release != nil {
		c.release()
		c.release, c.st = nil, nil
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// clipBytes shortens a message body quoted in a log line.
func clipBytes(b []byte) string {
	const n = 200
	if len(b) <= n {
		return string(b)
	}
	return clip(string(b[:n+1]), n)
}

// clip shortens s to n bytes for a message, marking the cut.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ruleStore is the mediation rules' hold on the database: it connects to
// the process-wide pool for dsn on first use and implements the rules'
// ports (rules.CorrelationStore, rules.LookupReader) with
// internal/store/rulestore, so that a rule waits out a database that is
// not there yet as it waits out one that went away.
type ruleStore struct {
	mu   sync.Mutex // guards conn and rs: pipeline threads share a processor
	conn storeConn
	rs   *rulestore.Store
}

func (r *ruleStore) get(ctx context.Context) (*rulestore.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rs != nil {
		return r.rs, nil
	}
	if err := r.conn.connect(ctx); err != nil {
		return nil, err
	}
	r.rs = rulestore.New(r.conn.st)
	return r.rs, nil
}

func (r *ruleStore) CorrelateParts(ctx context.Context, rule string, parts []rules.CorrelationPart, window time.Duration,
	now time.Time, decide rules.Decider) (rules.CorrelateResult, error) {
	rs, err := r.get(ctx)
	if err != nil {
		return rules.CorrelateResult{}, err
	}
	return rs.CorrelateParts(ctx, rule, parts, window, now, decide)
}

func (r *ruleStore) SweepCorrelation(ctx context.Context, rule string, now time.Time, resendAfter time.Duration,
	limit int, decide rules.Decider) (rules.SweepResult, error) {
	rs, err := r.get(ctx)
	if err != nil {
		return rules.SweepResult{}, err
	}
	return rs.SweepCorrelation(ctx, rule, now, resendAfter, limit, decide)
}

func (r *ruleStore) LookupValues(ctx context.Context, lookup string, keys []rules.LookupKey) (map[rules.LookupKey]map[string]string, error) {
	rs, err := r.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", lookup, err) // the adapter's own errors name it
	}
	return rs.LookupValues(ctx, lookup, keys)
}

func (r *ruleStore) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn.close()
	r.rs = nil
}
