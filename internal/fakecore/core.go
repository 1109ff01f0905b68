// Package fakecore is a stand-in for the core billing system's bulk usage
// API, for demos and tests: it answers bulk_record_usage_m as the core's
// API definitions give it (a JSON POST to the dispatcher path), checks
// credentials and records the way the core does, with the core's error
// codes, keeps what it received by client_record_id (a resend replaces a
// record, never adds one), reports exact totals per client, account and
// usage type, and puts failures into its answers on demand (Faults):
// per-record refusals by account, HTTP 5xx storms, slow answers, calls
// never answered, connections dropped after the batch was stored.
//
// Use it in-process with Start (or New and its ServeHTTP), or as the
// command vivace fake-core. docs/fake-core.md describes the endpoints.
package fakecore

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/apd/v3"
)

// Path is the core API's dispatcher path, where bulk calls are posted.
const Path = "/api/ws/api_ws_class_dispatcher.php"

// RestCall is the one call this core serves.
const RestCall = "bulk_record_usage_m"

// maxBody bounds a call's body.
const maxBody = 64 << 20

// Credential is one core client the fake core lets in.
type Credential struct {
	ClientNo int64
	AuthKey  string
}

// Config sets up a fake core.
type Config struct {
	// Credentials are the clients allowed to call (at least one).
	Credentials []Credential
	// Accounts, when not empty, are the only accounts that exist: records
	// for others are refused with 1009. Empty: every account exists.
	Accounts []string
	// Faults are in force from the start.
	Faults Faults
	// Seed makes the Fraction faults repeatable (default 1).
	Seed uint64
	// Logger logs each call at Debug and faults at Info (default: none).
	Logger *slog.Logger
}

