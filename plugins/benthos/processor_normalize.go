package benthos

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

func normalizeSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Checks raw usage records and turns them into Vivace's normal form.").
		Description(`
Reads a raw record (as written to `+"`usage.raw`"+` by the ingest stage, or left by mediation
rules) and applies the normal-form checks in their fixed order:

- `+"`MISSING_FIELD`"+`: record_id, account_id, usage_type, quantity or usage_time is missing or empty;
- `+"`BAD_QUANTITY`"+`: quantity is not a non-negative decimal, or above the client's maximum;
- `+"`BAD_TIMESTAMP`"+`: usage_time is not RFC 3339, older than the client's window or too far in the future.

A message already failed or filtered by an earlier processor passes through untouched, so its
code is the one the rule gave. A record that passes is replaced by its normal form (the message for `+"`usage.mediated`"+`).
A record that fails keeps its body and is marked failed with the code in the metadata
(`+"`vivace_code`, `vivace_field`"+`), for the pipeline to route to the exceptions topic.
A record that an earlier step already failed (a mediation rule or plugin) or filtered
(metadata `+"`vivace_filtered`"+`) passes through untouched: its first code, or its filter
reason, stands.
The window and limits come from the client settings file (defaults: 90 days old, 15 minutes ahead).`).
		Field(fieldClientsFile("Path of the client settings file (YAML). Empty: defaults for every client. The file is re-read when it changes.")).
		Field(service.NewStringField("stage").Description("Stage name written on exceptions.").Default("mediate")).
		Example("Normal-form checks", "The mediate stage's last step.", `
pipeline:
  processors:
    - vivace_normalize:
        clients_file: ${VIVACE_CLIENTS_FILE:}
`)
}

func init() {
	service.MustRegisterBatchProcessor("vivace_normalize", normalizeSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			stage, err := conf.FieldString("stage")
			if err != nil {
				return nil, err
			}
			cfg, err := clientSettings(conf)
			if err != nil {
				return nil, err
			}
			return &normalizeProc{cfg: cfg, stage: stage, log: mgr.Logger(), now: time.Now}, nil
		})
}

type normalizeProc struct {
	cfg   *clientcfg.Watched
	stage string
	log   *service.Logger
	now   func() time.Time
}

// ProcessBatch checks each message of the batch in place. Working on the
// whole batch lets the records in normal form share one buffer.
func (p *normalizeProc) ProcessBatch(_ context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	f, cerr := p.cfg.Current()
	if cerr != nil {
		p.log.Errorf("client settings not reloaded, keeping the previous ones: %v", cerr)
	}
	now := p.now()
	var buf []byte
	for _, msg := range batch {
		if msg.GetError() != nil {
			// Failed or filtered by an earlier rule: its code and body stay
			// as they are for the exceptions route.
			continue
		}
		b, err := msg.AsBytes()
		if err != nil {
			return nil, err
		}
		if buf == nil {
			buf = make([]byte, 0, len(batch)*(len(b)+64))
		}
		raw, err := usage.ReadRaw(b)
		if err != nil {
			fail(msg, p.stage, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record (client, file_id, line, fields): %v", err))
			continue
		}
		rec, err := usage.Normalize(raw, f.Rules(raw.Client), now)
		if err != nil {
			fail(msg, p.stage, err)
			continue
		}
		start := len(buf)
		buf = usage.AppendRecord(buf, rec)
		msg.SetBytes(buf[start:len(buf):len(buf)])
		msg.MetaSetMut(metaKey, rec.AccountID)
	}
	return []service.MessageBatch{batch}, nil
}

func (p *normalizeProc) Close(context.Context) error { return nil }
