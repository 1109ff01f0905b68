package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/pipelines"
	vbenthos "vivace.dev/vivace/plugins/benthos"
)

// streamSet runs several Benthos streams in one process: every pipeline
// under `vivace dev`, those of its roles under `vivace serve`.
type streamSet struct {
	log     *slog.Logger
	streams []*runningStream

	mu      sync.Mutex
	started bool
}

type runningStream struct {
	name   string
	stream *service.Stream
	mux    *http.ServeMux
	done   chan struct{}
	err    error
}

// loadStreams builds the pipelines of dir (the embedded defaults when dir
// is empty) that belong to one of roles. Variables in the YAML come from
// lookup.
func loadStreams(dir string, roles Roles, lookup func(string) (string, bool), log *slog.Logger) (*streamSet, error) {
	var defs []pipelines.Stream
	var err error
	if dir == "" {
		defs, err = pipelines.Default()
	} else {
		defs, err = pipelines.Load(os.DirFS(dir))
	}
	if err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	if len(defs) == 0 {
		return nil, fmt.Errorf("pipelines: no *.yaml files in %s", dir)
	}
	set := &streamSet{log: log}
defs:
	for _, d := range defs {
		if !roles.All() {
			if d.Role == "" {
				return nil, fmt.Errorf("pipeline %s: no \"# vivace:role ROLE\" line, so no role runs it (vivace serve --role all does)", d.Name)
			}
			if _, err := ParseRoles(d.Role); err != nil {
				return nil, fmt.Errorf("pipeline %s: # vivace:role: %w", d.Name, err)
			}
			if !roles.Has(Role(d.Role)) {
				continue
			}
		}
		for _, v := range d.Requires {
			if val, _ := lookup(v); val == "" {
				log.Info("pipeline not started: a variable it requires is not set", "pipeline", d.Name, "variable", v)
				continue defs
			}
		}
		b := service.NewStreamBuilder()
		b.SetEnvVarLookupFunc(lookup)
		if err := b.SetYAML(d.YAML); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", d.Name, err)
		}
		if err := b.SetMetricsYAML(fmt.Sprintf("vivace_prometheus:\n  stream: %q\n", d.Name)); err != nil {
			return nil, fmt.Errorf("pipeline %s: metrics: %w", d.Name, err)
		}
		b.SetLogger(log.With("stream", d.Name))
		mux := http.NewServeMux()
		b.SetHTTPMux(mux)
		s, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", d.Name, err)
		}
		set.streams = append(set.streams, &runningStream{name: d.Name, stream: s, mux: mux, done: make(chan struct{})})
	}
	return set, nil
}

func (s *streamSet) names() []string {
	var n []string
	for _, r := range s.streams {
		n = append(n, r.name)
	}
	sort.Strings(n)
	return n
}

// start runs every stream; the channel gets the first stream that ends
// on its own (an error: pipelines are meant to run until stopped).
func (s *streamSet) start(ctx context.Context) <-chan error {
	errs := make(chan error, len(s.streams))
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	for _, r := range s.streams {
		go func() {
			defer close(r.done)
			r.err = r.stream.Run(context.WithoutCancel(ctx))
			if r.err != nil {
				errs <- fmt.Errorf("pipeline %s stopped: %w", r.name, r.err)
				return
			}
			errs <- fmt.Errorf("pipeline %s ended", r.name)
		}()
	}
	return errs
}

// stop lets every stream finish the messages it holds, then closes it.
func (s *streamSet) stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range s.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.stream.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("pipeline did not stop cleanly", "stream", r.name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// ready reports an error while any stream is not running.
func (s *streamSet) ready(context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return errors.New("pipelines not started")
	}
	var down []string
	for _, r := range s.streams {
		select {
		case <-r.done:
			down = append(down, r.name)
		default:
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("pipelines not running: %s", strings.Join(down, ", "))
	}
	return nil
}

// mount exposes each stream's own endpoints under /streams/<name>/, to
// admin tokens for every client.
func (s *streamSet) mount(srv *api.Server) {
	for _, r := range s.streams {
		prefix := "/streams/" + r.name
		srv.Mount(api.Route{Pattern: prefix + "/", Role: auth.Admin, Clients: api.EveryClient,
			Handler: http.StripPrefix(prefix, r.mux)})
	}
}

// Gatherer combines the pipelines' metrics with the process's own.
func Gatherer() prometheus.Gatherer {
	proc := prometheus.NewRegistry()
	proc.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return prometheus.Gatherers{proc, vbenthos.Registry}
}
