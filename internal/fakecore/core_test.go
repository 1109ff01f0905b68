package fakecore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	clientNo = 1001
	key      = "fake-core-test-key"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Credentials == nil {
		cfg.Credentials = []Credential{{ClientNo: clientNo, AuthKey: key}, {ClientNo: 2002, AuthKey: "other"}}
	}
	s, err := Start("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// body is a bulk call for clientNo with the records given as JSON objects.
func body(recs ...string) string {
	return `{"rest_call":"bulk_record_usage_m","output_format":"json","client_no":1001,"auth_key":"` + key +
		`","usage_recs":[` + strings.Join(recs, ",") + `]}`
}

func rec(id, acct, typ, units, amt string) string {
	s := fmt.Sprintf(`{"client_record_id":%q,"client_acct_id":%q,"usage_type_code":%q,"usage_units":%s,"usage_date":"2024-05-01 00:00:00"`, id, acct, typ, units)
	if amt != "" {
		s += `,"amt":` + amt
	}
	return s + `}`
}

type answerT struct {
	ErrorCode    int64  `json:"error_code"`
	ErrorMsg     string `json:"error_msg"`
	ErrorRecords []struct {
		OutClientRecordID string      `json:"out_client_record_id"`
		AcctNo            json.Number `json:"acct_no"`
		RecordErrorCode   int64       `json:"record_error_code"`
		RecordErrorMsg    string      `json:"record_error_msg"`
	} `json:"error_records"`
}

var client = &http.Client{Timeout: 10 * time.Second}

// post sends a body as the core API's clients do and reads the answer.
func post(t *testing.T, s *Server, payload string) (answerT, string) {
	t.Helper()
	resp, err := client.Post(s.APIURL(), "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HTTP %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var a answerT
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	return a, string(raw)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func totals(t *testing.T, s *Server, query string) []Total {
	t.Helper()
	var out struct{ Totals []Total }
	if code := getJSON(t, s.URL()+"/fake/totals"+query, &out); code != http.StatusOK {
		t.Fatalf("totals: HTTP %d", code)
	}
	return out.Totals
}

func TestHappyPathTotalsAndResend(t *testing.T) {
	s := start(t, Config{})
	call := body(rec("r1", "ACC-1", "VOICE", "1.5", "0.75"), rec("r2", "ACC-1", "VOICE", "2.000", "1.25"),
		rec("r3", "ACC-1", "DATA", "1024", "0.001"), rec("r4", "ACC-2", "VOICE", "3", ""))
	a, raw := post(t, s, call)
	if raw != `{"error_code":0,"error_msg":"OK"}` {
		t.Fatalf("answer %s", raw)
	}
	want := []Total{
		{ClientNo: clientNo, Account: "ACC-1", UsageType: "DATA", Records: 1, Units: "1024", Amount: "0.001"},
		{ClientNo: clientNo, Account: "ACC-1", UsageType: "VOICE", Records: 2, Units: "3.500", Amount: "2.00"},
		{ClientNo: clientNo, Account: "ACC-2", UsageType: "VOICE", Records: 1, Units: "3", Amount: "0", WithoutAmt: 1},
	}
	check := func(got []Total) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("totals\n got %v\nwant %v", got, want)
		}
	}
	check(totals(t, s, ""))
	// A resend of the same client_record_ids replaces, never adds.
	a, _ = post(t, s, call)
	if a.ErrorCode != 0 {
		t.Fatal(a)
	}
	check(totals(t, s, ""))
	// A changed resend replaces the old values.
	post(t, s, body(rec("r4", "ACC-2", "VOICE", "4", "9.99")))
	want[2] = Total{ClientNo: clientNo, Account: "ACC-2", UsageType: "VOICE", Records: 1, Units: "4", Amount: "9.99"}
	check(totals(t, s, ""))
	if got := totals(t, s, "?account=ACC-2&client_no=1001"); len(got) != 1 || got[0].Units != "4" {
		t.Errorf("filtered totals %v", got)
	}
	if got := totals(t, s, "?client_no=2002"); len(got) != 0 {
		t.Errorf("other client's totals %v", got)
	}
	var recs struct {
		Count   int
		Records []Record
	}
	getJSON(t, s.URL()+"/fake/records?client_record_id=r4", &recs)
	if recs.Count != 1 || recs.Records[0].Received != 3 || recs.Records[0].Amt != "9.99" || recs.Records[0].AccountField != "client_acct_id" ||
		!strings.Contains(strings.Join(strings.Fields(string(recs.Records[0].Raw)), ""), `"amt":9.99`) || recs.Records[0].UsageDate != "2024-05-01 00:00:00" {
		t.Errorf("record r4 %+v", recs)
	}
	st := s.Stats()
	if st.Calls != 3 || st.Accepted != 3 || st.RecordsReceived != 9 || st.RecordsStored != 4 || st.RecordsReplaced != 5 {
		t.Errorf("stats %+v", st)
	}
	// Reset forgets.
	resp, err := client.Post(s.URL()+"/fake/reset", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(resp, err)
	}
	resp.Body.Close()
	if got := totals(t, s, ""); len(got) != 0 || s.Stats().Calls != 0 {
		t.Errorf("after reset %v %+v", got, s.Stats())
	}
}

// TestWholeCallRefusals: the call-level checks and their codes; nothing
// of a refused call is stored.
func TestWholeCallRefusals(t *testing.T) {
	s := start(t, Config{})
	r := rec("r1", "ACC-1", "VOICE", "1", "1.00")
	for _, c := range []struct {
		name, body string
		code       int64
		msg        string
	}{
		{"not JSON", `{"rest_call":`, 1001, "unexpected error: the body is not a JSON object"},
		{"an array", `[1]`, 1001, "not a JSON object"},
		{"no rest_call", `{"client_no":1001,"auth_key":"` + key + `","usage_recs":[` + r + `]}`, 1010, "missing required parameters: rest_call"},
		{"another call", `{"rest_call":"record_usage_m","client_no":1001,"auth_key":"` + key + `","usage_recs":[` + r + `]}`, 1001, `rest_call "record_usage_m" is not served`},
		{"xml", `{"rest_call":"bulk_record_usage_m","output_format":"xml","client_no":1001,"auth_key":"` + key + `","usage_recs":[` + r + `]}`, 1016, "output_format must be json"},
		{"no client_no", `{"rest_call":"bulk_record_usage_m","auth_key":"` + key + `","usage_recs":[` + r + `]}`, 1010, "client_no"},
		{"client_no not a long", `{"rest_call":"bulk_record_usage_m","client_no":"10x","auth_key":"` + key + `","usage_recs":[` + r + `]}`, 1016, "client_no is not a valid long"},
		{"client_no fraction", `{"rest_call":"bulk_record_usage_m","client_no":1001.5,"auth_key":"` + key + `","usage_recs":[` + r + `]}`, 1016, "not a valid long"},
		{"wrong key", strings.Replace(body(r), key, "guess", 1), 1004, "authentication error"},
		{"no key", strings.Replace(body(r), `"auth_key":"`+key+`",`, "", 1), 1004, "authentication error"},
		{"other client's key", strings.Replace(body(r), key, "other", 1), 1004, "authentication error"},
		{"unknown client", strings.Replace(body(r), "1001", "3003", 1), 1004, "authentication error"},
		{"no usage_recs", `{"rest_call":"bulk_record_usage_m","client_no":1001,"auth_key":"` + key + `"}`, 1010, "usage_recs"},
		{"usage_recs not an array", `{"rest_call":"bulk_record_usage_m","client_no":1001,"auth_key":"` + key + `","usage_recs":{}}`, 1016, "usage_recs is not an array"},
		{"usage_recs empty", body(), 1010, "usage_recs is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, raw := post(t, s, c.body)
			if a.ErrorCode != c.code || !strings.Contains(a.ErrorMsg, c.msg) || len(a.ErrorRecords) != 0 {
				t.Errorf("answer %s; want %d %q", raw, c.code, c.msg)
			}
			if strings.Contains(raw, key) {
				t.Errorf("answer shows the key: %s", raw)
			}
		})
	}
	if got := totals(t, s, ""); len(got) != 0 {
		t.Errorf("refused calls stored %v", got)
	}
	// The client_no may come as a string holding a long.
	a, _ := post(t, s, strings.Replace(body(r), `"client_no":1001`, `"client_no":"1001"`, 1))
	if a.ErrorCode != 0 {
		t.Errorf("client_no as a string: %+v", a)
	}
}

