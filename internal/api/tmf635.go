package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/tmf635"
	"vivace.dev/vivace/internal/usage"
)

// TMFStore is what TMF635 reads and writes (tmfstore.Store).
type TMFStore interface {
	Usage(ctx context.Context, fileID string, line int64, part int) (tmf635.Record, error)
	List(ctx context.Context, clients []string, f tmf635.Filter) ([]tmf635.Record, int64, error)
	UsageTypes(ctx context.Context, clients []string, client, code string) ([]tmf635.UsageSpecification, error)
	CreateHub(ctx context.Context, h tmf635.Hub, by string) error
	GetHub(ctx context.Context, id string) (tmf635.Hub, error)
	DeleteHub(ctx context.Context, id string) error
}

// TMF is the TMF635 Usage Management API (docs/tmf635.md).
type TMF struct {
	Store  TMFStore
	Submit *tmf635.Submitter
	// TimeFormat is how a client writes usage_time (its settings); nil:
	// RFC 3339 for every client.
	TimeFormat func(client string) usage.TimeFormat
}

// tmfRoutes are TMF635's routes. Every answer that is not a success is
// a TMF Error body, those of the paths and methods the API does not
// serve too.
func (s *Server) tmfRoutes() []Route {
	if s.TMF == nil {
		return nil
	}
	v, o := auth.Viewer, auth.Operator
	b := tmf635.BasePath
	rs := []Route{
		{"GET " + b + "/usage", v, PerClient, http.HandlerFunc(s.tmfListUsage)},
		{"POST " + b + "/usage", o, PerClient, http.HandlerFunc(s.tmfPostUsage)},
		{"GET " + b + "/usage/{id}", v, PerClient, http.HandlerFunc(s.tmfGetUsage)},
		{"DELETE " + b + "/usage/{id}", v, PerClient, http.HandlerFunc(s.tmfNoDelete)},
		{"GET " + b + "/usageSpecification", v, PerClient, http.HandlerFunc(s.tmfListSpecs)},
		{"GET " + b + "/usageSpecification/{id}", v, PerClient, http.HandlerFunc(s.tmfGetSpec)},
		{"POST " + b + "/hub", v, PerClient, http.HandlerFunc(s.tmfPostHub)},
		{"DELETE " + b + "/hub/{id}", v, PerClient, http.HandlerFunc(s.tmfDeleteHub)},
	}
	if s.Exceptions != nil {
		rs = append(rs, Route{"PATCH " + b + "/usage/{id}", o, PerClient, http.HandlerFunc(s.tmfPatchUsage)})
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		rs = append(rs, Route{m + " " + b + "/", v, PerClient, http.HandlerFunc(s.tmfNotServed)})
	}
	return rs
}

// tmfBase is the API's absolute URL as the caller reached it.
func tmfBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" && !strings.ContainsAny(h, "/ ,") {
		host = h
	}
	return scheme + "://" + host + tmf635.BasePath
}

func tmfError(w http.ResponseWriter, status int, code, reason string) {
	writeJSON(w, status, tmf635.Error{Code: code, Reason: reason, Status: strconv.Itoa(status)})
}

func (s *Server) tmfProblem(w http.ResponseWriter, what string, err error) {
	if p := tmf635.AsProblem(err); p != nil {
		writeJSON(w, p.Status, p.Body())
		return
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		tmfDeny(w, err)
		return
	}
	ref := make([]byte, 6)
	_, _ = rand.Read(ref)
	id := hex.EncodeToString(ref)
	s.log().Error("request failed", "what", what, "ref", id, "err", err)
	tmfError(w, http.StatusInternalServerError, "INTERNAL_ERROR", fmt.Sprintf("internal error %s: see the server log (ref %s)", what, id))
}

// tmfDeny is deny: its body is a TMF Error too (code, reason, status).
func tmfDeny(w http.ResponseWriter, err error) { deny(w, err) }

