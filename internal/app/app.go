// Package app is Vivace's composition root: from a Config it builds what
// one process runs — the HTTP API with its probes and metrics, the inbox
// and bucket sources, the pipelines and the MUR sync scheduler — for the
// roles it is given. `vivace serve` runs it against a real broker and
// database; `vivace dev` runs every role and adds only the embedded
// broker, a private PostgreSQL and the built-in fake core.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/ingest/s3source"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/authstore"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/tmfstore"
	"vivace.dev/vivace/internal/store/usagestore"
	"vivace.dev/vivace/internal/tmf635"
	"vivace.dev/vivace/internal/tmfhub"
	"vivace.dev/vivace/internal/usage"
)

// Config is what one process is built from.
type Config struct {
	// Roles are the parts of Vivace the process runs (RoleAll: every one).
	Roles Roles
	// DSN is the PostgreSQL database (DATABASE_URL).
	DSN string
	// Kafka is how to reach the brokers (VIVACE_KAFKA_BROKERS, TLS, SASL);
	// the pipelines get the same through Env.
	Kafka kafkax.Config
	// Listener, when set, is where the HTTP server listens; otherwise it
	// listens on HTTPAddr.
	Listener net.Listener
	HTTPAddr string
	// DataDir holds the file archive (files/) and the inbox (inbox/).
	DataDir string
	// ClientsFile is the client settings file; empty for none.
	ClientsFile string
	// PipelinesDir holds the pipeline YAML files; empty for the embedded
	// ones.
	PipelinesDir string
	// Env holds variables for the pipelines, over the process environment
	// (an empty value does not hide the environment's).
	Env map[string]string
	// HTTP are the HTTP server's timeouts and TLS certificate.
	HTTP api.HTTPOptions
	// PublicURL is the API's base URL as its clients reach it (for the
	// hrefs of TMF635 hub callbacks); empty: http:// and the listener's
	// address.
	PublicURL string
	// Pprof serves Go profiles under /debug/pprof/ to admin tokens.
	Pprof  bool
	Logger *slog.Logger
}

// App is one process built from a Config: New builds it, Run runs it
// until its context ends, Close releases what New opened.
type App struct {
	cfg Config
	log *slog.Logger

	// Store is the database pool every part shares; Tokens the API's
	// token service (vivace dev makes its local admin token with it).
	Store  *store.Store
	Tokens *auth.Service

	ln      net.Listener
	kafka   *kgo.Client // readiness: does a broker answer
	streams *streamSet
	sync    *murSync
	closeEx func()
	hub     *tmfhub.Deliverer
	recv    *ingest.Receiver
	buckets *s3source.Buckets
	http    *http.Server
}

