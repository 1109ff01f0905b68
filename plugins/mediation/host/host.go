// Package host runs clients' mediation plugins for the mediate stage: it
// starts each plugin binary with go-plugin over gRPC and mutual TLS after
// checking its SHA-256, sends it whole batches, checks every answer, and
// deals with plugins that crash, hang, answer garbage or change on disk.
// Whatever happens, every input record comes back with an outcome: records
// in normal form, filtered with a reason, or failed with a stable code.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/retry"
	"vivace.dev/vivace/internal/usage"
	"vivace.dev/vivace/plugins/mediation"
)

// Defaults for a Spec's zero fields.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
)

// Spec is one client's plugin: the binary, its checksum and settings, and
// how long and how often to try a batch.
type Spec struct {
	Client string
	// Path is the plugin binary.
	Path string
	// SHA256 is the binary's expected checksum, hex as sha256sum prints it.
	SHA256 string
	// Timeout bounds one Mediate call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a failed batch is tried again before its
	// records are failed with PLUGIN_ERROR; negative means none.
	Retries int
	// Config is the plugin's settings as a JSON object (nil: "{}").
	Config json.RawMessage
}

// Validate checks what the host needs before it can start the plugin.
func (s Spec) Validate() error {
	var errs []error
	if s.Client == "" {
		errs = append(errs, errors.New("client: empty"))
	}
	if s.Path == "" {
		errs = append(errs, errors.New("path: empty"))
	}
	if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != sha256.Size {
		errs = append(errs, fmt.Errorf("sha256: %q is not 64 hexadecimal digits", s.SHA256))
	}
	if s.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s is negative", s.Timeout))
	}
	if len(s.Config) > 0 && !json.Valid(s.Config) {
		errs = append(errs, errors.New("config: not valid JSON"))
	}
	return errors.Join(errs...)
}

// identity is what, when it changes, means a new plugin process: another
// binary, another checksum or other settings. A new timeout or retry count
// applies to the running process.
func (s Spec) identity() string {
	return s.Path + "\x00" + strings.ToLower(s.SHA256) + "\x00" + string(s.Config)
}

func (s Spec) timeout() time.Duration {
	if s.Timeout <= 0 {
		return DefaultTimeout
	}
	return s.Timeout
}

func (s Spec) attempts() int {
	if s.Retries < 0 {
		return 1
	}
	return s.Retries + 1
}

// Outcome is what became of one input record. Exactly one of Records (in
// normal form, one or more), Filtered and Err is set.
type Outcome struct {
	Records  []mediation.Fields
	Filtered string
	Err      *codes.Error
}

// Option sets an optional Host setting.
type Option func(*Host)

// WithLogger sends go-plugin's messages and the plugins' standard error
// to l. By default they are dropped.
func WithLogger(l hclog.Logger) Option { return func(h *Host) { h.log = l } }

// WithStartTimeout bounds starting a plugin up to its first answer
// (default 10s).
func WithStartTimeout(d time.Duration) Option { return func(h *Host) { h.startTimeout = d } }

// WithRetryDelay is the pause before the first retry of a batch; it
// doubles with each further retry, up to eight times this (default
// 100ms), with jitter.
func WithRetryDelay(d time.Duration) Option { return func(h *Host) { h.retryDelay = d } }

// WithRefusalHold is how long a plugin refused at start (wrong checksum,
// wrong protocol version, settings it rejects) stays refused before the
// host tries to start it again (default 10s). Batches in that time fail
// at once with PLUGIN_ERROR instead of hashing the binary again.
func WithRefusalHold(d time.Duration) Option { return func(h *Host) { h.refusalHold = d } }

// WithSocketDir is where the host keeps the Unix sockets its plugins
// listen on: it makes a directory of its own in dir (default: the system
// temporary directory), one directory in that per plugin process, removes
// a process's directory when the process is stopped or killed, and its
// own on Close. go-plugin would leave a killed plugin's socket in the
// system temporary directory.
func WithSocketDir(dir string) Option { return func(h *Host) { h.socketBase = dir } }

// Host runs the plugins of many clients, one process per client, shared
// by every goroutine that calls Mediate.
type Host struct {
	log          hclog.Logger
	startTimeout time.Duration
	retryDelay   time.Duration
	refusalHold  time.Duration
	socketBase   string

	mu      sync.Mutex
	plugins map[string]*instance
	closed  bool

	dirOnce   sync.Once
	socketDir string // the host's own directory, made on the first start
	dirErr    error
}

