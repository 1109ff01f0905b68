package exceptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/usage"
)

// Store is what working exceptions needs from storage. Every method that
// changes an exception writes its audit entries in the same transaction.
type Store interface {
	// Exception returns one exception with its work, or ErrNotFound.
	Exception(ctx context.Context, id string) (Exception, Work, error)
	// History returns the audit entries of an exception, oldest first.
	History(ctx context.Context, id string) ([]auth.AuditEntry, error)
	// Exceptions returns up to q.Limit exceptions after q.After, newest
	// first, and the cursor of the next page.
	Exceptions(ctx context.Context, q Query) (Page, error)
	// CountExceptions counts the exceptions f selects by code and stage.
	CountExceptions(ctx context.Context, f Filter) ([]Count, error)
	// SaveEdit stores the edited record of an open exception whose
	// record is still before (compare and set: an edit made meanwhile
	// refuses this one) and audits it.
	SaveEdit(ctx context.Context, id string, before, edited json.RawMessage, a auth.AuditEntry) (Exception, Work, error)
	// ClaimOpen marks the open exceptions among ids reprocessing (status
	// reprocessing, attempts + 1, one audit entry each by actor) and
	// returns them with their work, in id order.
	ClaimOpen(ctx context.Context, ids []string, actor string) ([]Listed, error)
	// Reopen puts reprocessing exceptions back to open with the attempt
	// taken back (their record could not be sent), auditing why.
	Reopen(ctx context.Context, ids []string, actor, why string) error
	// Discard marks the open exceptions among ids discarded with reason
	// (one audit entry each) and returns the ids it marked.
	Discard(ctx context.Context, ids []string, actor, reason string) ([]string, error)
	// SelectIDs returns up to limit ids of open exceptions f selects
	// after the cursor after (empty: from the start), and the cursor
	// that follows them.
	SelectIDs(ctx context.Context, f Filter, after string, limit int) (ids []string, next string, err error)
	// The bulk actions' jobs. UpdateJob saves a running job's progress
	// and returns ErrJobStopped when the job is no longer running (it was
	// found interrupted meanwhile).
	CreateJob(ctx context.Context, j Job) error
	UpdateJob(ctx context.Context, j Job) error
	Job(ctx context.Context, id string) (Job, error)
	// FailStaleJobs marks failed, with why, the running jobs whose
	// progress was last saved before before: the process running them
	// stopped.
	FailStaleJobs(ctx context.Context, before time.Time, why string) (int, error)
	// Clients returns the client of each of ids that exists.
	Clients(ctx context.Context, ids []string) (map[string]string, error)
}

// Publisher sends records back into the pipeline and returns once the
// broker has them.
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) error
}

// Job is a bulk action over the exceptions a filter selects.
type Job struct {
	ID       string
	Action   string // "reprocess" or "discard"
	Actor    string
	Clients  []string // the clients the selection covered; nil for every client
	Select   Selection
	Reason   string
	Status   string // "running", "done", "failed"
	Total    int64  // exceptions taken so far
	Done     int64  // exceptions reprocessed or discarded
	Skipped  int64  // exceptions that could not be sent (left open, with the reason in their history)
	Error    string
	Started  time.Time
	Updated  time.Time
	Finished *time.Time
}

// Job statuses.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Outcome is what a reprocess or discard of listed exceptions did.
type Outcome struct {
	// Done: the exceptions reprocessed (sent again) or discarded.
	Done []string
	// Skipped: the ones left as they were, with why.
	Skipped map[string]string
}

// Service works exceptions: the one place the API, GraphQL and the
// command line go through to show, edit, reprocess and discard them.
type Service struct {
	Store     Store
	Publisher Publisher
	// Rules returns a client's normal-form rules (its settings'
	// validation and timestamp format); nil means the defaults.
	Rules func(client string) usage.Rules
	// Now defaults to the clock.
	Now    func() time.Time
	Logger *slog.Logger
	// Chunk is how many exceptions a job takes at a time; 0 means 1000.
	Chunk int
	// Workers is how many chunks a job works at once; 0 means 2.
	Workers int
	// StaleJobAfter is how long a running job may go without saving its
	// progress before it is taken for interrupted (the process running it
	// stopped) and marked failed; 0 means two minutes. A running job
	// saves its progress at least four times as often.
	StaleJobAfter time.Duration

	jobs sync.WaitGroup
}

// ErrJobStopped: a job's progress could not be saved because the job is
// no longer running.
var ErrJobStopped = errors.New("the job is no longer running")

