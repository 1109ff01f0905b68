package uiapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
	dto "github.com/prometheus/client_model/go"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store/auditstore"
)

// FeedEventFilter is the schema's FeedEventFilter input.
type FeedEventFilter struct {
	Client, Outcome, Code, Entity, EntityID *string
}

// FeedEvent is a feed event on record as the schema shows it.
type FeedEvent struct {
	e                                                    feed.EventRecord
	Client, Entity, EntityID, Op, Outcome, Code, Message string
	Version                                              float64
	Attempts                                             int32
	ReceivedAt, UpdatedAt                                graphql.Time
	Payload, OriginalPayload                             *JSON
	Warnings                                             []string
}

func (e *FeedEvent) ID() graphql.ID { return graphql.ID(e.e.EventID) }

func newFeedEvent(e feed.EventRecord) *FeedEvent {
	w := e.Warnings
	if w == nil {
		w = []string{}
	}
	return &FeedEvent{e: e, Client: e.Client, Entity: e.Entity, EntityID: e.EntityID, Op: e.Op, Outcome: string(e.Outcome),
		Code: string(e.Code), Message: e.Message, Version: float64(e.Version), Attempts: int32(e.Attempts),
		ReceivedAt: graphql.Time{Time: e.ReceivedAt.UTC()}, UpdatedAt: graphql.Time{Time: e.UpdatedAt.UTC()},
		Payload: jsonPtr(e.Payload), OriginalPayload: jsonPtr(e.OriginalPayload), Warnings: w}
}

func (r *resolver) FeedEvents(ctx context.Context, args struct {
	Filter *FeedEventFilter
	First  *int32
}) ([]*FeedEvent, error) {
	n, err := first(ctx, args.First, 100)
	if err != nil {
		return nil, err
	}
	f := feed.EventFilter{Limit: n}
	var client string
	if in := args.Filter; in != nil {
		client = str(in.Client)
		f.Outcome, f.Code, f.Entity, f.EntityID = feed.Result(str(in.Outcome)), feed.Code(str(in.Code)), str(in.Entity), str(in.EntityID)
	}
	if f.Outcome != "" && !slices.Contains([]feed.Result{feed.Applied, feed.Ignored, feed.Pending, feed.Failed}, f.Outcome) {
		return nil, badInput("outcome: %q is not applied, ignored, pending or failed", f.Outcome)
	}
	if f.Clients, err = principal(ctx).Filter(client); err != nil {
		return nil, err
	}
	list, err := r.a.Feed.ListFeedEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*FeedEvent, len(list))
	for i := range list {
		out[i] = newFeedEvent(list[i])
	}
	return out, nil
}

// FeedOutcome is what a reprocessed feed event became.
type FeedOutcome struct {
	o                      feed.Outcome
	Outcome, Code, Message string
}

func (o *FeedOutcome) ID() graphql.ID { return graphql.ID(o.o.EventID) }

