// Package api serves Vivace's HTTP surface: file submission and status,
// MUR and exception exports, health, readiness and metrics. Every route is
// in one table (routes, and what others Mount: GraphQL, TMF635, the
// pipelines' endpoints) behind one guard that checks the bearer token, the
// route's role and its client scope (auth.go).
package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/ingest/s3source"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/store"
)

// What the handlers need from storage; the stores under internal/store
// implement it.
type (
	// Database is checked by the readiness probe.
	Database interface {
		Ping(ctx context.Context) error
	}
	// Files is what the API reads of the file registry, and the cancel
	// of a file an operator fails on purpose.
	Files interface {
		GetFile(ctx context.Context, id string) (files.File, error)
		ListFiles(ctx context.Context, f files.Filter) ([]files.File, error)
		CancelFile(ctx context.Context, id, by, why string) (files.File, error)
	}
	// Records is what the API exports of the rating's results.
	Records interface {
		ExportMURs(ctx context.Context, f murs.Filter, fn func(murs.MUR) error) error
		ExportExceptions(ctx context.Context, f exceptions.Filter, fn func(exceptions.Exception) error) error
	}
	// FeedEvents is what the API reads of the feed events on record.
	FeedEvents interface {
		EventOutcomes(ctx context.Context, ids []string) (map[string]feed.Outcome, error)
		ListFeedEvents(ctx context.Context, f feed.EventFilter) ([]feed.EventRecord, error)
		EntityHistory(ctx context.Context, client, entity, id string) ([]feed.EventRecord, error)
		EventClients(ctx context.Context, ids []string) (map[string]string, error)
	}
	// FeedRepair applies failed and pending feed events again (a
	// feed.Applier).
	FeedRepair interface {
		Reprocess(ctx context.Context, ids []string, by string) ([]feed.Outcome, error)
		Edit(ctx context.Context, id string, edited []byte, by string) (feed.Outcome, error)
	}
)

// Server holds what the handlers need.
type Server struct {
	DB       Database
	Files    Files
	Records  Records
	Feed     FeedEvents
	Repair   FeedRepair
	Receiver *ingest.Receiver
	// Ready reports whether the process is ready to work (pipelines
	// running); nil means ready once the database answers.
	Ready    func(ctx context.Context) error
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// MaxUpload bounds an uploaded file's size; 0 means 20 GiB.
	MaxUpload int64
	// Buckets, when set, is told of objects written to a bucket source by
	// S3 event notifications (POST /api/v1/buckets/events), so that it
	// takes them without waiting for its poll interval.
	Buckets interface {
		NotifyFor(bucket, key string, may func(client string) bool) []string
	}
	// Auth checks the token of every request but the probes' and the
	// metrics'; Audit records the human actions taken through the API.
	Auth  Authenticator
	Audit auth.Auditor
	// Exceptions works exceptions (show, list, edit, reprocess, discard);
	// nil serves none of those routes.
	Exceptions ExceptionWork
	// TMF, when set, serves TMF635 Usage Management (tmf635.go).
	TMF *TMF

	mounted []Route
	// httpOpts are the options HTTPServer was given (the streaming
	// routes' timeouts).
	httpOpts HTTPOptions
}

