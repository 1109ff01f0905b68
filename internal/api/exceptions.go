package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/exceptions"
)

// ExceptionWork is working exceptions (an exceptions.Service): the same
// checks behind the API, GraphQL and the command line.
type ExceptionWork interface {
	Get(ctx context.Context, p auth.Principal, id string) (exceptions.Detail, error)
	List(ctx context.Context, p auth.Principal, q exceptions.Query) (exceptions.Page, error)
	Counts(ctx context.Context, p auth.Principal, f exceptions.Filter) ([]exceptions.Count, error)
	Edit(ctx context.Context, p auth.Principal, id string, edited []byte) (exceptions.Detail, error)
	Reprocess(ctx context.Context, p auth.Principal, sel exceptions.Selection) (exceptions.Outcome, *exceptions.Job, error)
	Discard(ctx context.Context, p auth.Principal, sel exceptions.Selection, reason string) (exceptions.Outcome, *exceptions.Job, error)
	Job(ctx context.Context, p auth.Principal, id string) (exceptions.Job, error)
}

// exceptionRoutes are the routes of working exceptions (docs/api.md,
// "Working exceptions"); GET /api/v1/exceptions stays the export.
func (s *Server) exceptionRoutes() []Route {
	if s.Exceptions == nil {
		return nil
	}
	v, o := auth.Viewer, auth.Operator
	return []Route{
		{"GET /api/v1/exceptions/list", v, PerClient, http.HandlerFunc(s.listExceptions)},
		{"GET /api/v1/exceptions/counts", v, PerClient, http.HandlerFunc(s.countExceptions)},
		{"GET /api/v1/exceptions/{id}", v, PerClient, http.HandlerFunc(s.getException)},
		{"POST /api/v1/exceptions/{id}", o, PerClient, http.HandlerFunc(s.editException)},
		{"POST /api/v1/exceptions/reprocess", o, PerClient, http.HandlerFunc(s.reprocessExceptions)},
		{"POST /api/v1/exceptions/discard", o, PerClient, http.HandlerFunc(s.discardExceptions)},
		{"GET /api/v1/exceptions/jobs/{id}", v, PerClient, http.HandlerFunc(s.exceptionJob)},
	}
}