// ReprocessFeedEvents applies failed and pending feed events again, as
// POST /api/v1/feed/events/reprocess does: by ids (each of a client the
// token may change) or a client's (failed and pending, or the outcome
// and code named), and writes each to the audit log.
func (r *resolver) ReprocessFeedEvents(ctx context.Context, args struct {
	IDs                   *[]graphql.ID
	Client, Outcome, Code *string
}) ([]*FeedOutcome, error) {
	if r.a.Repair == nil {
		return nil, badInput("feed events: reprocessing is %v", errNotServed)
	}
	p := principal(ctx)
	if err := p.HasRole(auth.Operator); err != nil {
		return nil, err
	}
	var events []feed.EventRecord
	var idList []string
	if args.IDs != nil && len(*args.IDs) > 0 {
		if len(*args.IDs) > MaxIDs {
			return nil, badInput("ids: at most %d per request", MaxIDs)
		}
		for _, id := range *args.IDs {
			idList = append(idList, string(id))
		}
		var err error
		if events, err = r.a.Feed.ListFeedEvents(ctx, feed.EventFilter{EventIDs: idList, Limit: len(idList)}); err != nil {
			return nil, err
		}
		for _, e := range events {
			if err := p.ChangeOf(fmt.Sprintf("feed event %q", e.EventID), e.Client); err != nil {
				return nil, err
			}
		}
	} else {
		client := str(args.Client)
		if client == "" {
			return nil, badInput("name ids, or a client (with optional outcome and code) to reprocess by filter")
		}
		if err := p.Change(client); err != nil {
			return nil, err
		}
		outcomes := []feed.Result{feed.Failed, feed.Pending}
		if o := feed.Result(str(args.Outcome)); o != "" {
			if !o.Repairable() {
				return nil, badInput("outcome: only failed or pending events are reprocessed")
			}
			outcomes = []feed.Result{o}
		}
		for _, o := range outcomes {
			evs, err := r.a.Feed.ListFeedEvents(ctx, feed.EventFilter{Client: client, Outcome: o, Code: feed.Code(str(args.Code)), Limit: MaxIDs})
			if err != nil {
				return nil, err
			}
			events = append(events, evs...)
		}
		for _, e := range events {
			idList = append(idList, e.EventID)
		}
	}
	out := []*FeedOutcome{}
	if len(idList) == 0 {
		return out, nil
	}
	outs, err := r.a.Repair.Reprocess(ctx, idList, p.Name)
	if errors.Is(err, feed.ErrNotFound) {
		return nil, notFound("%v", err)
	} else if err != nil {
		return nil, err
	}
	byID := map[string]feed.EventRecord{}
	for _, e := range events {
		byID[e.EventID] = e
	}
	type state struct {
		Outcome string `json:"outcome"`
		Code    string `json:"code,omitempty"`
		Message string `json:"message,omitempty"`
	}
	entries := make([]auth.AuditEntry, 0, len(outs))
	for _, o := range outs {
		b := byID[o.EventID]
		entries = append(entries, entry(ctx, "feed.reprocess", "feed_event:"+o.EventID, b.Client,
			state{string(b.Outcome), string(b.Code), b.Message}, state{string(o.Outcome), string(o.Code), o.Message}))
		out = append(out, &FeedOutcome{o: o, Outcome: string(o.Outcome), Code: string(o.Code), Message: o.Message})
	}
	r.a.audit(ctx, entries...)
	return out, nil
}

// scopeOf is the clients a sync list keeps to: nil for a token of every
// client asking for all.
func scopeOf(ctx context.Context, client *string) ([]string, error) {
	return principal(ctx).Filter(str(client))
}

// SyncJob is a MUR sync cycle as the schema shows it.
type SyncJob struct {
	j                                           mursync.Job
	Client, Trigger, RequestedBy, Status, Error string
	StartedAt                                   graphql.Time
	FinishedAt                                  *graphql.Time
	Aggregates, Batches, Synced, Failed         int32
	MURs                                        float64
}

func (j *SyncJob) ID() graphql.ID { return graphql.ID(j.j.ID) }

func (r *resolver) SyncJobs(ctx context.Context, args struct {
	Client *string
	First  *int32
}) ([]*SyncJob, error) {
	n, err := first(ctx, args.First, 20)
	if err != nil {
		return nil, err
	}
	cs, err := scopeOf(ctx, args.Client)
	if err != nil {
		return nil, err
	}
	list, err := r.a.Sync.Jobs(ctx, mursync.JobFilter{Clients: cs, Limit: n})
	if err != nil {
		return nil, err
	}
	out := make([]*SyncJob, len(list))
	for i, j := range list {
		out[i] = &SyncJob{j: j, Client: j.Client, Trigger: string(j.Trigger), RequestedBy: j.RequestedBy, Status: string(j.Status),
			Error: j.Error, StartedAt: graphql.Time{Time: j.StartedAt.UTC()}, FinishedAt: timePtr(j.FinishedAt),
			Aggregates: int32(j.Aggregates), Batches: int32(j.Batches), Synced: int32(j.Synced), Failed: int32(j.Failed),
			MURs: float64(j.MURs)}
	}
	return out, nil
}

// SyncBatch is a MUR sync batch as the schema shows it.
type SyncBatch struct {
	b                                     mursync.BatchView
	Client, Status, Failure, ErrorMessage string
	Records, Synced, Failed, Attempts     int32
	MURs, ErrorCode                       float64
	CreatedAt                             graphql.Time
	AnsweredAt                            *graphql.Time
}

func (b *SyncBatch) ID() graphql.ID    { return graphql.ID(b.b.BatchID) }
func (b *SyncBatch) JobID() graphql.ID { return graphql.ID(b.b.JobID) }

