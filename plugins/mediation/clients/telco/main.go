// Command telco is an example mediation plugin for a mobile operator's call
// detail records (CDRs). Each CDR row has the columns call_id, msisdn,
// duration_sec, start_time and roaming, optionally destination and
// roaming_country. It becomes:
//
//   - one airtime record: record_id = call_id, account_id = msisdn (or the
//     row's account_id when the client's column mapping provides one),
//     usage_type = the configured airtime type, quantity = minutes, counted
//     per started minute (61 s is 2 minutes, 0 s is 0 minutes),
//     usage_time = start_time;
//   - for a roaming call, a second record for the roaming surcharge:
//     record_id = call_id + "-roaming", the roaming usage type, the same
//     minutes;
//   - nothing for a test call (an msisdn starting with a configured test
//     prefix): the row is filtered with the reason.
//
// A call that vivace_correlate joined from partial records but sent on
// incomplete, after its window, carries correlation=incomplete; that field
// is kept on every record of the call (an attribute of its MURs), so that
// the incomplete call can be found later.
//
// Settings (the client's plugin.config block):
//
//	airtime_usage_type: VOICE            # default VOICE
//	roaming_usage_type: VOICE_ROAMING    # default VOICE_ROAMING
//	test_msisdn_prefixes: ["4479000"]    # default none
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"vivace.dev/vivace/plugins/mediation"
)

// version is the plugin's own version, shown in the host's logs.
const version = "1.0.0"

func main() { mediation.Serve(newTelco()) }

// settings are the plugin's config block.
type settings struct {
	AirtimeUsageType   string   `json:"airtime_usage_type"`
	RoamingUsageType   string   `json:"roaming_usage_type"`
	TestMSISDNPrefixes []string `json:"test_msisdn_prefixes"`
}

func defaultSettings() settings {
	return settings{AirtimeUsageType: "VOICE", RoamingUsageType: "VOICE_ROAMING"}
}

// telco implements mediation.Mediator. Mediate may run on several
// goroutines; the settings are swapped whole.
type telco struct{ cfg atomic.Pointer[settings] }

func newTelco() *telco {
	t := &telco{}
	s := defaultSettings()
	t.cfg.Store(&s)
	return t
}

func (t *telco) Describe(context.Context) (mediation.Info, error) {
	return mediation.Info{Name: "telco", Version: version,
		Description: "call detail records: minutes per started minute, roaming split, test calls filtered"}, nil
}