// Record is a usage record as the fake core keeps it.
type Record struct {
	ClientNo       int64  `json:"client_no"`
	ClientRecordID string `json:"client_record_id"`
	// Account is the record's account, by the identifier it was sent
	// with (AccountField: client_acct_id, acct_no, userid,
	// plan_instance_no or client_plan_instance_id, first found).
	Account      string `json:"account"`
	AccountField string `json:"account_field"`
	// UsageType is usage_type_code, else usage_type.
	UsageType  string `json:"usage_type"`
	UsageUnits string `json:"usage_units"`
	// Amt is the amount as sent; empty when the record had none.
	Amt        string    `json:"amt,omitempty"`
	UsageDate  string    `json:"usage_date,omitempty"`
	Qualifier1 string    `json:"qualifier_1,omitempty"`
	Qualifier2 string    `json:"qualifier_2,omitempty"`
	Qualifier3 string    `json:"qualifier_3,omitempty"`
	Qualifier4 string    `json:"qualifier_4,omitempty"`
	Comments   string    `json:"comments,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	// Received counts how many times the record came (resends replace).
	Received int `json:"received"`
	// Call is the number of the call that last stored it.
	Call int64 `json:"call"`
	// Raw is the record exactly as sent, unknown fields included.
	Raw json.RawMessage `json:"raw"`

	units apd.Decimal
	amt   *apd.Decimal
}

// Total is the sum of the stored records of one client, account and usage
// type, exact: Units and Amount are decimal texts.
type Total struct {
	ClientNo  int64  `json:"client_no"`
	Account   string `json:"account"`
	UsageType string `json:"usage_type"`
	Records   int    `json:"records"`
	Units     string `json:"units"`
	// Amount sums amt over the records that had one.
	Amount string `json:"amount"`
	// WithoutAmt counts records sent without amt.
	WithoutAmt int `json:"without_amt,omitempty"`
}

// Filter narrows Totals and Records; zero fields match everything.
type Filter struct {
	ClientNo       int64
	Account        string
	UsageType      string
	ClientRecordID string
}

func (f Filter) match(r *Record) bool {
	return (f.ClientNo == 0 || r.ClientNo == f.ClientNo) && (f.Account == "" || r.Account == f.Account) &&
		(f.UsageType == "" || r.UsageType == f.UsageType) && (f.ClientRecordID == "" || r.ClientRecordID == f.ClientRecordID)
}

// Stats count what happened to the calls since the start or the last Reset.
type Stats struct {
	// Calls counts bulk calls received (every POST to Path).
	Calls int64 `json:"calls"`
	// Accepted counts calls answered with error_code 0.
	Accepted int64 `json:"accepted"`
	// Refused counts calls answered with another error_code.
	Refused int64 `json:"refused"`
	// HTTPErrors, Hung, Dropped and Slowed count the faults that fired.
	HTTPErrors int64 `json:"http_errors"`
	Hung       int64 `json:"hung"`
	Dropped    int64 `json:"dropped"`
	Slowed     int64 `json:"slowed"`
	// RecordsReceived counts records in accepted calls; RecordsStored the
	// new ones, RecordsReplaced the resends, RecordsRejected the refused.
	RecordsReceived int64 `json:"records_received"`
	RecordsStored   int64 `json:"records_stored"`
	RecordsReplaced int64 `json:"records_replaced"`
	RecordsRejected int64 `json:"records_rejected"`
}

type recordKey struct {
	clientNo int64
	id       string
}

// Core is the fake core's state and HTTP handler. It is safe for
// concurrent use.
type Core struct {
	keys     map[int64]string
	accounts map[string]bool
	log      *slog.Logger
	mux      *http.ServeMux
	done     chan struct{}
	closeMu  sync.Once

	mu      sync.Mutex
	faults  Faults
	rng     *rand.Rand
	records map[recordKey]*Record
	anon    int64 // records without client_record_id, each kept apart
	stats   Stats
}

// New makes a fake core. It checks the configuration: at least one
// credential, positive client numbers, non-empty keys, valid faults.
func New(cfg Config) (*Core, error) {
	var errs []error
	if len(cfg.Credentials) == 0 {
		errs = append(errs, errors.New("fake core: no credentials: give at least one client_no and auth_key"))
	}
	keys := make(map[int64]string, len(cfg.Credentials))
	for _, c := range cfg.Credentials {
		switch _, dup := keys[c.ClientNo]; {
		case c.ClientNo <= 0:
			errs = append(errs, fmt.Errorf("fake core: client_no %d: must be positive", c.ClientNo))
		case c.AuthKey == "":
			errs = append(errs, fmt.Errorf("fake core: client_no %d: empty auth_key", c.ClientNo))
		case dup:
			errs = append(errs, fmt.Errorf("fake core: client_no %d given twice", c.ClientNo))
		}
		keys[c.ClientNo] = c.AuthKey
	}
	if err := cfg.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = 1
	}
	c := &Core{
		keys: keys, log: cfg.Logger, done: make(chan struct{}),
		faults: cfg.Faults.clone(), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		records: make(map[recordKey]*Record),
	}
	if len(cfg.Accounts) > 0 {
		c.accounts = make(map[string]bool, len(cfg.Accounts))
		for _, a := range cfg.Accounts {
			c.accounts[a] = true
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.routes()
	return c, nil
}

// ServeHTTP serves the bulk API and the fake core's own endpoints.
func (c *Core) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Close releases the calls a Hang fault holds; the Core still answers
// afterwards, without hanging.
func (c *Core) Close() { c.closeMu.Do(func() { close(c.done) }) }

// Faults returns the faults in force (Next counts what is left).
func (c *Core) Faults() Faults {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faults.clone()
}

// SetFaults replaces the faults in force.
func (c *Core) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	c.faults = f.clone()
	c.mu.Unlock()
	c.log.Info("fake core: faults set", "faults", f)
	return nil
}

// Reset forgets every stored record and the counts; faults stay.
func (c *Core) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = make(map[recordKey]*Record)
	c.stats = Stats{}
}

// Stats returns the counts.
func (c *Core) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Records returns the stored records that match f, ordered by client,
// account, usage type and client_record_id.
func (c *Core) Records(f Filter) []Record {
	c.mu.Lock()
	out := make([]Record, 0, len(c.records))
	for _, r := range c.records {
		if f.match(r) {
			out = append(out, *r)
		}
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.ClientNo != b.ClientNo {
			return a.ClientNo < b.ClientNo
		}
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.UsageType != b.UsageType {
			return a.UsageType < b.UsageType
		}
		return a.ClientRecordID < b.ClientRecordID
	})
	return out
}

// sumCtx adds exactly: far more digits than any sum of amounts needs, and
// an inexact result is an error rather than a rounded total.
var sumCtx = apd.Context{Precision: 200, MaxExponent: apd.MaxExponent, MinExponent: apd.MinExponent,
	Traps: apd.DefaultTraps | apd.Inexact | apd.Rounded}

// Totals sums the stored records that match f per client, account and
// usage type, exactly.
func (c *Core) Totals(f Filter) ([]Total, error) {
	type acc struct {
		t          Total
		units, amt apd.Decimal
	}
	sums := map[[3]string]*acc{}
	var keys [][3]string
	for _, r := range c.Records(f) {
		k := [3]string{strconv.FormatInt(r.ClientNo, 10), r.Account, r.UsageType}
		a := sums[k]
		if a == nil {
			a = &acc{t: Total{ClientNo: r.ClientNo, Account: r.Account, UsageType: r.UsageType}}
			sums[k] = a
			keys = append(keys, k)
		}
		a.t.Records++
		if _, err := sumCtx.Add(&a.units, &a.units, &r.units); err != nil {
			return nil, fmt.Errorf("fake core: units of %v: %w", k, err)
		}
		if r.amt == nil {
			a.t.WithoutAmt++
			continue
		}
		if _, err := sumCtx.Add(&a.amt, &a.amt, r.amt); err != nil {
			return nil, fmt.Errorf("fake core: amounts of %v: %w", k, err)
		}
	}
	out := make([]Total, 0, len(keys))
	for _, k := range keys {
		a := sums[k]
		a.t.Units, a.t.Amount = a.units.Text('f'), a.amt.Text('f')
		out = append(out, a.t)
	}
	return out, nil
}

// answer is the body of every answer to a bulk call.
type answer struct {
	ErrorCode    int64         `json:"error_code"`
	ErrorMsg     string        `json:"error_msg"`
	ErrorRecords []errorRecord `json:"error_records,omitempty"`
}

type errorRecord struct {
	OutClientRecordID string      `json:"out_client_record_id"`
	AcctNo            json.Number `json:"acct_no,omitempty"`
	RecordErrorCode   int64       `json:"record_error_code"`
	RecordErrorMsg    string      `json:"record_error_msg"`
}

func (c *Core) handleCall(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the core API takes POST", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "the core API takes Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	c.mu.Lock()
	c.stats.Calls++
	n := c.stats.Calls
	p := c.faults.plan(c.rng)
	c.mu.Unlock()

	switch {
	case p.httpStatus != 0:
		c.count(func(s *Stats) { s.HTTPErrors++ })
		c.log.Info("fake core: HTTP error fault", "call", n, "status", p.httpStatus)
		http.Error(w, "fake core: injected HTTP error", p.httpStatus)
		return
	case p.hang:
		c.count(func(s *Stats) { s.Hung++ })
		c.log.Info("fake core: hang fault, no answer", "call", n)
		select {
		case <-r.Context().Done():
		case <-c.done:
		}
		abort(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "fake core: body unreadable or over 64 MiB: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	var ans answer
	if p.refuse != nil {
		ans = answer{ErrorCode: p.refuse.code, ErrorMsg: p.refuse.msg}
		c.log.Info("fake core: refuse fault", "call", n, "code", p.refuse.code)
	} else {
		ans = c.process(n, body, p.reject)
	}
	c.count(func(s *Stats) {
		if ans.ErrorCode == CodeOK {
			s.Accepted++
		} else {
			s.Refused++
		}
	})
	if p.drop {
		c.count(func(s *Stats) { s.Dropped++ })
		c.log.Info("fake core: drop fault, connection closed after storing", "call", n)
		abort(w)
		return
	}
	if p.delay > 0 {
		c.count(func(s *Stats) { s.Slowed++ })
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-c.done:
			t.Stop()
		}
	}
	out, _ := json.Marshal(ans)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func (c *Core) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// abort closes the connection without an answer.
func abort(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// process is the core's own handling of a call: the whole-call checks,
// then each record; the records that pass are stored.
func (c *Core) process(n int64, body []byte, reject map[string]Rejection) answer {
	var cl call
	if err := json.Unmarshal(body, &cl); err != nil {
		return refused(refusal(CodeUnexpected, "the body is not a JSON object"))
	}
	if e := c.checkCall(&cl); e != nil {
		c.log.Debug("fake core: call refused", "call", n, "code", e.code, "msg", e.msg)
		return refused(e)
	}
	clientNo, _ := long(cl.ClientNo)
	var raws []json.RawMessage
	if err := json.Unmarshal(cl.UsageRecs, &raws); err != nil {
		return refused(refusal(CodeInvalidInput, "usage_recs is not an array"))
	}
	if len(raws) == 0 {
		return refused(refusal(CodeMissingParameter, "usage_recs is empty"))
	}
	ans := answer{ErrorCode: CodeOK, ErrorMsg: "OK"}
	good := make([]parsedRec, 0, len(raws))
	for _, raw := range raws {
		rec, e := parseRecord(raw)
		if e == nil && c.accounts != nil && !c.accounts[rec.account] {
			e = refusal(CodeAccountNotFound, "%s %q", rec.accountBy, rec.account)
		}
		if e == nil {
			if rj, ok := reject[rec.account]; ok {
				e = rj.refusal()
			}
		}
		if e != nil {
			ans.ErrorRecords = append(ans.ErrorRecords, errorRecord{OutClientRecordID: rec.id, AcctNo: json.Number(rec.acctNo),
				RecordErrorCode: e.code, RecordErrorMsg: e.msg})
			continue
		}
		good = append(good, rec)
	}
	c.store(n, clientNo, good, len(raws), len(ans.ErrorRecords))
	c.log.Debug("fake core: call", "call", n, "client_no", clientNo, "records", len(raws), "refused", len(ans.ErrorRecords))
	return ans
}

func refused(e *coreError) answer { return answer{ErrorCode: e.code, ErrorMsg: e.msg} }

// checkCall is the whole-call validation: rest_call, output_format,
// client_no, then the credentials, then usage_recs.
func (c *Core) checkCall(cl *call) *coreError {
	if absent(cl.RestCall) {
		return refusal(CodeMissingParameter, "rest_call")
	}
	if s, ok := text(cl.RestCall); !ok || s != RestCall {
		return refusal(CodeUnexpected, "rest_call %s is not served here (only %s)", bytes.TrimSpace(cl.RestCall), RestCall)
	}
	if !absent(cl.OutputFormat) {
		if s, ok := text(cl.OutputFormat); !ok || s != "json" {
			return refusal(CodeInvalidInput, "output_format must be json")
		}
	}
	if absent(cl.ClientNo) {
		return refusal(CodeMissingParameter, "client_no")
	}
	clientNo, ok := long(cl.ClientNo)
	if !ok {
		return refusal(CodeInvalidInput, "client_no is not a valid long")
	}
	key, _ := text(cl.AuthKey)
	want, known := c.keys[clientNo]
	// Compare even for an unknown client, so that timing does not tell
	// which client numbers exist.
	match := subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1
	if !known || !match || key == "" {
		return refusal(CodeAuthentication, "")
	}
	if absent(cl.UsageRecs) {
		return refusal(CodeMissingParameter, "usage_recs")
	}
	return nil
}

func (c *Core) store(n, clientNo int64, recs []parsedRec, received, rejected int) {
	now := time.Now().UTC()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.RecordsReceived += int64(received)
	c.stats.RecordsRejected += int64(rejected)
	for i := range recs {
		p := &recs[i]
		id := p.id
		key := recordKey{clientNo, id}
		if id == "" {
			// Without an id the core cannot tell a resend: each one adds.
			c.anon++
			key.id = "\x00" + strconv.FormatInt(c.anon, 10)
		}
		old := c.records[key]
		rec := &Record{
			ClientNo: clientNo, ClientRecordID: id, Account: p.account, AccountField: p.accountBy,
			UsageType: p.usageType, UsageUnits: p.units.Text('f'), UsageDate: p.date,
			Qualifier1: p.qualifiers[0], Qualifier2: p.qualifiers[1], Qualifier3: p.qualifiers[2], Qualifier4: p.qualifiers[3],
			Comments: p.comments, ReceivedAt: now, Received: 1, Call: n, Raw: p.raw, units: p.units, amt: p.amt,
		}
		if p.amt != nil {
			rec.Amt = p.amt.Text('f')
		}
		if old != nil {
			rec.Received = old.Received + 1
			c.stats.RecordsReplaced++
		} else {
			c.stats.RecordsStored++
		}
		c.records[key] = rec
	}
}