func (r *resolver) SyncBatches(ctx context.Context, args struct {
	Client, Status *string
	JobID          *graphql.ID
	First          *int32
}) ([]*SyncBatch, error) {
	n, err := first(ctx, args.First, 50)
	if err != nil {
		return nil, err
	}
	cs, err := scopeOf(ctx, args.Client)
	if err != nil {
		return nil, err
	}
	job := idStr(args.JobID)
	if job != "" && !ids.Valid(job) {
		return nil, badInput("jobId: %q is not a job id", job)
	}
	list, err := r.a.Sync.Batches(ctx, mursync.BatchFilter{Clients: cs, Status: mursync.BatchStatus(str(args.Status)), JobID: job, Limit: n})
	if err != nil {
		return nil, err
	}
	out := make([]*SyncBatch, len(list))
	for i, b := range list {
		out[i] = &SyncBatch{b: b, Client: b.Client, Status: string(b.Status), Failure: string(b.Failure), ErrorMessage: b.Message,
			Records: int32(b.Records), Synced: int32(b.Synced), Failed: int32(b.Failed), Attempts: int32(b.Attempts),
			MURs: float64(b.MURs), ErrorCode: float64(b.Code), CreatedAt: graphql.Time{Time: b.CreatedAt.UTC()},
			AnsweredAt: timePtr(b.AnsweredAt)}
	}
	return out, nil
}

// SyncRecord is an aggregated record of the MUR sync as the schema
// shows it.
type SyncRecord struct {
	v                                                             mursync.RecordView
	Client, AccountID, UsageType, Currency, Units, Amount, Status string
	ErrorMessage                                                  string
	MURs                                                          int32
	ErrorCode                                                     float64
	UpdatedAt                                                     graphql.Time
}

func (s *SyncRecord) ID() graphql.ID      { return graphql.ID(s.v.ID) }
func (s *SyncRecord) BatchID() graphql.ID { return graphql.ID(s.v.BatchID) }

func (r *resolver) SyncRecords(ctx context.Context, args struct {
	Client  *string
	BatchID *graphql.ID
	Status  *string
	First   *int32
}) ([]*SyncRecord, error) {
	n, err := first(ctx, args.First, 100)
	if err != nil {
		return nil, err
	}
	cs, err := scopeOf(ctx, args.Client)
	if err != nil {
		return nil, err
	}
	batch := idStr(args.BatchID)
	if batch != "" && !ids.Valid(batch) {
		return nil, badInput("batchId: %q is not a batch id", batch)
	}
	list, err := r.a.Sync.Records(ctx, mursync.RecordFilter{Clients: cs, BatchID: batch, Status: mursync.RecordStatus(str(args.Status)), Limit: n})
	if err != nil {
		return nil, err
	}
	out := make([]*SyncRecord, len(list))
	for i, v := range list {
		out[i] = &SyncRecord{v: v, Client: v.Client, AccountID: v.AccountID, UsageType: v.UsageType, Currency: v.Currency,
			Units: v.Units, Amount: v.Amount, Status: string(v.Status), ErrorMessage: v.Message, MURs: int32(v.MURs),
			ErrorCode: float64(v.Code), UpdatedAt: graphql.Time{Time: v.UpdatedAt.UTC()}}
	}
	return out, nil
}

// SyncRun is what a retry's cycle did.
type SyncRun struct {
	Aggregates, Batches, Synced, Failed int32
	MURs                                float64
	JobIDs                              []graphql.ID
	Error                               string
}

// RetrySync sends a client's failed MUR sync records again, one batch's
// or all, as POST /api/v1/sync/retry does, waiting for the core's
// answers, and writes the retry to the audit log.
func (r *resolver) RetrySync(ctx context.Context, args struct {
	Client  string
	BatchID *graphql.ID
}) (*SyncRun, error) {
	if r.a.SyncRunner == nil {
		return nil, badInput("MUR sync: %v", errNotServed)
	}
	client, batch := strings.TrimSpace(args.Client), idStr(args.BatchID)
	if err := ingest.ValidClient(client); err != nil {
		return nil, badInput("client: %v", err)
	}
	p := principal(ctx)
	if err := p.Change(client); err != nil {
		return nil, err
	}
	target := "client:" + client
	if batch != "" {
		if !ids.Valid(batch) {
			return nil, notFound("client %s has no sync batch %s", client, batch)
		}
		b, err := r.a.Sync.Batch(ctx, batch)
		switch {
		case errors.Is(err, mursync.ErrUnknownBatch) || err == nil && b.Client != client:
			return nil, notFound("client %s has no sync batch %s", client, batch)
		case err != nil:
			return nil, err
		}
		target = "sync_batch:" + batch
	}
	sum, err := r.a.SyncRunner.Run(ctx, mursync.Request{Client: client, Trigger: mursync.ByRetry, By: p.Name, Wait: true,
		Retry: mursync.Selection{Client: client, BatchID: batch}})
	out := &SyncRun{Aggregates: int32(sum.Aggregates), Batches: int32(sum.Batches), Synced: int32(sum.Synced),
		Failed: int32(sum.Failed), MURs: float64(sum.MURs), JobIDs: []graphql.ID{}}
	if sum.JobID != "" {
		out.JobIDs = append(out.JobIDs, graphql.ID(sum.JobID))
	}
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	if e := sum.Complete(); e != nil && sum.JobID != "" {
		problems = append(problems, e.Error())
	}
	out.Error = strings.Join(problems, "; ")
	r.a.audit(ctx, entry(ctx, "sync.retry", target, client, nil, out))
	switch {
	case errors.Is(err, mursync.ErrNothingToRetry):
		return nil, notFound("%v", err)
	case errors.Is(err, mursync.ErrBusy):
		return nil, &publicError{code: codeConflict, msg: err.Error()}
	}
	return out, nil
}