// routes is the API's route table: each route's least role and how it
// keeps to the token's clients (auth.go). A new route is a new line here,
// or a Mount; nothing is served from anywhere else.
func (s *Server) routes() []Route {
	v, o := auth.Viewer, auth.Operator
	rs := []Route{
		{"GET /healthz", 0, Open, http.HandlerFunc(healthz)},
		{"GET /readyz", 0, Open, http.HandlerFunc(s.readyz)},
		{"POST /api/v1/files", o, PerClient, http.HandlerFunc(s.postFile)},
		{"GET /api/v1/files", v, PerClient, http.HandlerFunc(s.listFiles)},
		{"GET /api/v1/files/{id}", v, PerClient, http.HandlerFunc(s.getFile)},
		{"GET /api/v1/murs", v, PerClient, http.HandlerFunc(s.exportMURs)},
		{"GET /api/v1/exceptions", v, PerClient, http.HandlerFunc(s.exportExceptions)},
		{"POST /api/v1/feed/outcomes", v, PerClient, http.HandlerFunc(s.feedOutcomes)},
		{"GET /api/v1/feed/events", v, PerClient, http.HandlerFunc(s.listFeedEvents)},
		{"POST /api/v1/feed/events/reprocess", o, PerClient, http.HandlerFunc(s.reprocessFeedEvents)},
		{"PUT /api/v1/feed/events/{id...}", o, PerClient, http.HandlerFunc(s.editFeedEvent)},
		{"GET /api/v1/feed/history", v, PerClient, http.HandlerFunc(s.feedHistory)},
		{"POST /api/v1/buckets/events", o, PerClient, http.HandlerFunc(s.bucketEvents)},
	}
	rs = append(rs, s.fileRoutes()...)
	rs = append(rs, s.exceptionRoutes()...)
	rs = append(rs, s.tmfRoutes()...)
	if s.Gatherer != nil {
		rs = append(rs, Route{"GET /metrics", 0, Open, promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{})})
	}
	return rs
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// bucketEvents takes an S3 event notification and has the bucket sources
// it concerns polled now. The notification is a hint only: what is taken
// is what the poll finds. It needs an operator token, and wakes only the
// sources of the token's clients: an event for another client's source
// counts as unmatched, as one for no source does.
func (s *Server) bucketEvents(w http.ResponseWriter, r *http.Request) {
	if s.Buckets == nil {
		writeError(w, http.StatusNotFound, "no bucket sources: start with a client settings file that has source.s3 entries")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "notification body: larger than 4 MiB, or not received whole")
		return
	}
	events, err := s3source.ParseBucketEvents(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	polled := map[string]bool{}
	unmatched := 0
	for _, e := range events {
		clients := s.Buckets.NotifyFor(e.Bucket, e.Key, principal(r).MaySee)
		if len(clients) == 0 {
			unmatched++
			s.Logger.Warn("bucket event for no source", "bucket", e.Bucket, "key", e.Key)
		}
		for _, c := range clients {
			polled[c] = true
		}
	}
	clients := append([]string{}, slices.Sorted(maps.Keys(polled))...)
	writeJSON(w, http.StatusAccepted, map[string]any{"events": len(events), "unmatched": unmatched, "polled": clients})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.DB.Ping(ctx); err != nil {
		why := store.Unavailable(err)
		s.log().Error("readiness: the database does not answer", "why", why, "err", err)
		writeError(w, http.StatusServiceUnavailable, "database: "+why+" (the server log has the details)")
		return
	}
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// postFile receives a usage file in the request body:
// POST /api/v1/files?client=C&name=N[&new_client=true]. A client that is
// not known is refused before the body is read (takesClient).
func (s *Server) postFile(w http.ResponseWriter, r *http.Request) {
	client, name := r.URL.Query().Get("client"), r.URL.Query().Get("name")
	if client == "" || name == "" {
		writeError(w, http.StatusBadRequest, "query parameters client and name are required")
		return
	}
	if err := ingest.ValidClient(client); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.takesClient(w, r, client) {
		return
	}
	limit := s.MaxUpload
	if limit <= 0 {
		limit = 20 << 30
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	f, err := s.Receiver.ReceiveAnyClient(r.Context(), client, name, "http", body)
	switch {
	case err == nil:
		writeJSON(w, http.StatusCreated, NewFile(f))
	case errors.Is(err, files.ErrDuplicate):
		writeJSON(w, http.StatusConflict, NewFile(f))
	case errors.Is(err, ingest.ErrRejected):
		writeJSON(w, http.StatusUnprocessableEntity, NewFile(f))
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("file larger than %d bytes", mbe.Limit))
			return
		}
		var ae *ingest.ArchiveError
		if errors.As(err, &ae) {
			// A full or read-only disk: nothing was registered, and the
			// same file can be sent again; the paths stay in the log.
			s.log().Error("file not received: the archive cannot store it", "client", client, "file", name, "err", err)
			writeError(w, http.StatusInsufficientStorage, ae.Reason())
			return
		}
		s.internalError(w, fmt.Sprintf("receiving file %q of client %q", name, client), err)
	}
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.Files.GetFile(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no file "+r.PathValue("id"))
		return
	}
	if err != nil {
		s.internalError(w, "reading the file", err)
		return
	}
	if err := principal(r).SeeOf(fmt.Sprintf("file %q", f.FileID), f.Client); err != nil {
		deny(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewFile(f))
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 10000")
			return
		}
		limit = n
	}
	cs, ok := clientFilter(w, r, r.URL.Query().Get("client"))
	if !ok {
		return
	}
	f, ok := fileFilter(w, r)
	if !ok {
		return
	}
	f.Clients, f.Limit = cs, limit
	list, err := s.Files.ListFiles(r.Context(), f)
	if err != nil {
		s.internalError(w, "listing files", err)
		return
	}
	writeJSON(w, http.StatusOK, mapSlice(list, func(f *files.File) File { return NewFile(*f) }))
}

