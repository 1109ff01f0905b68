package mursync

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Scheduler runs a cycle for every client with work each
// mur_sync.interval. It reads the interval again every Check, so a
// change applies to the next cycle without a restart. A client whose
// cycle still runs (here, or in another replica holding its lock) is
// skipped until the next turn.
type Scheduler struct {
	Ops      *Ops
	Settings SettingsSource
	Logger   *slog.Logger
	// Check is how often the interval is read; 0 means 5s.
	Check time.Duration
	// Parallel bounds the clients whose cycles run at once; 0 means 4.
	Parallel int
	// Ran, when set, is told of each scheduled cycle's end.
	Ran func(Summary, error)

	mu      sync.Mutex
	running map[string]bool
}

// Run runs until ctx ends. The first turn is at once.
func (s *Scheduler) Run(ctx context.Context) error {
	check := s.Check
	if check <= 0 {
		check = 5 * time.Second
	}
	par := s.Parallel
	if par <= 0 {
		par = 4
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	defer wg.Wait()
	var last time.Time
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		set, err := s.Settings.MURSync(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				s.log().Error("MUR sync settings cannot be read; no cycle starts until they can", "err", err)
			}
		case last.IsZero() || time.Since(last) >= set.Interval:
			last = time.Now()
			clients, err := s.Ops.Store.Clients(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log().Error("find the clients to sync", "err", err)
				}
				break
			}
			for _, c := range clients {
				if !s.claim(c) {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer s.release(c)
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					defer func() { <-sem }()
					s.runOne(ctx, c)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *Scheduler) runOne(ctx context.Context, client string) {
	sum, err := s.Ops.Run(ctx, Request{Client: client, Trigger: BySchedule})
	if s.Ran != nil {
		s.Ran(sum, err)
	}
	switch {
	case errors.Is(err, ErrBusy):
		s.log().Debug("sync cycle skipped: another is running for the client", "client", client)
	case err != nil && ctx.Err() != nil:
	case err != nil:
		s.log().Error("sync cycle failed", "client", client, "job", sum.JobID, "err", err)
	case sum.Complete() != nil:
		s.log().Warn("sync cycle ended with trouble", "client", client, "job", sum.JobID, "err", sum.Complete(),
			"synced", sum.Synced, "failed", sum.Failed)
	default:
		s.log().Info("sync cycle", "client", client, "job", sum.JobID, "aggregates", sum.Aggregates,
			"batches", sum.Batches, "synced", sum.Synced, "failed", sum.Failed, "murs", sum.MURs)
	}
}

func (s *Scheduler) claim(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[string]bool{}
	}
	if s.running[client] {
		return false
	}
	s.running[client] = true
	return true
}

func (s *Scheduler) release(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, client)
}

func (s *Scheduler) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
