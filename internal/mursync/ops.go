package mursync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"vivace.dev/vivace/internal/settings"
)

// Defaults of the operations service.
const (
	// DefaultChunk is how many unsynced MURs one aggregation transaction
	// takes; a larger backlog is worked through in several.
	DefaultChunk = 200_000
	// DefaultAnswerWait is how long a cycle waits for its batches'
	// answers before it ends without them (they still count when they
	// come).
	DefaultAnswerWait = 10 * time.Minute
)

// Ops is the operations service: it runs sync cycles.
type Ops struct {
	Store    OpsStore
	Broker   Broker
	Settings SettingsSource
	// NewID makes record, batch and job ids.
	NewID func() string
	// Owner names this process in the jobs it records (host:pid).
	Owner  string
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Chunk bounds the MURs of one aggregation transaction; 0 means
	// DefaultChunk.
	Chunk int
	// PollEvery is how often a cycle looks for its answers; 0 means 100ms.
	PollEvery time.Duration
	// Observe, when set, is told how old the oldest MUR a cycle read was
	// (rated_at), for the age-of-the-oldest-unsynced-MUR metric.
	Observe func(client string, oldestRatedAt time.Time)
}

// Request asks for one cycle for one client.
type Request struct {
	Client  string
	Trigger Trigger
	// By names who asked (an audit actor), for cycles run by hand.
	By string
	// Wait makes a cycle asked for by hand wait for one already running
	// for the client instead of returning ErrBusy.
	Wait bool
	// AnswerWait bounds the wait for the batches' answers; 0 means
	// DefaultAnswerWait, negative means not to wait.
	AnswerWait time.Duration
	// Retry, for Trigger ByRetry, names the records to send again.
	Retry Selection
}