// MURColumns is the column order of the CSV export.
var MURColumns = []string{"mur_id", "client", "record_id", "file_id", "line", "part", "account_id", "usage_type",
	"quantity", "usage_time", "currency", "gross_amount", "discount_amount", "net_amount", "rate_detail",
	"qualifiers", "attributes", "rated_at", "sync_status", "aggregate_id", "sync_batch_id", "sync_error"}

func (s *Server) exportMURs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := murFilter(w, q)
	if !ok {
		return
	}
	if f.Clients, ok = clientFilter(w, r, q.Get("client")); !ok {
		return
	}
	ex, ok := newExporter(w, q.Get("format"), MURColumns)
	if !ok {
		return
	}
	err := s.Records.ExportMURs(r.Context(), f, func(m murs.MUR) error {
		return ex.write(NewMUR(&m), func() []string {
			qual, _ := json.Marshal(m.Qualifiers)
			attrs, _ := json.Marshal(m.Attributes)
			return []string{m.MURID, m.Client, m.RecordID, m.FileID, itoa(m.Line), strconv.Itoa(m.Part), m.AccountID,
				m.UsageType, m.Quantity, m.UsageTime.Format(time.RFC3339Nano), m.Currency, m.GrossAmount,
				m.DiscountAmount, m.NetAmount, string(m.RateDetail), string(qual), string(attrs), m.RatedAt.Format(time.RFC3339Nano),
				string(m.SyncStatus), deref(m.AggregateID), deref(m.SyncBatchID), deref(m.SyncError)}
		})
	})
	ex.finish(s, err)
}

// ExceptionColumns is the column order of the CSV export.
var ExceptionColumns = []string{"exception_id", "client", "record_id", "file_id", "line", "part", "stage", "code",
	"field", "message", "status", "attempts", "record", "created_at", "updated_at"}

func (s *Server) exportExceptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := exceptionFilter(w, q)
	if !ok {
		return
	}
	if f.Clients, ok = clientFilter(w, r, q.Get("client")); !ok {
		return
	}
	ex, ok := newExporter(w, q.Get("format"), ExceptionColumns)
	if !ok {
		return
	}
	err := s.Records.ExportExceptions(r.Context(), f, func(e exceptions.Exception) error {
		return ex.write(NewException(&e), func() []string {
			return []string{e.ExceptionID, e.Client, e.RecordID, e.FileID, itoa(e.Line), strconv.Itoa(e.Part), e.Stage,
				string(e.Code), e.Field, e.Message, string(e.Status), strconv.Itoa(e.Attempts), string(e.Record),
				e.CreatedAt.UTC().Format(time.RFC3339Nano), e.UpdatedAt.UTC().Format(time.RFC3339Nano)}
		})
	})
	ex.finish(s, err)
}

// exporter streams rows as JSON Lines or CSV.
type exporter struct {
	w     http.ResponseWriter
	bw    *bufio.Writer
	cw    *csv.Writer
	enc   *json.Encoder
	wrote bool
}