func (s *Server) tmfNotServed(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, tmf635.BasePath)
	allowed := map[string]string{"/usage": "GET, POST", "/usageSpecification": "GET", "/hub": "POST"}
	for prefix, methods := range map[string]string{"/usage/": "GET, PATCH", "/usageSpecification/": "GET", "/hub/": "DELETE"} {
		if strings.HasPrefix(path, prefix) && len(path) > len(prefix) && !strings.Contains(path[len(prefix):], "/") {
			allowed[path] = methods
		}
	}
	if methods, ok := allowed[path]; ok {
		w.Header().Set("Allow", methods)
		tmfError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", fmt.Sprintf("%s %s: this resource answers %s", r.Method, path, methods))
		return
	}
	tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("%s: no such resource; this API serves /usage, /usageSpecification and /hub", path))
}

// tmfNoDelete: a usage is never deleted (its MUR is billing's record).
func (s *Server) tmfNoDelete(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", "GET, PATCH")
	tmfError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
		"usages are never deleted: a rated usage is a billing record; a rejected one can be corrected with PATCH")
}

func (s *Server) tmfListUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := tmf635.ParseFilter(q)
	if err != nil {
		s.tmfProblem(w, "listing usages", err)
		return
	}
	clients, err := principal(r).Filter(q.Get("client"))
	if err != nil {
		tmfDeny(w, err)
		return
	}
	recs, total, err := s.TMF.Store.List(r.Context(), clients, f)
	if err != nil {
		s.tmfProblem(w, "listing usages", err)
		return
	}
	base := tmfBase(r)
	out := make([]any, len(recs))
	for i := range recs {
		out[i] = tmf635.Select(tmf635.Build(&recs[i], base), f.Fields)
	}
	w.Header().Set("X-Total-Count", strconv.FormatInt(total, 10))
	w.Header().Set("X-Result-Count", strconv.Itoa(len(out)))
	writeJSON(w, http.StatusOK, out)
}

// tmfUsage loads the usage of the path's id for the token; false when it
// answered.
func (s *Server) tmfUsage(w http.ResponseWriter, r *http.Request) (tmf635.Record, bool) {
	id := r.PathValue("id")
	fileID, line, part, ok := tmf635.ParseID(id)
	if !ok {
		tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("usage %q: no such usage (an id is <file id>.<line>)", id))
		return tmf635.Record{}, false
	}
	rec, err := s.TMF.Store.Usage(r.Context(), fileID, line, part)
	if errors.Is(err, store.ErrNotFound) {
		tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("usage %q: no such usage", id))
		return rec, false
	}
	if err != nil {
		s.tmfProblem(w, "reading the usage", err)
		return rec, false
	}
	if err := principal(r).SeeOf(fmt.Sprintf("usage %q", id), rec.Client); err != nil {
		// Another client's usage is not there, as far as this token goes.
		tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("usage %q: no such usage", id))
		return rec, false
	}
	return rec, true
}

func (s *Server) tmfGetUsage(w http.ResponseWriter, r *http.Request) {
	fields, err := tmf635.ParseFields(r.URL.Query().Get("fields"))
	if err != nil {
		s.tmfProblem(w, "reading the usage", err)
		return
	}
	rec, ok := s.tmfUsage(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, tmf635.Select(tmf635.Build(&rec, tmfBase(r)), fields))
}

// tmfPick is the client a posted usage is for: the one it names (a
// client characteristic, or ?client=), else the token's only one.
func tmfPick(r *http.Request) func(string) (string, error) {
	return func(named string) (string, error) {
		p := principal(r)
		if q := r.URL.Query().Get("client"); q != "" {
			if named != "" && named != q {
				return "", &tmf635.Problem{Status: 400, Code: "INVALID_REQUEST",
					Reason: fmt.Sprintf("client: the query names %q and the usage's client characteristic %q", q, named)}
			}
			named = q
		}
		if named == "" {
			cs := p.Clients()
			if p.AllClients() || len(cs) != 1 {
				return "", &tmf635.Problem{Status: 400, Code: "INVALID_REQUEST",
					Reason: "client: this token covers several clients; name the usage's client in a usageCharacteristic \"client\" or ?client="}
			}
			named = cs[0]
		}
		if err := p.Change(named); err != nil {
			return "", err
		}
		return named, nil
	}
}