func (s *Service) staleJobAfter() time.Duration {
	if s.StaleJobAfter > 0 {
		return s.StaleJobAfter
	}
	return 2 * time.Minute
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) rules(client string) usage.Rules {
	if s.Rules != nil {
		return s.Rules(client)
	}
	return usage.DefaultRules()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Get returns one exception the principal may see: as it arrived, as
// edited, and its history.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Detail, error) {
	e, w, err := s.Store.Exception(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	if err := p.SeeOf(fmt.Sprintf("exception %q", id), e.Client); err != nil {
		return Detail{}, err
	}
	h, err := s.Store.History(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	return Detail{Exception: e, Work: w, History: h}, nil
}

// scope keeps f to the principal's clients.
func scope(p auth.Principal, f Filter) (Filter, error) {
	clients, err := p.Filter(f.Client)
	if err != nil {
		return f, err
	}
	f.Clients = clients
	return f, nil
}

// List returns a page of the exceptions q selects among the principal's
// clients.
func (s *Service) List(ctx context.Context, p auth.Principal, q Query) (Page, error) {
	if err := q.Filter.Validate(); err != nil {
		return Page{}, err
	}
	var err error
	if q.Filter, err = scope(p, q.Filter); err != nil {
		return Page{}, err
	}
	switch {
	case q.Limit <= 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	if len(q.IDs) > MaxLimit {
		return Page{}, &Refused{Reason: fmt.Sprintf("ids: at most %d", MaxLimit)}
	}
	return s.Store.Exceptions(ctx, q)
}

// Counts counts the exceptions f selects among the principal's clients,
// by code and stage.
func (s *Service) Counts(ctx context.Context, p auth.Principal, f Filter) ([]Count, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	f, err := scope(p, f)
	if err != nil {
		return nil, err
	}
	return s.Store.CountExceptions(ctx, f)
}

// Edit replaces the record of an open exception with edited, once it
// passes the checks of the stage that failed it; the record as it
// arrived is kept. It needs the operator role for the exception's client.
func (s *Service) Edit(ctx context.Context, p auth.Principal, id string, edited []byte) (Detail, error) {
	e, w, err := s.Store.Exception(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	if err := p.ChangeOf(fmt.Sprintf("exception %q", id), e.Client); err != nil {
		return Detail{}, err
	}
	if err := MayWork(e.Status); err != nil {
		return Detail{}, err
	}
	clean, err := CheckEdit(&e, edited, s.rules(e.Client), s.now())
	if err != nil {
		return Detail{}, err
	}
	before, _ := Fields(&e, &w)
	beforeJSON, _ := json.Marshal(before)
	entry := auth.AuditEntry{Actor: p.Name, Action: "exception.edit", Target: "exception:" + id, Client: e.Client,
		Before: beforeJSON, After: clean}
	e, w, err = s.Store.SaveEdit(ctx, id, w.Edited, clean, entry)
	if err != nil {
		return Detail{}, err
	}
	h, err := s.Store.History(ctx, id)
	return Detail{Exception: e, Work: w, History: h}, err
}

// checkIDs refuses ids of clients the principal may not change (without
// saying whose they are); ids that do not exist are reported missing.
func (s *Service) checkIDs(ctx context.Context, p auth.Principal, ids []string) (found []string, missing map[string]string, err error) {
	clients, err := s.Store.Clients(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	missing = map[string]string{}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		c, ok := clients[id]
		if !ok {
			missing[id] = "no such exception"
			continue
		}
		if err := p.ChangeOf(fmt.Sprintf("exception %q", id), c); err != nil {
			return nil, nil, err
		}
		found = append(found, id)
	}
	return found, missing, nil
}

// Reprocess sends the listed exceptions' records back through the
// pipeline, to the stage that failed them (sel.IDs), or starts a job that
// does it for every open exception a filter selects (no IDs): then the
// Outcome is empty and the Job says where it stands. Only open exceptions
// are sent; each becomes reprocessing with one more attempt, and is
// resolved when its record becomes a MUR (the file's counts move from
// exceptions to MURs) or open again with its new failure. Sending the
// same exception twice never makes two MURs.
func (s *Service) Reprocess(ctx context.Context, p auth.Principal, sel Selection) (Outcome, *Job, error) {
	return s.act(ctx, p, sel, "reprocess", "")
}

// Discard marks the listed exceptions, or every open one a filter
// selects (as a job), discarded with reason: not to be billed.
func (s *Service) Discard(ctx context.Context, p auth.Principal, sel Selection, reason string) (Outcome, *Job, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Outcome{}, nil, &Refused{Field: "reason", Reason: "reason: say why the exceptions are discarded"}
	}
	return s.act(ctx, p, sel, "discard", reason)
}

func (s *Service) act(ctx context.Context, p auth.Principal, sel Selection, action, reason string) (Outcome, *Job, error) {
	if err := p.HasRole(auth.Operator); err != nil {
		return Outcome{}, nil, err
	}
	if err := sel.Validate(); err != nil {
		return Outcome{}, nil, err
	}
	if len(sel.IDs) > 0 {
		ids, missing, err := s.checkIDs(ctx, p, sel.IDs)
		if err != nil {
			return Outcome{}, nil, err
		}
		out, err := s.apply(ctx, p.Name, ids, action, reason)
		for id, why := range missing {
			out.Skipped[id] = why
		}
		return out, nil, err
	}
	f, err := scope(p, sel.Filter)
	if err != nil {
		return Outcome{}, nil, err
	}
	if f.Clients != nil {
		for _, c := range f.Clients {
			if err := p.Change(c); err != nil {
				return Outcome{}, nil, err
			}
		}
	}
	sel.Filter = f
	now := s.now()
	j := Job{ID: ids.New(), Action: action, Actor: p.Name, Clients: f.Clients, Select: sel, Reason: reason,
		Status: JobRunning, Started: now, Updated: now}
	if err := s.Store.CreateJob(ctx, j); err != nil {
		return Outcome{}, nil, err
	}
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		s.run(context.WithoutCancel(ctx), j)
	}()
	return Outcome{}, &j, nil
}

// Wait waits for the jobs this service started.
func (s *Service) Wait() { s.jobs.Wait() }

// RunJob runs a job to its end in the caller's goroutine (the command
// line, which has no server to leave it running in).
func (s *Service) RunJob(ctx context.Context, j Job) Job { return s.run(ctx, j) }

// run works a job's selection a chunk at a time, saving its progress
// after each.
func (s *Service) run(ctx context.Context, j Job) Job {
	chunk := s.Chunk
	if chunk <= 0 {
		chunk = 1000
	}
	workers := s.Workers
	if workers <= 0 {
		workers = 2
	}
	// One reader hands out chunks in order; workers claim and send them
	// side by side (the database and the broker both take several at
	// once). Progress is saved after each chunk.
	var (
		mu     sync.Mutex
		failed error
		wg     sync.WaitGroup
		slots  = make(chan struct{}, workers)
		save   = func() {
			j.Updated = s.now()
			if j.Status != JobRunning {
				t := j.Updated
				j.Finished = &t
			}
			if err := s.Store.UpdateJob(ctx, j); errors.Is(err, ErrJobStopped) {
				// Taken for interrupted while this process could not save
				// (the database away longer than StaleJobAfter): its
				// failure stands, and the work stops here.
				if failed == nil {
					failed = err
				}
			} else if err != nil {
				s.logger().Error("exceptions job: saving progress", "job", j.ID, "error", err)
			}
		}
		stopped = func() bool { mu.Lock(); defer mu.Unlock(); return failed != nil }
	)
	// Progress is saved after each chunk, and between chunks at least
	// four times within StaleJobAfter, so that a job still running is
	// never taken for interrupted.
	beat := time.NewTicker(s.staleJobAfter() / 4)
	defer beat.Stop()
	beatDone := make(chan struct{})
	defer close(beatDone)
	go func() {
		for {
			select {
			case <-beat.C:
				mu.Lock()
				if j.Status == JobRunning {
					save()
				}
				mu.Unlock()
			case <-beatDone:
				return
			}
		}
	}()
	after := ""
	for !stopped() {
		ids, next, err := s.Store.SelectIDs(ctx, j.Select.Filter, after, chunk)
		if err != nil {
			mu.Lock()
			failed = err
			mu.Unlock()
			break
		}
		if len(ids) == 0 {
			break
		}
		after = next
		slots <- struct{}{}
		wg.Add(1)
		go func(ids []string) {
			defer wg.Done()
			defer func() { <-slots }()
			out, err := s.apply(ctx, j.Actor, ids, j.Action, j.Reason)
			mu.Lock()
			defer mu.Unlock()
			j.Total += int64(len(ids))
			j.Done += int64(len(out.Done))
			j.Skipped += int64(len(out.Skipped))
			if err != nil && failed == nil {
				failed = err
			}
			save()
		}(ids)
		if len(ids) < chunk {
			break
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if errors.Is(failed, ErrJobStopped) {
		if cur, err := s.Store.Job(ctx, j.ID); err == nil {
			return cur
		}
		j.Status, j.Error = JobFailed, failed.Error()
		return j
	}
	if failed != nil {
		j.Status, j.Error = JobFailed, failed.Error()
	} else {
		j.Status = JobDone
	}
	save()
	return j
}

// apply reprocesses or discards the exceptions ids (already checked).
func (s *Service) apply(ctx context.Context, actor string, ids []string, action, reason string) (Outcome, error) {
	out := Outcome{Skipped: map[string]string{}}
	if len(ids) == 0 {
		return out, nil
	}
	if action == "discard" {
		done, err := s.Store.Discard(ctx, ids, actor, reason)
		if err != nil {
			return out, err
		}
		out.Done = done
		got := make(map[string]bool, len(done))
		for _, id := range done {
			got[id] = true
		}
		for _, id := range ids {
			if !got[id] {
				out.Skipped[id] = "not open: only open exceptions can be discarded"
			}
		}
		return out, nil
	}
	claimed, err := s.Store.ClaimOpen(ctx, ids, actor)
	if err != nil {
		return out, err
	}
	got := make(map[string]bool, len(claimed))
	msgs := make([]Message, 0, len(claimed))
	var unsent []string
	var unsentWhy []string
	now := s.now()
	for i := range claimed {
		c := &claimed[i]
		got[c.ExceptionID] = true
		m, err := ReprocessMessage(&c.Exception, &c.Work, s.rules(c.Client), now)
		if err != nil {
			unsent = append(unsent, c.ExceptionID)
			unsentWhy = append(unsentWhy, err.Error())
			out.Skipped[c.ExceptionID] = err.Error()
			continue
		}
		msgs = append(msgs, m)
		out.Done = append(out.Done, c.ExceptionID)
	}
	for _, id := range ids {
		if !got[id] {
			out.Skipped[id] = "not open: only open exceptions can be reprocessed"
		}
	}
	for i, id := range unsent {
		if err := s.Store.Reopen(ctx, []string{id}, actor, unsentWhy[i]); err != nil {
			return out, err
		}
	}
	if len(msgs) == 0 {
		return out, nil
	}
	if err := s.Publisher.Publish(ctx, msgs); err != nil {
		// Nothing is lost: put them back to open so they can be sent again.
		if rerr := s.Store.Reopen(ctx, out.Done, actor, "could not be sent: "+err.Error()); rerr != nil {
			return out, errors.Join(err, rerr)
		}
		for _, id := range out.Done {
			out.Skipped[id] = "could not be sent: " + err.Error()
		}
		out.Done = nil
		return out, fmt.Errorf("send records again: %w", err)
	}
	return out, nil
}

// FailInterrupted marks failed the running jobs that saved no progress
// for StaleJobAfter: the process running them stopped (a restart, a
// crash), and nothing else would ever finish them. What they did stays
// done; running the same selection again takes the rest.
func (s *Service) FailInterrupted(ctx context.Context) error {
	after := s.staleJobAfter()
	n, err := s.Store.FailStaleJobs(ctx, s.now().Add(-after),
		fmt.Sprintf("interrupted: no progress saved for %v, so the process running the job stopped; what it did stays done, and the same selection run again takes the rest", after))
	if n > 0 {
		s.logger().Warn("exceptions jobs found interrupted and marked failed", "jobs", n)
	}
	return err
}

// Job returns a job the principal may see.
func (s *Service) Job(ctx context.Context, p auth.Principal, id string) (Job, error) {
	j, err := s.Store.Job(ctx, id)
	if err != nil {
		return j, err
	}
	if j.Status == JobRunning && j.Updated.Before(s.now().Add(-s.staleJobAfter())) {
		// Its process stopped: marked failed (with any other such job)
		// and read again.
		if err := s.FailInterrupted(ctx); err != nil {
			return Job{}, err
		}
		if j, err = s.Store.Job(ctx, id); err != nil {
			return j, err
		}
	}
	if j.Clients == nil {
		if err := p.Every(); err != nil {
			return Job{}, err
		}
		return j, nil
	}
	for _, c := range j.Clients {
		if err := p.SeeOf(fmt.Sprintf("job %q", id), c); err != nil {
			return Job{}, err
		}
	}
	return j, nil
}