func newExporter(w http.ResponseWriter, format string, columns []string) (*exporter, bool) {
	ex := &exporter{w: w, bw: bufio.NewWriterSize(w, 64<<10)}
	switch format {
	case "", "jsonl":
		w.Header().Set("Content-Type", "application/x-ndjson")
		ex.enc = json.NewEncoder(ex.bw)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		ex.cw = csv.NewWriter(ex.bw)
		_ = ex.cw.Write(columns)
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: use jsonl or csv", format))
		return nil, false
	}
	return ex, true
}

func (ex *exporter) write(v any, row func() []string) error {
	ex.wrote = true
	if ex.cw != nil {
		return ex.cw.Write(row())
	}
	return ex.enc.Encode(v)
}

func (ex *exporter) finish(s *Server, err error) {
	if err != nil && !ex.wrote {
		// Nothing sent yet (the CSV header is still buffered: the CSV
		// writer writes into bw, and flushing it would flush bw too).
		ex.bw.Reset(ex.w)
		s.internalError(ex.w, "exporting", err)
		return
	}
	if ex.cw != nil {
		ex.cw.Flush()
	}
	if err != nil {
		// Headers are gone: end the stream with a line the client can spot.
		s.log().Error("export failed midway", "err", err)
		_, _ = fmt.Fprintf(ex.bw, "\nexport failed: see the server log\n")
	}
	_ = ex.bw.Flush()
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// feedOutcomes answers what became of feed events:
// POST /api/v1/feed/outcomes {"event_ids": [...]} → {"outcomes": {id: {...}}}.
// Events not applied yet are absent; an event of a client the token does
// not cover is refused.
func (s *Server) feedOutcomes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		EventIDs []string `json:"event_ids"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+bodyProblem(err, `a JSON object {"event_ids": [...]}`))
		return
	}
	if len(req.EventIDs) > 100000 {
		writeError(w, http.StatusBadRequest, "event_ids: at most 100000 per request")
		return
	}
	if p := principal(r); !p.AllClients() {
		owners, err := s.Feed.EventClients(r.Context(), req.EventIDs)
		if err != nil {
			s.internalError(w, "reading feed events", err)
			return
		}
		for _, id := range req.EventIDs {
			if c, ok := owners[id]; ok && !p.MaySee(c) {
				deny(w, p.SeeOf(fmt.Sprintf("feed event %q", id), c))
				return
			}
		}
	}
	outs, err := s.Feed.EventOutcomes(r.Context(), req.EventIDs)
	if err != nil {
		s.internalError(w, "reading feed outcomes", err)
		return
	}
	answer := make(map[string]FeedOutcome, len(outs))
	for id, o := range outs {
		answer[id] = NewFeedOutcome(o)
	}
	writeJSON(w, http.StatusOK, map[string]any{"outcomes": answer})
}

// listFeedEvents lists feed events on record:
// GET /api/v1/feed/events?client=&outcome=failed|pending|applied|ignored&code=&entity=&entity_id=&warnings=true&limit=
// → {"events": [...]}, oldest first; warnings=true: only events with
// warnings.
func (s *Server) listFeedEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := feed.EventFilter{Outcome: feed.Result(q.Get("outcome")), Code: feed.Code(q.Get("code")),
		Entity: q.Get("entity"), EntityID: q.Get("entity_id")}
	switch v := q.Get("warnings"); v {
	case "", "false":
	case "true":
		f.Warned = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("warnings: %q is not true or false", v))
		return
	}
	switch f.Outcome {
	case "", feed.Applied, feed.Ignored, feed.Failed, feed.Pending:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("outcome: %q is not applied, ignored, failed or pending", f.Outcome))
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100000 {
			writeError(w, http.StatusBadRequest, "limit: a number from 1 to 100000")
			return
		}
		f.Limit = n
	}
	var ok bool
	if f.Clients, ok = clientFilter(w, r, q.Get("client")); !ok {
		return
	}
	events, err := s.Feed.ListFeedEvents(r.Context(), f)
	if err != nil {
		s.internalError(w, "listing feed events", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": mapSlice(events, NewFeedEvent)})
}

// reprocessFeedEvents applies failed or pending events again:
// POST /api/v1/feed/events/reprocess {"event_ids": [...]} or
// {"client": C, "outcome": "failed"|"pending", "code": X} → {"outcomes": [...]}.
// Every event must be of a client the token covers; each one reprocessed
// is written to the audit log.
func (s *Server) reprocessFeedEvents(w http.ResponseWriter, r *http.Request) {
	var req struct {
		EventIDs []string `json:"event_ids"`
		Client   string   `json:"client"`
		Outcome  string   `json:"outcome"`
		Code     string   `json:"code"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+bodyProblem(err, `a JSON object {"event_ids": [...]} or {"client": ...}`))
		return
	}
	p := principal(r)
	var events []feed.EventRecord
	if len(req.EventIDs) > 0 {
		if len(req.EventIDs) > 100000 {
			writeError(w, http.StatusBadRequest, "event_ids: at most 100000 per request")
			return
		}
		var err error
		if events, err = s.Feed.ListFeedEvents(r.Context(), feed.EventFilter{EventIDs: req.EventIDs, Limit: len(req.EventIDs)}); err != nil {
			s.internalError(w, "reading feed events", err)
			return
		}
		for _, e := range events {
			if err := p.ChangeOf(fmt.Sprintf("feed event %q", e.EventID), e.Client); err != nil {
				deny(w, err)
				return
			}
		}
	} else {
		if req.Client == "" {
			writeError(w, http.StatusBadRequest, "name event_ids, or a client (with optional outcome and code) to reprocess by filter")
			return
		}
		if err := p.Change(req.Client); err != nil {
			deny(w, err)
			return
		}
		outcomes := []feed.Result{feed.Failed, feed.Pending}
		if req.Outcome != "" {
			if !feed.Result(req.Outcome).Repairable() {
				writeError(w, http.StatusBadRequest, "outcome: only failed or pending events are reprocessed")
				return
			}
			outcomes = []feed.Result{feed.Result(req.Outcome)}
		}
		for _, o := range outcomes {
			evs, err := s.Feed.ListFeedEvents(r.Context(), feed.EventFilter{Client: req.Client, Outcome: o, Code: feed.Code(req.Code), Limit: 100000})
			if err != nil {
				s.internalError(w, "listing feed events", err)
				return
			}
			events = append(events, evs...)
		}
	}
	ids := req.EventIDs
	if len(ids) == 0 {
		for _, e := range events {
			ids = append(ids, e.EventID)
		}
	}
	var outs []feed.Outcome
	if len(ids) > 0 {
		var err error
		if outs, err = s.Repair.Reprocess(r.Context(), ids, p.Name); err != nil {
			if errors.Is(err, feed.ErrNotFound) {
				writeError(w, http.StatusNotFound, err.Error())
			} else {
				s.internalError(w, "reprocessing feed events", err)
			}
			return
		}
	}
	s.auditFeed(r, "feed.reprocess", events, outs, nil)
	writeJSON(w, http.StatusOK, map[string]any{"outcomes": mapSlice(outs, func(o *feed.Outcome) FeedOutcome { return NewFeedOutcome(*o) })})
}