func (t *telco) Configure(_ context.Context, client string, raw json.RawMessage) error {
	s := defaultSettings()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("client %s: telco settings: %w", client, err)
	}
	var errs []error
	if strings.TrimSpace(s.AirtimeUsageType) == "" {
		errs = append(errs, errors.New("airtime_usage_type: empty"))
	}
	if strings.TrimSpace(s.RoamingUsageType) == "" {
		errs = append(errs, errors.New("roaming_usage_type: empty"))
	}
	for i, p := range s.TestMSISDNPrefixes {
		if p == "" {
			errs = append(errs, fmt.Errorf("test_msisdn_prefixes[%d]: empty (it would filter every call)", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client %s: telco settings: %w", client, err)
	}
	t.cfg.Store(&s)
	return nil
}

func (t *telco) Mediate(_ context.Context, records []mediation.RawRecord) ([]mediation.Result, error) {
	s := t.cfg.Load()
	out := make([]mediation.Result, len(records))
	for i, r := range records {
		out[i] = s.mediate(r.Fields)
	}
	return out, nil
}

// mediate handles one CDR.
func (s *settings) mediate(f map[string]string) mediation.Result {
	for _, name := range []string{"call_id", "msisdn", "duration_sec", "start_time"} {
		if strings.TrimSpace(f[name]) == "" {
			return missing(name)
		}
	}
	msisdn := strings.TrimSpace(f["msisdn"])
	for _, p := range s.TestMSISDNPrefixes {
		if strings.HasPrefix(msisdn, p) {
			return mediation.Filter(fmt.Sprintf("test call: msisdn %s has test prefix %s", msisdn, p))
		}
	}
	minutes, err := startedMinutes(f["duration_sec"])
	if err != nil {
		return mediation.Result{Error: &mediation.RecordError{Code: "BAD_QUANTITY", Field: "duration_sec", Message: err.Error()}}
	}
	start, err := parseStart(f["start_time"])
	if err != nil {
		return mediation.Result{Error: &mediation.RecordError{Code: "BAD_TIMESTAMP", Field: "start_time", Message: err.Error()}}
	}
	roaming, err := parseFlag(f["roaming"])
	if err != nil {
		return mediation.Fail("roaming", "%v", err)
	}
	account := strings.TrimSpace(f["account_id"])
	if account == "" {
		account = msisdn
	}
	callID := strings.TrimSpace(f["call_id"])
	airtime := map[string]string{
		"record_id":    callID,
		"account_id":   account,
		"usage_type":   s.AirtimeUsageType,
		"quantity":     strconv.FormatInt(minutes, 10),
		"usage_time":   start,
		"qualifier_1":  "airtime",
		"msisdn":       msisdn,
		"duration_sec": strings.TrimSpace(f["duration_sec"]),
	}
	if d := strings.TrimSpace(f["destination"]); d != "" {
		airtime["qualifier_2"] = d
	}
	if c := strings.TrimSpace(f["correlation"]); c != "" {
		airtime["correlation"] = c
	}
	if !roaming {
		return mediation.Mediated(airtime)
	}
	surcharge := make(map[string]string, len(airtime)+1)
	for k, v := range airtime {
		surcharge[k] = v
	}
	surcharge["record_id"] = callID + "-roaming"
	surcharge["usage_type"] = s.RoamingUsageType
	surcharge["qualifier_1"] = "roaming"
	if c := strings.TrimSpace(f["roaming_country"]); c != "" {
		surcharge["qualifier_3"] = c
	}
	return mediation.Mediated(airtime, surcharge)
}

func missing(field string) mediation.Result {
	return mediation.Result{Error: &mediation.RecordError{Code: "MISSING_FIELD", Field: field,
		Message: fmt.Sprintf("required CDR column %s is missing or empty", field)}}
}

// startedMinutes converts a duration in seconds (a non-negative whole or
// decimal number) to minutes, counting every started minute: 0 s is 0,
// 1 s to 60 s is 1, 60.5 s is 2.
func startedMinutes(sec string) (int64, error) {
	sec = strings.TrimSpace(sec)
	whole, frac, hasFrac := strings.Cut(sec, ".")
	if whole == "" || strings.TrimLeft(whole, "0123456789") != "" ||
		(hasFrac && (frac == "" || strings.TrimLeft(frac, "0123456789") != "")) {
		return 0, fmt.Errorf("duration %q is not a non-negative number of seconds", sec)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64-59 {
		return 0, fmt.Errorf("duration %q is out of range", sec)
	}
	if strings.Trim(frac, "0") != "" {
		// w < s < w+1: the started minute of s is the one after w's whole minutes.
		return w/60 + 1, nil
	}
	return (w + 59) / 60, nil
}

// parseStart accepts RFC 3339 or "2006-01-02 15:04:05" in UTC, as switches
// commonly write it, and returns RFC 3339.
func parseStart(v string) (string, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.Format(time.RFC3339Nano), nil
	}
	if t, err := time.ParseInLocation(time.DateTime, v, time.UTC); err == nil {
		return t.Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("start time %q is neither RFC 3339 nor yyyy-mm-dd hh:mm:ss (UTC)", v)
}

// parseFlag reads the roaming column; empty means not roaming.
func parseFlag(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "n", "no", "false", "f":
		return false, nil
	case "1", "y", "yes", "true", "t":
		return true, nil
	}
	return false, fmt.Errorf("roaming flag %q is not one of true/false, yes/no, y/n, 1/0", v)
}
