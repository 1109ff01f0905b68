package bulkapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func recs(ids ...string) []UsageRec {
	out := make([]UsageRec, len(ids))
	for i, id := range ids {
		out[i] = UsageRec{ClientAcctID: "ACC-" + id, UsageTypeCode: "VOICE", UsageUnits: "1.5",
			UsageDate: "2024-05-01 00:00:00", Amt: "0.75", ClientRecordID: id}
	}
	return out
}

// fastClient retries quickly and records the backoff ceilings it draws from.
func fastClient(t *testing.T, url string, opts ...Option) (*Client, *[]time.Duration) {
	t.Helper()
	c, err := New(url, 1001, NewSecret(testKey), append([]Option{WithBackoff(time.Millisecond, 4*time.Millisecond), WithTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ceilings := &[]time.Duration{}
	c.jitter = func(ceiling time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		*ceilings = append(*ceilings, ceiling)
		return ceiling
	}
	return c, ceilings
}

// answering serves answers in turn (the last one repeats) and counts calls.
type answering struct {
	t       *testing.T
	calls   atomic.Int32
	answers []func(w http.ResponseWriter, r *http.Request)
	bodies  chan map[string]any
}

func (a *answering) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(a.calls.Add(1)) - 1
	if r.Method != http.MethodPost || r.URL.Path != Path || r.Header.Get("Content-Type") != "application/json" {
		a.t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&body); err != nil {
		a.t.Errorf("body %s: %v", raw, err)
	}
	if a.bodies != nil {
		select {
		case a.bodies <- body:
		default:
		}
	}
	a.answers[min(n, len(a.answers)-1)](w, r)
}

func serve(t *testing.T, answers ...func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *answering) {
	a := &answering{t: t, answers: answers}
	s := httptest.NewServer(a)
	t.Cleanup(s.Close)
	return s, a
}

func answer(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func status(code int, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		http.Error(w, "core busy", code)
	}
}

// drop closes the connection without answering.
func drop(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// cut announces a long answer and closes the connection after a part.
func cut(w http.ResponseWriter, _ *http.Request) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"error_code\":0,")
	_ = buf.Flush()
	conn.Close()
}

func TestSendAccepted(t *testing.T) {
	s, a := serve(t, answer(`{"error_code":0,"error_msg":"OK","error_records":[`+
		`{"out_client_record_id":"b","acct_no":0,"record_error_code":1009,"record_error_msg":"account does not exist"}]}`))
	a.bodies = make(chan map[string]any, 1)
	c, _ := fastClient(t, s.URL)
	res, err := c.Send(context.Background(), Batch{ReceiptID: "batch-7", Records: recs("a", "b", "c")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 1 || res.Message != "OK" || len(res.Errors) != 1 {
		t.Fatalf("result %+v", res)
	}
	if e, refused := res.RecordError("b"); !refused || e.RecordErrorCode != CodeAccountNotFound || e.RecordErrorMsg != "account does not exist" {
		t.Errorf("b: %+v %v", e, refused)
	}
	for _, id := range []string{"a", "c", "zz"} {
		if _, refused := res.RecordError(id); refused {
			t.Errorf("%s refused", id)
		}
	}
	body := <-a.bodies
	if body["rest_call"] != RestCall || body["output_format"] != "json" || body["client_no"] != json.Number("1001") ||
		body["auth_key"] != testKey || body["client_receipt_id"] != "batch-7" {
		t.Errorf("body %v", body)
	}
	rec := body["usage_recs"].([]any)[0].(map[string]any)
	if rec["amt"] != json.Number("0.75") || rec["usage_units"] != json.Number("1.5") || rec["client_acct_id"] != "ACC-a" {
		t.Errorf("record %v", rec)
	}
}

func TestSendOutcomes(t *testing.T) {
	cases := []struct {
		name     string
		answers  []func(http.ResponseWriter, *http.Request)
		opts     []Option
		class    Class
		calls    int32
		contains string
	}{
		{"auth refused, not retried", []func(http.ResponseWriter, *http.Request){answer(`{"error_code":1004,"error_msg":"authentication error"}`)},
			nil, ClassRefused, 1, "1004 (authentication error)"},
		{"1010 refused", []func(http.ResponseWriter, *http.Request){answer(`{"error_code":1010,"error_msg":"missing required parameters"}`)},
			nil, ClassRefused, 1, "missing required parameters"},
		{"1001 refused by default", []func(http.ResponseWriter, *http.Request){answer(`{"error_code":1001,"error_msg":"unexpected error"}`), answer(ok)},
			nil, ClassRefused, 1, "1001"},
		{"1001 retried when told", []func(http.ResponseWriter, *http.Request){answer(`{"error_code":1001,"error_msg":"unexpected error"}`), answer(ok)},
			[]Option{WithRetryCodes(CodeUnexpected)}, ClassAccepted, 2, ""},
		{"5xx storm then recovery", []func(http.ResponseWriter, *http.Request){status(503), status(500), status(502), answer(ok)},
			nil, ClassAccepted, 4, ""},
		{"429 and 408 retried", []func(http.ResponseWriter, *http.Request){status(429), status(408), answer(ok)},
			nil, ClassAccepted, 3, ""},
		{"5xx to the end", []func(http.ResponseWriter, *http.Request){status(503)},
			[]Option{WithMaxAttempts(3)}, ClassUnavailable, 3, "after 3 attempt(s): HTTP 503"},
		{"dropped connection then answer", []func(http.ResponseWriter, *http.Request){drop, drop, answer(ok)},
			nil, ClassAccepted, 3, ""},
		{"answer cut off", []func(http.ResponseWriter, *http.Request){cut},
			[]Option{WithMaxAttempts(2)}, ClassUnavailable, 2, "answer cut off"},
		{"no retry with one attempt", []func(http.ResponseWriter, *http.Request){status(500), answer(ok)},
			[]Option{WithMaxAttempts(1)}, ClassUnavailable, 1, "after 1 attempt(s)"},
		{"404 is a bad answer", []func(http.ResponseWriter, *http.Request){status(404), answer(ok)},
			nil, ClassBadAnswer, 1, "HTTP 404"},
		{"401 is a bad answer", []func(http.ResponseWriter, *http.Request){status(401)},
			nil, ClassBadAnswer, 1, "401"},
		{"HTML is a bad answer", []func(http.ResponseWriter, *http.Request){answer(`<html>maintenance</html>`)},
			nil, ClassBadAnswer, 1, "not a JSON object"},
		{"no error_code", []func(http.ResponseWriter, *http.Request){answer(`{"status":"fine"}`)},
			nil, ClassBadAnswer, 1, "no error_code"},
		{"unknown record id", []func(http.ResponseWriter, *http.Request){answer(`{"error_code":0,"error_records":[{"out_client_record_id":"zz","record_error_code":1009}]}`)},
			nil, ClassBadAnswer, 1, `"zz", which the batch does not hold`},
		{"record without id", []func(http.ResponseWriter, *http.Request){answer(`{"error_code":0,"error_records":[{"record_error_code":1009}]}`)},
			nil, ClassBadAnswer, 1, `names client_record_id ""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, a := serve(t, c.answers...)
			cl, _ := fastClient(t, s.URL, c.opts...)
			var attempts []Attempt
			var mu sync.Mutex
			cl2, err := cl.With(WithObserver(func(at Attempt) { mu.Lock(); attempts = append(attempts, at); mu.Unlock() }))
			if err != nil {
				t.Fatal(err)
			}
			res, err := cl2.Send(context.Background(), Batch{Records: recs("a", "b")})
			if got := Classify(err); got != c.class {
				t.Fatalf("class %s (%v), want %s", got, err, c.class)
			}
			if a.calls.Load() != c.calls || len(attempts) != int(c.calls) {
				t.Errorf("%d calls, %d attempts observed; want %d", a.calls.Load(), len(attempts), c.calls)
			}
			for i, at := range attempts {
				if at.N != i+1 || at.Records != 2 || at.Retry != (i+1 < int(c.calls)) {
					t.Errorf("attempt %d: %+v", i, at)
				}
			}
			if c.class == ClassAccepted {
				if res == nil || res.Attempts != int(c.calls) {
					t.Errorf("result %+v", res)
				}
				return
			}
			if res != nil || !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error %v; want it to say %q", err, c.contains)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error shows the key: %v", err)
			}
			switch c.class {
			case ClassRefused:
				var re *RefusedError
				if !errors.As(err, &re) || re.Attempts != int(c.calls) || re.Code == 0 {
					t.Errorf("refused: %#v", err)
				}
			case ClassUnavailable:
				var ue *UnavailableError
				if !errors.As(err, &ue) || ue.Attempts != int(c.calls) {
					t.Errorf("unavailable: %#v", err)
				}
			case ClassBadAnswer:
				var be *BadAnswerError
				if !errors.As(err, &be) || be.Attempts != int(c.calls) {
					t.Errorf("bad answer: %#v", err)
				}
			}
		})
	}
}

// TestBackoffCeilingsDouble: retry n draws its wait from [0, base·2^(n-1)],
// capped at max, and a Retry-After longer than the draw wins (still
// capped).
func TestBackoffCeilingsDouble(t *testing.T) {
	s, _ := serve(t, status(503))
	c, ceilings := fastClient(t, s.URL, WithMaxAttempts(6))
	_, err := c.Send(context.Background(), Batch{Records: recs("a")})
	if Classify(err) != ClassUnavailable {
		t.Fatal(err)
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	if len(*ceilings) != len(want) {
		t.Fatalf("ceilings %v", *ceilings)
	}
	for i, w := range want {
		if (*ceilings)[i] != w {
			t.Errorf("ceiling %d = %s, want %s", i, (*ceilings)[i], w)
		}
	}
	c.jitter = func(time.Duration) time.Duration { return 0 }
	if got := c.wait(1, time.Second); got != 4*time.Millisecond {
		t.Errorf("Retry-After 1s with max 4ms: %s", got)
	}
	c.backoffMax = time.Hour
	if got := c.wait(1, 3*time.Second); got != 3*time.Second {
		t.Errorf("Retry-After 3s: %s", got)
	}
	if got := c.wait(200, 0); got != 0 {
		t.Errorf("wait after many attempts: %s", got)
	}
	for i := 0; i < 1000; i++ {
		if d := fullJitter(10 * time.Millisecond); d < 0 || d > 10*time.Millisecond {
			t.Fatalf("jitter %s", d)
		}
	}
	if retryAfter("7") != 7*time.Second || retryAfter("Wed, 21 Oct 2015 07:28:00 GMT") != 0 || retryAfter("-1") != 0 {
		t.Error("retryAfter")
	}
}

func TestRetryAfterIsRead(t *testing.T) {
	s, _ := serve(t, status(503, "Retry-After", "1"), answer(ok))
	c, _ := fastClient(t, s.URL)
	var waits []time.Duration
	c.observe = func(a Attempt) { waits = append(waits, a.Wait) }
	c.jitter = func(time.Duration) time.Duration { return 0 }
	if _, err := c.Send(context.Background(), Batch{Records: recs("a")}); err != nil {
		t.Fatal(err)
	}
	// max backoff is 4ms: the core's 1s is capped there.
	if len(waits) != 2 || waits[0] != 4*time.Millisecond {
		t.Errorf("waits %v", waits)
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	s, a := serve(t, slow, answer(ok))
	c, _ := fastClient(t, s.URL, WithTimeout(50*time.Millisecond))
	res, err := c.Send(context.Background(), Batch{Records: recs("a")})
	if err != nil || res.Attempts != 2 || a.calls.Load() != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	s2, _ := serve(t, slow)
	c2, _ := fastClient(t, s2.URL, WithTimeout(20*time.Millisecond), WithMaxAttempts(2))
	_, err = c2.Send(context.Background(), Batch{Records: recs("a")})
	if Classify(err) != ClassUnavailable || !strings.Contains(err.Error(), "no answer within 20ms") {
		t.Fatalf("%v", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := fastClient(t, "http://"+addr, WithMaxAttempts(2))
	_, err = c.Send(context.Background(), Batch{Records: recs("a")})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Attempts != 2 || ue.StatusCode != 0 {
		t.Fatalf("%v", err)
	}
}

func TestContextEndsTheCall(t *testing.T) {
	s, a := serve(t, status(503))
	c, _ := fastClient(t, s.URL, WithBackoff(time.Hour, time.Hour), WithMaxAttempts(5))
	c.jitter = func(ceiling time.Duration) time.Duration { return ceiling }
	ctx, cancel := context.WithCancel(context.Background())
	c.observe = func(at Attempt) {
		if at.Retry {
			cancel()
		}
	}
	_, err := c.Send(ctx, Batch{Records: recs("a")})
	if Classify(err) != ClassCanceled || !errors.Is(err, context.Canceled) || a.calls.Load() != 1 {
		t.Fatalf("%v after %d calls", err, a.calls.Load())
	}
	// Canceled while waiting for the answer.
	hold := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	s2, _ := serve(t, hold)
	c2, _ := fastClient(t, s2.URL)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	_, err = c2.Send(ctx2, Batch{Records: recs("a")})
	if Classify(err) != ClassCanceled || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
}

// TestRateLimit: with a burst of 1 and one call an hour, the second call
// waits for a token the context does not leave time for; the core sees
// one call.
func TestRateLimit(t *testing.T) {
	s, a := serve(t, answer(ok))
	c, _ := fastClient(t, s.URL, WithRateLimit(1.0/3600, 1))
	if _, err := c.Send(context.Background(), Batch{Records: recs("a")}); err != nil {
		t.Fatal(err)
	}
	// A copy shares the bucket.
	c2, err := c.With(WithMaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c2.Send(ctx, Batch{Records: recs("b")})
	if Classify(err) != ClassCanceled || a.calls.Load() != 1 {
		t.Fatalf("%v, %d calls", err, a.calls.Load())
	}
	// Without a limit, calls go straight through.
	c3, _ := c.With(WithRateLimit(0, 0))
	for i := 0; i < 5; i++ {
		if _, err := c3.Send(context.Background(), Batch{Records: recs("c")}); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 6 {
		t.Errorf("%d calls", a.calls.Load())
	}
}

func TestInvalidBatchIsNotSent(t *testing.T) {
	s, a := serve(t, answer(ok))
	c, _ := fastClient(t, s.URL)
	_, err := c.Send(context.Background(), Batch{Records: []UsageRec{{UsageUnits: "1"}}})
	if Classify(err) != ClassInvalid || a.calls.Load() != 0 {
		t.Fatalf("%v, %d calls", err, a.calls.Load())
	}
}

func TestNewChecksItsSettings(t *testing.T) {
	key := NewSecret("k")
	for _, c := range []struct {
		url  string
		no   int64
		key  Secret
		opts []Option
		want string
	}{
		{"ftp://x", 1, key, nil, "want http(s)"},
		{"http://", 1, key, nil, "want http(s)"},
		{"://", 1, key, nil, "core URL"},
		{"http://x", 0, key, nil, "client_no 0"},
		{"http://x", 1, Secret{}, nil, "auth_key: empty"},
		{"http://x", 1, key, []Option{WithMaxAttempts(0)}, "max attempts 0"},
		{"http://x", 1, key, []Option{WithTimeout(0)}, "timeout 0s"},
		{"http://x", 1, key, []Option{WithBackoff(time.Second, time.Millisecond)}, "backoff"},
		{"http://x", 1, key, []Option{WithRateLimit(5, 0)}, "burst 0"},
		{"http://x", 1, key, []Option{WithRateLimit(-1, 1)}, "rate limit"},
	} {
		_, err := New(c.url, c.no, c.key, c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%s, %d, %v): %v; want %q", c.url, c.no, c.opts, err, c.want)
		}
	}
	for in, want := range map[string]string{
		"http://core:8080":                      "http://core:8080" + Path,
		"http://core:8080/":                     "http://core:8080" + Path,
		"https://core.example/api/ws/other.php": "https://core.example/api/ws/other.php",
	} {
		c, err := New(in, 1, key)
		if err != nil || c.Endpoint() != want || c.ClientNo() != 1 {
			t.Errorf("New(%s): %v %v", in, c, err)
		}
	}
	c, _ := New("http://core", 1, NewSecret(testKey))
	if _, err := c.With(WithMaxAttempts(-1)); err == nil {
		t.Error("With(-1 attempts) passed")
	}
	for _, s := range []string{c.String(), fmtAll(c), fmtAll(*c)} {
		if strings.Contains(s, testKey) {
			t.Errorf("client prints its key: %s", s)
		}
	}
}

func fmtAll(v any) string {
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		b.WriteString(sprintf(verb, v))
	}
	return b.String()
}

// TestRetryLogsHideTheKey: what the client logs names the endpoint and the
// client, never the key.
func TestRetryLogsHideTheKey(t *testing.T) {
	s, _ := serve(t, status(503), answer(`{"error_code":1004,"error_msg":"authentication error"}`))
	var logs bytes.Buffer
	c, _ := fastClient(t, s.URL, WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	_, err := c.Send(context.Background(), Batch{Records: recs("a")})
	if Classify(err) != ClassRefused {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), "outcome=refused") || strings.Contains(logs.String(), testKey) {
		t.Errorf("logs: %s", logs.String())
	}
}

// TestConcurrentSends: one client, many goroutines (run with -race).
func TestConcurrentSends(t *testing.T) {
	s, a := serve(t, answer(ok))
	c, _ := fastClient(t, s.URL, WithRateLimit(1000, 10))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Send(context.Background(), Batch{Records: recs("a", "b")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if a.calls.Load() != 8 {
		t.Errorf("%d calls", a.calls.Load())
	}
}

func TestClassNames(t *testing.T) {
	want := map[Class]string{ClassAccepted: "accepted", ClassRefused: "refused", ClassUnavailable: "unavailable",
		ClassBadAnswer: "bad_answer", ClassInvalid: "invalid", ClassCanceled: "canceled", Class(99): "class(99)"}
	for c, w := range want {
		if c.String() != w {
			t.Errorf("%d: %s", int(c), c)
		}
	}
	if Classify(errors.New("other")) != ClassUnavailable || Classify(context.Canceled) != ClassCanceled {
		t.Error("Classify of foreign errors")
	}
}

func sprintf(format string, v any) string { return fmt.Sprintf(format, v) }
