package uiapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/auditstore"
	"vivace.dev/vivace/internal/store/authstore"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/exceptionstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/syncstore"
	"vivace.dev/vivace/internal/store/usagestore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// world is the GraphQL API behind the API's route table on the real
// stores, with two clients' data (acme's and beta's) and tokens of every
// kind.
type world struct {
	t                    *testing.T
	st                   *store.Store
	broker               *kfake.Cluster
	gql                  *API
	http                 *httptest.Server
	logs                 *bytes.Buffer
	acme, beta           string
	tokens               map[string]string
	files                map[string]string // client → file id
	excs                 map[string]string // client → an exception id
	acmeEvent, betaEvent string
}

func newAPI(st *store.Store, pub exceptions.Publisher, logger *slog.Logger) *API {
	us, cs, ss := usagestore.New(st), catalogstore.New(st), syncstore.New(st)
	work := &exceptions.Service{Store: exceptionstore.New(st), Publisher: pub, Logger: logger}
	return &API{Work: work, Files: filestore.New(st), MURs: us, Feed: cs, Repair: feed.NewApplier(cs, catalog.ValidateData),
		Sync: ss, Backlogs: ss, Settings: &settings.Service{Store: settingstore.New(st)}, AuditLog: auditstore.New(st),
		Audit: authstore.New(st), Logger: logger}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st := pgtest.Store(t)
	suffix := ids.New()[24:]
	w := &world{t: t, st: st, acme: "acme-" + suffix, beta: "beta-" + suffix, tokens: map[string]string{},
		files: map[string]string{}, excs: map[string]string{}, logs: &bytes.Buffer{}}
	as := authstore.New(st)
	tokens := auth.NewService(as, as)
	for name, spec := range map[string]struct {
		role    auth.Role
		clients []string
	}{
		"admin":         {auth.Admin, []string{"*"}},
		"viewer-all":    {auth.Viewer, []string{"*"}},
		"acme-viewer":   {auth.Viewer, []string{w.acme}},
		"acme-operator": {auth.Operator, []string{w.acme}},
		"acme-admin":    {auth.Admin, []string{w.acme}},
	} {
		_, secret, err := tokens.Create(ctx, "test", auth.NewToken{Name: name + "-" + suffix, Role: spec.role, Clients: spec.clients})
		if err != nil {
			t.Fatal(err)
		}
		w.tokens[name] = secret
	}
	logger := slog.New(slog.NewTextHandler(w.logs, nil))
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafkax.TopicUsageRaw, kafkax.TopicUsageMediated))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	prod, err := kgo.NewClient(append(kafkax.SyncProducerOpts(), kgo.SeedBrokers(broker.ListenAddrs()...))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	w.broker = broker
	w.gql = newAPI(st, &kafkax.Reprocess{Client: prod}, logger)
	if err := w.gql.Init(); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{DB: st, Auth: tokens, Audit: as, Logger: logger}
	srv.MountConsole(w.gql.Handler(), Console())
	w.http = httptest.NewServer(srv.Handler())
	t.Cleanup(w.http.Close)

	fs, us, cs := filestore.New(st), usagestore.New(st), catalogstore.New(st)
	for _, c := range []string{w.acme, w.beta} {
		f, err := fs.RegisterFile(ctx, files.File{FileID: ids.New(), Client: c, Name: "usage.csv", Source: "http",
			Location: "x", Format: "csv", SHA256: ids.New(), Status: files.Received})
		if err != nil {
			t.Fatal(err)
		}
		w.files[c] = f.FileID
		if err := us.Rate(ctx, func(tx ratestage.Tx) error {
			return tx.InsertMURs(ctx, []murs.MUR{
				{MURID: ids.New(), Client: c, RecordID: c + "-1", FileID: f.FileID, Line: 2, AccountID: "A1", UsageType: "VOICE", Quantity: "2",
					UsageTime: time.Now(), Currency: "USD", GrossAmount: "1.50", DiscountAmount: "0.50", NetAmount: "1.00", RateDetail: json.RawMessage(`{}`)},
				{MURID: ids.New(), Client: c, RecordID: c + "-2", FileID: f.FileID, Line: 3, AccountID: "A1", UsageType: "VOICE", Quantity: "3",
					UsageTime: time.Now(), Currency: "EUR", GrossAmount: "2", DiscountAmount: "0", NetAmount: "2", RateDetail: json.RawMessage(`{}`)},
			})
		}); err != nil {
			t.Fatal(err)
		}
		var exs []exceptions.Exception
		for i, code := range []string{"BAD_QUANTITY", "BAD_QUANTITY", "UNKNOWN_ACCOUNT"} {
			stage := "mediate"
			if code == "UNKNOWN_ACCOUNT" {
				stage = "rate"
			}
			exs = append(exs, exceptions.Exception{ExceptionID: ids.New(), Client: c, FileID: f.FileID, Line: int64(10 + i),
				RecordID: c + "-x" + string(rune('0'+i)), Stage: stage, Code: exceptionCode(code), Field: "quantity", Message: "quantity: not a number",
				Record: json.RawMessage(`{"account_id":"A` + string(rune('1'+i)) + `","quantity":"x"}`)})
		}
		if _, err := us.InsertExceptions(ctx, exs); err != nil {
			t.Fatal(err)
		}
		w.excs[c] = exs[0].ExceptionID
		good := feed.Event{EventID: c + "-ev-1", Client: c, Entity: feed.EntityAccount, EntityID: "A1", Version: 1,
			OccurredAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Op: feed.OpUpsert, Data: json.RawMessage(`{"currency":"USD","status":"active"}`)}
		bad := good
		bad.EventID, bad.EntityID, bad.Data = c+"-ev-2", "A2", json.RawMessage(`{"currency":"USD"}`)
		outs, err := feed.NewApplier(cs, catalog.ValidateData).Apply(ctx, []feed.Event{good, bad}, []error{nil, errors.New("data: status: required")})
		if err != nil || outs[1].Outcome != feed.Failed {
			t.Fatalf("feed: %+v %v", outs, err)
		}
		if c == w.acme {
			w.acmeEvent = bad.EventID
		} else {
			w.betaEvent = bad.EventID
		}
	}
	return w
}

