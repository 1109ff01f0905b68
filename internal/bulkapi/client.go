package bulkapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// Defaults of a Client's settings.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
)

// maxAnswer bounds the answer read: error_records for the largest batch
// fit many times over.
const maxAnswer = 64 << 20

// Client sends batches of usage records to one core client (client_no)
// at one endpoint. It is safe for concurrent use; its rate limit is shared
// by every call it makes.
type Client struct {
	endpoint    string
	clientNo    int64
	authKey     Secret
	hc          *http.Client
	timeout     time.Duration
	maxAttempts int
	backoffBase time.Duration
	backoffMax  time.Duration
	limiter     *rate.Limiter
	retryCodes  map[Code]bool
	observe     func(Attempt)
	log         *slog.Logger
	// jitter draws the wait before a retry from [0, ceiling]; tests fix it.
	jitter func(ceiling time.Duration) time.Duration
}

// Option changes one of a Client's settings.
type Option func(*Client)

// WithTimeout bounds each attempt (connecting, sending, the core's work and
// reading the answer). Default 30s.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxAttempts sets how many times a call is tried in all (1 = no
// retry). Default 5.
func WithMaxAttempts(n int) Option { return func(c *Client) { c.maxAttempts = n } }

// WithBackoff sets the exponential backoff between attempts: before retry
// n (n = 1, 2, …) the client waits a random time in [0, min(max,
// base·2^(n-1))] ("full jitter"), or the core's Retry-After when that is
// longer (still at most max). Default 500ms and 30s.
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, max }
}

// WithRateLimit limits the calls (every attempt counts) to perSecond on
// average with bursts of burst, as a token bucket. perSecond 0 (the
// default) means no limit.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(c *Client) {
		if perSecond == 0 {
			c.limiter = nil
			return
		}
		c.limiter = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
}

// WithHTTPClient sets the HTTP client (its own Timeout, if any, also
// applies). Default: a client of its own with keep-alive connections.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetryCodes names core error codes that are retried like a timeout
// instead of refusing the call. None by default: the core's documentation
// calls none of its codes transient.
func WithRetryCodes(codes ...Code) Option {
	return func(c *Client) {
		c.retryCodes = make(map[Code]bool, len(codes))
		for _, k := range codes {
			c.retryCodes[k] = true
		}
	}
}

// WithObserver is called after every attempt (for metrics: latency,
// retries, outcomes). It must not block.
func WithObserver(f func(Attempt)) Option { return func(c *Client) { c.observe = f } }

// WithLogger logs retries (Warn) and calls (Debug). Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// Attempt describes one try of a call, for an observer.
type Attempt struct {
	// N counts from 1.
	N        int
	Records  int
	Duration time.Duration
	// StatusCode is the HTTP status, 0 when no answer came.
	StatusCode int
	// ErrorCode is the answer's error_code when one was read.
	ErrorCode Code
	// Class is what this attempt's outcome would make of the call.
	Class Class
	// Err is why the attempt failed, nil when it was answered and taken.
	Err error
	// Retry is true when another attempt follows, after Wait.
	Retry bool
	Wait  time.Duration
}

// New makes a Client for clientNo at coreURL. A coreURL without a path
// (http://core:8080) gets Path appended; one with a path is used as it is.
func New(coreURL string, clientNo int64, authKey Secret, opts ...Option) (*Client, error) {
	c := &Client{
		clientNo: clientNo, authKey: authKey,
		timeout: DefaultTimeout, maxAttempts: DefaultMaxAttempts,
		backoffBase: DefaultBackoffBase, backoffMax: DefaultBackoffMax,
		jitter: fullJitter,
	}
	var errs []error
	u, err := url.Parse(coreURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("core URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		errs = append(errs, fmt.Errorf("core URL %q: want http(s)://host[:port][/path]", u.Redacted()))
	default:
		if u.Path == "" || u.Path == "/" {
			u.Path = Path
		}
		c.endpoint = u.String()
	}
	if clientNo <= 0 {
		errs = append(errs, fmt.Errorf("client_no %d: must be positive", clientNo))
	}
	if authKey.IsZero() {
		errs = append(errs, errors.New("auth_key: empty"))
	}
	c.apply(opts)
	errs = append(errs, c.check()...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bulk API client: %w", err)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return c, nil
}

// With returns a copy of the client with some settings changed (say, a
// new max attempts from the system settings); the copy shares the rate
// limit and the connections unless the options replace them.
func (c *Client) With(opts ...Option) (*Client, error) {
	n := *c
	n.apply(opts)
	if err := errors.Join(n.check()...); err != nil {
		return nil, fmt.Errorf("bulk API client: %w", err)
	}
	if n.hc == nil {
		n.hc = c.hc
	}
	return &n, nil
}

func (c *Client) apply(opts []Option) {
	for _, o := range opts {
		o(c)
	}
}

func (c *Client) check() []error {
	var errs []error
	if c.timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must be positive", c.timeout))
	}
	if c.maxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be at least 1", c.maxAttempts))
	}
	if c.backoffBase <= 0 || c.backoffMax < c.backoffBase {
		errs = append(errs, fmt.Errorf("backoff %s..%s: want 0 < base <= max", c.backoffBase, c.backoffMax))
	}
	if c.limiter != nil && (c.limiter.Limit() < 0 || c.limiter.Burst() < 1) {
		errs = append(errs, fmt.Errorf("rate limit %v/s burst %d: want a positive rate and burst >= 1", float64(c.limiter.Limit()), c.limiter.Burst()))
	}
	return errs
}

