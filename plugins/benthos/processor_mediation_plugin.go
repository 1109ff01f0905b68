package benthos

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/jsonx"
	"vivace.dev/vivace/internal/usage"
	"vivace.dev/vivace/plugins/mediation"
	"vivace.dev/vivace/plugins/mediation/host"
)

func mediationPluginSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Vivace").
		Summary("Mediates raw usage records through each client's mediation plugin (go-plugin over gRPC).").
		Description(`
For every client whose entry in the client settings file has a `+"`plugin:`"+` block, the
records of the batch are sent to that client's plugin in one call, and each record is
replaced by what the plugin answered:

- records in normal form: one replaces the raw record, several split it (each part keeps
  the file and line, with its position as `+"`part`"+`); metadata `+"`vivace_client`, `vivace_file_id`, `vivace_line`"+`
  stay, `+"`vivace_key`"+` becomes the record's account id;
- an error: the raw record is marked failed with the plugin's code (`+"`MEDIATION_FAILED`"+` when it
  gives none or an unknown one), for the pipeline to route to the exceptions topic;
- filtered: the raw record is marked with code `+"`FILTERED`"+` and the reason; it leaves by the
  exceptions route and is stored in `+"`filtered_records`"+`, counted as its file's filtered
  records, never as an exception.

The plugin binary is started on the client's first batch, after its SHA-256 is checked
against the settings, with mutual TLS. A call that does not answer within the plugin's
timeout, or whose plugin crashed, is retried on a fresh process; a batch that still fails
after the plugin's retries marks each of its records failed with `+"`PLUGIN_ERROR`"+`, naming the
client, plugin, line and cause. A plugin answer with the wrong number of results, or a
record missing a required field, is a `+"`PLUGIN_ERROR`"+` too. Nothing is dropped.

Records of clients without a plugin, and records already failed, pass through unchanged.
The settings file is re-read when it changes: a new binary, checksum or config starts a new
plugin process on the client's next batch without restarting the pipeline.
docs/plugins.md describes the plugin contract and how to deploy a plugin.`).
		Field(fieldClientsFile("Path of the client settings file (YAML) with the clients' `plugin:` blocks. Empty: no plugins, every record passes through.")).
		Field(service.NewStringField("stage").Description("Stage name written on failed records.").Default("mediate")).
		Field(service.NewStringField("socket_dir").
			Description("Where the plugins' Unix sockets go: the processor makes a private directory of its own in it, one per plugin process inside that, removes a process's directory when the process is stopped or killed (after a hang or a crash) and its own on close. Empty: the system temporary directory. Keep the path short: a socket's path has room for about a hundred bytes.").
			Default("").Advanced()).
		Example("Mediate stage", "Client plugins first, then the normal-form checks.", `
pipeline:
  processors:
    - vivace_mediation_plugin:
        clients_file: ${VIVACE_CLIENTS_FILE:}
    - vivace_normalize:
        clients_file: ${VIVACE_CLIENTS_FILE:}
`)
}

func init() {
	service.MustRegisterBatchProcessor("vivace_mediation_plugin", mediationPluginSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			stage, err := conf.FieldString("stage")
			if err != nil {
				return nil, err
			}
			socketDir, err := conf.FieldString("socket_dir")
			if err != nil {
				return nil, err
			}
			cfg, err := clientSettings(conf)
			if err != nil {
				return nil, err
			}
			return newMediationPluginProc(cfg, stage, mgr, host.WithSocketDir(socketDir)), nil
		})
}

type mediationPluginProc struct {
	cfg   *clientcfg.Watched
	stage string
	log   *service.Logger
	host  *host.Host

	mediated, split, filtered, failed *service.MetricCounter

	mu   sync.Mutex
	last *clientcfg.File // the settings the running plugins were checked against
}

func newMediationPluginProc(cfg *clientcfg.Watched, stage string, mgr *service.Resources, opts ...host.Option) *mediationPluginProc {
	log := mgr.Logger()
	m := mgr.Metrics()
	opts = append([]host.Option{host.WithLogger(hclog.New(&hclog.LoggerOptions{
		Name: "mediation-plugin", Level: hclog.Debug, Output: &logWriter{log: log}, DisableTime: true}))}, opts...)
	return &mediationPluginProc{
		cfg: cfg, stage: stage, log: log,
		host:     host.New(opts...),
		mediated: m.NewCounter("vivace_mediation_plugin_records"),
		split:    m.NewCounter("vivace_mediation_plugin_split_records"),
		filtered: m.NewCounter("vivace_mediation_plugin_filtered"),
		failed:   m.NewCounter("vivace_mediation_plugin_failed"),
	}
}