// gqlResponse is a GraphQL answer.
type gqlResponse struct {
	Data   json.RawMessage
	Errors []struct {
		Message    string
		Path       []any
		Extensions struct{ Code string }
	}
}

func (r gqlResponse) codes() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Extensions.Code)
	}
	return out
}

// query sends a query with the named token and decodes the answer.
func (w *world) query(token, q string, vars map[string]any) (int, gqlResponse) {
	w.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	code, b := w.post(token, "/graphql", body)
	var r gqlResponse
	if err := json.Unmarshal(b, &r); err != nil {
		w.t.Fatalf("not a GraphQL answer: %d %s", code, b)
	}
	return code, r
}

// ok sends a query that must answer without errors, and decodes its data
// into out.
func (w *world) ok(token, q string, vars map[string]any, out any) {
	w.t.Helper()
	code, r := w.query(token, q, vars)
	if code != http.StatusOK || len(r.Errors) > 0 {
		w.t.Fatalf("%s: %d %+v", q, code, r.Errors)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		w.t.Fatalf("data: %v: %s", err, r.Data)
	}
}

func (w *world) post(token, path string, body []byte) (int, []byte) {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.http.URL+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+w.tokens[token])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func exceptionCode(s string) codes.Code { return codes.Code(s) }

// refused checks an answer with no data and one FORBIDDEN error.
func (w *world) refused(what string, r gqlResponse) {
	w.t.Helper()
	if !slices.Equal(r.codes(), []string{"FORBIDDEN"}) || !noData(r.Data) {
		w.t.Errorf("%s: %s %+v, want no data and FORBIDDEN", what, r.Data, r.Errors)
	}
}

func clientsOf(body any) []string {
	b, _ := json.Marshal(body)
	var seen []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if c, ok := v["client"].(string); ok && !slices.Contains(seen, c) {
				seen = append(seen, c)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	_ = json.Unmarshal(b, &v)
	walk(v)
	slices.Sort(seen)
	return seen
}

var _ = strings.Contains

// noData reports whether an answer holds nothing: null, or an object of
// nulls (a nullable field that was refused).
func noData(data json.RawMessage) bool {
	var m map[string]json.RawMessage
	if string(data) == "null" {
		return true
	}
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	for _, v := range m {
		if string(v) != "null" {
			return false
		}
	}
	return true
}