// Summary is what one cycle did.
type Summary struct {
	Client     string         `json:"client"`
	JobID      string         `json:"job_id"`
	Aggregates int            `json:"aggregates"`
	Batches    int            `json:"batches"`
	Synced     int            `json:"synced"`
	Failed     int            `json:"failed"`
	MURs       int64          `json:"murs"`
	Unanswered int            `json:"unanswered,omitempty"`
	Failures   []BatchFailure `json:"failures,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// Complete is nil when every batch of the cycle was answered and none
// failed as a whole (records the core refused one by one do not count:
// the cycle ran); otherwise it says what went wrong.
func (s Summary) Complete() error {
	var parts []string
	if s.Error != "" {
		parts = append(parts, s.Error)
	}
	for _, f := range s.Failures {
		parts = append(parts, fmt.Sprintf("batch %s of %d records failed (%s): %s", f.BatchID, f.Records, f.Failure,
			callText(&CallError{Code: f.Code, Message: f.Message})))
	}
	if s.Unanswered > 0 {
		parts = append(parts, fmt.Sprintf("%d batches not answered in time (they stay on the topic; is the sync stream running?)", s.Unanswered))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; "))
}

func (o *Ops) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Ops) log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Run runs one cycle for req.Client: it sends again what the previous
// cycles left (batches not yet on the topic, records of batches that
// found the core unavailable), aggregates and batches the client's
// unsynced MURs (or, for a retry, the failed records asked for),
// publishes the batches and waits for their answers. It returns ErrBusy
// without doing anything when another cycle for the client runs, and
// ErrNothingToRetry for a retry that names no failed record. Any other
// error means the cycle could not run to its end; what it committed
// before is kept and carried on by the next cycle.
func (o *Ops) Run(ctx context.Context, req Request) (Summary, error) {
	sum := Summary{Client: req.Client}
	if req.Client == "" {
		return sum, errors.New("sync cycle: client is required")
	}
	if req.Trigger == "" {
		req.Trigger = BySchedule
	}
	set, err := o.Settings.MURSync(ctx)
	if err != nil {
		return sum, err
	}
	unlock, err := o.Store.Lock(ctx, req.Client, req.Wait)
	if err != nil {
		return sum, err
	}
	defer unlock()

	job := Job{ID: o.NewID(), Client: req.Client, Trigger: req.Trigger, RequestedBy: req.By, Owner: o.Owner,
		Status: JobRunning, StartedAt: o.now()}
	if err := o.Store.StartJob(ctx, job); err != nil {
		return sum, err
	}
	sum.JobID = job.ID
	// Batches a cycle left without answers (its process died) have their
	// MURs marked batched before any MUR is read.
	runErr := o.handOver(ctx, req.Client)
	if runErr == nil {
		runErr = o.cycle(ctx, req, set, job)
	}

	// The job's end is recorded even when the caller gave up waiting, and
	// the MURs of batches still without an answer are marked batched.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := o.handOver(fctx, req.Client); err != nil {
		runErr = errors.Join(runErr, err)
	}
	p, err := o.Store.Progress(fctx, job.ID)
	if err != nil {
		return sum, errors.Join(runErr, err)
	}
	sum.Aggregates, sum.Batches, sum.MURs = p.Job.Aggregates, p.Job.Batches, p.Job.MURs
	sum.Synced, sum.Failed, sum.Unanswered, sum.Failures = p.Job.Synced, p.Job.Failed, p.Open, p.Failures
	if runErr != nil && !errors.Is(runErr, ErrNothingToRetry) {
		sum.Error = runErr.Error()
	}
	end := o.now()
	job = p.Job
	job.FinishedAt, job.Status = &end, JobDone
	if err := sum.Complete(); err != nil {
		job.Status, job.Error = JobFailed, err.Error()
	}
	if errors.Is(runErr, ErrNothingToRetry) {
		job.Status, job.Error = JobFailed, runErr.Error()
	}
	if err := o.Store.FinishJob(fctx, job); err != nil {
		runErr = errors.Join(runErr, err)
	}
	return sum, runErr
}

func (o *Ops) cycle(ctx context.Context, req Request, set settings.MURSync, job Job) error {
	if req.Trigger == ByRetry {
		n, err := o.resend(ctx, req.Retry, set, job)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNothingToRetry
		}
	} else {
		// Records of batches that found the core unavailable go again,
		// with their ids, without anyone asking.
		if _, err := o.resend(ctx, Selection{Client: req.Client, Failure: FailUnavailable}, set, job); err != nil {
			return err
		}
		if err := o.publish(ctx, req.Client, job); err != nil {
			return err
		}
		if err := o.aggregate(ctx, req.Client, set, job); err != nil {
			return err
		}
	}
	if err := o.publish(ctx, req.Client, job); err != nil {
		return err
	}
	return o.wait(ctx, job.ID, req.AnswerWait)
}

// handOver marks batched the MURs of the client's batches that have no
// answer and no cycle waiting for it.
func (o *Ops) handOver(ctx context.Context, client string) error {
	n, err := o.Store.HandOver(ctx, client)
	if err != nil {
		return fmt.Errorf("mark the MURs of batches without an answer: %w", err)
	}
	if n > 0 {
		o.log().Info("MURs of batches without an answer marked batched", "client", client, "murs", n)
	}
	return nil
}

// aggregate turns the client's unsynced MURs into batches, a chunk at a
// time: each chunk is aggregated whole, then committed and published a
// few batches at a time, so that the sync service starts on the first
// batches while the rest are committed.
func (o *Ops) aggregate(ctx context.Context, client string, set settings.MURSync, job Job) error {
	chunk := o.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	var after Cursor
	for {
		t0 := time.Now()
		murs, err := o.Store.Unsynced(ctx, client, after, chunk)
		if err != nil {
			return fmt.Errorf("read unsynced MURs: %w", err)
		}
		t1 := time.Now()
		if len(murs) == 0 {
			return nil
		}
		last := murs[len(murs)-1]
		after = Cursor{UsageTime: last.UsageTime, ID: last.ID}
		if o.Observe != nil {
			oldest := murs[0].RatedAt
			for i := range murs {
				if murs[i].RatedAt.Before(oldest) {
					oldest = murs[i].RatedAt
				}
			}
			o.Observe(client, oldest)
		}
		agg, err := Aggregate(murs, set.Aggregate, o.NewID)
		if err != nil {
			return err
		}
		for _, u := range agg.Unsendable {
			o.log().Error("MUR cannot be sent to the core; marked failed", "client", client,
				"record_id", murs[u.Index].RecordID, "reason", u.Reason)
		}
		t2 := time.Now()
		plans := o.plans(client, job, murs, agg, set.BatchSize)
		for _, p := range plans {
			if err := o.Store.SavePlan(ctx, p); err != nil {
				return fmt.Errorf("save %d aggregated records of %d MURs: %w", len(p.Records), len(p.MURIDs), err)
			}
			// The batches just committed are published from memory; those
			// a crash leaves unpublished are found by the next cycle.
			msgs := make([]BatchMessage, len(p.Batches))
			for i, b := range p.Batches {
				msgs[i] = BatchMessage{BatchID: b.ID, Client: client, JobID: job.ID, CreatedAt: p.CreatedAt, Records: p.Records[b.From:b.To]}
			}
			if err := o.send(ctx, job, msgs); err != nil {
				return err
			}
		}
		o.log().Debug("aggregation pass", "client", client, "murs", len(murs), "records", len(agg.Records),
			"commits", len(plans), "read", t1.Sub(t0), "aggregate", t2.Sub(t1), "save and publish", time.Since(t2))
		if len(murs) < chunk {
			return nil
		}
	}
}

// CommitBatches is how many batches one aggregation transaction commits.
const CommitBatches = 8

// plans cuts an aggregation into batches of size records and the batches
// into plans of CommitBatches each, every plan with the MURs of its
// records (the MURs that cannot be sent go with the first).
func (o *Ops) plans(client string, job Job, murs []MUR, agg Aggregation, size int) []Plan {
	cuts := Cut(len(agg.Records), size)
	// The MURs of each record, in MUR order (a counting sort).
	start := make([]int, len(agg.Records)+1)
	for _, r := range agg.Of {
		if r >= 0 {
			start[r+1]++
		}
	}
	for r := range agg.Records {
		start[r+1] += start[r]
	}
	byRecord := make([]int, start[len(agg.Records)])
	next := append([]int(nil), start[:len(agg.Records)]...)
	for i, r := range agg.Of {
		if r >= 0 {
			byRecord[next[r]] = i
			next[r]++
		}
	}
	now := o.now()
	var out []Plan
	for g := 0; g < len(cuts) || g == 0; g += CommitBatches {
		p := Plan{Client: client, JobID: job.ID, CreatedAt: now}
		var from, to int
		if len(cuts) > 0 {
			from, to = cuts[g][0], cuts[min(g+CommitBatches, len(cuts))-1][1]
			for _, c := range cuts[g:min(g+CommitBatches, len(cuts))] {
				p.Batches = append(p.Batches, PlannedBatch{ID: o.NewID(), From: c[0] - from, To: c[1] - from})
			}
			p.Records = agg.Records[from:to]
			for _, i := range byRecord[start[from]:start[to]] {
				p.MURIDs = append(p.MURIDs, murs[i].ID)
				p.Of = append(p.Of, agg.Of[i]-int32(from))
				p.Refs = append(p.Refs, murs[i].Ref)
			}
		}
		if g == 0 {
			for _, u := range agg.Unsendable {
				p.Unsendable = append(p.Unsendable, Unsendable{Index: len(p.MURIDs), Reason: u.Reason})
				p.MURIDs = append(p.MURIDs, murs[u.Index].ID)
				p.Of = append(p.Of, -1)
				p.Refs = append(p.Refs, murs[u.Index].Ref)
			}
		}
		if len(p.MURIDs) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// resend moves the failed records sel names into new batches; it returns
// how many records it moved.
func (o *Ops) resend(ctx context.Context, sel Selection, set settings.MURSync, job Job) (int, error) {
	recs, err := o.Store.Resendable(ctx, sel)
	if err != nil {
		return 0, fmt.Errorf("find failed records: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	r := Resend{Client: sel.Client, JobID: job.ID, CreatedAt: o.now()}
	for _, c := range Cut(len(recs), set.BatchSize) {
		b := ResendBatch{ID: o.NewID(), Records: recs[c[0]:c[1]]}
		b.ResendOf = b.Records[0].BatchID
		for _, x := range b.Records {
			if x.BatchID != b.ResendOf {
				b.ResendOf = ""
				break
			}
		}
		r.Batches = append(r.Batches, b)
	}
	if err := o.Store.SaveResend(ctx, r); err != nil {
		return 0, fmt.Errorf("send %d failed records again: %w", len(recs), err)
	}
	o.log().Info("failed records sent again", "client", sel.Client, "records", len(recs), "batches", len(r.Batches),
		"batch", sel.BatchID, "failure", sel.Failure)
	return len(recs), nil
}

// publish puts the client's ready batches on the topic, then records
// them as published by the job. A crash in between leaves them ready, so
// they are published again: the sync service sends a batch once, and a
// second message for it finds its answer.
func (o *Ops) publish(ctx context.Context, client string, job Job) error {
	batches, err := o.Store.ReadyBatches(ctx, client)
	if err != nil {
		return fmt.Errorf("read ready batches: %w", err)
	}
	return o.send(ctx, job, batches)
}

// send publishes batches and records them as published by the job.
func (o *Ops) send(ctx context.Context, job Job, batches []BatchMessage) error {
	if len(batches) == 0 {
		return nil
	}
	msgs := make([]Message, len(batches))
	ids := make([]string, len(batches))
	for i := range batches {
		batches[i].JobID = job.ID
		v, err := batches[i].Encode()
		if err != nil {
			return err
		}
		msgs[i] = Message{Key: []byte(batches[i].BatchID), Value: v}
		ids[i] = batches[i].BatchID
	}
	if err := o.Broker.Publish(ctx, msgs); err != nil {
		return fmt.Errorf("publish %d batches: %w", len(msgs), err)
	}
	if err := o.Store.MarkPublished(ctx, job.ID, ids); err != nil {
		return fmt.Errorf("mark %d batches published: %w", len(ids), err)
	}
	return nil
}

// wait polls the job's batches until each has its answer or the wait is
// over.
func (o *Ops) wait(ctx context.Context, jobID string, d time.Duration) error {
	if d < 0 {
		return nil
	}
	if d == 0 {
		d = DefaultAnswerWait
	}
	every := o.PollEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		p, err := o.Store.Progress(ctx, jobID)
		if err != nil {
			return err
		}
		if p.Open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return nil // Complete reports the unanswered batches
		case <-tick.C:
		}
	}
}

// RunAll runs a cycle for every client with work, one after another, or
// for the clients named; the summaries come in client order.
func (o *Ops) RunAll(ctx context.Context, req Request, clients []string) ([]Summary, error) {
	if len(clients) == 0 {
		var err error
		if clients, err = o.Store.Clients(ctx); err != nil {
			return nil, err
		}
	}
	sort.Strings(clients)
	var out []Summary
	var errs []error
	for _, c := range clients {
		r := req
		r.Client = c
		s, err := o.Run(ctx, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %s: %w", c, err))
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}
