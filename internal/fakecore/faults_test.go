package fakecore

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// admin sends a faults request and returns the status and body.
func admin(t *testing.T, s *Server, method, payload string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+"/fake/faults", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func setFaults(t *testing.T, s *Server, payload string) {
	t.Helper()
	if code, b := admin(t, s, http.MethodPut, payload); code != http.StatusOK {
		t.Fatalf("PUT faults %s: %d %s", payload, code, b)
	}
}

// rawPost posts without judging the answer: its status and body.
func rawPost(s *Server, c *http.Client, payload string) (int, []byte, error) {
	resp, err := c.Post(s.APIURL(), "application/json", strings.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestFaultRejectAccounts(t *testing.T) {
	s := start(t, Config{})
	setFaults(t, s, `{"reject_accounts":{"ACC-9":{},"ACC-8":{"code":14046,"msg":"plan instance does not belong to the account"}}}`)
	a, raw := post(t, s, body(rec("r1", "ACC-1", "VOICE", "1", "1.00"), rec("r9", "ACC-9", "VOICE", "1", "1.00"),
		rec("r8", "ACC-8", "VOICE", "1", "1.00"), rec("r9b", "ACC-9", "DATA", "2", "2.00")))
	if a.ErrorCode != 0 || len(a.ErrorRecords) != 3 {
		t.Fatalf("answer %s", raw)
	}
	want := map[string]int64{"r9": 1009, "r8": 14046, "r9b": 1009}
	for _, e := range a.ErrorRecords {
		if want[e.OutClientRecordID] != e.RecordErrorCode || e.RecordErrorMsg == "" {
			t.Errorf("error record %+v", e)
		}
	}
	if a.ErrorRecords[0].RecordErrorMsg != "account does not exist" || a.ErrorRecords[1].RecordErrorMsg != "plan instance does not belong to the account" {
		t.Errorf("messages %+v", a.ErrorRecords)
	}
	if got, _ := s.Totals(Filter{}); len(got) != 1 || got[0].Account != "ACC-1" {
		t.Errorf("stored %v", got)
	}
	// Lifted: the same records go through.
	if code, _ := admin(t, s, http.MethodDelete, ""); code != http.StatusOK {
		t.Fatal(code)
	}
	if a, _ := post(t, s, body(rec("r9", "ACC-9", "VOICE", "1", "1.00"))); a.ErrorCode != 0 || len(a.ErrorRecords) != 0 {
		t.Errorf("after the fault: %+v", a)
	}
	if st := s.Stats(); st.RecordsRejected != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestFaultHTTPErrorStorm: the next N calls get a 5xx and store nothing,
// then the core recovers; a fraction hits about that share of calls.
func TestFaultHTTPErrorStorm(t *testing.T) {
	s := start(t, Config{})
	setFaults(t, s, `{"http_error":{"next":3}}`)
	payload := body(rec("r1", "ACC-1", "VOICE", "1", "1.00"))
	for i := 0; i < 3; i++ {
		status, _, err := rawPost(s, client, payload)
		if err != nil || status != http.StatusServiceUnavailable {
			t.Fatalf("call %d: %v %v", i, status, err)
		}
		if i == 0 {
			var f Faults
			if getJSON(t, s.URL()+"/fake/faults", &f); f.HTTPError.Next != 2 {
				t.Errorf("faults left %+v", f)
			}
		}
	}
	if got, _ := s.Totals(Filter{}); len(got) != 0 {
		t.Fatalf("stored during the storm: %v", got)
	}
	if a, _ := post(t, s, payload); a.ErrorCode != 0 {
		t.Fatalf("recovery: %+v", a)
	}
	setFaults(t, s, `{"http_error":{"fraction":0.5,"status":500}}`)
	var failed int
	for i := 0; i < 100; i++ {
		status, _, err := rawPost(s, client, payload)
		if err != nil {
			t.Fatal(err)
		}
		switch status {
		case http.StatusInternalServerError:
			failed++
		case http.StatusOK:
		default:
			t.Fatalf("status %d", status)
		}
	}
	// Seeded: the same count on every run; about half.
	if failed < 30 || failed > 70 {
		t.Errorf("%d of 100 calls failed at fraction 0.5", failed)
	}
	if st := s.Stats(); st.HTTPErrors != int64(3+failed) || st.Calls != int64(104) {
		t.Errorf("stats %+v", st)
	}
}

// TestFaultHang: no answer and nothing stored; the caller's timeout ends
// it, and the next call is answered.
func TestFaultHang(t *testing.T) {
	s := start(t, Config{Faults: Faults{Hang: Trigger{Next: 1}}})
	impatient := &http.Client{Timeout: 100 * time.Millisecond}
	payload := body(rec("r1", "ACC-1", "VOICE", "1", "1.00"))
	_, _, err := rawPost(s, impatient, payload)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a timeout, got %v", err)
	}
	if len(s.Records(Filter{})) != 0 || s.Stats().Hung != 1 {
		t.Fatalf("after the hang: %v %+v", s.Records(Filter{}), s.Stats())
	}
	if a, _ := post(t, s, payload); a.ErrorCode != 0 || len(s.Records(Filter{})) != 1 {
		t.Fatalf("after: %+v", a)
	}
}

// TestFaultDropAfterStoring: the batch is stored, the connection closed
// unanswered; the resend replaces the records, so nothing is billed twice.
func TestFaultDropAfterStoring(t *testing.T) {
	s := start(t, Config{})
	setFaults(t, s, `{"drop":{"next":1}}`)
	payload := body(rec("r1", "ACC-1", "VOICE", "1.5", "1.50"), rec("r2", "ACC-1", "VOICE", "2.5", "2.50"))
	if status, b, err := rawPost(s, client, payload); err == nil {
		t.Fatalf("answered despite the drop: %d %s", status, b)
	}
	got, _ := s.Totals(Filter{})
	if len(got) != 1 || got[0].Units != "4.0" || got[0].Amount != "4.00" {
		t.Fatalf("stored before the drop: %v", got)
	}
	if a, _ := post(t, s, payload); a.ErrorCode != 0 {
		t.Fatal(a)
	}
	got2, _ := s.Totals(Filter{})
	if len(got2) != 1 || got2[0] != got[0] {
		t.Errorf("after the resend %v, want %v", got2, got)
	}
	if st := s.Stats(); st.Dropped != 1 || st.RecordsStored != 2 || st.RecordsReplaced != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestFaultSlow: the answer waits the delay after storing; a caller that
// gives up sooner leaves the batch stored.
func TestFaultSlow(t *testing.T) {
	s := start(t, Config{})
	setFaults(t, s, `{"slow":{"next":2,"delay":"300ms"}}`)
	payload := body(rec("r1", "ACC-1", "VOICE", "1", "1.00"))
	impatient := &http.Client{Timeout: 50 * time.Millisecond}
	if _, _, err := rawPost(s, impatient, payload); err == nil {
		t.Fatal("a slow answer came within the timeout")
	}
	if len(s.Records(Filter{})) != 1 {
		t.Fatal("a slow call did not store")
	}
	// A patient caller gets the answer.
	if a, _ := post(t, s, payload); a.ErrorCode != 0 {
		t.Fatal(a)
	}
	if st := s.Stats(); st.Slowed != 2 || st.Accepted != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultRefuse(t *testing.T) {
	s := start(t, Config{})
	setFaults(t, s, `{"refuse":{"next":1}}`)
	payload := body(rec("r1", "ACC-1", "VOICE", "1", "1.00"))
	a, raw := post(t, s, payload)
	if a.ErrorCode != 1001 || a.ErrorMsg != "unexpected error" || len(s.Records(Filter{})) != 0 {
		t.Fatalf("answer %s", raw)
	}
	setFaults(t, s, `{"refuse":{"next":1,"code":1004}}`)
	if a, _ := post(t, s, payload); a.ErrorCode != 1004 || a.ErrorMsg != "authentication error" {
		t.Fatalf("%+v", a)
	}
	if a, _ := post(t, s, payload); a.ErrorCode != 0 {
		t.Fatalf("%+v", a)
	}
	if st := s.Stats(); st.Refused != 2 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultsEndpoint(t *testing.T) {
	s := start(t, Config{Faults: Faults{Drop: Trigger{Fraction: 0.25}}})
	var f Faults
	getJSON(t, s.URL()+"/fake/faults", &f)
	if f.Drop.Fraction != 0.25 {
		t.Errorf("start faults %+v", f)
	}
	// PATCH changes the keys given and keeps the rest.
	code, b := admin(t, s, http.MethodPatch, `{"slow":{"delay":"1.5s","fraction":1}}`)
	if code != http.StatusOK {
		t.Fatal(code, b)
	}
	if err := json.Unmarshal([]byte(b), &f); err != nil || f.Drop.Fraction != 0.25 || f.Slow.Fraction != 1 || time.Duration(f.Slow.Delay) != 1500*time.Millisecond {
		t.Errorf("patched %s", b)
	}
	if !strings.Contains(b, `"delay": "1.5s"`) {
		t.Errorf("delay as text: %s", b)
	}
	// PUT replaces.
	code, b = admin(t, s, http.MethodPut, `{"hang":{"next":1}}`)
	f = Faults{}
	if code != http.StatusOK || json.Unmarshal([]byte(b), &f) != nil || f.Drop.Fraction != 0 || f.Hang.Next != 1 {
		t.Errorf("put %d %s", code, b)
	}
	for _, c := range []struct{ payload, want string }{
		{`{"dorp":{"next":1}}`, `unknown field \"dorp\"`},
		{`{"drop":{"nxt":1}}`, `unknown field \"nxt\"`},
		{`{"drop":{"fraction":2}}`, "drop.fraction 2"},
		{`{"hang":{"next":-1}}`, "hang.next -1"},
		{`{"http_error":{"status":302}}`, "http_error.status 302"},
		{`{"slow":{"delay":"soon"}}`, "soon"},
		{`{"slow":{"delay":5}}`, "a duration is text"},
		{`{} {}`, "more than one JSON value"},
		{`not json`, "faults:"},
	} {
		code, b := admin(t, s, http.MethodPut, c.payload)
		if code != http.StatusBadRequest || !strings.Contains(b, c.want) {
			t.Errorf("PUT %s: %d %s; want %q", c.payload, code, b, c.want)
		}
	}
	// A refused change leaves the faults as they were.
	getJSON(t, s.URL()+"/fake/faults", &f)
	if f.Hang.Next != 1 {
		t.Errorf("faults changed by a refused request: %+v", f)
	}
	if err := s.SetFaults(Faults{RejectAccounts: map[string]Rejection{"A": {Code: -1}}}); err == nil {
		t.Error("negative code accepted")
	}
}

// TestFractionsAreSeeded: the same seed gives the same faults.
func TestFractionsAreSeeded(t *testing.T) {
	pattern := func(seed uint64) string {
		c, err := New(Config{Credentials: []Credential{{1, "k"}}, Seed: seed, Faults: Faults{Drop: Trigger{Fraction: 0.3}}})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i := 0; i < 64; i++ {
			c.mu.Lock()
			p := c.faults.plan(c.rng)
			c.mu.Unlock()
			if p.drop {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	if a, b := pattern(7), pattern(7); a != b || !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Errorf("seed 7: %s vs %s", a, b)
	}
	if pattern(7) == pattern(8) {
		t.Error("seeds 7 and 8 give the same faults")
	}
}
