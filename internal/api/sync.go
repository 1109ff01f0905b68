package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/audit"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/mursync"
)

// Sync serves MUR sync: a cycle now (POST /api/v1/sync/run), failed
// records sent again (POST /api/v1/sync/retry), and what the sync did:
// jobs, batches, a batch with its records, failed records, and the MUR
// totals per account and usage type.
type Sync struct {
	// Ops runs cycles; nil when this process does not run the sync (the
	// run and retry routes then answer 503).
	Ops    *mursync.Ops
	Reader mursync.Reader
	// Audit records who asked for cycles and resends.
	Audit  Recorder
	Logger *slog.Logger
}

// Recorder records audit entries.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Register adds the routes to mux.
func (s *Sync) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/sync/run", s.run)
	mux.HandleFunc("POST /api/v1/sync/retry", s.retry)
	mux.HandleFunc("GET /api/v1/sync/jobs", s.jobs)
	mux.HandleFunc("GET /api/v1/sync/batches", s.batches)
	mux.HandleFunc("GET /api/v1/sync/batches/{id}", s.batch)
	mux.HandleFunc("GET /api/v1/sync/failed", s.failed)
	mux.HandleFunc("GET /api/v1/sync/totals", s.totals)
}

// DefaultSyncWait is how long POST /api/v1/sync/run and retry wait for
// the core's answers unless the request says.
const DefaultSyncWait = 10 * time.Minute

// syncRun is the answer of run and retry: the counts summed over the
// clients' cycles, and each cycle.
type syncRun struct {
	Aggregates int         `json:"aggregates"`
	Batches    int         `json:"batches"`
	Synced     int         `json:"synced"`
	Failed     int         `json:"failed"`
	MURs       int64       `json:"murs"`
	Cycles     []syncCycle `json:"cycles"`
	Error      string      `json:"error,omitempty"`
}

type syncCycle struct {
	Client     string                 `json:"client"`
	JobID      string                 `json:"job_id,omitempty"`
	Aggregates int                    `json:"aggregates"`
	Batches    int                    `json:"batches"`
	Synced     int                    `json:"synced"`
	Failed     int                    `json:"failed"`
	MURs       int64                  `json:"murs"`
	Unanswered int                    `json:"unanswered,omitempty"`
	Failures   []mursync.BatchFailure `json:"failures,omitempty"`
	Error      string                 `json:"error,omitempty"`
}

func runAnswer(sums []mursync.Summary, err error) (syncRun, int) {
	out := syncRun{Cycles: []syncCycle{}}
	status := http.StatusOK
	var problems []string
	for _, s := range sums {
		c := syncCycle{Client: s.Client, JobID: s.JobID, Aggregates: s.Aggregates, Batches: s.Batches, Synced: s.Synced,
			Failed: s.Failed, MURs: s.MURs, Unanswered: s.Unanswered, Failures: s.Failures}
		if e := s.Complete(); e != nil {
			c.Error = e.Error()
			problems = append(problems, s.Client+": "+e.Error())
			status = http.StatusBadGateway
		}
		out.Aggregates += s.Aggregates
		out.Batches += s.Batches
		out.Synced += s.Synced
		out.Failed += s.Failed
		out.MURs += s.MURs
		out.Cycles = append(out.Cycles, c)
	}
	switch {
	case errors.Is(err, mursync.ErrBusy):
		status = http.StatusConflict
	case errors.Is(err, mursync.ErrNothingToRetry):
		status = http.StatusNotFound
	case err != nil && status == http.StatusOK:
		status = http.StatusBadGateway
	}
	if err != nil {
		problems = append([]string{err.Error()}, problems...)
	}
	out.Error = strings.Join(dedupe(problems), "; ")
	return out, status
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// syncWait reads the request's wait for the answers ("10m"), bounded.
func syncWait(v string) (time.Duration, error) {
	if v == "" {
		return DefaultSyncWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, errors.New(`timeout: want a duration such as "90s" or "10m", at most 24h`)
	}
	return d, nil
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return errors.New("request body: " + err.Error())
	}
	return nil
}

// run: POST /api/v1/sync/run {"client": C (optional: every client with
// work), "timeout": "10m"} → the cycles' counts. 200 when every cycle ran
// and got its answers (records the core refused count as failed), 409
// when a cycle for the client runs already, 502 when a cycle could not
// run to its end (the core refused the calls or could not be reached,
// answers did not come in time).
func (s *Sync) run(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Client  string `json:"client"`
		Timeout string `json:"timeout"`
	}
	wait, ok := s.start(w, r, &req, func() (string, bool) { return req.Client, false }, &req.Timeout)
	if !ok {
		return
	}
	var clients []string
	if req.Client != "" {
		clients = []string{req.Client}
	}
	s.answer(w, r, wait, audit.Entry{Action: audit.SyncRun, Target: audit.Target("client", orAll(req.Client)), Client: req.Client},
		func(ctx context.Context, by string) ([]mursync.Summary, error) {
			return s.Ops.RunAll(ctx, mursync.Request{Trigger: mursync.ByHand, By: by, Wait: true, AnswerWait: wait}, clients)
		})
}