// ExceptionDetail is one exception with what was done to it.
type ExceptionDetail struct {
	Exception
	// Record is the record as the stage that failed it last saw it;
	// Arrived, when set, the record as it first arrived (a reprocess
	// failed again). Edited is the record as a person edited it, Fields
	// what an edit starts from (the edit, else the record flattened).
	Arrived      json.RawMessage   `json:"arrived,omitempty"`
	Edited       json.RawMessage   `json:"edited,omitempty"`
	EditedBy     string            `json:"edited_by,omitempty"`
	EditedAt     *time.Time        `json:"edited_at,omitempty"`
	Fields       map[string]string `json:"fields,omitempty"`
	Resolution   string            `json:"resolution,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	SupersededBy *Position         `json:"superseded_by,omitempty"`
	History      []AuditEntry      `json:"history,omitempty"`
}

// Position is a record's source.
type Position struct {
	FileID string `json:"file_id"`
	Line   int64  `json:"line"`
	Part   int    `json:"part"`
}

// AuditEntry is one action in a history.
type AuditEntry struct {
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// NewExceptionDetail is an exception and its work as the API shows them.
func NewExceptionDetail(e *exceptions.Exception, w *exceptions.Work, history []auth.AuditEntry) ExceptionDetail {
	d := ExceptionDetail{Exception: NewException(e), Arrived: w.Arrived, Edited: w.Edited, EditedBy: w.EditedBy,
		EditedAt: w.EditedAt, Resolution: string(w.Resolution), Reason: w.Reason}
	if f, err := exceptions.Fields(e, w); err == nil {
		d.Fields = f
	}
	if p := w.SupersededBy; p != nil {
		d.SupersededBy = &Position{FileID: p.FileID, Line: p.Line, Part: p.Part}
	}
	for _, h := range history {
		d.History = append(d.History, AuditEntry{At: h.At, Actor: h.Actor, Action: h.Action, Before: h.Before, After: h.After})
	}
	return d
}

// ExceptionPage is a page of the list.
type ExceptionPage struct {
	Exceptions []ExceptionDetail `json:"exceptions"`
	// Next is the cursor of the next page (after=…); empty after the last.
	Next string `json:"next,omitempty"`
}

// ExceptionCount is how many exceptions have a code at a stage.
type ExceptionCount struct {
	Code  string `json:"code"`
	Stage string `json:"stage"`
	Count int64  `json:"count"`
}

// ExceptionOutcome is what a reprocess or discard of listed exceptions
// did, or the job a filter started.
type ExceptionOutcome struct {
	Done    []string          `json:"done"`
	Skipped map[string]string `json:"skipped,omitempty"`
	Job     *ExceptionJob     `json:"job,omitempty"`
}

// ExceptionJob is a bulk action's progress.
type ExceptionJob struct {
	JobID      string     `json:"job_id"`
	Action     string     `json:"action"`
	Actor      string     `json:"actor"`
	Status     string     `json:"status"`
	Taken      int64      `json:"taken"`
	Done       int64      `json:"done"`
	Skipped    int64      `json:"skipped"`
	Reason     string     `json:"reason,omitempty"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// NewExceptionJob is j as the API shows it.
func NewExceptionJob(j *exceptions.Job) ExceptionJob {
	return ExceptionJob{JobID: j.ID, Action: j.Action, Actor: j.Actor, Status: j.Status, Taken: j.Total, Done: j.Done,
		Skipped: j.Skipped, Reason: j.Reason, Error: j.Error, StartedAt: j.Started, UpdatedAt: j.Updated, FinishedAt: j.Finished}
}

// exceptionError answers an error of the exceptions service.
func (s *Server) exceptionError(w http.ResponseWriter, what string, err error) {
	var refused *exceptions.Refused
	var denied *auth.Error
	switch {
	case errors.As(err, &refused):
		body := map[string]string{"error": refused.Reason}
		if refused.Code != "" {
			body["code"] = string(refused.Code)
		}
		if refused.Field != "" {
			body["field"] = refused.Field
		}
		writeJSON(w, http.StatusBadRequest, body)
	case errors.Is(err, exceptions.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such "+what)
	case errors.As(err, &denied):
		deny(w, err)
	default:
		s.internalError(w, "working exceptions", err)
	}
}

// listExceptions: GET /api/v1/exceptions/list with the export's filters
// plus ids (comma separated), after and limit.
func (s *Server) listExceptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := exceptionFilter(w, q)
	if !ok {
		return
	}
	f.Client = q.Get("client")
	query := exceptions.Query{Filter: f, After: q.Get("after"), IDs: splitList(q.Get("ids"))}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > exceptions.MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", v, exceptions.MaxLimit))
			return
		}
		query.Limit = n
	}
	page, err := s.Exceptions.List(r.Context(), principal(r), query)
	if err != nil {
		s.exceptionError(w, "exceptions", err)
		return
	}
	out := ExceptionPage{Exceptions: []ExceptionDetail{}, Next: page.Next}
	for i := range page.Items {
		it := &page.Items[i]
		out.Exceptions = append(out.Exceptions, NewExceptionDetail(&it.Exception, &it.Work, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// countExceptions: GET /api/v1/exceptions/counts with the export's
// filters: counts by code and stage.
func (s *Server) countExceptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := exceptionFilter(w, q)
	if !ok {
		return
	}
	f.Client = q.Get("client")
	counts, err := s.Exceptions.Counts(r.Context(), principal(r), f)
	if err != nil {
		s.exceptionError(w, "exceptions", err)
		return
	}
	out := struct {
		Counts []ExceptionCount `json:"counts"`
		Total  int64            `json:"total"`
	}{Counts: []ExceptionCount{}}
	for _, c := range counts {
		out.Counts = append(out.Counts, ExceptionCount{Code: string(c.Code), Stage: c.Stage, Count: c.N})
		out.Total += c.N
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getException(w http.ResponseWriter, r *http.Request) {
	d, err := s.Exceptions.Get(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.exceptionError(w, "exception", err)
		return
	}
	writeJSON(w, http.StatusOK, NewExceptionDetail(&d.Exception, &d.Work, d.History))
}

// editException: POST /api/v1/exceptions/{id} {"record": {fields}}.
func (s *Server) editException(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Record json.RawMessage `json:"record"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil || len(req.Record) == 0 {
		writeError(w, http.StatusBadRequest, "body: "+bodyProblem(err, `a JSON object {"record": {"field": "value", ...}}`))
		return
	}
	d, err := s.Exceptions.Edit(r.Context(), principal(r), r.PathValue("id"), req.Record)
	if err != nil {
		s.exceptionError(w, "exception", err)
		return
	}
	writeJSON(w, http.StatusOK, NewExceptionDetail(&d.Exception, &d.Work, d.History))
}

// selectionRequest is the body of reprocess and discard.
type selectionRequest struct {
	IDs []string `json:"ids"`
	// Filter takes the list's parameters (client, file_id, code, stage,
	// status, account_id, from, to).
	Filter map[string]string `json:"filter"`
	All    bool              `json:"all"`
	Reason string            `json:"reason"`
}

func (s *Server) readSelection(w http.ResponseWriter, r *http.Request) (exceptions.Selection, string, bool) {
	var req selectionRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+bodyProblem(err, `a JSON object {"ids": [...]} or {"filter": {...}}`))
		return exceptions.Selection{}, "", false
	}
	q := url.Values{}
	for k, v := range req.Filter {
		switch k {
		case "client", "file_id", "code", "stage", "status", "account_id", "from", "to":
			q.Set(k, v)
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("filter.%s: not a filter (client, file_id, code, stage, status, account_id, from, to)", k))
			return exceptions.Selection{}, "", false
		}
	}
	f, ok := exceptionFilter(w, q)
	if !ok {
		return exceptions.Selection{}, "", false
	}
	f.Client = q.Get("client")
	if f.Client != "" {
		if err := principal(r).Change(f.Client); err != nil {
			deny(w, err)
			return exceptions.Selection{}, "", false
		}
	}
	return exceptions.Selection{IDs: req.IDs, Filter: f, All: req.All}, req.Reason, true
}

func (s *Server) answerOutcome(w http.ResponseWriter, out exceptions.Outcome, job *exceptions.Job, err error) {
	if err != nil {
		s.exceptionError(w, "exception", err)
		return
	}
	if job != nil {
		j := NewExceptionJob(job)
		writeJSON(w, http.StatusAccepted, ExceptionOutcome{Done: []string{}, Job: &j})
		return
	}
	if out.Done == nil {
		out.Done = []string{}
	}
	writeJSON(w, http.StatusOK, ExceptionOutcome{Done: out.Done, Skipped: out.Skipped})
}

// reprocessExceptions: POST /api/v1/exceptions/reprocess.
func (s *Server) reprocessExceptions(w http.ResponseWriter, r *http.Request) {
	sel, _, ok := s.readSelection(w, r)
	if !ok {
		return
	}
	out, job, err := s.Exceptions.Reprocess(r.Context(), principal(r), sel)
	s.answerOutcome(w, out, job, err)
}

// discardExceptions: POST /api/v1/exceptions/discard.
func (s *Server) discardExceptions(w http.ResponseWriter, r *http.Request) {
	sel, reason, ok := s.readSelection(w, r)
	if !ok {
		return
	}
	out, job, err := s.Exceptions.Discard(r.Context(), principal(r), sel, reason)
	s.answerOutcome(w, out, job, err)
}

func (s *Server) exceptionJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.Exceptions.Job(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.exceptionError(w, "job", err)
		return
	}
	writeJSON(w, http.StatusOK, NewExceptionJob(&j))
}

// splitList reads a comma-separated list.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