func (s *Server) tmfPostUsage(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		tmfError(w, http.StatusRequestEntityTooLarge, "TOO_LARGE", "body: larger than 1 MiB, or not received whole")
		return
	}
	sub, err := tmf635.ParseCreate(body, tmfPick(r))
	if err != nil {
		s.tmfProblem(w, "posting a usage", err)
		return
	}
	if s.TMF.TimeFormat != nil {
		sub.WriteTime(s.TMF.TimeFormat(sub.Client))
	}
	rec, err := s.TMF.Submit.Submit(r.Context(), &sub)
	if err != nil {
		s.tmfProblem(w, "posting a usage", err)
		return
	}
	u := tmf635.Build(&rec, tmfBase(r))
	w.Header().Set("Location", u.Href)
	writeJSON(w, http.StatusCreated, u)
}

// tmfPatchUsage corrects a rejected usage (its record is an open
// exception) and sends it through the pipeline again, through the
// exceptions service as every other edit and reprocess: PATCH
// /usage/{id} with a Usage_Update → 200 with the usage, now recycled.
func (s *Server) tmfPatchUsage(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		tmfError(w, http.StatusRequestEntityTooLarge, "TOO_LARGE", "body: larger than 1 MiB, or not received whole")
		return
	}
	rec, ok := s.tmfUsage(w, r)
	if !ok {
		return
	}
	p := principal(r)
	id := tmf635.ID(rec.FileID, rec.Line, rec.Part)
	if err := p.ChangeOf(fmt.Sprintf("usage %q", id), rec.Client); err != nil {
		tmfDeny(w, err)
		return
	}
	if st := tmf635.StatusOf(&rec); st != tmf635.Rejected || rec.Exc.Status != exceptions.Open {
		why := "only a rejected usage (an open exception) can be corrected"
		if rec.Exc != nil && rec.Exc.Status == exceptions.Discarded {
			why = "it was discarded: it is not to be billed"
		}
		tmfError(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("usage %q is %s: %s", id, st, why))
		return
	}
	current, err := exceptions.Fields(rec.Exc, &exceptions.Work{Edited: rec.ExcEdited})
	if err != nil {
		current = map[string]string{}
	}
	fields, err := tmf635.ApplyUpdate(current, body)
	if err != nil {
		s.tmfProblem(w, "correcting the usage", err)
		return
	}
	edited, _ := json.Marshal(fields)
	excID := rec.Exc.ExceptionID
	_, err = s.Exceptions.Edit(r.Context(), p, excID, edited)
	var refused *exceptions.Refused
	switch {
	case errors.As(err, &refused):
		code := string(refused.Code)
		if code == "" {
			code = "INVALID_REQUEST"
		}
		tmfError(w, http.StatusBadRequest, code, "the corrected record: "+refused.Reason)
		return
	case errors.Is(err, exceptions.ErrNotFound):
		tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("usage %q: no such usage", id))
		return
	case err != nil:
		s.tmfProblem(w, "correcting the usage", err)
		return
	}
	out, _, err := s.Exceptions.Reprocess(r.Context(), p, exceptions.Selection{IDs: []string{excID}})
	if err != nil {
		s.tmfProblem(w, "reprocessing the usage", err)
		return
	}
	if why, skipped := out.Skipped[excID]; skipped {
		tmfError(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("usage %q was corrected but not sent again: %s", id, why))
		return
	}
	if rec, ok = s.tmfUsage(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, tmf635.Build(&rec, tmfBase(r)))
}

func (s *Server) tmfListSpecs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "client" && k != "offset" && k != "limit" && k != "fields" {
			tmfError(w, http.StatusBadRequest, "INVALID_REQUEST", fmt.Sprintf("query parameter %q: usage specifications are listed with client, offset and limit", k))
			return
		}
	}
	f, err := tmf635.ParseFilter(url.Values{"offset": q["offset"], "limit": q["limit"]})
	if err != nil {
		s.tmfProblem(w, "listing usage specifications", err)
		return
	}
	clients, err := principal(r).Filter(q.Get("client"))
	if err != nil {
		tmfDeny(w, err)
		return
	}
	specs, err := s.TMF.Store.UsageTypes(r.Context(), clients, "", "")
	if err != nil {
		s.tmfProblem(w, "listing usage specifications", err)
		return
	}
	total := len(specs)
	specs = specs[min(f.Offset, len(specs)):]
	specs = specs[:min(f.Limit, len(specs))]
	base := tmfBase(r)
	for i := range specs {
		specs[i].Href = base + "/usageSpecification/" + specs[i].ID
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	w.Header().Set("X-Result-Count", strconv.Itoa(len(specs)))
	writeJSON(w, http.StatusOK, specs)
}