// Endpoint is the URL the client posts to.
func (c *Client) Endpoint() string { return c.endpoint }

// ClientNo is the core client the client sends for.
func (c *Client) ClientNo() int64 { return c.clientNo }

// String describes the client without its credential.
func (c *Client) String() string {
	return fmt.Sprintf("bulkapi.Client{%s client_no=%d auth_key=%s}", c.endpoint, c.clientNo, redacted)
}

// Result is a call the core took.
type Result struct {
	// Message is the answer's error_msg ("OK").
	Message string
	// Errors are the records the core refused, in the answer's order;
	// every other record of the batch was recorded.
	Errors   []ErrorRecord
	Attempts int
	byID     map[string]int
}

// RecordError returns the core's refusal of the record sent with
// clientRecordID, if it refused it.
func (r *Result) RecordError(clientRecordID string) (ErrorRecord, bool) {
	i, ok := r.byID[clientRecordID]
	if !ok {
		return ErrorRecord{}, false
	}
	return r.Errors[i], true
}

// Send makes one bulk_record_usage_m call with the batch, retrying what
// can be retried. See the package documentation for what it returns.
func (c *Client) Send(ctx context.Context, b Batch) (*Result, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	body, err := Request{
		RestCall: RestCall, OutputFormat: OutputFormat, ClientNo: c.clientNo, AuthKey: c.authKey,
		UsageRecs: b.Records, ClientReceiptID: b.ReceiptID,
	}.Body()
	if err != nil {
		return nil, &InvalidBatchError{Problems: []error{fmt.Errorf("encode: %w", err)}}
	}
	ids := make(map[string]bool, len(b.Records))
	for i := range b.Records {
		ids[b.Records[i].ClientRecordID] = true
	}
	for n := 1; ; n++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				// The wait for a token would outlast the context.
				return nil, c.canceled(ctx, n-1, fmt.Errorf("%w: rate limit: %v", context.DeadlineExceeded, err))
			}
		}
		started := time.Now()
		res, retryAfter, a := c.attempt(ctx, body, ids)
		a.N, a.Records, a.Duration = n, len(b.Records), time.Since(started)
		if ctx.Err() != nil && a.Class == ClassUnavailable {
			a.Class, a.Err = ClassCanceled, ctx.Err()
		}
		if a.Class == ClassUnavailable && n < c.maxAttempts {
			a.Retry = true
			a.Wait = c.wait(n, retryAfter)
		}
		c.report(a)
		switch {
		case a.Class == ClassAccepted:
			res.Attempts = n
			return res, nil
		case a.Class == ClassCanceled:
			return nil, c.canceled(ctx, n, a.Err)
		case a.Retry:
			t := time.NewTimer(a.Wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, c.canceled(ctx, n, ctx.Err())
			case <-t.C:
			}
		case a.Class == ClassUnavailable:
			return nil, &UnavailableError{Attempts: n, StatusCode: a.StatusCode, Last: a.Err}
		default:
			setAttempts(a.Err, n)
			return nil, a.Err
		}
	}
}

func (c *Client) canceled(ctx context.Context, attempts int, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("bulk_record_usage_m to %s after %d attempt(s): %w", c.endpoint, attempts, err)
}

func setAttempts(err error, n int) {
	var re *RefusedError
	var be *BadAnswerError
	switch {
	case errors.As(err, &re):
		re.Attempts = n
	case errors.As(err, &be):
		be.Attempts = n
	}
}

