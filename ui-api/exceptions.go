package uiapi

import (
	"context"
	"errors"
	"slices"
	"sync"

	graphql "github.com/graph-gophers/graphql-go"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/store"
)

// ExceptionWork is working exceptions (an exceptions.Service): the same
// checks, scoping and audit behind GraphQL, the REST API and the command
// line. Every method is given the request's principal.
type ExceptionWork interface {
	Get(ctx context.Context, p auth.Principal, id string) (exceptions.Detail, error)
	List(ctx context.Context, p auth.Principal, q exceptions.Query) (exceptions.Page, error)
	Counts(ctx context.Context, p auth.Principal, f exceptions.Filter) ([]exceptions.Count, error)
	Edit(ctx context.Context, p auth.Principal, id string, edited []byte) (exceptions.Detail, error)
	Reprocess(ctx context.Context, p auth.Principal, sel exceptions.Selection) (exceptions.Outcome, *exceptions.Job, error)
	Discard(ctx context.Context, p auth.Principal, sel exceptions.Selection, reason string) (exceptions.Outcome, *exceptions.Job, error)
	Job(ctx context.Context, p auth.Principal, id string) (exceptions.Job, error)
}

// workError turns the service's refusals into answers: a Refused is
// BAD_INPUT naming its field and code, a missing exception or job
// NOT_FOUND; refusals of access pass as they are.
func workError(err error) error {
	var refused *exceptions.Refused
	switch {
	case errors.As(err, &refused):
		e := &publicError{code: codeBadInput, msg: refused.Reason, field: refused.Field, exception: string(refused.Code)}
		return e
	case errors.Is(err, exceptions.ErrNotFound):
		return notFound("no such exception or job")
	}
	return err
}

// ExceptionFilter is the schema's ExceptionFilter input.
type ExceptionFilter struct {
	Client, Stage, Code, Status *string
	FileID                      *graphql.ID
	AccountID                   *string
	From, To                    *graphql.Time
}

// filter reads the input; the service checks it and keeps it to the
// token's clients.
func (in *ExceptionFilter) filter() (exceptions.Filter, error) {
	var f exceptions.Filter
	if in == nil {
		return f, nil
	}
	f = exceptions.Filter{Client: str(in.Client), FileID: idStr(in.FileID), AccountID: str(in.AccountID), Stage: str(in.Stage),
		Code: codes.Code(str(in.Code)), Status: exceptions.Status(str(in.Status))}
	var err error
	if f.From, f.To, err = timeRange(in.From, in.To); err != nil {
		return f, err
	}
	if err := fileIDArg(f.FileID); err != nil {
		return f, err
	}
	return f, workError(f.Validate())
}

// ExceptionConnection is a page of exceptions; its counts are read only
// when asked for.
type ExceptionConnection struct {
	Edges    []*ExceptionEdge
	PageInfo *PageInfo

	a      *API
	filter exceptions.Filter
	once   sync.Once
	counts []exceptions.Count
	err    error
}

// ExceptionEdge is one exception of a page.
type ExceptionEdge struct {
	Cursor string
	Node   *Exception
}

func (c *ExceptionConnection) load(ctx context.Context) ([]exceptions.Count, error) {
	c.once.Do(func() { c.counts, c.err = c.a.Work.Counts(ctx, principal(ctx), c.filter) })
	return c.counts, workError(c.err)
}

func (c *ExceptionConnection) TotalCount(ctx context.Context) (int32, error) {
	t, err := c.load(ctx)
	var n int64
	for _, x := range t {
		n += x.N
	}
	return int32(n), err
}

// CodeCount is how many exceptions of a list have a code.
type CodeCount struct {
	Code  string
	Count int32
}

// StageCount is how many exceptions of a list failed at a stage.
type StageCount struct {
	Stage string
	Count int32
}

func (c *ExceptionConnection) CountsByCode(ctx context.Context) ([]*CodeCount, error) {
	t, err := c.load(ctx)
	by := map[string]int64{}
	for _, x := range t {
		by[string(x.Code)] += x.N
	}
	out := []*CodeCount{}
	for _, k := range sortedKeys(by) {
		out = append(out, &CodeCount{k, int32(by[k])})
	}
	return out, err
}