// New returns a Host with no plugin running; each starts on its client's
// first batch.
func New(opts ...Option) *Host {
	h := &Host{
		log:          hclog.NewNullLogger(),
		startTimeout: 10 * time.Second,
		retryDelay:   100 * time.Millisecond,
		refusalHold:  10 * time.Second,
		plugins:      map[string]*instance{},
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// ErrClosed is returned by Mediate after Close.
var ErrClosed = errors.New("mediation host closed")

// ErrChecksum means the plugin binary's SHA-256 is not the configured one;
// the binary was not started.
var ErrChecksum = errors.New("checksum does not match")

// ProtocolError means the plugin speaks a protocol version the host does
// not support; the plugin was stopped.
type ProtocolError struct {
	Version   string // the plugin's, as it announced it
	Supported []int
}

func (e *ProtocolError) Error() string {
	versions := "version"
	if len(mediation.SupportedVersions) > 1 {
		versions = "versions"
	}
	return fmt.Sprintf("plugin speaks protocol version %s; this host supports %s %s", e.Version, versions, mediation.SupportedVersionsText())
}

// Mediate is MediateBatch for records given one by one.
func (h *Host) Mediate(ctx context.Context, spec Spec, records []mediation.RawRecord) ([]Outcome, error) {
	var b mediation.Batch
	for _, r := range records {
		b.AddRecord(r)
	}
	return h.MediateBatch(ctx, spec, &b)
}

// MediateBatch sends the records of b, all of spec's client, to the
// client's plugin and returns one Outcome per record, in order. It starts the plugin if it is
// not running, and restarts it first when spec names another binary,
// checksum or config than the running one. A batch that fails (no answer
// within the timeout, a crash, a refused start, an answer with the wrong
// number of results) is tried again up to spec.Retries times; after that
// every record's Outcome is a PLUGIN_ERROR naming the last failure.
// Mediate returns an error only when ctx ends or the Host is closed: the
// batch was not handled and must be tried again later.
func (h *Host) MediateBatch(ctx context.Context, spec Spec, records *mediation.Batch) ([]Outcome, error) {
	if records.Len() == 0 {
		return nil, nil
	}
	if err := spec.Validate(); err != nil {
		return failAll(records, spec, fmt.Errorf("plugin settings: %w", err)), nil
	}
	inst, err := h.instance(spec)
	if err != nil {
		return nil, err
	}
	var last error
	var out []Outcome
	tried := 0
	// A refused start would be refused again at once: no retry for it.
	p := retry.Policy{First: h.retryDelay, Max: 8 * h.retryDelay, Jitter: retry.DefaultJitter, Attempts: spec.attempts(),
		Refused: func(err error) bool { var r *refusal; return errors.As(err, &r) }}
	_ = p.Do(ctx, func(ctx context.Context) error {
		tried++
		results, err := inst.call(ctx, spec.timeout(), records)
		if err == nil && len(results) != records.Len() {
			err = fmt.Errorf("the plugin answered %d results for %d records", len(results), records.Len())
		}
		if err != nil {
			last = err
			return err
		}
		out = check(spec, records, results)
		return nil
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if out != nil {
		return out, nil
	}
	return failAll(records, spec, fmt.Errorf("batch of %d records failed after %d attempt(s): %w", records.Len(), tried, last)), nil
}

// Info returns what the running plugin of client said about itself in
// Describe; false when none is running.
func (h *Host) Info(client string) (mediation.Info, bool) {
	h.mu.Lock()
	inst := h.plugins[client]
	h.mu.Unlock()
	if inst == nil {
		return mediation.Info{}, false
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.info, inst.med != nil
}

// Stop ends client's plugin, if one runs (its client no longer has one).
func (h *Host) Stop(client string) {
	h.mu.Lock()
	inst := h.plugins[client]
	delete(h.plugins, client)
	h.mu.Unlock()
	if inst != nil {
		inst.stop()
	}
}

// Clients lists the clients whose plugin the host holds.
func (h *Host) Clients() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.plugins))
	for c := range h.plugins {
		out = append(out, c)
	}
	return out
}

// Close ends every plugin and removes the host's socket directory.
// Mediate fails with ErrClosed afterwards.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	plugins := h.plugins
	h.plugins = map[string]*instance{}
	h.mu.Unlock()
	for _, inst := range plugins {
		inst.stop()
	}
	h.dirOnce.Do(func() {}) // no directory is made after Close
	if h.socketDir != "" {
		if err := os.RemoveAll(h.socketDir); err != nil {
			h.log.Warn("cannot remove the plugins' socket directory", "dir", h.socketDir, "error", err)
		}
	}
}

// SocketDir is the host's own directory for its plugins' sockets; empty
// until a plugin was started.
func (h *Host) SocketDir() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.socketDir
}

