// Package corelink is the MUR sync's link to the core billing system: it
// implements mursync.Core over the bulk usage API client
// (internal/bulkapi), with each client's endpoint and credentials taken
// from the client settings (internal/clientcfg, the client's core block)
// and, for what those leave out, from the process's defaults. It keeps
// one API client per Vivace client, so each client's calls share one
// rate limit, and rebuilds it when the settings change.
package corelink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/bulkapi"
	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/money"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
)

// Environment variables of the defaults.
const (
	EnvURL      = "VIVACE_CORE_URL"
	EnvClientNo = "VIVACE_CORE_CLIENT_NO"
	EnvAuthKey  = "VIVACE_CORE_AUTH_KEY"
)

// Defaults are the endpoint and credentials of a client whose settings
// do not give their own.
type Defaults struct {
	URL      string
	ClientNo int64
	AuthKey  bulkapi.Secret
}

// ParseClientNo reads a client_no ("" is 0: not set).
func ParseClientNo(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("client_no %q: must be a positive whole number", s)
	}
	return n, nil
}

// Link implements mursync.Core.
type Link struct {
	Defaults Defaults
	// Clients holds the client settings; nil means none (the defaults
	// for everyone).
	Clients *clientcfg.Watched
	// Getenv reads the variables that core.auth_key_env names; nil means
	// os.Getenv.
	Getenv func(string) string
	// Observe, when set, is told of every attempt of every call.
	Observe func(client string, a bulkapi.Attempt)
	Logger  *slog.Logger
	// HTTPClient, when set, makes the calls (tests); otherwise one client
	// with keep-alive connections serves every endpoint.
	HTTPClient *http.Client
	// BackoffBase and BackoffMax override the retry backoff (tests).
	BackoffBase, BackoffMax time.Duration

	mu      sync.Mutex
	hc      *http.Client
	clients map[string]*linked
}

type endpoint struct {
	url      string
	clientNo int64
	authKey  string
}

type linked struct {
	ep  endpoint
	set settings.MURSync
	c   *bulkapi.Client
}

var _ mursync.Core = (*Link)(nil)

// endpoint resolves a client's endpoint and credentials, or says what is
// missing.
func (l *Link) endpoint(client string) (endpoint, error) {
	ep := endpoint{url: l.Defaults.URL, clientNo: l.Defaults.ClientNo, authKey: l.Defaults.AuthKey.Reveal()}
	var where string
	if l.Clients != nil {
		f, err := l.Clients.Current()
		if err != nil && l.Logger != nil {
			l.Logger.Error("client settings not reloaded; keeping the previous ones", "err", err)
		}
		if c := f.Core(client); c != nil {
			where = "clients." + client + ".core"
			if c.URL != "" {
				ep.url = c.URL
			}
			if c.ClientNo != 0 {
				ep.clientNo = c.ClientNo
			}
			if c.AuthKeyEnv != "" {
				getenv := l.Getenv
				if getenv == nil {
					getenv = os.Getenv
				}
				if ep.authKey = getenv(c.AuthKeyEnv); ep.authKey == "" {
					return ep, fmt.Errorf("%s.auth_key_env names %s, which is not set in the sync's environment", where, c.AuthKeyEnv)
				}
			}
		}
	}
	var missing []string
	if ep.url == "" {
		missing = append(missing, "the core URL (--core-url, "+EnvURL+" or core.url)")
	}
	if ep.clientNo == 0 {
		missing = append(missing, "the client_no ("+EnvClientNo+" or core.client_no)")
	}
	if ep.authKey == "" {
		missing = append(missing, "the auth key ("+EnvAuthKey+" or core.auth_key_env)")
	}
	if len(missing) > 0 {
		return ep, fmt.Errorf("no core endpoint for client %s: set %s", client, joinAnd(missing))
	}
	return ep, nil
}

func joinAnd(s []string) string {
	switch len(s) {
	case 1:
		return s[0]
	case 2:
		return s[0] + " and " + s[1]
	default:
		out := ""
		for i, x := range s {
			switch {
			case i == len(s)-1:
				out += ", and " + x
			case i > 0:
				out += ", " + x
			default:
				out = x
			}
		}
		return out
	}
}

