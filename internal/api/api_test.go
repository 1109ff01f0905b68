package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/ingest/s3source"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/authstore"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/exceptionstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/tmfstore"
	"vivace.dev/vivace/internal/store/usagestore"
	"vivace.dev/vivace/internal/tmf635"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// recorder passes audit entries on to the audit log and keeps a copy for
// the test to look at.
type recorder struct {
	auth.Auditor
	mu      sync.Mutex
	entries []auth.AuditEntry
}

func (r *recorder) Audit(ctx context.Context, entries ...auth.AuditEntry) error {
	r.mu.Lock()
	r.entries = append(r.entries, entries...)
	r.mu.Unlock()
	return r.Auditor.Audit(ctx, entries...)
}

func (r *recorder) find(action, target string) []auth.AuditEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []auth.AuditEntry
	for _, e := range r.entries {
		if e.Action == action && e.Target == target {
			out = append(out, e)
		}
	}
	return out
}

// world is a Server on the real stores with two clients' data, acme's and
// beta's, and tokens of every kind.
type world struct {
	t                    *testing.T
	srv                  *Server
	http                 *httptest.Server
	st                   *store.Store
	audit                *recorder
	acme, beta           string // client names, unique to the test
	tokens               map[string]string
	acmeFile, betaFile   string
	acmeEvent, betaEvent string // failed feed events
	acmeEntity           string // an applied account of acme's
	acmeEx, betaEx       string // open BAD_QUANTITY exceptions
	exceptions           *exceptions.Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st := pgtest.Store(t)
	suffix := ids.New()[24:]
	w := &world{t: t, st: st, acme: "acme-" + suffix, beta: "beta-" + suffix, tokens: map[string]string{}}
	as := authstore.New(st)
	w.audit = &recorder{Auditor: as}
	tokens := auth.NewService(as, w.audit)
	for name, spec := range map[string]struct {
		role    auth.Role
		clients []string
	}{
		"admin":         {auth.Admin, []string{"*"}},
		"viewer-all":    {auth.Viewer, []string{"*"}},
		"operator-all":  {auth.Operator, []string{"*"}},
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

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	fs, cs := filestore.New(st), catalogstore.New(st)
	buckets := &s3source.Buckets{
		Logger: logger,
		Sources: func() map[string]clientcfg.BucketSource {
			// An endpoint nothing listens on: the polls fail, as they may,
			// and the sources are known.
			src := clientcfg.BucketSource{Endpoint: "http://127.0.0.1:1", Region: "us-east-1", Bucket: "drop",
				PathStyle: true, PollInterval: time.Hour}
			a, b := src, src
			a.Prefix, b.Prefix = w.acme+"/", w.beta+"/"
			return map[string]clientcfg.BucketSource{w.acme: a, w.beta: b}
		},
		Getenv: func(string) string { return "x" },
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	buckets.PollOnce(pctx)
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
	w.exceptions = &exceptions.Service{Store: exceptionstore.New(st), Publisher: &kafkax.Reprocess{Client: prod}, Logger: logger}
	w.srv = &Server{DB: st, Files: fs, Records: usagestore.New(st), Feed: cs, Repair: feed.NewApplier(cs, catalog.ValidateData),
		Receiver: &ingest.Receiver{Registry: fs, ArchiveDir: t.TempDir(), Logger: logger},
		Buckets:  buckets, Auth: tokens, Audit: w.audit, Logger: logger, Exceptions: w.exceptions,
		TMF: &TMF{Store: tmfstore.New(st), Submit: &tmf635.Submitter{Store: tmfstore.New(st)}}}
	// As vivace dev mounts the pipelines' endpoints.
	w.srv.Mount(Route{"GET /streams/test/ping", auth.Admin, EveryClient, http.HandlerFunc(healthz)})
	w.http = httptest.NewServer(w.srv.Handler())
	t.Cleanup(w.http.Close)

	// Each client: a file with a MUR and an exception, an applied account
	// and a failed feed event.
	for _, c := range []string{w.acme, w.beta} {
		code, body := w.do("admin", "POST", "/api/v1/files?client="+c+"&name=usage.csv",
			"record_id,account_id,usage_type,quantity,usage_time\n"+c+"-1,A1,VOICE,1,2026-01-01T00:00:00Z\n")
		var f File
		if err := json.Unmarshal(body, &f); code != http.StatusCreated || err != nil {
			t.Fatalf("upload for %s: %d %s", c, code, body)
		}
		us := usagestore.New(st)
		if err := us.Rate(ctx, func(tx ratestage.Tx) error {
			return tx.InsertMURs(ctx, []murs.MUR{{Client: c, RecordID: c + "-1", FileID: f.FileID, Line: 2, AccountID: "A1",
				UsageType: "VOICE", Quantity: "1", UsageTime: time.Now(), Currency: "USD", GrossAmount: "1", DiscountAmount: "0",
				NetAmount: "1", RateDetail: json.RawMessage(`{}`)}})
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := us.InsertExceptions(ctx, []exceptions.Exception{{Client: c, FileID: f.FileID, Line: 3, RecordID: c + "-2",
			Stage: "mediate", Code: "BAD_QUANTITY", Field: "quantity", Message: "bad", Record: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		page, err := exceptionstore.New(st).Exceptions(ctx, exceptions.Query{Filter: exceptions.Filter{Client: c}, Limit: 1})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("%s's exception: %v", c, err)
		}
		if c == w.acme {
			w.acmeEx = page.Items[0].ExceptionID
		} else {
			w.betaEx = page.Items[0].ExceptionID
		}
		good := feed.Event{EventID: c + "-ev-1", Client: c, Entity: feed.EntityAccount, EntityID: "A1", Version: 1,
			OccurredAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Op: feed.OpUpsert, Data: json.RawMessage(`{"currency":"USD","status":"active"}`)}
		bad := good
		bad.EventID, bad.EntityID, bad.Data = c+"-ev-2", "A2", json.RawMessage(`{"currency":"USD"}`)
		outs, err := feed.NewApplier(cs, catalog.ValidateData).Apply(ctx, []feed.Event{good, bad}, []error{nil, errors.New("data: status: required")})
		if err != nil || outs[0].Outcome != feed.Applied || outs[1].Outcome != feed.Failed {
			t.Fatalf("feed: %+v %v", outs, err)
		}
		if c == w.acme {
			w.acmeFile, w.acmeEvent, w.acmeEntity = f.FileID, bad.EventID, good.EntityID
		} else {
			w.betaFile, w.betaEvent = f.FileID, bad.EventID
		}
	}
	return w
}

// do sends a request with the named token ("" for none) and returns the
// status and body.
func (w *world) do(token, method, path, body string) (int, []byte) {
	w.t.Helper()
	code, _, b := w.send(token, method, path, body)
	return code, b
}

func (w *world) send(token, method, path, body string) (int, http.Header, []byte) {
	w.t.Helper()
	authorization := ""
	if token != "" {
		secret, ok := w.tokens[token]
		if !ok {
			secret = token
		}
		authorization = "Bearer " + secret
	}
	return call(w.t, method, w.http.URL+path, authorization, body)
}

// call sends a request with the Authorization header ("" for none) and
// returns the status, headers and body.
func call(t *testing.T, method, url, authorization, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// refused checks a 403 with the FORBIDDEN code.
func (w *world) refused(what string, code int, body []byte) {
	w.t.Helper()
	var e struct{ Error, Code string }
	_ = json.Unmarshal(body, &e)
	if code != http.StatusForbidden || e.Code != "FORBIDDEN" || e.Error == "" {
		w.t.Errorf("%s: %d %s, want 403 FORBIDDEN", what, code, body)
	}
}

// clientsIn returns the distinct "client" values of a JSON body (a list,
// an object with a list, or JSON Lines).
func clientsIn(t *testing.T, body []byte) []string {
	t.Helper()
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
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, body)
		}
		walk(v)
	}
	slices.Sort(seen)
	return seen
}

// crossClient holds, for every PerClient route, what acme's tokens try
// of beta's data and what they must get. TestEveryRoute fails for a
// PerClient route without an entry, so a new route comes with its case.
var crossClient = map[string]func(w *world){
	"POST /api/v1/files": func(w *world) {
		csv := "record_id,account_id,usage_type,quantity,usage_time\nx,A1,VOICE,1,2026-01-01T00:00:00Z\n"
		code, body := w.do("acme-operator", "POST", "/api/v1/files?client="+w.beta+"&name=x.csv", csv)
		w.refused("upload for beta", code, body)
		code, body = w.do("acme-viewer", "POST", "/api/v1/files?client="+w.acme+"&name=x.csv", csv)
		w.refused("upload by a viewer", code, body)
		if got := clientsIn(w.t, w.get("admin", "/api/v1/files?client="+w.beta)); len(got) != 1 {
			w.t.Errorf("beta's files: %v", got)
		}
		var files []File
		_ = json.Unmarshal(w.get("admin", "/api/v1/files?client="+w.beta), &files)
		if len(files) != 1 {
			w.t.Errorf("a refused upload registered a file: %d of beta's", len(files))
		}
		if code, body := w.do("acme-operator", "POST", "/api/v1/files?client="+w.acme+"&name=x.csv", csv); code != http.StatusCreated {
			w.t.Errorf("acme's own upload: %d %s", code, body)
		}
	},
	"GET /api/v1/files": func(w *world) {
		if got := clientsIn(w.t, w.get("acme-viewer", "/api/v1/files")); !slices.Equal(got, []string{w.acme}) {
			w.t.Errorf("acme's list: clients %v", got)
		}
		code, body := w.do("acme-viewer", "GET", "/api/v1/files?client="+w.beta, "")
		w.refused("beta's list", code, body)
		if got := clientsIn(w.t, w.get("admin", "/api/v1/files")); !slices.Contains(got, w.beta) || !slices.Contains(got, w.acme) {
			w.t.Errorf("admin's list: clients %v", got)
		}
	},
	"GET /api/v1/files/{id}": func(w *world) {
		code, body := w.do("acme-viewer", "GET", "/api/v1/files/"+w.betaFile, "")
		w.refused("beta's file", code, body)
		if bytes.Contains(body, []byte(w.beta)) {
			w.t.Errorf("the refusal shows beta's file: %s", body)
		}
		if got := clientsIn(w.t, w.get("acme-viewer", "/api/v1/files/"+w.acmeFile)); !slices.Equal(got, []string{w.acme}) {
			w.t.Errorf("acme's file: %v", got)
		}
	},
	"POST /api/v1/files/{id}/cancel": func(w *world) {
		code, body := w.do("acme-operator", "POST", "/api/v1/files/"+w.betaFile+"/cancel", `{"reason":"not mine"}`)
		w.refused("cancel beta's file", code, body)
		if bytes.Contains(body, []byte(w.beta)) {
			w.t.Errorf("the refusal shows beta's file: %s", body)
		}
		code, body = w.do("acme-viewer", "POST", "/api/v1/files/"+w.acmeFile+"/cancel", `{"reason":"a viewer"}`)
		w.refused("cancel by a viewer", code, body)
		var f File
		_ = json.Unmarshal(w.post("acme-operator", "/api/v1/files/"+w.acmeFile+"/cancel", `{"reason":"wrong file"}`), &f)
		if f.Status != "failed" || f.Client != w.acme {
			w.t.Errorf("acme's own cancel: %+v", f)
		}
		if got := w.audit.find("file.cancel", "file:"+w.acmeFile); len(got) != 1 || got[0].Client != w.acme {
			w.t.Errorf("the cancel's audit entries: %+v", got)
		}
		var beta File
		_ = json.Unmarshal(w.get("admin", "/api/v1/files/"+w.betaFile), &beta)
		if beta.Status == "failed" {
			w.t.Errorf("beta's file was cancelled: %+v", beta)
		}
	},
	"GET /api/v1/murs":       exportCase("murs"),
	"GET /api/v1/exceptions": exportCase("exceptions"),
	"GET /api/v1/exceptions/list": func(w *world) {
		var page ExceptionPage
		_ = json.Unmarshal(w.get("acme-viewer", "/api/v1/exceptions/list"), &page)
		if len(page.Exceptions) != 1 || page.Exceptions[0].Client != w.acme {
			w.t.Errorf("acme's list: %+v", page)
		}
		_ = json.Unmarshal(w.get("acme-viewer", "/api/v1/exceptions/list?ids="+w.betaEx+","+w.acmeEx), &page)
		if len(page.Exceptions) != 1 || page.Exceptions[0].ExceptionID != w.acmeEx {
			w.t.Errorf("acme's list of acme's and beta's ids: %+v", page)
		}
		code, body := w.do("acme-viewer", "GET", "/api/v1/exceptions/list?client="+w.beta, "")
		w.refused("beta's list", code, body)
	},
	"GET /api/v1/exceptions/counts": func(w *world) {
		if body := w.get("acme-viewer", "/api/v1/exceptions/counts"); !bytes.Contains(body, []byte(`"total":1`)) {
			w.t.Errorf("acme's counts: %s", body)
		}
		code, body := w.do("acme-viewer", "GET", "/api/v1/exceptions/counts?client="+w.beta, "")
		w.refused("beta's counts", code, body)
	},
	"GET /api/v1/exceptions/{id}": func(w *world) {
		code, body := w.do("acme-viewer", "GET", "/api/v1/exceptions/"+w.betaEx, "")
		w.refused("beta's exception", code, body)
		if bytes.Contains(body, []byte(w.beta)) {
			w.t.Errorf("the refusal names beta: %s", body)
		}
		if code, _ := w.do("acme-viewer", "GET", "/api/v1/exceptions/"+ids.New(), ""); code != http.StatusNotFound {
			w.t.Errorf("an exception that does not exist: %d", code)
		}
		var d ExceptionDetail
		if err := json.Unmarshal(w.get("acme-viewer", "/api/v1/exceptions/"+w.acmeEx), &d); err != nil || d.Client != w.acme {
			w.t.Errorf("acme's exception: %+v %v", d, err)
		}
	},
	"POST /api/v1/exceptions/{id}": func(w *world) {
		record := `{"record":{"record_id":"x","account_id":"A1","usage_type":"VOICE","quantity":"2","usage_time":"` +
			time.Now().UTC().Add(-time.Hour).Format(time.RFC3339) + `"}}`
		code, body := w.do("acme-operator", "POST", "/api/v1/exceptions/"+w.betaEx, record)
		w.refused("edit beta's exception", code, body)
		code, body = w.do("acme-operator", "POST", "/api/v1/exceptions/"+w.acmeEx, `{"record":{"quantity":"-1"}}`)
		if code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"MISSING_FIELD"`)) {
			w.t.Errorf("a bad edit: %d %s", code, body)
		}
		var d ExceptionDetail
		if err := json.Unmarshal(w.post("acme-operator", "/api/v1/exceptions/"+w.acmeEx, record), &d); err != nil ||
			d.Fields["quantity"] != "2" || len(d.History) != 1 || !strings.HasPrefix(d.History[0].Actor, "acme-operator-") {
			w.t.Errorf("acme's edit: %+v %v", d, err)
		}
		var beta ExceptionDetail
		_ = json.Unmarshal(w.get("admin", "/api/v1/exceptions/"+w.betaEx), &beta)
		if beta.Edited != nil {
			w.t.Errorf("beta's exception was edited: %+v", beta)
		}
	},
	"POST /api/v1/exceptions/reprocess": func(w *world) {
		code, body := w.do("acme-operator", "POST", "/api/v1/exceptions/reprocess", `{"filter":{"client":"`+w.beta+`"}}`)
		w.refused("reprocess beta's by filter", code, body)
		var out ExceptionOutcome
		code, body = w.do("acme-operator", "POST", "/api/v1/exceptions/reprocess", `{"ids":["`+w.acmeEx+`","`+w.betaEx+`"]}`)
		w.refused("reprocess beta's exception", code, body)
		code, body = w.do("acme-operator", "POST", "/api/v1/exceptions/reprocess", `{}`)
		if code != http.StatusBadRequest {
			w.t.Errorf("reprocess of nothing: %d %s", code, body)
		}
		// By filter over acme's: a job, which only acme's tokens see.
		code, body = w.do("acme-operator", "POST", "/api/v1/exceptions/reprocess", `{"filter":{"code":"BAD_QUANTITY"}}`)
		if err := json.Unmarshal(body, &out); code != http.StatusAccepted || err != nil || out.Job == nil {
			w.t.Fatalf("reprocess by filter: %d %s", code, body)
		}
		w.exceptions.Wait()
		var j ExceptionJob
		_ = json.Unmarshal(w.get("acme-viewer", "/api/v1/exceptions/jobs/"+out.Job.JobID), &j)
		if j.Status != "done" || j.Taken != 1 || j.Done != 1 {
			w.t.Errorf("acme's job: %+v", j)
		}
		var beta ExceptionDetail
		_ = json.Unmarshal(w.get("admin", "/api/v1/exceptions/"+w.betaEx), &beta)
		if beta.Status != "open" {
			w.t.Errorf("beta's exception: %s", beta.Status)
		}
		// No rate stage runs here to take the record back: put acme's
		// exception back as it was for the routes that follow.
		if _, err := w.st.Pool().Exec(context.Background(), `UPDATE exceptions SET status = 'open', attempts = 1 WHERE exception_id = $1`, w.acmeEx); err != nil {
			w.t.Fatal(err)
		}
	},
	"POST /api/v1/exceptions/discard": func(w *world) {
		code, body := w.do("acme-operator", "POST", "/api/v1/exceptions/discard", `{"filter":{"client":"`+w.beta+`"},"reason":"x"}`)
		w.refused("discard beta's by filter", code, body)
		code, body = w.do("acme-operator", "POST", "/api/v1/exceptions/discard", `{"ids":["`+w.betaEx+`"],"reason":"x"}`)
		w.refused("discard beta's exception", code, body)
		code, body = w.do("acme-operator", "POST", "/api/v1/exceptions/discard", `{"ids":["`+w.acmeEx+`"]}`)
		if code != http.StatusBadRequest || !bytes.Contains(body, []byte("reason")) {
			w.t.Errorf("discard without a reason: %d %s", code, body)
		}
		var beta ExceptionDetail
		_ = json.Unmarshal(w.get("admin", "/api/v1/exceptions/"+w.betaEx), &beta)
		if beta.Status != "open" {
			w.t.Errorf("beta's exception: %s", beta.Status)
		}
	},
	"GET /api/v1/exceptions/jobs/{id}": func(w *world) {
		// A job over every client, started by an admin: an acme token does
		// not see it.
		var out ExceptionOutcome
		code, body := w.do("admin", "POST", "/api/v1/exceptions/discard", `{"filter":{"status":"resolved"},"reason":"none there"}`)
		if err := json.Unmarshal(body, &out); code != http.StatusAccepted || err != nil || out.Job == nil {
			w.t.Fatalf("admin's job: %d %s", code, body)
		}
		w.exceptions.Wait()
		code, body = w.do("acme-viewer", "GET", "/api/v1/exceptions/jobs/"+out.Job.JobID, "")
		w.refused("a job over every client", code, body)
		if body := w.get("viewer-all", "/api/v1/exceptions/jobs/"+out.Job.JobID); !bytes.Contains(body, []byte(`"done"`)) {
			w.t.Errorf("the job: %s", body)
		}
	},
	"POST /api/v1/feed/outcomes": func(w *world) {
		code, body := w.do("acme-viewer", "POST", "/api/v1/feed/outcomes", `{"event_ids":["`+w.betaEvent+`"]}`)
		w.refused("beta's outcome", code, body)
		code, body = w.do("acme-viewer", "POST", "/api/v1/feed/outcomes", `{"event_ids":["`+w.acmeEvent+`","`+w.betaEvent+`"]}`)
		w.refused("acme's and beta's outcomes", code, body)
		if body := w.post("acme-viewer", "/api/v1/feed/outcomes", `{"event_ids":["`+w.acmeEvent+`","unknown"]}`); !bytes.Contains(body, []byte(`"failed"`)) ||
			bytes.Contains(body, []byte("unknown")) {
			t := w.t
			t.Errorf("acme's outcome: %s", body)
		}
	},
	"GET /api/v1/feed/events": func(w *world) {
		if got := clientsIn(w.t, w.get("acme-viewer", "/api/v1/feed/events")); !slices.Equal(got, []string{w.acme}) {
			w.t.Errorf("acme's feed events: clients %v", got)
		}
		if got := clientsIn(w.t, w.get("acme-viewer", "/api/v1/feed/events?outcome=failed&entity_id=A2")); !slices.Equal(got, []string{w.acme}) {
			w.t.Errorf("acme's failed events: clients %v", got)
		}
		code, body := w.do("acme-viewer", "GET", "/api/v1/feed/events?client="+w.beta, "")
		w.refused("beta's feed events", code, body)
	},
	"POST /api/v1/feed/events/reprocess": func(w *world) {
		before := w.get("admin", "/api/v1/feed/events?client="+w.beta+"&outcome=failed")
		code, body := w.do("acme-operator", "POST", "/api/v1/feed/events/reprocess", `{"event_ids":["`+w.betaEvent+`"]}`)
		w.refused("reprocess beta's event", code, body)
		code, body = w.do("acme-operator", "POST", "/api/v1/feed/events/reprocess", `{"client":"`+w.beta+`"}`)
		w.refused("reprocess beta's events by filter", code, body)
		code, body = w.do("acme-viewer", "POST", "/api/v1/feed/events/reprocess", `{"client":"`+w.acme+`"}`)
		w.refused("reprocess by a viewer", code, body)
		if after := w.get("admin", "/api/v1/feed/events?client="+w.beta+"&outcome=failed"); !bytes.Equal(before, after) {
			w.t.Errorf("beta's failed events changed:\n%s\n%s", before, after)
		}
		if body := w.post("acme-operator", "/api/v1/feed/events/reprocess", `{"event_ids":["`+w.acmeEvent+`"]}`); !bytes.Contains(body, []byte(`"failed"`)) {
			w.t.Errorf("acme's reprocess: %s", body)
		}
		rows := w.audit.find("feed.reprocess", "feed_event:"+w.acmeEvent)
		if len(rows) == 0 || !strings.HasPrefix(rows[len(rows)-1].Actor, "acme-operator-") || rows[len(rows)-1].Client != w.acme ||
			!bytes.Contains(rows[len(rows)-1].Before, []byte(`"failed"`)) {
			w.t.Errorf("audit of the reprocess: %+v", rows)
		}
	},
	"PUT /api/v1/feed/events/{id...}": func(w *world) {
		event := func(id, client string) string {
			return `{"event_id":"` + id + `","client":"` + client + `","entity":"account","entity_id":"A2","version":1,` +
				`"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"currency":"USD","status":"active"}}`
		}
		code, body := w.do("acme-operator", "PUT", "/api/v1/feed/events/"+w.betaEvent, event(w.betaEvent, w.beta))
		w.refused("edit beta's event", code, body)
		code, body = w.do("acme-operator", "PUT", "/api/v1/feed/events/"+w.acmeEvent, event(w.acmeEvent, w.beta))
		w.refused("edit acme's event into beta's", code, body)
		if got := w.get("admin", "/api/v1/feed/events?client="+w.beta+"&entity_id=A2"); !bytes.Contains(got, []byte(`"failed"`)) {
			w.t.Errorf("beta's event after refused edits: %s", got)
		}
		if body := w.put("acme-operator", "/api/v1/feed/events/"+w.acmeEvent, event(w.acmeEvent, w.acme)); !bytes.Contains(body, []byte(`"applied"`)) {
			w.t.Errorf("acme's edit: %s", body)
		}
		rows := w.audit.find("feed.edit", "feed_event:"+w.acmeEvent)
		if len(rows) != 1 || !bytes.Contains(rows[0].Before, []byte(`"failed"`)) || !bytes.Contains(rows[0].After, []byte(`"applied"`)) ||
			!bytes.Contains(rows[0].After, []byte(`"payload"`)) {
			w.t.Errorf("audit of the edit: %+v", rows)
		}
	},
	"GET /api/v1/feed/history": func(w *world) {
		code, body := w.do("acme-viewer", "GET", "/api/v1/feed/history?client="+w.beta+"&entity=account&entity_id=A1", "")
		w.refused("beta's history", code, body)
		if got := clientsIn(w.t, w.get("acme-viewer", "/api/v1/feed/history?client="+w.acme+"&entity=account&entity_id="+w.acmeEntity)); !slices.Equal(got, []string{w.acme}) {
			w.t.Errorf("acme's history: %v", got)
		}
	},
	"POST /api/v1/buckets/events": func(w *world) {
		event := func(prefix string) string {
			return `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"` + prefix + `/day-01.csv"}}}]}`
		}
		var out struct {
			Events, Unmatched int
			Polled            []string
		}
		code, body := w.do("acme-operator", "POST", "/api/v1/buckets/events", event(w.beta))
		if err := json.Unmarshal(body, &out); code != http.StatusAccepted || err != nil || out.Unmatched != 1 || len(out.Polled) != 0 {
			w.t.Errorf("acme's token notified of beta's object: %d %s", code, body)
		}
		code, body = w.do("acme-operator", "POST", "/api/v1/buckets/events", event(w.acme))
		if err := json.Unmarshal(body, &out); code != http.StatusAccepted || err != nil || !slices.Equal(out.Polled, []string{w.acme}) {
			w.t.Errorf("acme's object: %d %s", code, body)
		}
		code, body = w.do("acme-viewer", "POST", "/api/v1/buckets/events", event(w.acme))
		w.refused("bucket events from a viewer", code, body)
	},
}

// exportCase is the cross-client case of an export (murs, exceptions).
func exportCase(what string) func(w *world) {
	return func(w *world) {
		path := "/api/v1/" + what
		if got := clientsIn(w.t, w.get("acme-viewer", path)); !slices.Equal(got, []string{w.acme}) {
			w.t.Errorf("acme's %s: clients %v", what, got)
		}
		if body := w.get("acme-viewer", path+"?file_id="+w.betaFile); len(bytes.TrimSpace(body)) != 0 {
			w.t.Errorf("acme's %s of beta's file: %s", what, body)
		}
		if csv := w.get("acme-viewer", path+"?format=csv"); bytes.Contains(csv, []byte(w.beta)) || !bytes.Contains(csv, []byte(w.acme)) {
			w.t.Errorf("acme's %s as CSV:\n%s", what, csv)
		}
		code, body := w.do("acme-viewer", "GET", path+"?client="+w.beta, "")
		w.refused("beta's "+what, code, body)
		if got := clientsIn(w.t, w.get("admin", path)); !slices.Contains(got, w.beta) {
			w.t.Errorf("admin's %s: %v", what, got)
		}
	}
}

func (w *world) get(token, path string) []byte {
	w.t.Helper()
	return w.ok(token, "GET", path, "")
}

func (w *world) post(token, path, body string) []byte {
	w.t.Helper()
	return w.ok(token, "POST", path, body)
}

func (w *world) put(token, path, body string) []byte {
	w.t.Helper()
	return w.ok(token, "PUT", path, body)
}

func (w *world) ok(token, method, path, body string) []byte {
	w.t.Helper()
	code, b := w.do(token, method, path, body)
	if code/100 != 2 {
		w.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	return b
}

// TestEveryRoute walks the whole route table: every route but the probes
// and metrics answers 401 without a good token, 403 to a token below its
// role or, where it needs one, without every client; and every route
// that serves clients' data keeps acme's tokens out of beta's data.
func TestEveryRoute(t *testing.T) {
	w := newWorld(t)
	var open []string
	for _, rt := range w.srv.Routes() {
		t.Run(rt.Pattern, func(t *testing.T) {
			w.t = t
			method, path, _ := strings.Cut(rt.Pattern, " ")
			path = strings.NewReplacer("{id...}", "some/id", "{id}", "some-id").Replace(path)
			if rt.Clients == Open {
				open = append(open, rt.Pattern)
				if code, _ := w.do("", method, path, ""); code == http.StatusUnauthorized || code == http.StatusForbidden {
					t.Errorf("open route answered %d", code)
				}
				return
			}
			for _, token := range []string{"", "not-a-token", auth.Prefix + "aaaaaaaa_" + strings.Repeat("a", 52)} {
				code, h, body := w.send(token, method, path, "{}")
				var e struct{ Error, Code string }
				if err := json.Unmarshal(body, &e); code != http.StatusUnauthorized || err != nil || e.Code != "UNAUTHENTICATED" ||
					!strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("token %q: %d %q %s", token, code, h.Get("WWW-Authenticate"), body)
				}
			}
			if lower := map[auth.Role]string{auth.Operator: "viewer-all", auth.Admin: "operator-all"}[rt.Role]; lower != "" {
				code, body := w.do(lower, method, path, "{}")
				w.refused(lower, code, body)
			}
			switch rt.Clients {
			case EveryClient:
				code, body := w.do("acme-admin", method, path, "")
				w.refused("a token for one client", code, body)
				if code, body := w.do("admin", method, path, ""); code != http.StatusOK {
					t.Errorf("admin: %d %s", code, body)
				}
			case PerClient:
				c, ok := crossClient[rt.Pattern]
				if !ok {
					t.Fatalf("no cross-client case for %s: add one to crossClient", rt.Pattern)
				}
				c(w)
			}
		})
	}
	slices.Sort(open)
	if strings.Join(open, ",") != "GET /healthz,GET /readyz" { // no Gatherer here, so no /metrics
		t.Errorf("open routes: %v", open)
	}
	// Paths no route serves need a token too.
	if code, _ := w.do("", "GET", "/nothing/here", ""); code != http.StatusUnauthorized {
		t.Errorf("unknown path without a token: %d", code)
	}
	if code, _ := w.do("admin", "GET", "/nothing/here", ""); code != http.StatusNotFound {
		t.Errorf("unknown path with a token: %d", code)
	}
}

// TestBareToken: a webhook sender that puts the token as the whole
// Authorization header is understood; anything else there is not.
func TestBareToken(t *testing.T) {
	w := newWorld(t)
	for header, want := range map[string]int{
		w.tokens["admin"]:             http.StatusOK,
		"bearer " + w.tokens["admin"]: http.StatusOK,
		"Basic " + w.tokens["admin"]:  http.StatusUnauthorized,
		"Bearer":                      http.StatusUnauthorized,
	} {
		if code, _, _ := call(t, "GET", w.http.URL+"/api/v1/files", header, ""); code != want {
			t.Errorf("Authorization %.12q…: %d, want %d", header, code, want)
		}
	}
}

// TestInternalErrors: a failing database is a 500 that refers to the log
// and says nothing of the SQL or the server's words.
func TestInternalErrors(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	closed, err := store.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	var logs bytes.Buffer
	srv := *w.srv
	srv.mounted = nil
	srv.Files, srv.Records, srv.Logger = filestore.New(closed), usagestore.New(closed), slog.New(slog.NewTextHandler(&logs, nil))
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, path := range []string{"/api/v1/files", "/api/v1/murs", "/api/v1/files/" + w.acmeFile} {
		code, _, body := call(t, "GET", hs.URL+path, "Bearer "+w.tokens["admin"], "")
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if code != http.StatusInternalServerError || !strings.Contains(e.Error, "see the server log (ref ") ||
			strings.Contains(e.Error, "closed") || strings.Contains(e.Error, "SELECT") {
			t.Errorf("%s: %d %s", path, code, body)
		}
		ref := e.Error[strings.LastIndex(e.Error, "ref ")+4 : len(e.Error)-1]
		if !strings.Contains(logs.String(), "ref="+ref) || !strings.Contains(logs.String(), "closed pool") {
			t.Errorf("%s: the log has no ref %s with the cause:\n%s", path, ref, logs.String())
		}
	}
}

// TestRouteTableMistakes: a route without a role or scope, or an open one
// that is not a probe, is refused when the handler is built.
func TestRouteTableMistakes(t *testing.T) {
	for _, r := range []Route{
		{"GET /x", 0, PerClient, http.HandlerFunc(healthz)},
		{"GET /x", auth.Viewer, 0, http.HandlerFunc(healthz)},
		{"GET /x", auth.Admin, Open, http.HandlerFunc(healthz)},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("route %+v accepted", r)
				}
			}()
			s := &Server{}
			s.Mount(r)
			s.Handler()
		}()
	}
}

// TestNoAuthenticator: a server built without one answers nothing but the
// probes.
func TestNoAuthenticator(t *testing.T) {
	hs := httptest.NewServer((&Server{}).Handler())
	defer hs.Close()
	for path, want := range map[string]int{"/healthz": 200, "/api/v1/files": 401, "/api/v1/buckets/events": 401} {
		if code, _, _ := call(t, "GET", hs.URL+path, "", ""); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

// TestBucketEvents: an S3 event notification is answered with the sources
// it has polled; a body that is not a notification and a server without
// bucket sources are refused with a reason.
func TestBucketEvents(t *testing.T) {
	w := newWorld(t)
	event := fmt.Sprintf(`{"Records":[
	  {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"%s/day-01.csv"}}},
	  {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"zeta/day-01.csv"}}}]}`, w.acme)
	var out map[string]any
	code, body := w.do("operator-all", "POST", "/api/v1/buckets/events", event)
	if err := json.Unmarshal(body, &out); err != nil || code != http.StatusAccepted || out["events"] != 2.0 || out["unmatched"] != 1.0 {
		t.Fatalf("%d %s", code, body)
	}
	if polled, _ := json.Marshal(out["polled"]); string(polled) != `["`+w.acme+`"]` {
		t.Fatalf("polled %s", polled)
	}
	if code, body := w.do("operator-all", "POST", "/api/v1/buckets/events", `{"Event":"s3:TestEvent"}`); code != http.StatusAccepted || !strings.Contains(string(body), `"events":0`) {
		t.Fatalf("test event: %d %s", code, body)
	}
	if code, body := w.do("operator-all", "POST", "/api/v1/buckets/events", `{"Records":"x"}`); code != http.StatusBadRequest || !strings.Contains(string(body), "not an S3 event notification") {
		t.Fatalf("bad body: %d %s", code, body)
	}

	srv := *w.srv
	srv.Buckets, srv.mounted = nil, nil
	none := httptest.NewServer(srv.Handler())
	defer none.Close()
	if code, _, body := call(t, "POST", none.URL+"/api/v1/buckets/events", "Bearer "+w.tokens["operator-all"], event); code != http.StatusNotFound {
		t.Fatalf("without bucket sources: %d %s", code, body)
	}
}
