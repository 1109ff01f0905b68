// Package api serves Vivace's HTTP surface: file submission and status,
// MUR and exception exports, health, readiness and metrics. The GraphQL
// console and TMF635 mount on the same mux.
package api

import (
	"bufio"
	"context"
	"crypto/subtle"
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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vivace.dev/vivace/internal/codes"
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
	// Files is what the API reads of the file registry.
	Files interface {
		GetFile(ctx context.Context, id string) (files.File, error)
		ListFiles(ctx context.Context, client string, limit int) ([]files.File, error)
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
		Notify(bucket, key string) []string
	}
	// BucketEventsToken, when set, must be presented as
	// "Authorization: Bearer <token>" (or the bare token) by the sender of
	// bucket event notifications.
	BucketEventsToken string
}

// Handler returns the routes.
func (s *Server) Handler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("POST /api/v1/files", s.postFile)
	mux.HandleFunc("GET /api/v1/files", s.listFiles)
	mux.HandleFunc("GET /api/v1/files/{id}", s.getFile)
	mux.HandleFunc("GET /api/v1/murs", s.exportMURs)
	mux.HandleFunc("GET /api/v1/exceptions", s.exportExceptions)
	mux.HandleFunc("POST /api/v1/feed/outcomes", s.feedOutcomes)
	mux.HandleFunc("GET /api/v1/feed/events", s.listFeedEvents)
	mux.HandleFunc("POST /api/v1/feed/events/reprocess", s.reprocessFeedEvents)
	mux.HandleFunc("PUT /api/v1/feed/events/{id...}", s.editFeedEvent)
	mux.HandleFunc("GET /api/v1/feed/history", s.feedHistory)
	mux.HandleFunc("POST /api/v1/buckets/events", s.bucketEvents)
	return mux
}

