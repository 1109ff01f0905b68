// Command cloud is an example mediation plugin for a cloud provider's
// metering export. Each row has the columns event_id, account, service,
// bytes and timestamp, optionally region and resource_id. It becomes one
// record: record_id = event_id, account_id = account (or the row's
// account_id when the client's column mapping provides one), usage_type
// from the service table, quantity in gigabytes, usage_time = timestamp.
//
// Bytes to gigabytes: 1 GB = 1,000,000,000 bytes (SI, as cloud price lists
// use), rounded up to the next whole megabyte, so the quantity has exactly
// three decimals: 1 byte is 0.001, 1,000,000 bytes is 0.001, 1,000,001
// bytes is 0.002, 2,500,000,000 bytes is 2.500. Each record is rounded on
// its own; usage is never rounded down to nothing.
//
// Settings (the client's plugin.config block):
//
//	services:                  # service name -> usage type; required
//	  object-storage-egress: STORAGE_EGRESS_GB
//	  cdn: CDN_GB
//	free_services: [internal-backup]   # filtered with a reason; default none
//
// A service in neither list fails the record (MEDIATION_FAILED, field
// service), so a new service is noticed rather than billed wrongly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"vivace.dev/vivace/plugins/mediation"
)

// version is the plugin's own version, shown in the host's logs.
const version = "1.0.0"

func main() { mediation.Serve(newCloud()) }

type settings struct {
	Services     map[string]string `json:"services"`
	FreeServices []string          `json:"free_services"`

	free map[string]bool
}

// cloud implements mediation.Mediator; the settings are swapped whole.
type cloud struct{ cfg atomic.Pointer[settings] }

func newCloud() *cloud { return &cloud{} }

func (c *cloud) Describe(context.Context) (mediation.Info, error) {
	return mediation.Info{Name: "cloud", Version: version,
		Description: "metering export: bytes to GB rounded up per started MB, service to usage type"}, nil
}

func (c *cloud) Configure(_ context.Context, client string, raw json.RawMessage) error {
	var s settings
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("client %s: cloud settings: %w", client, err)
	}
	var errs []error
	if len(s.Services) == 0 {
		errs = append(errs, errors.New("services: at least one service must map to a usage type"))
	}
	for name, ut := range s.Services {
		if strings.TrimSpace(ut) == "" {
			errs = append(errs, fmt.Errorf("services.%s: empty usage type", name))
		}
	}
	s.free = make(map[string]bool, len(s.FreeServices))
	for _, name := range s.FreeServices {
		if _, dup := s.Services[name]; dup {
			errs = append(errs, fmt.Errorf("free_services: %s is also in services", name))
		}
		s.free[name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client %s: cloud settings: %w", client, err)
	}
	c.cfg.Store(&s)
	return nil
}

func (c *cloud) Mediate(_ context.Context, records []mediation.RawRecord) ([]mediation.Result, error) {
	s := c.cfg.Load()
	if s == nil {
		return nil, errors.New("not configured: the host sends the settings before any batch")
	}
	out := make([]mediation.Result, len(records))
	for i, r := range records {
		out[i] = s.mediate(r.Fields)
	}
	return out, nil
}

func (s *settings) mediate(f map[string]string) mediation.Result {
	account := strings.TrimSpace(f["account_id"])
	if account == "" {
		account = strings.TrimSpace(f["account"])
	}
	if account == "" {
		return missing("account")
	}
	for _, name := range []string{"event_id", "service", "bytes", "timestamp"} {
		if strings.TrimSpace(f[name]) == "" {
			return missing(name)
		}
	}
	service := strings.TrimSpace(f["service"])
	if s.free[service] {
		return mediation.Filter("free service " + service)
	}
	usageType, ok := s.Services[service]
	if !ok {
		return mediation.Fail("service", "service %q is not in the plugin's service table", service)
	}
	gb, err := bytesToGB(f["bytes"])
	if err != nil {
		return mediation.Result{Error: &mediation.RecordError{Code: "BAD_QUANTITY", Field: "bytes", Message: err.Error()}}
	}
	ts, err := parseTimestamp(f["timestamp"])
	if err != nil {
		return mediation.Result{Error: &mediation.RecordError{Code: "BAD_TIMESTAMP", Field: "timestamp", Message: err.Error()}}
	}
	rec := make(map[string]string, 9)
	rec["record_id"] = strings.TrimSpace(f["event_id"])
	rec["account_id"] = account
	rec["usage_type"] = usageType
	rec["quantity"] = gb
	rec["usage_time"] = ts
	rec["service"] = service
	rec["bytes"] = strings.TrimSpace(f["bytes"])
	if r := strings.TrimSpace(f["region"]); r != "" {
		rec["qualifier_1"] = r
	}
	if r := strings.TrimSpace(f["resource_id"]); r != "" {
		rec["qualifier_2"] = r
	}
	return mediation.Mediated(rec)
}

func missing(field string) mediation.Result {
	return mediation.Result{Error: &mediation.RecordError{Code: "MISSING_FIELD", Field: field,
		Message: fmt.Sprintf("required column %s is missing or empty", field)}}
}

// bytesToGB turns a whole number of bytes into gigabytes (10^9 bytes)
// rounded up to the started megabyte (10^6 bytes): three decimals.
func bytesToGB(v string) (string, error) {
	v = strings.TrimSpace(v)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return "", fmt.Errorf("bytes %q is not a whole non-negative number below 2^64", v)
	}
	mb := n / 1_000_000
	if n%1_000_000 != 0 {
		mb++
	}
	frac := strconv.FormatUint(1000+mb%1000, 10) // "1xyz": three digits with leading zeros
	return strconv.FormatUint(mb/1000, 10) + "." + frac[1:], nil
}

// parseTimestamp accepts RFC 3339 or Unix seconds and returns RFC 3339.
func parseTimestamp(v string) (string, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.Format(time.RFC3339Nano), nil
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec >= 0 {
		return time.Unix(sec, 0).UTC().Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("timestamp %q is neither RFC 3339 nor Unix seconds", v)
}
