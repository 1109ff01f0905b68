// Package api serves Vivace's HTTP surface: file submission and status,
// MUR and exception exports, health, readiness and metrics. The GraphQL
// console and TMF635 mount on the same mux.
package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/store"
)

// Server holds what the handlers need.
type Server struct {
	Store    *store.Store
	Receiver *ingest.Receiver
	// Ready reports whether the process is ready to work (pipelines
	// running); nil means ready once the database answers.
	Ready    func(ctx context.Context) error
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// MaxUpload bounds an uploaded file's size; 0 means 20 GiB.
	MaxUpload int64
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
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
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
		writeJSON(w, http.StatusCreated, f)
	case errors.Is(err, store.ErrDuplicateFile):
		writeJSON(w, http.StatusConflict, f)
	case errors.Is(err, ingest.ErrRejected):
		writeJSON(w, http.StatusUnprocessableEntity, f)
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
	f, err := s.Store.GetFile(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no file "+r.PathValue("id"))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, f)
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
	files, err := s.Store.ListFiles(r.Context(), r.URL.Query().Get("client"), limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if files == nil {
		files = []store.File{}
	}
	writeJSON(w, http.StatusOK, files)
}

// MURColumns is the column order of the CSV export.
var MURColumns = []string{"mur_id", "client", "record_id", "file_id", "line", "part", "account_id", "usage_type",
	"quantity", "usage_time", "currency", "gross_amount", "discount_amount", "net_amount", "rate_detail",
	"qualifiers", "rated_at", "sync_status", "aggregate_id", "sync_batch_id", "sync_error"}

func (s *Server) exportMURs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.MURFilter{Client: q.Get("client"), FileID: q.Get("file_id"), SyncStatus: q.Get("sync_status")}
	ex, ok := newExporter(w, q.Get("format"), MURColumns)
	if !ok {
		return
	}
	err := s.Store.ExportMURs(r.Context(), f, func(m store.MUR) error {
		return ex.write(m, func() []string {
			qual, _ := json.Marshal(m.Qualifiers)
			return []string{m.MURID, m.Client, m.RecordID, m.FileID, itoa(m.Line), strconv.Itoa(m.Part), m.AccountID,
				m.UsageType, m.Quantity, m.UsageTime.Format(time.RFC3339Nano), m.Currency, m.GrossAmount,
				m.DiscountAmount, m.NetAmount, string(m.RateDetail), string(qual), m.RatedAt.Format(time.RFC3339Nano),
				m.SyncStatus, deref(m.AggregateID), deref(m.SyncBatchID), deref(m.SyncError)}
		})
	})
	ex.finish(s, err)
}

// ExceptionColumns is the column order of the CSV export.
var ExceptionColumns = []string{"exception_id", "client", "record_id", "file_id", "line", "part", "stage", "code",
	"field", "message", "status", "attempts", "record", "created_at", "updated_at"}

func (s *Server) exportExceptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.ExceptionFilter{Client: q.Get("client"), FileID: q.Get("file_id"), Stage: q.Get("stage"),
		Code: q.Get("code"), Status: q.Get("status")}
	ex, ok := newExporter(w, q.Get("format"), ExceptionColumns)
	if !ok {
		return
	}
	err := s.Store.ExportExceptions(r.Context(), f, func(e store.Exception) error {
		return ex.write(e, func() []string {
			return []string{e.ExceptionID, e.Client, e.RecordID, e.FileID, itoa(e.Line), strconv.Itoa(e.Part), e.Stage,
				e.Code, e.Field, e.Message, e.Status, strconv.Itoa(e.Attempts), string(e.Record),
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
	outs, err := s.Store.EventOutcomes(r.Context(), req.EventIDs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"outcomes": outs})
}