// processDir makes the socket directory of one plugin process, inside
// the host's own directory (made on first use). The names are short: a
// Unix socket's path has room for about a hundred bytes.
func (h *Host) processDir() (string, error) {
	h.dirOnce.Do(func() {
		dir, err := os.MkdirTemp(h.socketBase, "vivace-")
		if err == nil && len(dir)+len("/p0123456789/plugin0123456789") > maxSocketPath {
			_ = os.Remove(dir)
			err = fmt.Errorf("%s is too long a path for the plugins' Unix sockets (at most %d bytes with their names); choose a shorter socket directory", dir, maxSocketPath)
		}
		h.mu.Lock()
		h.socketDir, h.dirErr = dir, err
		h.mu.Unlock()
	})
	h.mu.Lock()
	base, err := h.socketDir, h.dirErr
	h.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("socket directory: %w", err)
	}
	if base == "" {
		return "", ErrClosed
	}
	return os.MkdirTemp(base, "p")
}

// maxSocketPath is the longest path a Unix socket can have on the
// systems Vivace runs on (sun_path is 108 bytes on Linux, 104 on BSDs and
// macOS, with the terminating zero).
const maxSocketPath = 103

// pluginEnv is the environment a plugin process starts with: the host's,
// with the socket directory go-plugin's server listens in set to dir.
func pluginEnv(dir string) []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, plugin.EnvUnixSocketDir+"=") {
			env = append(env, kv)
		}
	}
	return append(env, plugin.EnvUnixSocketDir+"="+dir)
}

// instance returns the client's plugin for spec, replacing a running one
// started from another binary, checksum or config.
func (h *Host) instance(spec Spec) (*instance, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	inst := h.plugins[spec.Client]
	if inst != nil && inst.spec.identity() == spec.identity() {
		return inst, nil
	}
	if inst != nil {
		h.log.Info("plugin binary or settings changed, restarting", "client", spec.Client, "path", spec.Path)
		// Calls in flight on the old process fail and are retried on the
		// new one.
		go inst.stop()
	}
	inst = &instance{spec: spec, host: h}
	h.plugins[spec.Client] = inst
	return inst, nil
}

// instance is one client's plugin process, started on demand and again
// after it crashed, hung or was stopped.
type instance struct {
	spec Spec
	host *Host

	mu        sync.Mutex
	client    *plugin.Client
	cmd       *exec.Cmd
	dir       string // the process's socket directory
	med       mediation.Caller
	info      mediation.Info
	gen       int // counts processes; a failed call restarts only its own
	refused   error
	refusedAt time.Time
	stopped   bool
}