// editFeedEvent replaces a failed or pending event with the body (a whole
// event) and reprocesses it: PUT /api/v1/feed/events/{id} → the outcome.
// The token must cover the event's client, and the edited event's if it
// names another; the edit is written to the audit log.
func (s *Server) editFeedEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "body: larger than 16 MiB, or not received whole")
		return
	}
	events, err := s.Feed.ListFeedEvents(r.Context(), feed.EventFilter{EventIDs: []string{id}, Limit: 1})
	if err != nil {
		s.internalError(w, "reading the feed event", err)
		return
	}
	if len(events) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("feed event %q: %v", id, feed.ErrNotFound))
		return
	}
	p := principal(r)
	var edited struct {
		Client string `json:"client"`
	}
	_ = json.Unmarshal(body, &edited) // a body that is no event is refused by Edit with the reason
	if err := p.ChangeOf(fmt.Sprintf("feed event %q", id), events[0].Client); err != nil {
		deny(w, err)
		return
	}
	if edited.Client != "" && edited.Client != events[0].Client {
		if err := p.Change(edited.Client); err != nil {
			deny(w, err)
			return
		}
	}
	out, err := s.Repair.Edit(r.Context(), id, body, p.Name)
	var refused *feed.EditRefused
	switch {
	case errors.Is(err, feed.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &refused):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.internalError(w, "editing the feed event", err)
	default:
		s.auditFeed(r, "feed.edit", events, []feed.Outcome{out}, body)
		writeJSON(w, http.StatusOK, NewFeedOutcome(out))
	}
}