func orAll(client string) string {
	if client == "" {
		return "*"
	}
	return client
}

// retry: POST /api/v1/sync/retry {"client": C, "batch_id": B} sends the
// failed records of batch B again; {"client": C, "failed": true} every
// failed record of the client. The records keep their ids. Answers as
// run does; 404 when there is no failed record to send.
func (s *Sync) retry(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Client  string `json:"client"`
		BatchID string `json:"batch_id"`
		Failed  bool   `json:"failed"`
		Timeout string `json:"timeout"`
	}
	check := func() (string, bool) {
		switch {
		case req.Client == "":
			writeError(w, http.StatusBadRequest, "client is required")
			return "", true
		case (req.BatchID == "") == !req.Failed:
			writeError(w, http.StatusBadRequest, "give either batch_id or failed: true")
			return "", true
		}
		return req.Client, false
	}
	wait, ok := s.start(w, r, &req, check, &req.Timeout)
	if !ok {
		return
	}
	target := audit.Target("client", req.Client)
	if req.BatchID != "" {
		b, err := s.Reader.Batch(r.Context(), req.BatchID)
		switch {
		case errors.Is(err, mursync.ErrUnknownBatch) || err == nil && b.Client != req.Client:
			writeError(w, http.StatusNotFound, "client "+req.Client+" has no sync batch "+req.BatchID)
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		target = audit.Target("sync_batch", req.BatchID)
	}
	s.answer(w, r, wait, audit.Entry{Action: audit.SyncRetry, Target: target, Client: req.Client},
		func(ctx context.Context, by string) ([]mursync.Summary, error) {
			sum, err := s.Ops.Run(ctx, mursync.Request{Client: req.Client, Trigger: mursync.ByRetry, By: by, Wait: true,
				AnswerWait: wait, Retry: mursync.Selection{Client: req.Client, BatchID: req.BatchID}})
			if sum.JobID == "" {
				return nil, err
			}
			return []mursync.Summary{sum}, err
		})
}

// start reads and checks a run or retry request: the body into req, the
// fields check looks at (it answers a problem itself and says so), the
// client check returns and the wait for the answers.
func (s *Sync) start(w http.ResponseWriter, r *http.Request, req any, check func() (string, bool), timeout *string) (time.Duration, bool) {
	if s.Ops == nil {
		writeError(w, http.StatusServiceUnavailable, "this process does not run the MUR sync")
		return 0, false
	}
	if err := decodeBody(r, req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	client, answered := check()
	if answered {
		return 0, false
	}
	if client != "" {
		if err := ingest.ValidClient(client); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return 0, false
		}
	}
	wait, err := syncWait(*timeout)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return wait, true
}

// answer runs the cycles on behalf of whoever asked, records that in the
// audit log and writes their counts.
func (s *Sync) answer(w http.ResponseWriter, r *http.Request, wait time.Duration, e audit.Entry,
	cycles func(ctx context.Context, by string) ([]mursync.Summary, error)) {
	e.Actor = audit.Operator(operator(r))
	ctx, cancel := context.WithTimeout(r.Context(), wait+time.Minute)
	defer cancel()
	sums, err := cycles(ctx, e.Actor)
	ans, status := runAnswer(sums, err)
	e.After = audit.JSON(ans)
	s.record(r.Context(), e)
	writeJSON(w, status, ans)
}

func (s *Sync) record(ctx context.Context, e audit.Entry) {
	if s.Audit == nil {
		return
	}
	if err := s.Audit.Record(context.WithoutCancel(ctx), e); err != nil && s.Logger != nil {
		s.Logger.Error("audit entry not recorded", "action", e.Action, "target", e.Target, "err", err)
	}
}

func queryLimit(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errors.New("limit must be a number from 1 to " + strconv.Itoa(max))
	}
	return n, nil
}

type syncJob struct {
	JobID       string     `json:"job_id"`
	Client      string     `json:"client"`
	Trigger     string     `json:"trigger"`
	RequestedBy string     `json:"requested_by,omitempty"`
	Owner       string     `json:"owner"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Aggregates  int        `json:"aggregates"`
	Batches     int        `json:"batches"`
	MURs        int64      `json:"murs"`
	Synced      int        `json:"synced"`
	Failed      int        `json:"failed"`
	Error       string     `json:"error,omitempty"`
}

// jobs: GET /api/v1/sync/jobs?client=C&limit=N, newest first.
func (s *Sync) jobs(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 100, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	jobs, err := s.Reader.Jobs(r.Context(), mursync.JobFilter{Client: r.URL.Query().Get("client"), Limit: limit})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]syncJob, len(jobs))
	for i, j := range jobs {
		out[i] = syncJob{JobID: j.ID, Client: j.Client, Trigger: string(j.Trigger), RequestedBy: j.RequestedBy, Owner: j.Owner,
			Status: string(j.Status), StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, Aggregates: j.Aggregates,
			Batches: j.Batches, MURs: j.MURs, Synced: j.Synced, Failed: j.Failed, Error: j.Error}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

type syncBatch struct {
	BatchID     string       `json:"batch_id"`
	Client      string       `json:"client"`
	JobID       string       `json:"job_id"`
	Status      string       `json:"status"`
	Records     int          `json:"records"`
	MURs        int64        `json:"murs"`
	Synced      int          `json:"synced"`
	Failed      int          `json:"failed"`
	Attempts    int          `json:"attempts"`
	Failure     string       `json:"failure,omitempty"`
	ErrorCode   int64        `json:"error_code,omitempty"`
	ErrorMsg    string       `json:"error_msg,omitempty"`
	ResendOf    string       `json:"resend_of,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	PublishedAt *time.Time   `json:"published_at,omitempty"`
	AnsweredAt  *time.Time   `json:"answered_at,omitempty"`
	Items       []syncRecord `json:"items,omitempty"`
}