// refusal is a start that will fail the same way until the binary or the
// settings change.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// call runs one Mediate on the current process, starting one if needed.
// A call that times out or finds the process gone ends that process, so
// the next attempt starts a fresh one.
func (in *instance) call(ctx context.Context, timeout time.Duration, records *mediation.Batch) ([]mediation.Reply, error) {
	med, gen, err := in.get()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results, err := med.MediateBatch(cctx, records)
	if err == nil {
		return results, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	switch {
	case errors.Is(cctx.Err(), context.DeadlineExceeded) || status.Code(err) == grpccodes.DeadlineExceeded:
		in.kill(gen, "no answer within the timeout")
		return nil, fmt.Errorf("no answer within %s (the plugin was stopped and is started again)", timeout)
	case in.exited(gen) || status.Code(err) == grpccodes.Unavailable || status.Code(err) == grpccodes.Canceled:
		in.kill(gen, "connection lost")
		return nil, fmt.Errorf("the plugin process ended or dropped the connection during the call (it is started again): %s", grpcMessage(err))
	default:
		return nil, fmt.Errorf("the plugin failed the batch: %s", grpcMessage(err))
	}
}

func grpcMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// get returns the running process's client, starting the process when
// there is none or the last one has exited.
func (in *instance) get() (mediation.Caller, int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return nil, 0, errors.New("the plugin was replaced while the batch waited")
	}
	if in.med != nil && !in.client.Exited() {
		return in.med, in.gen, nil
	}
	if in.med != nil {
		in.host.log.Warn("plugin process ended, starting it again", "client", in.spec.Client, "path", in.spec.Path)
		in.client.Kill()
		in.ended()
	}
	if in.refused != nil && time.Since(in.refusedAt) < in.host.refusalHold {
		return nil, 0, in.refused
	}
	in.refused = nil
	if err := in.start(); err != nil {
		var r *refusal
		if errors.As(err, &r) {
			in.refused, in.refusedAt = err, time.Now()
		}
		return nil, 0, err
	}
	in.gen++
	return in.med, in.gen, nil
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// start launches the binary after go-plugin has checked its checksum, then
// asks it to describe itself and hands it its settings. in.mu is held.
func (in *instance) start() error {
	sum, _ := hex.DecodeString(in.spec.SHA256)
	dir, err := in.host.processDir()
	if err != nil {
		return fmt.Errorf("cannot start the plugin: %w", err)
	}
	in.dir = dir
	started := false
	defer func() {
		if !started {
			in.removeDir()
		}
	}()
	cmd := exec.Command(in.spec.Path)
	cmd.Env = pluginEnv(dir)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  mediation.Handshake,
		VersionedPlugins: mediation.VersionedPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has it, with the socket directory

		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     in.host.startTimeout,
		Logger:           in.host.log.With("client", in.spec.Client, "plugin", in.spec.Path),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(mediation.MaxMessageBytes), grpc.MaxCallSendMsgSize(mediation.MaxMessageBytes)),
			grpc.WithInitialWindowSize(mediation.FlowWindowBytes), grpc.WithInitialConnWindowSize(mediation.FlowWindowBytes),
		},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		switch {
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			return &refusal{checksumError(in.spec)}
		case strings.Contains(err.Error(), "incompatible API version"):
			v := "unknown"
			if m := pluginVersionRE.FindStringSubmatch(err.Error()); m != nil {
				v = m[1]
			}
			return &refusal{&ProtocolError{Version: v, Supported: mediation.SupportedVersions}}
		case strings.Contains(err.Error(), "error verifying checksum"):
			return &refusal{fmt.Errorf("binary not started: %v", err)}
		}
		return fmt.Errorf("cannot start the plugin: %v", err)
	}
	raw, err := rpc.Dispense(mediation.PluginName)
	if err != nil {
		client.Kill()
		return &refusal{fmt.Errorf("the plugin does not serve %q: %v", mediation.PluginName, err)}
	}
	med, ok := raw.(mediation.Caller)
	if !ok {
		client.Kill()
		return &refusal{fmt.Errorf("protocol version %d has no client", client.NegotiatedVersion())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.host.startTimeout)
	defer cancel()
	info, err := med.Describe(ctx)
	if err != nil {
		client.Kill()
		return fmt.Errorf("the plugin did not describe itself: %s", grpcMessage(err))
	}
	cfg := in.spec.Config
	if len(cfg) == 0 {
		cfg = json.RawMessage("{}")
	}
	if err := med.Configure(ctx, in.spec.Client, cfg); err != nil {
		client.Kill()
		if status.Code(err) == grpccodes.InvalidArgument {
			return &refusal{fmt.Errorf("the plugin refused its config: %s", grpcMessage(err))}
		}
		return fmt.Errorf("the plugin could not be configured: %s", grpcMessage(err))
	}
	in.client, in.cmd, in.med, in.info = client, cmd, med, info
	started = true
	in.host.log.Info("plugin started", "client", in.spec.Client, "path", in.spec.Path,
		"name", info.Name, "version", info.Version, "protocol", client.NegotiatedVersion())
	return nil
}

// exited reports whether process gen has ended.
func (in *instance) exited(gen int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.gen == gen && in.client != nil && in.client.Exited()
}