// auditFeed writes one audit row per event acted on: its outcome before
// and after (and, for an edit, the event before and as edited).
func (s *Server) auditFeed(r *http.Request, action string, before []feed.EventRecord, after []feed.Outcome, edited json.RawMessage) {
	if len(after) == 0 {
		return
	}
	now := time.Now().UTC()
	byID := make(map[string]*feed.EventRecord, len(before))
	for i := range before {
		byID[before[i].EventID] = &before[i]
	}
	type state struct {
		Outcome string          `json:"outcome"`
		Code    string          `json:"code,omitempty"`
		Message string          `json:"message,omitempty"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}
	entries := make([]auth.AuditEntry, 0, len(after))
	for _, o := range after {
		e := auth.AuditEntry{At: now, Actor: principal(r).Name, Action: action, Target: "feed_event:" + o.EventID}
		a := state{Outcome: string(o.Outcome), Code: string(o.Code), Message: o.Message}
		if edited != nil && json.Valid(edited) {
			a.Payload = edited
		}
		e.After, _ = json.Marshal(a)
		if b := byID[o.EventID]; b != nil {
			e.Client = b.Client
			st := state{Outcome: string(b.Outcome), Code: string(b.Code), Message: b.Message}
			if edited != nil {
				st.Payload = b.Payload
			}
			e.Before, _ = json.Marshal(st)
		}
		entries = append(entries, e)
	}
	s.audit(r, entries...)
}

// audit writes entries to the audit log. The action is done by then, so
// a failure is logged as an error rather than answered.
func (s *Server) audit(r *http.Request, entries ...auth.AuditEntry) {
	if s.Audit == nil {
		s.log().Error("no audit log: actions not recorded", "actor", principal(r).Name, "entries", len(entries))
		return
	}
	if err := s.Audit.Audit(context.WithoutCancel(r.Context()), entries...); err != nil {
		s.log().Error("audit log not written", "actor", principal(r).Name, "entries", len(entries), "err", err)
	}
}

// feedHistory answers what an entity looked like:
// GET /api/v1/feed/history?client=C&entity=E&entity_id=ID[&at=RFC3339]
// → {"events": [...]}: every applied change in version order, or with at
// only the one in effect at that time (the newest whose occurred_at is not
// after it); 404 when there is none.
func (s *Server) feedHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, entity, id := q.Get("client"), q.Get("entity"), q.Get("entity_id")
	if client == "" || entity == "" || id == "" {
		writeError(w, http.StatusBadRequest, "client, entity and entity_id are required")
		return
	}
	if err := principal(r).See(client); err != nil {
		deny(w, err)
		return
	}
	events, err := s.Feed.EntityHistory(r.Context(), client, entity, id)
	if err != nil {
		s.internalError(w, "reading the entity's history", err)
		return
	}
	if at := q.Get("at"); at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			writeError(w, http.StatusBadRequest, "at: not an RFC 3339 time: "+at)
			return
		}
		var in []feed.EventRecord
		for _, e := range events {
			if e.OccurredAt != nil && !e.OccurredAt.After(t) {
				in = []feed.EventRecord{e}
			}
		}
		events = in
	}
	if len(events) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no applied %s %q of client %q%s", entity, id, client, map[bool]string{true: " at " + q.Get("at")}[q.Get("at") != ""]))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": mapSlice(events, NewFeedEvent)})
}