// New opens the database and the broker connection and builds every part
// of cfg's roles; nothing runs until Run.
func New(ctx context.Context, cfg Config) (a *App, err error) {
	if len(cfg.Roles) == 0 {
		return nil, errors.New("no role to run")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a = &App{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if cfg.ClientsFile != "" {
		if _, err := clientcfg.Open(cfg.ClientsFile); err != nil {
			return nil, err
		}
	}
	kopts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if a.kafka, err = kgo.NewClient(append(kopts, kgo.ClientID("vivace-probe"))...); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if a.Store, err = store.Open(ctx, cfg.DSN); err != nil {
		return nil, &DatabaseError{Err: err}
	}
	authStore := authstore.New(a.Store)
	a.Tokens = &auth.Service{Store: authStore, Audit: authStore, Logger: a.log.With("component", "auth")}

	roles := cfg.Roles
	if roles.Has(RoleAPI) || roles.Has(RoleSync) {
		if a.sync, err = newMURSync(a.Store, kopts, a.lookup("VIVACE_TOPIC_SYNC_BATCHES"), a.log.With("component", "sync")); err != nil {
			return nil, err
		}
	}
	settings, err := clientcfg.Open(cfg.ClientsFile)
	if err != nil {
		return nil, err
	}
	fileStore, catalogStore := filestore.New(a.Store), catalogstore.New(a.Store)
	if roles.Has(RoleAPI) || roles.Has(RoleIngest) {
		a.recv = &ingest.Receiver{
			Registry:   fileStore,
			ArchiveDir: filepath.Join(cfg.DataDir, "files"),
			Logger:     a.log.With("component", "receiver"),
			Options: func(client string) usage.ReaderOptions {
				f, _ := settings.Current()
				return f.ReaderOptions(client)
			},
			// A client is known by its catalog or its settings entry; files
			// for any other are refused (docs/ingestion.md, "Adding a client").
			Clients: ingest.KnownClients{Catalog: catalogStore, InSettings: func(client string) bool {
				f, _ := settings.Current()
				return f.Has(client)
			}},
		}
	}
	// Bucket sources live in the client settings, which are re-read when
	// they change, so the poller runs whenever there is a settings file:
	// a source added later is picked up without a restart.
	if roles.Has(RoleIngest) && cfg.ClientsFile != "" {
		a.buckets = &s3source.Buckets{Receiver: a.recv, Taken: fileStore, Logger: a.log.With("component", "buckets"),
			Sources: bucketSources(settings, a.log)}
	}

	if a.streams, err = loadStreams(cfg.PipelinesDir, roles, a.lookup2, a.log); err != nil {
		return nil, err
	}

	var tmfStore *tmfstore.Store
	srv := &api.Server{DB: a.Store, Gatherer: Gatherer(), Logger: a.log.With("component", "api"), Ready: a.ready}
	if roles.Has(RoleAPI) {
		srv.Files, srv.Records, srv.Feed = fileStore, usagestore.New(a.Store), catalogStore
		srv.Repair = feed.NewApplier(catalogStore, catalog.ValidateData)
		srv.Receiver, srv.Auth, srv.Audit = a.recv, a.Tokens, authStore
		if a.buckets != nil {
			srv.Buckets = a.buckets
		}
		if srv.Exceptions, a.closeEx, err = newExceptionWork(a.Store, kopts, a.lookup("VIVACE_TOPIC_RAW"), a.lookup("VIVACE_TOPIC_MEDIATED"),
			settings, a.log.With("component", "exceptions")); err != nil {
			return nil, err
		}
		tmfStore = tmfstore.New(a.Store)
		srv.TMF = &api.TMF{Store: tmfStore, Submit: &tmf635.Submitter{Store: tmfStore},
			// A posted usage's time is written as the client's files write it.
			TimeFormat: func(client string) usage.TimeFormat {
				f, _ := settings.Current()
				return f.Rules(client).Time
			}}
		a.sync.mount(srv, a.Store)
		if err := a.mountConsole(srv, srv.Exceptions, authStore); err != nil {
			return nil, err
		}
		// The pipelines' own endpoints and the profiles are the process's
		// internals: admin tokens for every client only.
		a.streams.mount(srv)
		if cfg.Pprof {
			for p, h := range map[string]http.HandlerFunc{"/debug/pprof/": pprof.Index, "/debug/pprof/profile": pprof.Profile,
				"/debug/pprof/symbol": pprof.Symbol, "/debug/pprof/trace": pprof.Trace} {
				srv.Mount(api.Route{Pattern: p, Role: auth.Admin, Clients: api.EveryClient, Handler: h})
			}
		}
	}
	a.ln = cfg.Listener
	if a.ln == nil {
		if a.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("http address %s: %w (pass --http-addr)", cfg.HTTPAddr, err)
		}
	}
	if roles.Has(RoleAPI) {
		// Hub callbacks (docs/tmf635.md): from the durable queue.
		base := cfg.PublicURL
		if base == "" {
			scheme := "http://"
			if cfg.HTTP.TLSCert != "" {
				scheme = "https://"
			}
			base = scheme + a.ln.Addr().String()
		}
		a.hub = &tmfhub.Deliverer{Take: tmfStore.Deliver, Usage: tmfStore.Usage,
			Base: strings.TrimSuffix(base, "/") + tmf635.BasePath, Logger: a.log.With("component", "tmf-hub"),
			Client: &http.Client{Timeout: 15 * time.Second}}
	}
	// Without the api role the server answers /healthz, /readyz and
	// /metrics only: it has no token service.
	if a.http, err = srv.HTTPServer(cfg.HTTP); err != nil {
		return nil, err
	}
	return a, nil
}

// DatabaseError is New's error when the database cannot be opened, so
// that the command can say which database it is about.
type DatabaseError struct{ Err error }

func (e *DatabaseError) Error() string { return e.Err.Error() }
func (e *DatabaseError) Unwrap() error { return e.Err }

// Addr is where the HTTP server listens.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Pipelines names the pipelines the process runs.
func (a *App) Pipelines() []string { return a.streams.names() }

// lookup reads a pipeline variable: Env first, then the environment.
func (a *App) lookup(k string) string {
	v, _ := a.lookup2(k)
	return v
}

func (a *App) lookup2(k string) (string, bool) {
	if v, ok := a.cfg.Env[k]; ok && v != "" {
		return v, true
	}
	return os.LookupEnv(k)
}

// ready is the readiness beyond the database (which the API checks
// itself): a broker answers and every pipeline runs.
func (a *App) ready(ctx context.Context) error {
	if err := a.kafka.Ping(ctx); err != nil {
		return fmt.Errorf("kafka brokers %s: do not answer: %w", strings.Join(kafkax.Brokers(a.cfg.Kafka.SeedBrokers), ","), err)
	}
	return a.streams.ready(ctx)
}

// Run serves HTTP, runs the sources, the pipelines and the scheduler of
// the process's roles, and stops them when ctx ends or one of them fails
// (returning why).
func (a *App) Run(ctx context.Context) error {
	httpErr := make(chan error, 1)
	go func() { httpErr <- api.Serve(a.http, a.ln) }()
	a.log.Info("http ready", "addr", a.Addr(), "tls", a.http.TLSConfig != nil, "roles", a.cfg.Roles.String())

	srcCtx, stopSources := context.WithCancel(ctx)
	var sources sync.WaitGroup
	if a.cfg.Roles.Has(RoleIngest) {
		inbox := &ingest.Inbox{Dir: filepath.Join(a.cfg.DataDir, "inbox"), Receiver: a.recv, Logger: a.log.With("component", "inbox")}
		sources.Go(func() { _ = inbox.Run(srcCtx) })
		a.log.Info("watching inbox", "dir", inbox.Dir)
		if a.buckets != nil {
			sources.Go(func() { _ = a.buckets.Run(srcCtx) })
			a.log.Info("polling bucket sources")
		}
	}

	streamErr := a.streams.start(ctx)
	if a.cfg.Roles.Has(RoleSync) {
		a.sync.start(ctx)
	}
	hubDone := make(chan struct{})
	if a.hub != nil {
		go func() { defer close(hubDone); a.hub.Run(srcCtx) }()
	} else {
		close(hubDone)
	}
	a.log.Info("running", "roles", a.cfg.Roles.String(), "pipelines", a.streams.names())

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case err := <-httpErr:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-streamErr:
		runErr = err
	}
	// Stop taking work first, then let the pipelines finish what they hold
	// and commit their offsets.
	stopSources()
	sources.Wait()
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = a.http.Shutdown(shutCtx)
	<-hubDone
	if a.sync != nil {
		a.sync.stop()
		a.sync = nil
	}
	a.streams.stop(shutCtx)
	return runErr
}

// Close releases what New opened and Run has not.
func (a *App) Close() {
	if a.sync != nil {
		a.sync.stop()
	}
	if a.closeEx != nil {
		a.closeEx()
	}
	if a.kafka != nil {
		a.kafka.Close()
	}
	if a.Store != nil {
		a.Store.Close()
	}
	if a.ln != nil && a.cfg.Listener == nil {
		_ = a.ln.Close()
	}
}

// bucketSources reads the clients' bucket sources from the settings,
// logging a settings file that no longer parses once per distinct error
// (the previous settings stay in force meanwhile).
func bucketSources(settings *clientcfg.Watched, log *slog.Logger) func() map[string]clientcfg.BucketSource {
	var lastErr string
	return func() map[string]clientcfg.BucketSource {
		f, err := settings.Current()
		if err != nil && err.Error() != lastErr {
			log.Error("client settings not reloaded; keeping the previous ones", "err", err)
			lastErr = err.Error()
		}
		return f.BucketSources()
	}
}