// bucketEvents takes an S3 event notification and has the bucket sources
// it concerns polled now. The notification is a hint only: what is taken
// is what the poll finds, so it needs no more trust than a poll does.
func (s *Server) bucketEvents(w http.ResponseWriter, r *http.Request) {
	if s.Buckets == nil {
		writeError(w, http.StatusNotFound, "no bucket sources: start with a client settings file that has source.s3 entries")
		return
	}
	if s.BucketEventsToken != "" {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.BucketEventsToken)) != 1 {
			writeError(w, http.StatusUnauthorized, "bucket events need the token set in VIVACE_BUCKET_EVENTS_TOKEN (Authorization: Bearer <token>)")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "notification body: "+err.Error())
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
		clients := s.Buckets.Notify(e.Bucket, e.Key)
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
		writeError(w, http.StatusServiceUnavailable, "database: "+err.Error())
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
// POST /api/v1/files?client=C&name=N.
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
	limit := s.MaxUpload
	if limit <= 0 {
		limit = 20 << 30
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	f, err := s.Receiver.Receive(r.Context(), client, name, "http", body)
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
		s.log().Error("file not received", "client", client, "file", name, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.Files.GetFile(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no file "+r.PathValue("id"))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
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
	list, err := s.Files.ListFiles(r.Context(), r.URL.Query().Get("client"), limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, mapSlice(list, func(f *files.File) File { return NewFile(*f) }))
}

// MURColumns is the column order of the CSV export.
var MURColumns = []string{"mur_id", "client", "record_id", "file_id", "line", "part", "account_id", "usage_type",
	"quantity", "usage_time", "currency", "gross_amount", "discount_amount", "net_amount", "rate_detail",
	"qualifiers", "rated_at", "sync_status", "aggregate_id", "sync_batch_id", "sync_error"}

func (s *Server) exportMURs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := murs.Filter{Client: q.Get("client"), FileID: q.Get("file_id"), SyncStatus: murs.SyncStatus(q.Get("sync_status"))}
	ex, ok := newExporter(w, q.Get("format"), MURColumns)
	if !ok {
		return
	}
	err := s.Records.ExportMURs(r.Context(), f, func(m murs.MUR) error {
		return ex.write(NewMUR(&m), func() []string {
			qual, _ := json.Marshal(m.Qualifiers)
			return []string{m.MURID, m.Client, m.RecordID, m.FileID, itoa(m.Line), strconv.Itoa(m.Part), m.AccountID,
				m.UsageType, m.Quantity, m.UsageTime.Format(time.RFC3339Nano), m.Currency, m.GrossAmount,
				m.DiscountAmount, m.NetAmount, string(m.RateDetail), string(qual), m.RatedAt.Format(time.RFC3339Nano),
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
	f := exceptions.Filter{Client: q.Get("client"), FileID: q.Get("file_id"), Stage: q.Get("stage"),
		Code: codes.Code(q.Get("code")), Status: exceptions.Status(q.Get("status"))}
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
	if ex.cw != nil {
		ex.cw.Flush()
	}
	if err != nil {
		s.log().Error("export failed", "err", err)
		if !ex.wrote {
			ex.bw.Reset(ex.w)
			writeError(ex.w, http.StatusInternalServerError, err.Error())
			return
		}
		// Headers are gone: end the stream with a line the client can spot.
		_, _ = fmt.Fprintf(ex.bw, "\nexport failed: %v\n", err)
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
// Events not applied yet are absent.
func (s *Server) feedOutcomes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		EventIDs []string `json:"event_ids"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if len(req.EventIDs) > 100000 {
		writeError(w, http.StatusBadRequest, "event_ids: at most 100000 per request")
		return
	}
	outs, err := s.Feed.EventOutcomes(r.Context(), req.EventIDs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
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
	f := feed.EventFilter{Client: q.Get("client"), Outcome: feed.Result(q.Get("outcome")), Code: feed.Code(q.Get("code")),
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
	events, err := s.Feed.ListFeedEvents(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": mapSlice(events, NewFeedEvent)})
}

// operator names who asked, for the record: the X-Vivace-Operator header
// (set by the CLI from $USER), else "api". Tokens and roles replace this
// when the API gets authentication.
func operator(r *http.Request) string {
	if o := r.Header.Get("X-Vivace-Operator"); o != "" {
		return o
	}
	return "api"
}

// reprocessFeedEvents applies failed or pending events again:
// POST /api/v1/feed/events/reprocess {"event_ids": [...]} or
// {"client": C, "outcome": "failed"|"pending", "code": X} → {"outcomes": [...]}.
func (s *Server) reprocessFeedEvents(w http.ResponseWriter, r *http.Request) {
	var req struct {
		EventIDs []string `json:"event_ids"`
		Client   string   `json:"client"`
		Outcome  string   `json:"outcome"`
		Code     string   `json:"code"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	ids := req.EventIDs
	if len(ids) == 0 {
		if req.Client == "" {
			writeError(w, http.StatusBadRequest, "name event_ids, or a client (with optional outcome and code) to reprocess by filter")
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
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			for _, e := range evs {
				ids = append(ids, e.EventID)
			}
		}
	}
	var outs []feed.Outcome
	if len(ids) > 0 {
		var err error
		if outs, err = s.Repair.Reprocess(r.Context(), ids, operator(r)); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, feed.ErrNotFound) {
				status = http.StatusNotFound
			}
			writeError(w, status, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"outcomes": mapSlice(outs, func(o *feed.Outcome) FeedOutcome { return NewFeedOutcome(*o) })})
}

// editFeedEvent replaces a failed or pending event with the body (a whole
// event) and reprocesses it: PUT /api/v1/feed/events/{id} → the outcome.
func (s *Server) editFeedEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	out, err := s.Repair.Edit(r.Context(), id, body, operator(r))
	switch {
	case errors.Is(err, feed.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, NewFeedOutcome(out))
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
	events, err := s.Feed.EntityHistory(r.Context(), client, entity, id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
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