func (s *Server) tmfGetSpec(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	client, code, ok := tmf635.ParseSpecID(id)
	notFound := func() {
		tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("usage specification %q: no such usage type (an id is <client>:<usage type>)", id))
	}
	if !ok || !principal(r).MaySee(client) {
		notFound()
		return
	}
	specs, err := s.TMF.Store.UsageTypes(r.Context(), []string{client}, client, code)
	if err != nil {
		s.tmfProblem(w, "reading the usage specification", err)
		return
	}
	if len(specs) == 0 {
		notFound()
		return
	}
	specs[0].Href = tmfBase(r) + "/usageSpecification/" + specs[0].ID
	writeJSON(w, http.StatusOK, specs[0])
}

// tmfPostHub subscribes a listener to the usages of the token's clients
// (or of ?client=): POST /hub {"callback": URL, "query": "..."}.
func (s *Server) tmfPostHub(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Callback string `json:"callback"`
		Query    string `json:"query"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		tmfError(w, http.StatusBadRequest, "INVALID_REQUEST", "body: "+bodyProblem(err, `an EventSubscriptionInput {"callback": "https://...", "query": "..."}`))
		return
	}
	u, err := url.Parse(in.Callback)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		tmfError(w, http.StatusBadRequest, "INVALID_REQUEST", fmt.Sprintf("callback: %q is not an absolute http or https URL", in.Callback))
		return
	}
	if _, err := tmf635.ParseHubQuery(in.Query); err != nil {
		s.tmfProblem(w, "subscribing", err)
		return
	}
	clients, err := principal(r).Filter(r.URL.Query().Get("client"))
	if err != nil {
		tmfDeny(w, err)
		return
	}
	h := tmf635.Hub{EventSubscription: tmf635.EventSubscription{ID: ids.New(), Callback: in.Callback, Query: in.Query}, Clients: clients}
	if err := s.TMF.Store.CreateHub(r.Context(), h, principal(r).Name); err != nil {
		s.tmfProblem(w, "subscribing", err)
		return
	}
	s.audit(r, auth.AuditEntry{At: time.Now().UTC(), Actor: principal(r).Name, Action: "tmf.hub.create", Target: "tmf_hub:" + h.ID,
		After: mustJSON(map[string]any{"callback": h.Callback, "query": h.Query, "clients": h.Clients})})
	w.Header().Set("Location", tmfBase(r)+"/hub/"+h.ID)
	writeJSON(w, http.StatusCreated, h.EventSubscription)
}

// tmfDeleteHub ends a subscription; the token must cover every client
// the subscription does.
func (s *Server) tmfDeleteHub(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	notFound := func() { tmfError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("hub %q: no such subscription", id)) }
	if !ids.Valid(id) {
		notFound()
		return
	}
	h, err := s.TMF.Store.GetHub(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		notFound()
		return
	}
	if err != nil {
		s.tmfProblem(w, "reading the subscription", err)
		return
	}
	p := principal(r)
	covered := p.AllClients() || h.Clients != nil
	for _, c := range h.Clients {
		covered = covered && p.MaySee(c)
	}
	if !covered {
		notFound()
		return
	}
	if err := s.TMF.Store.DeleteHub(r.Context(), id); err != nil {
		s.tmfProblem(w, "ending the subscription", err)
		return
	}
	s.audit(r, auth.AuditEntry{At: time.Now().UTC(), Actor: p.Name, Action: "tmf.hub.delete", Target: "tmf_hub:" + id,
		Before: mustJSON(map[string]any{"callback": h.Callback, "query": h.Query, "clients": h.Clients})})
	w.WriteHeader(http.StatusNoContent)
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