// pluginGroup is the records of one client in a batch.
type pluginGroup struct {
	spec  host.Spec
	idx   []int
	srcs  []usage.Source
	batch *mediation.Batch
}

// batches keeps packed batches for the next ProcessBatch: a batch of a
// thousand records is a few hundred kilobytes, and a fresh one each time
// would be zeroed, grown and collected each time.
var batches = sync.Pool{New: func() any { return new(mediation.Batch) }}

func (p *mediationPluginProc) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	f, err := p.cfg.Current()
	if err != nil {
		p.log.Errorf("client settings not reloaded, keeping the previous ones: %v", err)
	}
	p.retire(f)
	if !f.HasPlugins() {
		return []service.MessageBatch{batch}, nil
	}

	groups := map[string]*pluginGroup{}
	var order []string
	var kv []string // one record's fields, name then value
	for i, msg := range batch {
		if msg.GetError() != nil {
			continue // failed upstream: its first code stands
		}
		client, _ := msg.MetaGetMut(metaClient)
		name, _ := client.(string)
		if name != "" && f.Plugin(name) == nil {
			continue
		}
		b, err := msg.AsBytes()
		if err != nil {
			continue // vivace_normalize reports it as MALFORMED_RECORD
		}
		// Read in place: a message's bytes are never written to (SetBytes
		// below gives it new ones), and the pairs are copied into the
		// batch at once; only the source's two strings are kept.
		src, pairs, ok := usage.ScanRaw(unsafe.String(unsafe.SliceData(b), len(b)), kv[:0])
		if !ok {
			raw, err := usage.ReadRaw(b)
			if err != nil {
				continue // vivace_normalize reports it as MALFORMED_RECORD
			}
			src = raw.Source
			for k, v := range raw.Fields {
				pairs = append(pairs, k, v)
			}
		}
		kv = pairs
		name = src.Client
		pl := f.Plugin(name)
		if pl == nil {
			continue
		}
		g := groups[name]
		if g == nil {
			g = &pluginGroup{spec: pluginSpec(name, pl), batch: batches.Get().(*mediation.Batch)}
			g.batch.Reset()
			g.batch.Grow(len(batch) * len(b))
			groups[name] = g
			order = append(order, name)
		}
		g.idx = append(g.idx, i)
		g.srcs = append(g.srcs, src)
		g.batch.Add(name, src.FileID, src.Line)
		for j := 0; j < len(kv); j += 2 {
			g.batch.Field(kv[j], kv[j+1])
		}
	}
	if len(groups) == 0 {
		return []service.MessageBatch{batch}, nil
	}

	replaced := make(map[int]service.MessageBatch, len(batch))
	for _, name := range order {
		g := groups[name]
		began := time.Now()
		outcomes, err := p.host.MediateBatch(ctx, g.spec, g.batch)
		pluginCallSeconds.WithLabelValues(name).Observe(time.Since(began).Seconds())
		batches.Put(g.batch) // the outcomes do not point into it
		if err != nil {
			pluginCalls.WithLabelValues(name, "error").Inc()
			// The stream is stopping (or the host closed) before the plugin
			// answered. The records are failed rather than let through
			// unmediated; a replay of the batch mediates them again.
			for _, i := range g.idx {
				fail(batch[i], p.stage, codes.Errorf(codes.PluginError, "",
					"client %s, plugin %s: the batch was not mediated: %v", name, g.spec.Path, err))
			}
			p.failed.Incr(int64(len(g.idx)))
			continue
		}
		pluginCalls.WithLabelValues(name, "ok").Inc()
		for k, o := range outcomes {
			i := g.idx[k]
			msg := batch[i]
			switch {
			case o.Err != nil:
				fail(msg, p.stage, o.Err)
				p.failed.Incr(1)
			case o.Filtered != "":
				// Dropped on purpose: the exceptions route stores it as a
				// filtered record and counts it in its file's totals.
				fail(msg, p.stage, codes.Errorf(codes.Filtered, "", "%s", o.Filtered))
				p.filtered.Incr(1)
			default:
				out := p.mediatedMessages(msg, g.srcs[k], o.Records)
				replaced[i] = out
				p.mediated.Incr(1)
				p.split.Incr(int64(len(out) - 1))
			}
		}
	}
	if len(replaced) == 0 {
		return []service.MessageBatch{batch}, nil
	}
	out := make(service.MessageBatch, 0, len(batch)+len(replaced))
	for i, msg := range batch {
		if r, ok := replaced[i]; ok {
			out = append(out, r...)
			continue
		}
		out = append(out, msg)
	}
	return []service.MessageBatch{out}, nil
}

