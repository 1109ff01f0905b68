package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/bulkapi"
	"vivace.dev/vivace/internal/corelink"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/syncstore"
)

func coreSyncSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Vivace").
		Summary("Sends MUR sync batches (from `mur.sync.batches`) to the core billing system's `bulk_record_usage_m` call, marks their MURs, and emits each batch's result for `mur.sync.results`.").
		Description(`
Each message is one batch of aggregated records as the sync cycle published it. The processor
counts an attempt on the batch, calls the core (retrying timeouts, lost connections and 5xx
with exponential backoff and jitter up to `+"`mur_sync.max_attempts`"+`, each try bounded by
`+"`mur_sync.call_timeout`"+`, at most `+"`mur_sync.rate_limit`"+` calls per second per client), and applies the
answer in one database transaction: every record synced, or failed with the core's
`+"`record_error_code`"+` and `+"`record_error_msg`"+` when the answer's `+"`error_records`"+` name it; a call refused
as a whole (`+"`error_code`"+` 1004 authentication, 1010 missing parameters, …) or never answered fails
the whole batch with the reason, nothing half-marked. The settings are read for every batch,
so a change applies without a restart.

The message it emits is the batch's result: `+"`batch_id`"+`, `+"`client`"+`, `+"`status`"+` (`+"`done`"+` or `+"`failed`"+`),
`+"`failure`"+`, `+"`error_code`"+`, `+"`error_msg`"+`, `+"`synced`"+`, `+"`failed`"+`, `+"`murs`"+` and each record's outcome, with the
metadata `+"`vivace_batch_id`"+` and `+"`vivace_client`"+`.

A batch that has its answer already (the message came again after a crash) is not sent
again; its stored result is emitted with `+"`redelivered: true`"+`. A batch cut short (the process
ended during the call) was not marked: the message is failed so that the pipeline nacks it
(wrap the output in `+"`reject_errored`"+`) and the input delivers it again; it is then sent again
with the same `+"`client_record_id`"+`s, which the core replaces rather than adds.

Each client's core endpoint and credentials come from its `+"`core`"+` block in the client settings
(`+"`url`"+`, `+"`client_no`"+`, `+"`auth_key_env`"+`); what that leaves out comes from `+"`core_url`"+`, `+"`client_no`"+` and
`+"`auth_key`"+` here. The auth key is never logged.

Metrics: `+"`vivace_sync_batches_total`"+` (label `+"`status`"+`), `+"`vivace_sync_records_synced_total`"+`,
`+"`vivace_sync_records_failed_total`"+` (label `+"`code`"+`: the core's code, or the failure kind of a whole batch),
`+"`vivace_sync_call_seconds`"+` (a histogram per try, labels `+"`client`"+` and `+"`outcome`"+`) and
`+"`vivace_sync_call_retries_total`"+`.`).
		Field(fieldDSN()).
		Field(service.NewStringField("core_url").
			Description("Default core API base URL, for clients whose settings give none (`${VIVACE_CORE_URL}`).").
			Default("")).
		Field(service.NewStringField("client_no").
			Description("Default client_no at the core (`${VIVACE_CORE_CLIENT_NO}`).").
			Default("")).
		Field(service.NewStringField("auth_key").
			Description("Default auth_key at the core (`${VIVACE_CORE_AUTH_KEY}`).").
			Default("").Secret()).
		Field(fieldClientsFile("Client settings file, for each client's `core` block (its endpoint and credentials).")).
		Example("Sync stream", "", `
input:
  kafka:
    seed_brokers: [ "${VIVACE_KAFKA_BROKERS}" ]
    topics: [ mur.sync.batches ]
    consumer_group: vivace-sync
    max_batch_records: 1
pipeline:
  threads: 4
  processors:
    - vivace_core_sync:
        dsn: ${DATABASE_URL}
        core_url: ${VIVACE_CORE_URL:}
        client_no: ${VIVACE_CORE_CLIENT_NO:}
        auth_key: ${VIVACE_CORE_AUTH_KEY:}
        clients_file: ${VIVACE_CLIENTS_FILE:}
output:
  reject_errored:
    kafka:
      seed_brokers: [ "${VIVACE_KAFKA_BROKERS}" ]
      topic: mur.sync.results
      key: ${! meta("vivace_batch_id") }
`)
}

func init() {
	service.MustRegisterProcessor("vivace_core_sync", coreSyncSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Processor, error) {
			return newCoreSync(conf, mgr)
		})
}