// TestRecordRefusals: per-record checks and codes; the other records of
// the call are stored.
func TestRecordRefusals(t *testing.T) {
	s := start(t, Config{Accounts: []string{"ACC-1", "42", "user-1"}})
	good := rec("ok", "ACC-1", "VOICE", "1", "1.00")
	for _, c := range []struct {
		name, rec string
		code      int64
		msg       string
	}{
		{"no usage_units", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE"}`, 1010, "missing required parameters: usage_units"},
		{"null usage_units", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":null}`, 1010, "usage_units"},
		{"no account", `{"client_record_id":"x","usage_type_code":"VOICE","usage_units":1}`, 1010, "one of client_acct_id, acct_no"},
		{"no usage type", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_units":1}`, 1010, "usage_type or usage_type_code"},
		{"usage_units text", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":"lots"}`, 1016, "usage_units is not a number"},
		{"acct_no not a long", `{"client_record_id":"x","acct_no":"4x2","usage_type_code":"VOICE","usage_units":1}`, 1016, "acct_no is not a valid long"},
		{"usage_type not a long", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type":"voice","usage_units":1}`, 1016, "usage_type is not a valid long"},
		{"amt text", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":1,"amt":"free"}`, 1016, "amt is not a number"},
		{"rate object", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":1,"rate":{}}`, 1016, "rate is not a number"},
		{"qualifier object", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":1,"qualifier_2":{}}`, 1016, "qualifier_2 is not a string"},
		{"not an object", `17`, 1016, "not an object"},
		{"ISO date", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":1,"usage_date":"2024-05-01T00:00:00Z"}`, 1024, "invalid date format"},
		{"impossible date", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":1,"usage_date":"2024-02-30 00:00:00"}`, 1024, "invalid date format"},
		{"fractional seconds", `{"client_record_id":"x","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":1,"usage_date":"2024-05-01 00:00:00.5"}`, 1024, "invalid date format"},
		{"unknown account", rec("x", "ACC-404", "VOICE", "1", "1.00"), 1009, `account does not exist: client_acct_id "ACC-404"`},
		{"unknown acct_no", `{"client_record_id":"x","acct_no":77,"usage_type_code":"VOICE","usage_units":1}`, 1009, `acct_no "77"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, raw := post(t, s, body(good, c.rec))
			if a.ErrorCode != 0 || len(a.ErrorRecords) != 1 {
				t.Fatalf("answer %s", raw)
			}
			e := a.ErrorRecords[0]
			if e.OutClientRecordID != "x" && c.name != "not an object" || e.RecordErrorCode != c.code || !strings.Contains(e.RecordErrorMsg, c.msg) {
				t.Errorf("error record %+v; want %d %q", e, c.code, c.msg)
			}
			if c.name == "unknown acct_no" && e.AcctNo != "77" {
				t.Errorf("acct_no in the error record: %q", e.AcctNo)
			}
		})
	}
	got, _ := s.Totals(Filter{})
	if len(got) != 1 || got[0].Records != 1 || got[0].Account != "ACC-1" {
		t.Errorf("the good record of each call: %v", got)
	}
	// Accepted forms: acct_no, userid, a date without time, numbers as
	// strings, usage_type by number.
	a, raw := post(t, s, body(
		`{"client_record_id":"a1","acct_no":42,"usage_type":7,"usage_units":"2.5","amt":"1.10"}`,
		`{"client_record_id":"a2","userid":"user-1","usage_type_code":"SMS","usage_units":1,"usage_date":"2024-05-01","unknown_field":[1,2]}`))
	if a.ErrorCode != 0 || len(a.ErrorRecords) != 0 {
		t.Fatalf("answer %s", raw)
	}
	recs := s.Records(Filter{ClientRecordID: "a2"})
	if len(recs) != 1 || recs[0].UsageDate != "2024-05-01 00:00:00" || recs[0].AccountField != "userid" || !strings.Contains(string(recs[0].Raw), "unknown_field") {
		t.Errorf("a2 %+v", recs)
	}
	if recs := s.Records(Filter{ClientRecordID: "a1"}); len(recs) != 1 || recs[0].Account != "42" || recs[0].UsageType != "7" || recs[0].Amt != "1.10" {
		t.Errorf("a1 %+v", recs)
	}
}

func TestHTTPLevel(t *testing.T) {
	s := start(t, Config{})
	resp, err := client.Get(s.APIURL())
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	resp, err = client.Post(s.APIURL(), "application/x-www-form-urlencoded", strings.NewReader(body(rec("r", "A", "T", "1", ""))))
	if err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form body: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// A charset parameter is fine.
	resp, err = client.Post(s.APIURL(), "application/json; charset=utf-8", strings.NewReader(body(rec("r", "A", "T", "1", ""))))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("charset: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	resp, err = client.Get(s.URL() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %v", err)
	}
	resp.Body.Close()
	var e map[string]string
	if code := getJSON(t, s.URL()+"/fake/totals?client_no=x", &e); code != http.StatusBadRequest || !strings.Contains(e["error"], "client_no") {
		t.Errorf("bad filter: %d %v", code, e)
	}
	if code := getJSON(t, s.URL()+"/fake/records?acount=x", &e); code != http.StatusBadRequest || !strings.Contains(e["error"], `"acount"`) {
		t.Errorf("misspelt filter: %d %v", code, e)
	}
}

func TestConfigIsChecked(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no credentials"},
		{Config{Credentials: []Credential{{ClientNo: 0, AuthKey: "k"}}}, "client_no 0"},
		{Config{Credentials: []Credential{{ClientNo: 1}}}, "empty auth_key"},
		{Config{Credentials: []Credential{{1, "a"}, {1, "b"}}}, "given twice"},
		{Config{Credentials: []Credential{{1, "a"}}, Faults: Faults{Drop: Trigger{Fraction: 1.5}}}, "drop.fraction 1.5"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v; want %q", c.cfg, err, c.want)
		}
	}
	if _, err := Start("256.0.0.1:1", Config{Credentials: []Credential{{1, "a"}}}); err == nil {
		t.Error("Start on a bad address")
	}
}

// TestManyCallsAtOnce: concurrent calls and reports (run with -race).
func TestManyCallsAtOnce(t *testing.T) {
	s := start(t, Config{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				var rs []string
				for j := 0; j < 10; j++ {
					rs = append(rs, rec(fmt.Sprintf("g%d-%d-%d", g, i, j), fmt.Sprintf("ACC-%d", j%3), "VOICE", "0.1", "0.01"))
				}
				resp, err := client.Post(s.APIURL(), "application/json", strings.NewReader(body(rs...)))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if _, err := s.Totals(Filter{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, _ := s.Totals(Filter{})
	var n int
	for _, tot := range got {
		n += tot.Records
	}
	if n != 800 || len(got) != 3 || got[0].Records != 320 || got[0].Units != "32.0" || got[0].Amount != "3.20" {
		t.Errorf("totals %v (%d records)", got, n)
	}
}

func TestShutdownReleasesHungCalls(t *testing.T) {
	s, err := Start("", Config{Credentials: []Credential{{clientNo, key}}, Faults: Faults{Hang: Trigger{Fraction: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Post(s.APIURL(), "application/json", strings.NewReader(body(rec("r", "A", "T", "1", ""))))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for s.Stats().Hung == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("the hung call got an answer")
	}
	if len(s.Records(Filter{})) != 0 {
		t.Error("a hung call stored records")
	}
}

// FuzzCall: any body gets an answer with a known code, never a panic,
// and refused calls store nothing.
func FuzzCall(f *testing.F) {
	f.Add([]byte(body(rec("r1", "A", "T", "1.5", "0.10"))))
	f.Add([]byte(body(`{"client_record_id":"x","acct_no":"1e3","usage_type":1.5,"usage_units":"NaN","usage_date":"2024-13-01"}`)))
	f.Add([]byte(`{"rest_call":"bulk_record_usage_m","client_no":1001,"auth_key":"` + key + `","usage_recs":[null,[],"",{"usage_units":1e999}]}`))
	f.Add([]byte(`{}`))
	core, err := New(Config{Credentials: []Credential{{clientNo, key}}})
	if err != nil {
		f.Fatal(err)
	}
	known := map[int64]bool{0: true, 1001: true, 1004: true, 1009: true, 1010: true, 1016: true, 1024: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		before := len(core.Records(Filter{}))
		a := core.process(1, b, nil)
		if !known[a.ErrorCode] {
			t.Errorf("code %d for %q", a.ErrorCode, b)
		}
		for _, e := range a.ErrorRecords {
			if !known[e.RecordErrorCode] || e.RecordErrorCode == 0 {
				t.Errorf("record code %d for %q", e.RecordErrorCode, b)
			}
		}
		if a.ErrorCode != 0 && len(core.Records(Filter{})) != before {
			t.Errorf("refused call %q stored records", b)
		}
		if _, err := core.Totals(Filter{}); err != nil {
			t.Errorf("totals after %q: %v", b, err)
		}
	})
}