// mediatedMessages builds the messages that replace msg: one raw record
// per mediated record, with the source of the input and the part number,
// for vivace_normalize to check.
func (p *mediationPluginProc) mediatedMessages(msg *service.Message, source usage.Source, recs []mediation.Fields) service.MessageBatch {
	out := make(service.MessageBatch, len(recs))
	for j, fields := range recs {
		src := source
		src.Part = j
		if len(recs) > 1 {
			src.Parts = len(recs)
		}
		m := msg
		if j < len(recs)-1 {
			m = msg.Copy()
		}
		size := 96 + len(src.Client) + len(src.FileID)
		for _, f := range fields {
			size += len(f.Name) + len(f.Value) + 6
		}
		m.SetBytes(appendRawJSON(make([]byte, 0, size), src, fields))
		m.MetaSetMut(metaKey, strings.TrimSpace(fields.Get(usage.FieldAccountID)))
		out[j] = m
	}
	return out
}

// appendRawJSON appends the usage.Raw of src and fields as JSON, the bytes
// json.Marshal writes for it: fields sorted by name, strings escaped
// alike (usage.AppendRaw does the same from a map).
func appendRawJSON(dst []byte, src usage.Source, fields mediation.Fields) []byte {
	// The order by name, by insertion: a record has a handful of fields.
	// Sorting positions rather than the fields keeps pointers still, which
	// the garbage collector would otherwise have to hear about.
	var small [32]int
	order := small[:0]
	if len(fields) > len(small) {
		order = make([]int, 0, len(fields))
	}
	for i := range fields {
		order = append(order, i)
		for j := i; j > 0 && fields[order[j]].Name < fields[order[j-1]].Name; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	dst = usage.AppendSource(dst, src)
	dst = append(dst, `,"fields":{`...)
	for i, k := range order {
		f := fields[k]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonx.AppendString(dst, f.Name)
		dst = append(dst, ':')
		dst = jsonx.AppendString(dst, f.Value)
	}
	return append(dst, "}}"...)
}

func pluginSpec(client string, pl *clientcfg.Plugin) host.Spec {
	s := host.Spec{Client: client, Path: pl.Path, SHA256: pl.SHA256, Retries: host.DefaultRetries, Config: pl.ConfigJSON()}
	if pl.Timeout != nil {
		s.Timeout = pl.Timeout.Duration
	}
	if pl.Retries != nil {
		s.Retries = *pl.Retries
	}
	return s
}

// retire stops the plugins of clients whose plugin block is gone, once per
// change of the settings.
func (p *mediationPluginProc) retire(f *clientcfg.File) {
	p.mu.Lock()
	changed := f != p.last
	p.last = f
	p.mu.Unlock()
	if !changed {
		return
	}
	for _, c := range p.host.Clients() {
		if f.Plugin(c) == nil {
			p.log.Infof("client %s has no mediation plugin any more, stopping it", c)
			p.host.Stop(c)
		}
	}
}

func (p *mediationPluginProc) Close(context.Context) error {
	p.host.Close()
	return nil
}

// logWriter passes go-plugin's log lines, and the plugins' standard error,
// to the stream's logger at their level.
type logWriter struct {
	log *service.Logger
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*logWriter)(nil)

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // incomplete: wait for the rest
			break
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.Contains(line, "[ERROR]"):
			w.log.Error(line)
		case strings.Contains(line, "[WARN]"):
			w.log.Warn(line)
		case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
			w.log.Debug(line)
		default:
			w.log.Info(line)
		}
	}
	return len(b), nil
}