// client returns the API client for a client under the settings, made
// anew when the endpoint or the settings changed.
func (l *Link) client(client string, set settings.MURSync) (*bulkapi.Client, error) {
	ep, err := l.endpoint(client)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.clients[client]; ok && cur.ep == ep && cur.set == set {
		return cur.c, nil
	}
	if l.hc == nil {
		l.hc = l.HTTPClient
		if l.hc == nil {
			l.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		}
	}
	opts := []bulkapi.Option{
		bulkapi.WithHTTPClient(l.hc),
		bulkapi.WithMaxAttempts(set.MaxAttempts),
		bulkapi.WithTimeout(set.CallTimeout),
		bulkapi.WithRateLimit(set.RateLimit, max(1, int(math.Ceil(set.RateLimit)))),
	}
	if l.BackoffBase > 0 {
		opts = append(opts, bulkapi.WithBackoff(l.BackoffBase, max(l.BackoffBase, l.BackoffMax)))
	}
	if l.Logger != nil {
		opts = append(opts, bulkapi.WithLogger(l.Logger.With("client", client)))
	}
	if l.Observe != nil {
		observe := l.Observe
		opts = append(opts, bulkapi.WithObserver(func(a bulkapi.Attempt) { observe(client, a) }))
	}
	c, err := bulkapi.New(ep.url, ep.clientNo, bulkapi.NewSecret(ep.authKey), opts...)
	if err != nil {
		return nil, err
	}
	if l.clients == nil {
		l.clients = map[string]*linked{}
	}
	l.clients[client] = &linked{ep: ep, set: set, c: c}
	return c, nil
}

// Send makes the bulk call for one batch.
func (l *Link) Send(ctx context.Context, call mursync.Call) (mursync.Answer, error) {
	c, err := l.client(call.Client, call.Settings)
	if err != nil {
		return mursync.Answer{}, &mursync.CallError{Failure: mursync.FailNoEndpoint, Message: err.Error()}
	}
	recs, err := usageRecs(call.Records)
	if err != nil {
		return mursync.Answer{}, &mursync.CallError{Failure: mursync.FailInvalid, Message: err.Error()}
	}
	res, err := c.Send(ctx, bulkapi.Batch{ReceiptID: call.BatchID, Records: recs})
	if err != nil {
		return mursync.Answer{}, callError(err)
	}
	ans := mursync.Answer{Attempts: res.Attempts}
	if len(res.Errors) > 0 {
		ans.Refused = make(map[string]mursync.RecordError, len(res.Errors))
		for _, e := range res.Errors {
			if _, dup := ans.Refused[e.OutClientRecordID]; !dup {
				ans.Refused[e.OutClientRecordID] = mursync.RecordError{Code: int64(e.RecordErrorCode), Message: e.RecordErrorMsg}
			}
		}
	}
	return ans, nil
}

// callError turns the API client's errors into the sync's; the context's
// own error passes through (nothing is known, nothing is marked).
func callError(err error) error {
	var (
		re *bulkapi.RefusedError
		ue *bulkapi.UnavailableError
		be *bulkapi.BadAnswerError
		ie *bulkapi.InvalidBatchError
	)
	switch {
	case errors.As(err, &re):
		msg := re.Message
		if msg == "" {
			msg = re.Code.Meaning()
		}
		return &mursync.CallError{Failure: mursync.FailRefused, Code: int64(re.Code), Message: msg, Attempts: re.Attempts}
	case errors.As(err, &ue):
		return &mursync.CallError{Failure: mursync.FailUnavailable, Message: ue.Error(), Attempts: ue.Attempts}
	case errors.As(err, &be):
		return &mursync.CallError{Failure: mursync.FailBadAnswer, Message: be.Error(), Attempts: be.Attempts}
	case errors.As(err, &ie):
		return &mursync.CallError{Failure: mursync.FailInvalid, Message: ie.Error()}
	}
	return err
}

// usageRecs writes the records as the call's usage_recs: units and the
// amount (the net, overriding the core's own rating) as exact numbers,
// the amount with the currency's minor digits.
func usageRecs(records []mursync.Record) ([]bulkapi.UsageRec, error) {
	out := make([]bulkapi.UsageRec, len(records))
	var q, n apd.Decimal
	for i := range records {
		r := &records[i]
		if err := money.ParseInto(&q, r.Units); err != nil {
			return nil, fmt.Errorf("record %s: units: %w", r.ID, err)
		}
		if err := money.ParseInto(&n, r.Amount); err != nil {
			return nil, fmt.Errorf("record %s: amount: %w", r.ID, err)
		}
		units, err := bulkapi.Units(&q)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", r.ID, err)
		}
		amt, err := bulkapi.Amount(&n, r.Currency)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", r.ID, err)
		}
		out[i] = bulkapi.UsageRec{
			ClientAcctID: r.AccountID, UsageTypeCode: r.UsageType, UsageUnits: units, Amt: amt,
			UsageDate: bulkapi.FormatDate(r.UsageDate), ClientRecordID: r.ID, Comments: r.Comments,
			Qualifier1: r.Qualifiers[0], Qualifier2: r.Qualifiers[1], Qualifier3: r.Qualifiers[2], Qualifier4: r.Qualifiers[3],
		}
	}
	return out, nil
}