// Health is what the console's monitoring shows.
type Health struct{ a *API }

func (r *resolver) Health() *Health { return &Health{a: r.a} }

// StageCounters are one pipeline's counters since the process started.
type StageCounters struct {
	Stream                 string
	Received, Sent, Errors float64
}

// Stages sums the pipelines' Benthos counters per stream: messages
// received by its inputs, sent by its outputs, and errors of its outputs
// and processors.
func (h *Health) Stages() ([]*StageCounters, error) {
	out := []*StageCounters{}
	if h.a.Gatherer == nil {
		return out, nil
	}
	fams, err := h.a.Gatherer.Gather()
	if err != nil {
		return nil, err
	}
	by := map[string]*StageCounters{}
	for _, fam := range fams {
		var add func(s *StageCounters, v float64)
		switch fam.GetName() {
		case "input_received":
			add = func(s *StageCounters, v float64) { s.Received += v }
		case "output_sent":
			add = func(s *StageCounters, v float64) { s.Sent += v }
		case "output_error", "processor_error":
			add = func(s *StageCounters, v float64) { s.Errors += v }
		default:
			continue
		}
		for _, m := range fam.GetMetric() {
			stream := label(m, "stream")
			if stream == "" {
				continue
			}
			s := by[stream]
			if s == nil {
				s = &StageCounters{Stream: stream}
				by[stream] = s
			}
			add(s, m.GetCounter().GetValue())
		}
	}
	for _, s := range by {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *StageCounters) int { return strings.Compare(a.Stream, b.Stream) })
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// ConsumerLag is how far one consumer group is behind on one topic.
type ConsumerLag struct {
	Group, Topic string
	Lag          float64
}