func (c *ExceptionConnection) CountsByStage(ctx context.Context) ([]*StageCount, error) {
	t, err := c.load(ctx)
	by := map[string]int64{}
	for _, x := range t {
		by[x.Stage] += x.N
	}
	out := []*StageCount{}
	for _, k := range sortedKeys(by) {
		out = append(out, &StageCount{k, int32(by[k])})
	}
	return out, err
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (r *resolver) Exceptions(ctx context.Context, args struct {
	Filter *ExceptionFilter
	pageArgs
}) (*ExceptionConnection, error) {
	n, err := first(ctx, args.First, 50)
	if err != nil {
		return nil, err
	}
	f, err := args.Filter.filter()
	if err != nil {
		return nil, err
	}
	page, err := r.a.Work.List(ctx, principal(ctx), exceptions.Query{Filter: f, After: str(args.After), Limit: n})
	if err != nil {
		return nil, workError(err)
	}
	c := &ExceptionConnection{a: r.a, filter: f, Edges: []*ExceptionEdge{}, PageInfo: &PageInfo{HasNextPage: page.Next != ""}}
	for i := range page.Items {
		e := newException(r.a, page.Items[i].Exception, page.Items[i].Work, nil)
		c.Edges = append(c.Edges, &ExceptionEdge{Cursor: page.Items[i].ExceptionID, Node: e})
	}
	if page.Next != "" {
		c.PageInfo.EndCursor = &page.Next
	} else if len(c.Edges) > 0 {
		end := c.Edges[len(c.Edges)-1].Cursor
		c.PageInfo.EndCursor = &end
	}
	return c, nil
}

func (r *resolver) Exception(ctx context.Context, args struct{ ID graphql.ID }) (*Exception, error) {
	d, err := r.a.Work.Get(ctx, principal(ctx), string(args.ID))
	if errors.Is(err, exceptions.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, workError(err)
	}
	return newException(r.a, d.Exception, d.Work, d.History), nil
}

// Exception is an exception as the schema shows it.
type Exception struct {
	ex      exceptions.Exception
	work    exceptions.Work
	history []auth.AuditEntry // nil: read from the audit log when asked for
	a       *API

	Client, RecordID, Stage, Code, Field, Message, Status string
	Line, Part, Attempts                                  int32
	Record                                                JSON
	Arrived, Edited                                       *JSON
	EditedBy, Resolution, Reason                          string
	EditedAt                                              *graphql.Time
	SupersededBy                                          *Position
	CreatedAt, UpdatedAt                                  graphql.Time
}

// Position is where a record came from.
type Position struct {
	File       graphql.ID
	Line, Part int32
}

func (p *Position) FileID() graphql.ID { return p.File }

func newException(a *API, e exceptions.Exception, w exceptions.Work, history []auth.AuditEntry) *Exception {
	out := &Exception{ex: e, work: w, history: history, a: a, Client: e.Client, RecordID: e.RecordID, Stage: e.Stage,
		Code: string(e.Code), Field: e.Field, Message: e.Message, Status: string(e.Status), Line: int32(e.Line),
		Part: int32(e.Part), Attempts: int32(e.Attempts), Record: jsonOf(e.Record), Arrived: jsonPtr(w.Arrived),
		Edited: jsonPtr(w.Edited), EditedBy: w.EditedBy, Resolution: string(w.Resolution), Reason: w.Reason,
		EditedAt: timePtr(w.EditedAt), CreatedAt: graphql.Time{Time: e.CreatedAt.UTC()}, UpdatedAt: graphql.Time{Time: e.UpdatedAt.UTC()}}
	if p := w.SupersededBy; p != nil {
		out.SupersededBy = &Position{File: graphql.ID(p.FileID), Line: int32(p.Line), Part: int32(p.Part)}
	}
	return out
}

func (e *Exception) ID() graphql.ID     { return graphql.ID(e.ex.ExceptionID) }
func (e *Exception) FileID() graphql.ID { return graphql.ID(e.ex.FileID) }

// Fields is the record as an edit starts from it: a flat object of
// fields, the edit if there is one, else the record.
func (e *Exception) Fields() (*JSON, error) {
	f, err := exceptions.Fields(&e.ex, &e.work)
	if err != nil {
		return nil, nil // a record that is no object of fields (a line that could not be read) has none
	}
	b, err := jsonMarshal(f)
	return jsonPtr(b), err
}

func (e *Exception) File(ctx context.Context) (*File, error) {
	f, err := e.a.Files.GetFile(ctx, e.ex.FileID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return newFile(f), nil
}

func (e *Exception) History(ctx context.Context) ([]*AuditEntry, error) {
	list := e.history
	if list == nil {
		if err := charge(ctx, 100); err != nil {
			return nil, err
		}
		newest, err := e.a.AuditLog.List(ctx, auditFilterOf("exception:"+e.ex.ExceptionID, e.ex.Client))
		if err != nil {
			return nil, err
		}
		list = make([]auth.AuditEntry, len(newest))
		for i := range newest { // oldest first
			list[len(newest)-1-i] = newest[i]
		}
	}
	out := make([]*AuditEntry, 0, len(list))
	for _, h := range list {
		out = append(out, newAuditEntry(h))
	}
	return out, nil
}

// ActionResult is what a mutation of exceptions did: how many exceptions
// it took, the ones it left and why, the job a filter started, and the
// exception an edit changed.
type ActionResult struct {
	Accepted  int32
	Skipped   []*Skipped
	Job       *ExceptionJob
	Exception *Exception
}

// Skipped is an exception an action left as it was, with why.
type Skipped struct {
	Reason string
	id     string
}

func (s *Skipped) ID() graphql.ID { return graphql.ID(s.id) }

// ExceptionJob is a bulk action's progress.
type ExceptionJob struct {
	j                                    exceptions.Job
	Action, Actor, Status, Reason, Error string
	Taken, Done, Skipped                 float64
	StartedAt, UpdatedAt                 graphql.Time
	FinishedAt                           *graphql.Time
}

func (j *ExceptionJob) ID() graphql.ID { return graphql.ID(j.j.ID) }

func newJob(j *exceptions.Job) *ExceptionJob {
	if j == nil {
		return nil
	}
	return &ExceptionJob{j: *j, Action: j.Action, Actor: j.Actor, Status: j.Status, Reason: j.Reason, Error: j.Error,
		Taken: float64(j.Total), Done: float64(j.Done), Skipped: float64(j.Skipped), StartedAt: graphql.Time{Time: j.Started.UTC()},
		UpdatedAt: graphql.Time{Time: j.Updated.UTC()}, FinishedAt: timePtr(j.Finished)}
}

func result(out exceptions.Outcome, job *exceptions.Job) *ActionResult {
	r := &ActionResult{Accepted: int32(len(out.Done)), Skipped: []*Skipped{}, Job: newJob(job)}
	for _, id := range sortedKeys(countsOf(out.Skipped)) {
		r.Skipped = append(r.Skipped, &Skipped{id: id, Reason: out.Skipped[id]})
	}
	return r
}

func countsOf(m map[string]string) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k := range m {
		out[k] = 1
	}
	return out
}

// UpdateException replaces an open exception's record with an edited one
// once it passes the checks of the stage that failed it (the service
// checks, stores and audits it); a record that still fails is BAD_INPUT
// naming its field and code, and nothing is saved.
func (r *resolver) UpdateException(ctx context.Context, args struct {
	ID     graphql.ID
	Record JSON
}) (*ActionResult, error) {
	d, err := r.a.Work.Edit(ctx, principal(ctx), string(args.ID), args.Record.RawMessage)
	if err != nil {
		return nil, workError(err)
	}
	return &ActionResult{Accepted: 1, Skipped: []*Skipped{}, Exception: newException(r.a, d.Exception, d.Work, d.History)}, nil
}

// selection reads ids or a filter: ids when given, else the filter (all
// of them when it names nothing, which the service refuses unless
// asked for with all).
func selection(ids *[]graphql.ID, in *ExceptionFilter, all *bool) (exceptions.Selection, error) {
	var sel exceptions.Selection
	if ids != nil && len(*ids) > 0 {
		if len(*ids) > MaxIDs {
			return sel, badInput("ids: at most %d per request", MaxIDs)
		}
		for _, id := range *ids {
			sel.IDs = append(sel.IDs, string(id))
		}
		return sel, nil
	}
	f, err := in.filter()
	sel.Filter, sel.All = f, all != nil && *all
	return sel, err
}

// ReprocessExceptions sends exceptions back through the pipeline from the
// stage that failed them: the listed ones now, or every open one a filter
// selects as a job whose progress exceptionJob shows.
func (r *resolver) ReprocessExceptions(ctx context.Context, args struct {
	IDs    *[]graphql.ID
	Filter *ExceptionFilter
	All    *bool
}) (*ActionResult, error) {
	if err := principal(ctx).HasRole(auth.Operator); err != nil {
		return nil, err
	}
	sel, err := selection(args.IDs, args.Filter, args.All)
	if err != nil {
		return nil, err
	}
	out, job, err := r.a.Work.Reprocess(ctx, principal(ctx), sel)
	if err != nil {
		return nil, workError(err)
	}
	return result(out, job), nil
}

// DiscardExceptions marks exceptions as not to be billed, with the
// reason.
func (r *resolver) DiscardExceptions(ctx context.Context, args struct {
	IDs    *[]graphql.ID
	Filter *ExceptionFilter
	All    *bool
	Reason string
}) (*ActionResult, error) {
	if err := principal(ctx).HasRole(auth.Operator); err != nil {
		return nil, err
	}
	sel, err := selection(args.IDs, args.Filter, args.All)
	if err != nil {
		return nil, err
	}
	out, job, err := r.a.Work.Discard(ctx, principal(ctx), sel, args.Reason)
	if err != nil {
		return nil, workError(err)
	}
	return result(out, job), nil
}

func (r *resolver) ExceptionJob(ctx context.Context, args struct{ ID graphql.ID }) (*ExceptionJob, error) {
	j, err := r.a.Work.Job(ctx, principal(ctx), string(args.ID))
	if errors.Is(err, exceptions.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, workError(err)
	}
	return newJob(&j), nil
}