func toSyncBatch(b mursync.BatchView) syncBatch {
	return syncBatch{BatchID: b.BatchID, Client: b.Client, JobID: b.JobID, Status: string(b.Status), Records: b.Records,
		MURs: b.MURs, Synced: b.Synced, Failed: b.Failed, Attempts: b.Attempts, Failure: string(b.Failure), ErrorCode: b.Code,
		ErrorMsg: b.Message, ResendOf: b.ResendOf, CreatedAt: b.CreatedAt, PublishedAt: b.PublishedAt, AnsweredAt: b.AnsweredAt}
}

type syncRecord struct {
	ClientRecordID string    `json:"client_record_id"`
	Client         string    `json:"client"`
	AccountID      string    `json:"account_id"`
	UsageType      string    `json:"usage_type"`
	Currency       string    `json:"currency"`
	UsageDay       string    `json:"usage_day"`
	UsageDate      time.Time `json:"usage_date"`
	Units          string    `json:"units"`
	Amount         string    `json:"amount"`
	MURs           int       `json:"murs"`
	Status         string    `json:"status"`
	BatchID        string    `json:"batch_id"`
	ErrorCode      int64     `json:"record_error_code,omitempty"`
	ErrorMsg       string    `json:"record_error_msg,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func toSyncRecords(rs []mursync.RecordView) []syncRecord {
	out := make([]syncRecord, len(rs))
	for i, x := range rs {
		out[i] = syncRecord{ClientRecordID: x.ID, Client: x.Client, AccountID: x.AccountID, UsageType: x.UsageType,
			Currency: x.Currency, UsageDay: x.Day.Format(time.DateOnly), UsageDate: x.UsageDate, Units: x.Units, Amount: x.Amount,
			MURs: x.MURs, Status: string(x.Status), BatchID: x.BatchID, ErrorCode: x.Code, ErrorMsg: x.Message, UpdatedAt: x.UpdatedAt}
	}
	return out
}

// batches: GET /api/v1/sync/batches?client=C&status=S&job_id=J&limit=N,
// newest first.
func (s *Sync) batches(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 100, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	st := mursync.BatchStatus(q.Get("status"))
	switch st {
	case "", mursync.Ready, mursync.Published, mursync.Sending, mursync.Done, mursync.Failed:
	default:
		writeError(w, http.StatusBadRequest, "status must be ready, published, sending, done or failed")
		return
	}
	bs, err := s.Reader.Batches(r.Context(), mursync.BatchFilter{Client: q.Get("client"), Status: st, JobID: q.Get("job_id"), Limit: limit})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := make([]syncBatch, len(bs))
	for i, b := range bs {
		out[i] = toSyncBatch(b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"batches": out})
}

// batch: GET /api/v1/sync/batches/{id}: the batch with the records it
// carries.
func (s *Sync) batch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, err := s.Reader.Batch(r.Context(), id)
	if errors.Is(err, mursync.ErrUnknownBatch) {
		writeError(w, http.StatusNotFound, "no sync batch "+id)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := s.Reader.Records(r.Context(), mursync.RecordFilter{BatchID: id, Limit: 100000})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := toSyncBatch(b)
	out.Items = toSyncRecords(recs)
	writeJSON(w, http.StatusOK, out)
}

// failed: GET /api/v1/sync/failed?client=C&batch_id=B&limit=N: the
// aggregated records that failed, most recent first, with the core's code
// and message (or the whole call's, for a batch that failed as a whole).
func (s *Sync) failed(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 1000, 100000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	recs, err := s.Reader.Records(r.Context(), mursync.RecordFilter{Client: q.Get("client"), BatchID: q.Get("batch_id"),
		Status: mursync.Refused, Limit: limit})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": toSyncRecords(recs)})
}

// totals: GET /api/v1/sync/totals?client=C: the client's MURs summed per
// account, usage type and currency, all and synced.
func (s *Sync) totals(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("client")
	if client == "" {
		writeError(w, http.StatusBadRequest, "query parameter client is required")
		return
	}
	ts, err := s.Reader.Totals(r.Context(), client)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if ts == nil {
		ts = []mursync.Total{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"totals": ts})
}