// kill ends process gen at once (a hung plugin would not stop when asked)
// unless it was already replaced.
func (in *instance) kill(gen int, why string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gen != gen || in.client == nil {
		return
	}
	in.host.log.Warn("stopping plugin", "client", in.spec.Client, "path", in.spec.Path, "reason", why)
	if in.cmd != nil && in.cmd.Process != nil {
		_ = in.cmd.Process.Kill()
	}
	in.client.Kill()
	in.ended()
}

// stop ends the process for good, asking it to exit first.
func (in *instance) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stopped = true
	if in.client != nil {
		in.client.Kill()
	}
	in.ended()
}

// ended forgets the process that was stopped or killed and removes its
// socket directory, with the socket a killed process leaves. in.mu is
// held.
func (in *instance) ended() {
	in.med, in.client, in.cmd = nil, nil, nil
	in.removeDir()
}

func (in *instance) removeDir() {
	if in.dir == "" {
		return
	}
	if err := os.RemoveAll(in.dir); err != nil {
		in.host.log.Warn("cannot remove a plugin's socket directory", "client", in.spec.Client, "dir", in.dir, "error", err)
	}
	in.dir = ""
}

// checksumError says that the binary's SHA-256 is not the configured one,
// and what it is, so that an operator can compare it with the binary they
// meant to install, or correct the settings.
func checksumError(spec Spec) error {
	var actual string
	if f, err := os.Open(spec.Path); err != nil {
		actual = "unreadable: " + err.Error()
	} else {
		hash := sha256.New()
		_, err := io.Copy(hash, f)
		_ = f.Close()
		if err != nil {
			actual = "unreadable: " + err.Error()
		} else {
			actual = hex.EncodeToString(hash.Sum(nil))
		}
	}
	return fmt.Errorf("binary not started: %w: the settings say sha256 %s, the binary %s has %s",
		ErrChecksum, strings.ToLower(spec.SHA256), filepath.Base(spec.Path), actual)
}

// check turns a plugin's results into outcomes, failing each record whose
// result breaks the contract.
func check(spec Spec, records *mediation.Batch, results []mediation.Reply) []Outcome {
	out := make([]Outcome, records.Len())
	for i, r := range results {
		line := records.Line(i)
		switch {
		case r.Error != nil:
			out[i].Err = recordError(spec, line, r.Error)
		case r.Filtered != "":
			out[i].Filtered = r.Filtered
		case len(r.Records) == 0:
			out[i].Err = codes.Errorf(codes.PluginError, "", "%s: the plugin gave no records, error or filter reason", where(spec, line))
		default:
			if err := checkRecords(spec, line, r.Records); err != nil {
				out[i].Err = err
				continue
			}
			out[i].Records = r.Records
		}
	}
	return out
}

// checkRecords fails the whole input record when any of its mediated
// records lacks a required field, so that no part of it goes on alone.
func checkRecords(spec Spec, line int64, recs []mediation.Fields) *codes.Error {
	for j, m := range recs {
		for _, f := range usage.RequiredFields {
			if strings.TrimSpace(m.Get(f)) == "" {
				return codes.Errorf(codes.PluginError, f, "%s: mediated record %d of %d lacks required field %s",
					where(spec, line), j+1, len(recs), f)
			}
		}
	}
	return nil
}

// recordError keeps a plugin's stable code; one the host does not know
// becomes MEDIATION_FAILED with the plugin's code in the message.
func recordError(spec Spec, line int64, e *mediation.RecordError) *codes.Error {
	code := codes.Code(e.Code)
	msg := e.Message
	switch {
	case e.Code == "":
		code = codes.MediationFailed
	case !codes.Known(code):
		code, msg = codes.MediationFailed, fmt.Sprintf("plugin code %s: %s", e.Code, e.Message)
	}
	return codes.Errorf(code, e.Field, "%s: %s", where(spec, line), msg)
}

func failAll(records *mediation.Batch, spec Spec, err error) []Outcome {
	out := make([]Outcome, records.Len())
	for i := range out {
		out[i].Err = codes.Errorf(codes.PluginError, "", "%s: %v", where(spec, records.Line(i)), err)
	}
	return out
}

func where(spec Spec, line int64) string {
	return fmt.Sprintf("client %s, plugin %s, line %d", spec.Client, spec.Path, line)
}