func (c *Client) report(a Attempt) {
	if c.observe != nil {
		c.observe(a)
	}
	if c.log == nil {
		return
	}
	if a.Retry {
		c.log.Warn("core bulk call failed, retrying", "endpoint", c.endpoint, "client_no", c.clientNo,
			"attempt", a.N, "records", a.Records, "status", a.StatusCode, "wait", a.Wait, "err", a.Err)
		return
	}
	c.log.Debug("core bulk call", "endpoint", c.endpoint, "client_no", c.clientNo, "attempt", a.N,
		"records", a.Records, "status", a.StatusCode, "outcome", a.Class.String(), "duration", a.Duration, "err", a.Err)
}

// attempt makes one try; the Attempt it returns has Class, StatusCode,
// ErrorCode and Err set.
func (c *Client) attempt(ctx context.Context, body []byte, ids map[string]bool) (*Result, time.Duration, Attempt) {
	var a Attempt
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		a.Class, a.Err = ClassBadAnswer, &BadAnswerError{Reason: err.Error()}
		return nil, 0, a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		a.Class, a.Err = ClassUnavailable, c.transportErr(actx, err)
		return nil, 0, a
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		// The connection went before the whole answer came.
		a.Class, a.Err = ClassUnavailable, fmt.Errorf("HTTP %d, answer cut off: %w", resp.StatusCode, c.transportErr(actx, err))
		return nil, 0, a
	}
	switch s := resp.StatusCode; {
	case s >= 500 || s == http.StatusTooManyRequests || s == http.StatusRequestTimeout:
		a.Class, a.Err = ClassUnavailable, fmt.Errorf("HTTP %s: %s", resp.Status, snippet(raw))
		return nil, retryAfter(resp.Header.Get("Retry-After")), a
	case s < 200 || s > 299:
		a.Class, a.Err = ClassBadAnswer, &BadAnswerError{StatusCode: s, Reason: "unexpected HTTP status " + resp.Status, Body: snippet(raw)}
		return nil, 0, a
	}
	if len(raw) > maxAnswer {
		a.Class, a.Err = ClassBadAnswer, &BadAnswerError{StatusCode: resp.StatusCode, Reason: fmt.Sprintf("answer larger than %d bytes", maxAnswer)}
		return nil, 0, a
	}
	var ans Response
	if err := decodeAnswer(raw, &ans); err != nil {
		a.Class, a.Err = ClassBadAnswer, &BadAnswerError{StatusCode: resp.StatusCode, Reason: err.Error(), Body: snippet(raw)}
		return nil, 0, a
	}
	a.ErrorCode = ans.ErrorCode
	if ans.ErrorCode != CodeOK {
		if c.retryCodes[ans.ErrorCode] {
			a.Class, a.Err = ClassUnavailable, fmt.Errorf("error_code %s: %s", ans.ErrorCode, ans.ErrorMsg)
			return nil, 0, a
		}
		a.Class, a.Err = ClassRefused, &RefusedError{Code: ans.ErrorCode, Message: ans.ErrorMsg, Records: ans.ErrorRecords}
		return nil, 0, a
	}
	res := &Result{Message: ans.ErrorMsg, Errors: ans.ErrorRecords, byID: make(map[string]int, len(ans.ErrorRecords))}
	for i, e := range ans.ErrorRecords {
		if !ids[e.OutClientRecordID] {
			a.Class, a.Err = ClassBadAnswer, &BadAnswerError{StatusCode: resp.StatusCode,
				Reason: fmt.Sprintf("error_records[%d] names client_record_id %q, which the batch does not hold", i, e.OutClientRecordID)}
			return nil, 0, a
		}
		if _, dup := res.byID[e.OutClientRecordID]; !dup {
			res.byID[e.OutClientRecordID] = i
		}
	}
	a.Class = ClassAccepted
	return res, 0, a
}

// decodeAnswer reads a bulk usage answer: a JSON object with error_code.
func decodeAnswer(raw []byte, ans *Response) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("the answer is not a JSON object: %v", err)
	}
	if _, ok := probe["error_code"]; !ok {
		return errors.New("the answer has no error_code")
	}
	if err := json.Unmarshal(raw, ans); err != nil {
		return fmt.Errorf("the answer does not read as a bulk_record_usage_m response: %v", err)
	}
	return nil
}

// transportErr says that an attempt's own timeout ran out, rather than
// the bare context error.
func (c *Client) transportErr(actx context.Context, err error) error {
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", c.timeout, err)
	}
	return err
}

func (c *Client) wait(n int, retryAfter time.Duration) time.Duration {
	ceiling := c.backoffMax
	if n-1 < 62 {
		if d := c.backoffBase << (n - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	w := c.jitter(ceiling)
	if retryAfter > w {
		w = min(retryAfter, c.backoffMax)
	}
	return w
}

func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// retryAfter reads a Retry-After header given in seconds.
func retryAfter(h string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// snippet is the start of an answer body, as text for an operator.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
