package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/mursync"
)

// Sync serves MUR sync: a cycle now (POST /api/v1/sync/run), failed
// records sent again (POST /api/v1/sync/retry), and what the sync did:
// jobs, batches, a batch with its records, failed records, and the MUR
// totals per account and usage type. Every route keeps to the token's
// clients.
type Sync struct {
	// Server is the API the routes are mounted on: its audit log and
	// error handling.
	Server *Server
	// Ops runs cycles; nil when this process does not run the sync (the
	// run and retry routes then answer 503).
	Ops    *mursync.Ops
	Reader mursync.Reader
}

// The actions the sync's routes record in the audit log.
const (
	ActionSyncRun   = "sync.run"   // a cycle asked for by hand
	ActionSyncRetry = "sync.retry" // failed records sent again
)

// Routes are the sync's routes, for Server.Mount: running cycles and
// resending need an operator token, reading a viewer one.
func (s *Sync) Routes() []Route {
	v, o := auth.Viewer, auth.Operator
	return []Route{
		{"POST /api/v1/sync/run", o, PerClient, http.HandlerFunc(s.run)},
		{"POST /api/v1/sync/retry", o, PerClient, http.HandlerFunc(s.retry)},
		{"GET /api/v1/sync/jobs", v, PerClient, http.HandlerFunc(s.jobs)},
		{"GET /api/v1/sync/batches", v, PerClient, http.HandlerFunc(s.batches)},
		{"GET /api/v1/sync/batches/{id}", v, PerClient, http.HandlerFunc(s.batch)},
		{"GET /api/v1/sync/failed", v, PerClient, http.HandlerFunc(s.failed)},
		{"GET /api/v1/sync/totals", v, PerClient, http.HandlerFunc(s.totals)},
	}
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
	p := principal(r)
	var clients []string
	switch {
	case req.Client != "":
		if err := p.Change(req.Client); err != nil {
			deny(w, err)
			return
		}
		clients = []string{req.Client}
	case !p.AllClients():
		// The token's clients that have something to sync.
		work, err := s.Ops.Store.Clients(r.Context())
		if err != nil {
			s.Server.internalError(w, "finding the clients to sync", err)
			return
		}
		for _, c := range work {
			if p.MaySee(c) {
				clients = append(clients, c)
			}
		}
		if len(clients) == 0 {
			writeJSON(w, http.StatusOK, syncRun{Cycles: []syncCycle{}})
			return
		}
	}
	s.answer(w, r, wait, auth.AuditEntry{Action: ActionSyncRun, Target: "client:" + orAll(req.Client), Client: req.Client},
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
	if err := principal(r).Change(req.Client); err != nil {
		deny(w, err)
		return
	}
	target := "client:" + req.Client
	if req.BatchID != "" {
		b, err := s.Reader.Batch(r.Context(), req.BatchID)
		switch {
		case errors.Is(err, mursync.ErrUnknownBatch) || err == nil && b.Client != req.Client:
			writeError(w, http.StatusNotFound, "client "+req.Client+" has no sync batch "+req.BatchID)
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, "batch_id: "+req.BatchID+" is not a batch id")
			return
		}
		target = "sync_batch:" + req.BatchID
	}
	s.answer(w, r, wait, auth.AuditEntry{Action: ActionSyncRetry, Target: target, Client: req.Client},
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
func (s *Sync) answer(w http.ResponseWriter, r *http.Request, wait time.Duration, e auth.AuditEntry,
	cycles func(ctx context.Context, by string) ([]mursync.Summary, error)) {
	e.At, e.Actor = time.Now().UTC(), principal(r).Name
	ctx, cancel := context.WithTimeout(r.Context(), wait+time.Minute)
	defer cancel()
	sums, err := cycles(ctx, e.Actor)
	ans, status := runAnswer(sums, err)
	e.After, _ = json.Marshal(ans)
	s.Server.audit(r, e)
	writeJSON(w, status, ans)
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
	clients, ok := clientFilter(w, r, r.URL.Query().Get("client"))
	if !ok {
		return
	}
	jobs, err := s.Reader.Jobs(r.Context(), mursync.JobFilter{Clients: clients, Limit: limit})
	if err != nil {
		s.Server.internalError(w, "listing sync jobs", err)
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
	clients, ok := clientFilter(w, r, q.Get("client"))
	if !ok {
		return
	}
	if j := q.Get("job_id"); j != "" && !isUUID(j) {
		writeError(w, http.StatusBadRequest, "job_id: "+j+" is not a job id")
		return
	}
	bs, err := s.Reader.Batches(r.Context(), mursync.BatchFilter{Clients: clients, Status: st, JobID: q.Get("job_id"), Limit: limit})
	if err != nil {
		s.Server.internalError(w, "listing sync batches", err)
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
	if !isUUID(id) {
		writeError(w, http.StatusNotFound, "no sync batch "+id)
		return
	}
	b, err := s.Reader.Batch(r.Context(), id)
	if errors.Is(err, mursync.ErrUnknownBatch) {
		writeError(w, http.StatusNotFound, "no sync batch "+id)
		return
	}
	if err != nil {
		s.Server.internalError(w, "reading a sync batch", err)
		return
	}
	if err := principal(r).SeeOf("sync batch "+id, b.Client); err != nil {
		deny(w, err)
		return
	}
	recs, err := s.Reader.Records(r.Context(), mursync.RecordFilter{BatchID: id, Limit: 100000})
	if err != nil {
		s.Server.internalError(w, "reading a sync batch's records", err)
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
	clients, ok := clientFilter(w, r, q.Get("client"))
	if !ok {
		return
	}
	if b := q.Get("batch_id"); b != "" && !isUUID(b) {
		writeError(w, http.StatusBadRequest, "batch_id: "+b+" is not a batch id")
		return
	}
	recs, err := s.Reader.Records(r.Context(), mursync.RecordFilter{Clients: clients, BatchID: q.Get("batch_id"),
		Status: mursync.Refused, Limit: limit})
	if err != nil {
		s.Server.internalError(w, "listing failed sync records", err)
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
		s.Server.internalError(w, "summing MURs", err)
		return
	}
	if ts == nil {
		ts = []mursync.Total{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"totals": ts})
}

// isUUID reports whether s is a UUID in its text form (ids of jobs and
// batches), so that anything else is refused before it reaches the
// database.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return true
}