type coreSync struct {
	log  *service.Logger
	link *corelink.Link

	mu     sync.Mutex // guards db.connect and sender
	db     storeConn
	sender *mursync.Sender

	batches, synced, failed, skipped *service.MetricCounter
}

func newCoreSync(conf *service.ParsedConfig, mgr *service.Resources) (*coreSync, error) {
	dsn, err := conf.FieldString("dsn")
	if err != nil {
		return nil, err
	}
	url, err := conf.FieldString("core_url")
	if err != nil {
		return nil, err
	}
	noText, err := conf.FieldString("client_no")
	if err != nil {
		return nil, err
	}
	no, err := corelink.ParseClientNo(noText)
	if err != nil {
		return nil, errors.New("client_no: " + err.Error())
	}
	key, err := conf.FieldString("auth_key")
	if err != nil {
		return nil, err
	}
	clients, err := clientSettings(conf)
	if err != nil {
		return nil, err
	}
	m := mgr.Metrics()
	p := &coreSync{log: mgr.Logger(), db: storeConn{dsn: dsn},
		batches: m.NewCounter("vivace_sync_batches", "status"),
		synced:  m.NewCounter("vivace_sync_records_synced"),
		failed:  m.NewCounter("vivace_sync_records_failed", "code"),
		skipped: m.NewCounter("vivace_sync_skipped"),
	}
	p.link = &corelink.Link{
		Defaults: corelink.Defaults{URL: url, ClientNo: no, AuthKey: bulkapi.NewSecret(key)},
		Clients:  clients,
		Logger:   slogOf(mgr.Logger()),
		Observe: func(client string, a bulkapi.Attempt) {
			syncCallSeconds.WithLabelValues(client, a.Class.String()).Observe(a.Duration.Seconds())
			if a.Retry {
				syncRetries.WithLabelValues(client).Inc()
			}
		},
	}
	return p, nil
}

func (p *coreSync) connect(ctx context.Context) (*mursync.Sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sender != nil {
		return p.sender, nil
	}
	if err := p.db.connect(ctx); err != nil {
		return nil, err
	}
	p.sender = &mursync.Sender{Store: syncstore.New(p.db.st), Core: p.link,
		Settings: &settings.Service{Store: settingstore.New(p.db.st)}, Logger: slogOf(p.log)}
	return p.sender, nil
}

func (p *coreSync) Process(ctx context.Context, msg *service.Message) (service.MessageBatch, error) {
	b, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	var m mursync.BatchMessage
	if err := json.Unmarshal(b, &m); err != nil {
		// Only the sync cycle writes this topic: a message that is no
		// batch is a bug upstream and must not stall the batches behind it.
		p.log.Errorf("skipping a message that is not a sync batch (%v): %s", err, clipBytes(b))
		p.skipped.Incr(1)
		return nil, nil
	}
	sender, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	res, err := sender.Handle(ctx, m)
	if errors.Is(err, mursync.ErrUnknownBatch) {
		p.log.Errorf("skipping batch %s of client %s: it is not in the database (%v)", m.BatchID, m.Client, err)
		p.skipped.Incr(1)
		return nil, nil
	}
	if err != nil {
		// Nothing was marked: the batch must come again.
		return nil, err
	}
	if !res.Redelivered {
		p.count(res)
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	o := msg.Copy()
	o.SetBytes(out)
	o.MetaSetMut("vivace_batch_id", res.BatchID)
	o.MetaSetMut(metaClient, res.Client)
	return service.MessageBatch{o}, nil
}

func (p *coreSync) count(res mursync.Result) {
	p.batches.Incr(1, string(res.Status))
	if res.Synced > 0 {
		p.synced.Incr(int64(res.Synced))
	}
	if res.Status == mursync.Failed {
		code := string(res.Failure)
		if res.ErrorCode != 0 {
			code = strconv.FormatInt(res.ErrorCode, 10)
		}
		p.failed.Incr(int64(res.Failed), code)
		return
	}
	byCode := map[int64]int64{}
	for _, r := range res.Records {
		if r.Status == mursync.Refused {
			byCode[r.Code]++
		}
	}
	for c, n := range byCode {
		p.failed.Incr(n, strconv.FormatInt(c, 10))
	}
}

func (p *coreSync) Close(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.db.close()
	p.sender = nil
	return nil
}