// Lag is the consumer groups' lag; it is the process's internals, so a
// token for every client sees it and others see none.
func (h *Health) Lag(ctx context.Context) ([]*ConsumerLag, error) {
	out := []*ConsumerLag{}
	if h.a.Lag == nil || principal(ctx).Every() != nil {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := h.a.Lag(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range list {
		out = append(out, &ConsumerLag{Group: l.Group, Topic: l.Topic, Lag: float64(l.Lag)})
	}
	return out, nil
}

// CatalogHealth counts the feed events that need a person.
type CatalogHealth struct{ Failed, Pending int32 }

func (h *Health) Catalog(ctx context.Context) (*CatalogHealth, error) {
	cs, err := principal(ctx).Filter("")
	if err != nil {
		return nil, err
	}
	failed, pending, err := h.a.Feed.CountOpenFeedEvents(ctx, cs)
	if err != nil {
		return nil, err
	}
	return &CatalogHealth{Failed: int32(min(failed, math.MaxInt32)), Pending: int32(min(pending, math.MaxInt32))}, nil
}

// SyncBacklog is a client whose MURs wait for the sync.
type SyncBacklog struct {
	Client        string
	OldestRatedAt *graphql.Time
	Unsynced      bool
}

func (h *Health) SyncBacklog(ctx context.Context) ([]*SyncBacklog, error) {
	out := []*SyncBacklog{}
	if h.a.Backlogs == nil {
		return out, nil
	}
	list, err := h.a.Backlogs.Backlogs(ctx)
	if err != nil {
		return nil, err
	}
	p := principal(ctx)
	for _, b := range list {
		if !p.MaySee(b.Client) {
			continue
		}
		s := &SyncBacklog{Client: b.Client, Unsynced: b.Unsynced}
		if !b.OldestRatedAt.IsZero() {
			s.OldestRatedAt = &graphql.Time{Time: b.OldestRatedAt}
		}
		out = append(out, s)
	}
	return out, nil
}

// Setting is a system setting as the schema shows it.
type Setting struct {
	Key, UpdatedBy, Type, Help string
	Value, Default             JSON
	IsDefault                  bool
	UpdatedAt                  *graphql.Time
}

func newSetting(s settings.Setting) *Setting {
	return &Setting{Key: s.Key, UpdatedBy: s.UpdatedBy, Type: string(s.Type), Help: s.Help, Value: jsonOf(s.Value),
		Default: jsonOf(s.Default), IsDefault: s.IsDefault, UpdatedAt: timePtr(s.UpdatedAt)}
}

// adminOfAll refuses what is not an admin token for every client: the
// system settings are no one client's.
func adminOfAll(ctx context.Context) error {
	p := principal(ctx)
	if err := p.HasRole(auth.Admin); err != nil {
		return err
	}
	return p.Every()
}

func (r *resolver) settingsService() (*settings.Service, error) {
	if r.a.Settings == nil {
		return nil, badInput("system settings: %v", errNotServed)
	}
	return r.a.Settings, nil
}

func settingError(err error) error {
	switch {
	case errors.Is(err, settings.ErrUnknownKey):
		return notFound("%v", err)
	case errors.Is(err, settings.ErrInvalid):
		return badInput("%v", err)
	}
	return err
}

func (r *resolver) Settings(ctx context.Context) ([]*Setting, error) {
	if err := adminOfAll(ctx); err != nil {
		return nil, err
	}
	svc, err := r.settingsService()
	if err != nil {
		return nil, err
	}
	list, err := svc.List(ctx)
	if err != nil {
		return nil, settingError(err)
	}
	out := make([]*Setting, len(list))
	for i := range list {
		out[i] = newSetting(list[i])
	}
	return out, nil
}

// SetSetting changes a setting through settings.Service, which checks the
// value and writes the audit entry.
func (r *resolver) SetSetting(ctx context.Context, args struct {
	Key   string
	Value JSON
}) (*Setting, error) {
	if err := adminOfAll(ctx); err != nil {
		return nil, err
	}
	svc, err := r.settingsService()
	if err != nil {
		return nil, err
	}
	s, err := svc.Set(ctx, args.Key, string(args.Value.RawMessage), principal(ctx).Name)
	if err != nil {
		return nil, settingError(err)
	}
	return newSetting(s), nil
}

func (r *resolver) ResetSetting(ctx context.Context, args struct{ Key string }) (*Setting, error) {
	if err := adminOfAll(ctx); err != nil {
		return nil, err
	}
	svc, err := r.settingsService()
	if err != nil {
		return nil, err
	}
	s, err := svc.Reset(ctx, args.Key, principal(ctx).Name)
	if err != nil {
		return nil, settingError(err)
	}
	return newSetting(s), nil
}

// AuditFilter is the schema's AuditFilter input.
type AuditFilter struct {
	Client, Action, Target, Actor *string
	Since                         *graphql.Time
}

// AuditEntry is an audit log entry as the schema shows it.
type AuditEntry struct {
	At                            graphql.Time
	Actor, Action, Target, Client string
	Before, After                 *JSON
}

func newAuditEntry(e auth.AuditEntry) *AuditEntry {
	return &AuditEntry{At: graphql.Time{Time: e.At.UTC()}, Actor: e.Actor, Action: e.Action, Target: e.Target, Client: e.Client,
		Before: jsonPtr(e.Before), After: jsonPtr(e.After)}
}

// auditFilterOf selects the entries of one target of a client.
func auditFilterOf(target, client string) auditstore.Filter {
	return auditstore.Filter{Target: target, Client: client, Limit: 100}
}

// AuditLog lists the audit log: a token for every client sees every
// entry, others the entries of their clients only.
func (r *resolver) AuditLog(ctx context.Context, args struct {
	Filter *AuditFilter
	First  *int32
}) ([]*AuditEntry, error) {
	n, err := first(ctx, args.First, 50)
	if err != nil {
		return nil, err
	}
	f := auditstore.Filter{Limit: n}
	var client string
	if in := args.Filter; in != nil {
		client, f.Action, f.Target, f.Actor = str(in.Client), str(in.Action), str(in.Target), str(in.Actor)
		if in.Since != nil {
			f.Since = in.Since.UTC()
		}
	}
	if f.Clients, err = principal(ctx).Filter(client); err != nil {
		return nil, err
	}
	list, err := r.a.AuditLog.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*AuditEntry, len(list))
	for i := range list {
		out[i] = newAuditEntry(list[i])
	}
	return out, nil
}
