package bulkapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
)

const (
	testKey = "K3y-0f-the-c0re-xyzzy"
	ok      = `{"error_code":0,"error_msg":"OK"}`
)

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret(testKey)
	req := Request{RestCall: RestCall, OutputFormat: OutputFormat, ClientNo: 7, AuthKey: s,
		UsageRecs: []UsageRec{{ClientRecordID: "r1", UsageUnits: "1"}}}
	type holder struct {
		Req    Request
		hidden Request
		Key    Secret
		key    Secret
		ptr    *Request
	}
	h := holder{Req: req, hidden: req, Key: s, key: s, ptr: &req}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, req), fmt.Sprintf(verb, &req), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outs = append(outs, s.String(), s.GoString(), req.String(), fmt.Sprint(s, req), fmt.Sprintln(s, req))
	var logs bytes.Buffer
	for _, l := range []*slog.Logger{slog.New(slog.NewTextHandler(&logs, nil)), slog.New(slog.NewJSONHandler(&logs, nil))} {
		l.Info("call", "req", req, "key", s, "holder", h, "ptr", &req)
	}
	outs = append(outs, logs.String())
	for _, v := range []any{s, h, []Secret{s}, map[string]Secret{"k": s}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	text, _ := s.MarshalText()
	outs = append(outs, string(text))
	wrapped := fmt.Errorf("sending %v: %w", req, errors.New("boom"))
	outs = append(outs, wrapped.Error())
	for i, o := range outs {
		if strings.Contains(o, testKey) || strings.Contains(o, fmt.Sprintf("%x", testKey)) {
			t.Errorf("output %d shows the key: %s", i, o)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", req), "[redacted]") || !strings.Contains(logs.String(), "[redacted]") {
		t.Errorf("no [redacted] marker: %+v / %s", req, logs.String())
	}
	// The wire form carries it, and reads back.
	if b, _ := json.Marshal(req); !bytes.Contains(b, []byte(`"auth_key":"[redacted]"`)) {
		t.Errorf("JSON of a Request: %s", b)
	}
	wire, err := req.Body()
	if err != nil || !bytes.Contains(wire, []byte(`"auth_key":"`+testKey+`"`)) {
		t.Fatalf("wire form %s, %v: want the key", wire, err)
	}
	var back Request
	if err := json.Unmarshal(wire, &back); err != nil || back.AuthKey.Reveal() != testKey || !back.AuthKey.Equal(testKey) || back.AuthKey.Equal("other") {
		t.Fatalf("read back: %v %v", back.AuthKey.Reveal() == testKey, err)
	}
	if !(Secret{}).IsZero() || (Secret{}).Reveal() != "" || s.IsZero() {
		t.Error("zero secret")
	}
}

// TestRequestWireForm pins the body to the core's definitions: the field
// names, numbers as JSON numbers with their exact text, empty optional
// fields left out.
func TestRequestWireForm(t *testing.T) {
	req := Request{RestCall: RestCall, OutputFormat: OutputFormat, ClientNo: 1001, AuthKey: NewSecret("k"),
		ClientReceiptID: "batch-1",
		UsageRecs: []UsageRec{{
			ClientAcctID: "ACC-1", UsageTypeCode: "VOICE", UsageUnits: "120.500", UsageDate: "2024-05-01 00:00:00",
			Amt: "12.30", ClientRecordID: "agg-1", Qualifier1: "q1", Qualifier2: "q2", Qualifier3: "q3", Qualifier4: "q4",
			Comments: "3 MURs",
		}, {AcctNo: 42, UsageType: 7, UsageUnits: "1", ClientRecordID: "agg-2"}}}
	got, err := req.Body()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rest_call":"bulk_record_usage_m","output_format":"json","client_no":1001,"usage_recs":[` +
		`{"usage_units":120.500,"usage_date":"2024-05-01 00:00:00","amt":12.30,"comments":"3 MURs","qualifier_1":"q1",` +
		`"qualifier_2":"q2","qualifier_3":"q3","qualifier_4":"q4","usage_type_code":"VOICE","client_record_id":"agg-1","client_acct_id":"ACC-1"},` +
		`{"acct_no":42,"usage_type":7,"usage_units":1,"client_record_id":"agg-2"}],"client_receipt_id":"batch-1","auth_key":"k"}`
	if string(got) != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestResponseReadsLiberally(t *testing.T) {
	for _, c := range []struct {
		in   string
		code Code
		recs int
	}{
		{`{"error_code":0,"error_msg":"OK"}`, 0, 0},
		{`{"error_code":"0","error_msg":"OK","error_records":null,"extra":{"x":1}}`, 0, 0},
		{`{"error_code":1004,"error_msg":"authentication error"}`, 1004, 0},
		{`{"error_code":0,"error_msg":"OK","error_records":[{"out_client_record_id":"a","acct_no":"12","record_error_code":"1009","record_error_msg":"account does not exist"}]}`, 0, 1},
	} {
		var r Response
		if err := json.Unmarshal([]byte(c.in), &r); err != nil || r.ErrorCode != c.code || len(r.ErrorRecords) != c.recs {
			t.Errorf("%s: %+v %v", c.in, r, err)
		}
	}
	var r Response
	if err := json.Unmarshal([]byte(`{"error_code":"x"}`), &r); err == nil {
		t.Error("error_code x read")
	}
	if CodeAuthentication.String() != "1004 (authentication error)" || Code(77).String() != "77" || Code(77).Meaning() != "" {
		t.Errorf("code strings: %s %s", CodeAuthentication, Code(77))
	}
}

func dec(t *testing.T, s string) *apd.Decimal {
	t.Helper()
	d, err := money.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestAmountAtTheCurrencysExponent: amt is a currency value with the
// currency's minor-unit decimals (exponents 0, 2 and 3), never rounded.
func TestAmountAtTheCurrencysExponent(t *testing.T) {
	for _, c := range []struct{ net, cur, want string }{
		// exponent 0
		{"1234", "JPY", "1234"}, {"1234.000", "JPY", "1234"}, {"0", "JPY", "0"}, {"1E+3", "JPY", "1000"},
		{"-15", "JPY", "-15"}, {"12.5", "JPY", ""}, {"0.1", "KRW", ""},
		// exponent 2
		{"12.3", "USD", "12.30"}, {"12.34", "USD", "12.34"}, {"12.340", "USD", "12.34"}, {"0", "USD", "0.00"},
		{"-0.00", "EUR", "0.00"}, {"5", "eur", "5.00"}, {"123456789012345678901234567.89", "USD", "123456789012345678901234567.89"},
		{"12.345", "USD", ""}, {"0.001", "USD", ""}, {"0.0001", "EUR", ""},
		// exponent 3
		{"1.5", "BHD", "1.500"}, {"1.234", "KWD", "1.234"}, {"0.001", "BHD", "0.001"}, {"7", "OMR", "7.000"},
		{"1.2345", "BHD", ""}, {"1.2340", "BHD", "1.234"},
	} {
		got, err := Amount(dec(t, c.net), c.cur)
		if c.want == "" {
			if err == nil || !errors.Is(err, ErrAmount) {
				t.Errorf("Amount(%s %s) = %s, %v; want an error", c.net, c.cur, got, err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("Amount(%s %s) = %s, %v; want %s", c.net, c.cur, got, err, c.want)
		}
	}
	// A sum of rounded amounts stays on the minor unit.
	var sum apd.Decimal
	for _, s := range []string{"0.10", "0.20", "1.05", "2.675"} {
		d := dec(t, s)
		r, err := money.Round(d, "USD")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := apd.BaseContext.Add(&sum, &sum, &r); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Amount(&sum, "USD"); err != nil || got != "4.03" {
		t.Errorf("sum: %s %v", got, err)
	}
	for _, c := range []struct {
		d   *apd.Decimal
		cur string
	}{{nil, "USD"}, {&apd.Decimal{Form: apd.NaN}, "USD"}, {&apd.Decimal{Form: apd.Infinite}, "USD"}, {apd.New(1, 0), "XAU"}, {apd.New(1, 0), ""}} {
		if _, err := Amount(c.d, c.cur); !errors.Is(err, ErrAmount) {
			t.Errorf("Amount(%v %q): %v", c.d, c.cur, err)
		}
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]string{"120.500": "120.500", "1E+3": "1000", "0.000001": "0.000001", "-0": "0", "7": "7", "1.5e-2": "0.015"} {
		if got, err := Units(dec(t, in)); err != nil || string(got) != want {
			t.Errorf("Units(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := Units(nil); !errors.Is(err, ErrAmount) {
		t.Error("Units(nil)")
	}
	if _, err := Units(&apd.Decimal{Form: apd.NaNSignaling}); !errors.Is(err, ErrAmount) {
		t.Error("Units(sNaN)")
	}
}

func TestDates(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	if got := FormatDate(time.Date(2024, 5, 1, 1, 30, 5, 999, paris)); got != "2024-04-30 23:30:05" {
		t.Errorf("FormatDate = %s", got)
	}
	for in, want := range map[string]time.Time{
		"2024-05-01 13:04:05": time.Date(2024, 5, 1, 13, 4, 5, 0, time.UTC),
		"2024-05-01":          time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		"2024-02-29 23:59:59": time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC),
	} {
		if got, err := ParseDate(in); err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%s) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "2024-05-01T13:04:05Z", "2024-5-1", "2024-05-01 25:00:00", "2023-02-29", "01/05/2024", "2024-05-01 13:04", "2024-05-01 13:04:05.123"} {
		if _, err := ParseDate(in); err == nil {
			t.Errorf("ParseDate(%q) passed", in)
		}
	}
}

func TestValidate(t *testing.T) {
	good := UsageRec{ClientAcctID: "A", UsageTypeCode: "T", UsageUnits: "1.5", UsageDate: "2024-05-01 00:00:00", Amt: "2.00", ClientRecordID: "r1"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good record: %v", err)
	}
	long := strings.Repeat("é", 51)
	for _, c := range []struct {
		name string
		mod  func(*UsageRec)
		want string
	}{
		{"no id", func(r *UsageRec) { r.ClientRecordID = "" }, "client_record_id: missing"},
		{"no account", func(r *UsageRec) { r.ClientAcctID = "" }, "names no account"},
		{"acct_no is enough", func(r *UsageRec) { r.ClientAcctID, r.AcctNo = "", 5 }, ""},
		{"no usage type", func(r *UsageRec) { r.UsageTypeCode = "" }, "usage_type_code: missing"},
		{"usage_type is enough", func(r *UsageRec) { r.UsageTypeCode, r.UsageType = "", 3 }, ""},
		{"no units", func(r *UsageRec) { r.UsageUnits = "" }, "usage_units: missing"},
		{"exponent units", func(r *UsageRec) { r.UsageUnits = "1e3" }, "usage_units: \"1e3\" is not a plain decimal"},
		{"bad amt", func(r *UsageRec) { r.Amt = "1." }, "amt: \"1.\""},
		{"plus amt", func(r *UsageRec) { r.Amt = "+1" }, "amt: \"+1\""},
		{"bad rate", func(r *UsageRec) { r.Rate = "abc" }, "rate:"},
		{"bad date", func(r *UsageRec) { r.UsageDate = "2024-05-01T00:00:00Z" }, "usage_date"},
		{"long id", func(r *UsageRec) { r.ClientRecordID = long }, "client_record_id: 51 characters, more than 50"},
		{"long account", func(r *UsageRec) { r.ClientAcctID = long }, "client_acct_id: 51 characters"},
		{"long type", func(r *UsageRec) { r.UsageTypeCode = strings.Repeat("x", 31) }, "usage_type_code: 31 characters"},
		{"long qualifier", func(r *UsageRec) { r.Qualifier3 = strings.Repeat("x", 301) }, "qualifier_3: 301"},
		{"exclude", func(r *UsageRec) { r.ExcludeFromBilling = "yes" }, "exclude_from_billing"},
	} {
		r := good
		c.mod(&r)
		err := r.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
	}
	b := Batch{ReceiptID: strings.Repeat("b", 51), Records: []UsageRec{good, good, {ClientRecordID: "x"}}}
	err := b.Validate()
	var ie *InvalidBatchError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidBatch) || len(ie.Problems) != 3 {
		t.Fatalf("batch: %v", err)
	}
	for _, want := range []string{"client_receipt_id", `usage_recs[1]: client_record_id "r1" also in usage_recs[0]`, "usage_recs[2]: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("batch error %q lacks %q", err, want)
		}
	}
	if err := (Batch{}).Validate(); err == nil || !strings.Contains(err.Error(), "no record") {
		t.Errorf("empty batch: %v", err)
	}
}

// FuzzDecodeAnswer: whatever the core answers, reading it returns an
// answer or an error, never a panic.
func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{ok, `{"error_code":"1004"}`, `{"error_code":0,"error_records":[{"out_client_record_id":"a","record_error_code":"x"}]}`, `[]`, `null`, `{"error_code":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		if err := decodeAnswer(b, &r); err == nil && !json.Valid(b) {
			t.Errorf("invalid JSON %q read as %+v", b, r)
		}
	})
}
