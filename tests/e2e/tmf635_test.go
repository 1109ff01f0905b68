package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const tmfBase = "/tmf-api/usageManagement/v4"

// tmfSchemas are the official TMF635 v4.0.0 definitions, compiled from
// the swagger file as published: no copy of the shapes is written here.
type tmfSchemas struct {
	mu    sync.Mutex
	c     *jsonschema.Compiler
	cache map[string]*jsonschema.Schema
}

func loadTMFSchemas(t *testing.T) *tmfSchemas {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "tests/testdata/tmf635/tmf635-v4.0.0.swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.AssertFormat()
	if err := c.AddResource("tmf635.json", doc); err != nil {
		t.Fatal(err)
	}
	return &tmfSchemas{c: c, cache: map[string]*jsonschema.Schema{}}
}

// check validates body against a definition; "[]Usage" is an array of
// them.
func (s *tmfSchemas) check(t *testing.T, def string, body []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: not JSON: %v: %s", def, err, body)
	}
	name := strings.TrimPrefix(def, "[]")
	s.mu.Lock()
	sch, ok := s.cache[name]
	if !ok {
		if sch, err = s.c.Compile("tmf635.json#/definitions/" + name); err != nil {
			s.mu.Unlock()
			t.Fatal(err)
		}
		s.cache[name] = sch
	}
	s.mu.Unlock()
	items := []any{v}
	if strings.HasPrefix(def, "[]") {
		list, ok := v.([]any)
		if !ok {
			t.Fatalf("%s: not a list: %s", def, body)
		}
		items = list
	}
	for i, it := range items {
		if err := sch.Validate(it); err != nil {
			t.Fatalf("%s item %d does not validate: %v\n%s", def, i, err, body)
		}
	}
}

// tmfClient calls the API with a token and checks every body it gets
// against the definitions: the one wanted on success, Error otherwise.
type tmfClient struct {
	t      *testing.T
	api    string
	token  string
	schema *tmfSchemas
}

func (c tmfClient) do(method, path, body, def string) (int, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.api+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		if len(b) != 0 {
			c.t.Fatalf("%s %s: 204 with a body %s", method, path, b)
		}
	case resp.StatusCode/100 == 2:
		c.schema.check(c.t, def, b)
	default:
		c.schema.check(c.t, "Error", b)
	}
	return resp.StatusCode, resp.Header, b
}

// ok calls and wants status, decoding the body into out (if not nil).
func (c tmfClient) ok(method, path, body, def string, status int, out any) http.Header {
	c.t.Helper()
	code, h, b := c.do(method, path, body, def)
	if code != status {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return h
}

// tmfUsage is what the tests read of a Usage.
type tmfUsage struct {
	ID                  string `json:"id"`
	Href                string `json:"href"`
	Status              string `json:"status"`
	UsageType           string `json:"usageType"`
	UsageDate           string `json:"usageDate"`
	Description         string `json:"description"`
	UsageCharacteristic []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	} `json:"usageCharacteristic"`
	RelatedParty []struct {
		ID string `json:"id"`
	} `json:"relatedParty"`
	RatedProductUsage []struct {
		IsBilled                bool   `json:"isBilled"`
		RatingDate              string `json:"ratingDate"`
		UsageRatingTag          string `json:"usageRatingTag"`
		TaxExcludedRatingAmount struct {
			Unit  string      `json:"unit"`
			Value json.Number `json:"value"`
		} `json:"taxExcludedRatingAmount"`
	} `json:"ratedProductUsage"`
}

func (u tmfUsage) char(name string) any {
	for _, c := range u.UsageCharacteristic {
		if c.Name == name {
			return c.Value
		}
	}
	return nil
}

// waitStatus polls a usage until it has one of the statuses (the test's
// context ends a wait that never does).
func (c tmfClient) waitStatus(ctx context.Context, id string, statuses ...string) tmfUsage {
	c.t.Helper()
	for {
		var u tmfUsage
		c.ok("GET", tmfBase+"/usage/"+id, "", "Usage", 200, &u)
		if slices.Contains(statuses, u.Status) {
			return u
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("usage %s still %s, want %v", id, u.Status, statuses)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hubListener is a subscriber's listener: it records every event, by
// the path it came to, and answers the first call with 503 so that the
// retry is exercised.
type hubListener struct {
	mu      sync.Mutex
	calls   int
	events  []hubEvent
	changed chan struct{}
}

type hubEvent struct {
	Path string
	Body []byte
	Type string
	ID   string
	Stat string
}

func (l *hubListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls == 1 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var e struct {
		EventType string `json:"eventType"`
		Event     struct {
			Usage struct{ ID, Status string } `json:"usage"`
		} `json:"event"`
	}
	_ = json.Unmarshal(b, &e)
	l.events = append(l.events, hubEvent{Path: r.URL.Path, Body: b, Type: e.EventType, ID: e.Event.Usage.ID, Stat: e.Event.Usage.Status})
	select {
	case l.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// of returns the events for one usage, in the order received.
func (l *hubListener) of(id string) []hubEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []hubEvent
	for _, e := range l.events {
		if e.ID == id {
			out = append(out, e)
		}
	}
	return out
}

func (l *hubListener) waitFor(ctx context.Context, t *testing.T, id string, n int) []hubEvent {
	t.Helper()
	for {
		if ev := l.of(id); len(ev) >= n {
			return ev
		}
		select {
		case <-ctx.Done():
			t.Fatalf("usage %s: %d hub events, want %d: %+v", id, len(l.of(id)), n, l.of(id))
		case <-l.changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// firstRecord is the first record of a generated usage file, by column.
func firstRecord(t testing.TB, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, h := range head {
		out[h] = row[i]
	}
	return out
}

func tokenFor(ctx context.Context, t *testing.T, d *devProcess, client, role string) string {
	t.Helper()
	out, errOut, code := d.run(ctx, "token", "create", "--client", client, "--role", role)
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestTMF635 drives the TMF635 API of a running vivace dev: lists with
// filters, paging and fields; a posted usage received, rated and, after a
// sync cycle, billed; hub callbacks for it, in order, after a refused
// first call; a rejected posted usage; errors as TMF Error bodies; and
// another client's token seeing none of it. Every body is checked
// against the official definitions.
func TestTMF635(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, client, flags := startCore(t, "tmf")
	d := startDevOwnDB(t, flags...)
	file := prepareClient(ctx, t, d, client, 300, 20)
	first := firstRecord(t, file)
	schema := loadTMFSchemas(t)
	op := tmfClient{t: t, api: d.API, token: tokenFor(ctx, t, d, client, "operator"), schema: schema}
	other := tmfClient{t: t, api: d.API, token: tokenFor(ctx, t, d, "someone-else", "admin"), schema: schema}

	listener := &hubListener{changed: make(chan struct{}, 1)}
	ls := httptest.NewServer(listener)
	defer ls.Close()
	var sub struct{ ID, Callback, Query string }
	op.ok("POST", tmfBase+"/hub", fmt.Sprintf(`{"callback": %q}`, ls.URL+"/events"), "EventSubscription", 201, &sub)
	var narrow struct{ ID string }
	op.ok("POST", tmfBase+"/hub", fmt.Sprintf(`{"callback": %q, "query": "eventType=UsageStateChangeEvent&status=billed"}`, ls.URL+"/billed"),
		"EventSubscription", 201, &narrow)

	ingested := ingestWait(ctx, t, d, client, file)

	// Lists: every usage of the file, paged; the pages add up.
	var all []tmfUsage
	h := op.ok("GET", tmfBase+"/usage?limit=1000", "", "[]Usage", 200, &all)
	total, _ := strconv.Atoi(h.Get("X-Total-Count"))
	if int64(total) != ingested.MURs+ingested.Exceptions || h.Get("X-Result-Count") != strconv.Itoa(len(all)) || len(all) != total {
		t.Fatalf("list: total %s, result %s, %d usages; file %+v", h.Get("X-Total-Count"), h.Get("X-Result-Count"), len(all), ingested)
	}
	var paged []tmfUsage
	for off := 0; off < total; off += 7 {
		var page []tmfUsage
		h := op.ok("GET", fmt.Sprintf("%s/usage?offset=%d&limit=7", tmfBase, off), "", "[]Usage", 200, &page)
		if h.Get("X-Total-Count") != strconv.Itoa(total) || h.Get("X-Result-Count") != strconv.Itoa(len(page)) {
			t.Fatalf("page at %d: headers %v", off, h)
		}
		paged = append(paged, page...)
	}
	if len(paged) != len(all) {
		t.Fatalf("pages hold %d usages, the list %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].ID != all[i].ID {
			t.Fatalf("page order differs at %d: %s vs %s", i, paged[i].ID, all[i].ID)
		}
		if !strings.HasPrefix(all[i].Href, d.API+tmfBase+"/usage/") {
			t.Fatalf("href %q is not absolute", all[i].Href)
		}
	}
	// Filters.
	var rated []tmfUsage
	h = op.ok("GET", tmfBase+"/usage?status=rated&limit=1000", "", "[]Usage", 200, &rated)
	if int64(len(rated)) != ingested.MURs || h.Get("X-Total-Count") != strconv.FormatInt(ingested.MURs, 10) {
		t.Fatalf("status=rated: %d (total %s), want %d", len(rated), h.Get("X-Total-Count"), ingested.MURs)
	}
	for _, u := range rated {
		r := u.RatedProductUsage
		if len(r) != 1 || r[0].IsBilled || r[0].TaxExcludedRatingAmount.Unit == "" || r[0].UsageRatingTag != "usage" || r[0].RatingDate == "" {
			t.Fatalf("rated usage %+v", u)
		}
	}
	typ, acct := first["usage_type"], first["account_id"]
	var byType []tmfUsage
	op.ok("GET", tmfBase+"/usage?limit=1000&usageType="+typ+"&relatedParty.id="+acct, "", "[]Usage", 200, &byType)
	want := 0
	for _, u := range all {
		if u.UsageType == typ && len(u.RelatedParty) > 0 && u.RelatedParty[0].ID == acct {
			want++
		}
	}
	if len(byType) != want || want == 0 {
		t.Fatalf("usageType=%s&relatedParty.id=%s: %d, want %d", typ, acct, len(byType), want)
	}
	ut, _ := time.Parse(time.RFC3339, first["usage_time"])
	var window []tmfUsage
	q := "usageDate.gte=" + ut.Format(time.RFC3339) + "&usageDate.lt=" + ut.Add(time.Hour).Format(time.RFC3339)
	op.ok("GET", tmfBase+"/usage?limit=1000&status=rated&"+strings.ReplaceAll(q, "+", "%2B"), "", "[]Usage", 200, &window)
	want = 0
	for _, u := range rated {
		if at, _ := time.Parse(time.RFC3339Nano, u.UsageDate); !at.Before(ut) && at.Before(ut.Add(time.Hour)) {
			want++
		}
	}
	if len(window) != want || want == 0 {
		t.Fatalf("%s: %d, want %d", q, len(window), want)
	}
	// fields= keeps what is asked, and id and href.
	code, _, body := op.do("GET", tmfBase+"/usage?limit=3&fields=status,usageType", "", "[]Usage")
	var picked []map[string]any
	if err := json.Unmarshal(body, &picked); code != 200 || err != nil || len(picked) != 3 {
		t.Fatalf("fields: %d %s", code, body)
	}
	for _, p := range picked {
		if len(p) != 4 || p["id"] == nil || p["href"] == nil || p["status"] == nil || p["usageType"] == nil {
			t.Fatalf("fields=status,usageType gave %v", p)
		}
	}

	// A posted usage: received, rated, then billed after a sync cycle.
	post := fmt.Sprintf(`{"description": "posted", "usageType": %q, "usageDate": %q,
		"relatedParty": [{"id": %q, "role": "customer", "@referredType": "BillingAccount"}],
		"usageCharacteristic": [{"name": "quantity", "value": 3}, {"name": "region", "value": "north"}]}`,
		typ, time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), acct)
	var posted tmfUsage
	hdr := op.ok("POST", tmfBase+"/usage", post, "Usage", 201, &posted)
	if posted.Status != "received" || hdr.Get("Location") != posted.Href || posted.char("record_id") != posted.ID {
		t.Fatalf("posted %+v, Location %q", posted, hdr.Get("Location"))
	}
	u := op.waitStatus(ctx, posted.ID, "rated", "rejected")
	if u.Status != "rated" || u.RatedProductUsage[0].TaxExcludedRatingAmount.Value == "" || u.char("region") != "north" {
		t.Fatalf("posted usage became %+v", u)
	}
	syncRun(ctx, t, d, 0, "run", "--client", client)
	u = op.waitStatus(ctx, posted.ID, "billed")
	if !u.RatedProductUsage[0].IsBilled {
		t.Fatalf("billed usage %+v", u)
	}
	ev := listener.waitFor(ctx, t, posted.ID, 3)
	var seen []string
	for _, e := range ev {
		if !strings.HasPrefix(e.Path, "/events/listener/") {
			continue
		}
		schema.check(t, e.Type, e.Body)
		seen = append(seen, e.Type+":"+e.Stat)
	}
	if strings.Join(seen, ",") != "UsageCreateEvent:received,UsageStateChangeEvent:rated,UsageStateChangeEvent:billed" {
		t.Fatalf("hub events for the posted usage: %v", seen)
	}
	// The narrow subscription got the billed change only.
	for _, e := range ev {
		if strings.HasPrefix(e.Path, "/billed/") && (e.Path != "/billed/listener/usageStateChangeEvent" || e.Stat != "billed") {
			t.Fatalf("narrow subscription got %s %s", e.Path, e.Stat)
		}
	}
	op.ok("DELETE", tmfBase+"/hub/"+narrow.ID, "", "", 204, nil)
	op.ok("DELETE", tmfBase+"/hub/"+narrow.ID, "", "", 404, nil)

	// A posted usage the pipeline refuses: rejected, with its code.
	bad := strings.Replace(post, `"value": 3`, `"value": "lots"`, 1)
	op.ok("POST", tmfBase+"/usage", bad, "Usage", 201, &posted)
	u = op.waitStatus(ctx, posted.ID, "rejected", "rated")
	if u.Status != "rejected" || u.char("exception_code") != "BAD_QUANTITY" || !strings.Contains(u.Description, "BAD_QUANTITY") {
		t.Fatalf("bad usage became %+v", u)
	}
	// Corrected with PATCH: recycled, then rated; the listener sees each
	// step in order.
	op.ok("PATCH", tmfBase+"/usage/"+posted.ID, `{"usageCharacteristic": [{"name": "quantity", "value": "lots"}]}`, "", 400, nil)
	var fixed tmfUsage
	op.ok("PATCH", tmfBase+"/usage/"+posted.ID, `{"usageCharacteristic": [{"name": "quantity", "value": 4}]}`, "Usage", 200, &fixed)
	if fixed.Status != "recycled" && fixed.Status != "rated" {
		t.Fatalf("corrected usage %+v", fixed)
	}
	u = op.waitStatus(ctx, posted.ID, "rated")
	if u.char("quantity") != json.Number("4") && fmt.Sprint(u.char("quantity")) != "4" {
		t.Fatalf("corrected usage rated as %+v", u)
	}
	op.ok("PATCH", tmfBase+"/usage/"+posted.ID, `{"usageCharacteristic": [{"name": "quantity", "value": 5}]}`, "", 409, nil)
	seen = nil
	for _, e := range listener.waitFor(ctx, t, posted.ID, 4) {
		schema.check(t, e.Type, e.Body)
		seen = append(seen, e.Type+":"+e.Stat)
	}
	if strings.Join(seen, ",") != "UsageCreateEvent:received,UsageStateChangeEvent:rejected,UsageStateChangeEvent:recycled,UsageStateChangeEvent:rated" {
		t.Fatalf("hub events for the corrected usage: %v", seen)
	}

	// Usage specifications: the catalog's usage types.
	var specs []struct{ ID, Name, Href string }
	op.ok("GET", tmfBase+"/usageSpecification", "", "[]UsageSpecification", 200, &specs)
	if len(specs) == 0 {
		t.Fatal("no usage specifications")
	}
	op.ok("GET", tmfBase+"/usageSpecification/"+client+":"+typ, "", "UsageSpecification", 200, nil)

	// Errors, each a TMF Error.
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/usage?status=lost", "", 400},
		{"GET", "/usage?colour=red", "", 400},
		{"GET", "/usage?limit=0", "", 400},
		{"GET", "/usage/not-an-id", "", 404},
		{"DELETE", "/usage/" + u.ID, "", 405},
		{"PUT", "/usage", "{}", 405},
		{"GET", "/nothing", "", 404},
		{"POST", "/usage", "[1]", 400},
		{"POST", "/usage", `{"usageDate": "yesterday"}`, 400},
		{"POST", "/hub", `{"callback": "not a url"}`, 400},
		{"GET", "/usageSpecification/" + client + ":NOPE", "", 404},
	} {
		op.ok(c.method, tmfBase+c.path, c.body, "", c.status, nil)
	}
	anon := tmfClient{t: t, api: d.API, schema: schema}
	anon.ok("GET", tmfBase+"/usage", "", "", 401, nil)
	viewer := tmfClient{t: t, api: d.API, token: tokenFor(ctx, t, d, client, "viewer"), schema: schema}
	viewer.ok("POST", tmfBase+"/usage", post, "", 403, nil)

	// Another client's token sees nothing of this client.
	var none []tmfUsage
	h = other.ok("GET", tmfBase+"/usage", "", "[]Usage", 200, &none)
	if len(none) != 0 || h.Get("X-Total-Count") != "0" {
		t.Fatalf("another client's token lists %d usages (total %s)", len(none), h.Get("X-Total-Count"))
	}
	other.ok("GET", tmfBase+"/usage/"+u.ID, "", "", 404, nil)
	other.ok("GET", tmfBase+"/usage?client="+client, "", "", 403, nil)
	other.ok("GET", tmfBase+"/usageSpecification/"+client+":"+typ, "", "", 404, nil)
	other.ok("POST", tmfBase+"/usage?client="+client, post, "", 403, nil)
	other.ok("DELETE", tmfBase+"/hub/"+sub.ID, "", "", 404, nil)
	op.ok("DELETE", tmfBase+"/hub/"+sub.ID, "", "", 204, nil)

	// docs/tmf635.md: every example runs as written, on the sample
	// client's catalog, and answers what its check says.
	if out, errOut, code := d.run(ctx, "feed", "publish", "--wait", filepath.Join(repoRoot(t), "tests/testdata/demo/catalog.jsonl")); code != 0 {
		t.Fatalf("feed publish: %s %s", out, errOut)
	}
	admin, err := os.ReadFile(filepath.Join(d.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	var hub struct{ ID string }
	op.ok("POST", tmfBase+"/hub", `{"callback": "http://127.0.0.1:9/x"}`, "EventSubscription", 201, &hub)
	// A rejected usage of the sample client for the PATCH example: its
	// sample file's line with quantity "abc".
	ingestWait(ctx, t, d, "demo", filepath.Join(repoRoot(t), "tests/testdata/demo/usage.csv"))
	demoAdmin := tmfClient{t: t, api: d.API, token: strings.TrimSpace(string(admin)), schema: schema}
	var demoBad []tmfUsage
	demoAdmin.ok("GET", tmfBase+"/usage?client=demo&status=rejected&limit=1000", "", "[]Usage", 200, &demoBad)
	demoRejected := ""
	for _, x := range demoBad {
		if x.char("exception_code") == "BAD_QUANTITY" && x.char("quantity") == "abc" {
			demoRejected = x.ID
		}
	}
	if demoRejected == "" {
		t.Fatalf("no BAD_QUANTITY usage of the sample client: %+v", demoBad)
	}

	runDocExamples(ctx, t, schema, "docs/tmf635.md", []string{"API=" + d.API + tmfBase, "TOKEN=" + strings.TrimSpace(string(admin)),
		"USAGE=" + rated[0].ID, "CLIENT=demo", "USAGE_TYPE=VOICE", "HUB=" + hub.ID, "REJECTED=" + demoRejected})
}

// runDocExamples runs every sh block of a page that a check comment
// precedes (<!-- check: Usage -->, []Usage, Error, none), each in its own
// shell with env, and checks that it succeeds and prints a body of that
// definition (or nothing, for none).
func runDocExamples(ctx context.Context, t *testing.T, schema *tmfSchemas, page string, env []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), page))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)<!-- check: (\\S+) -->\n```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 10 {
		t.Fatalf("%s: %d checked examples", page, len(blocks))
	}
	for _, m := range blocks {
		def, script := m[1], m[2]
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s example failed: %v\n%s\n%s", page, err, script, out)
		}
		if def == "none" {
			if len(bytes.TrimSpace(out)) != 0 {
				t.Fatalf("%s example printed %s\n%s", page, out, script)
			}
			continue
		}
		schema.check(t, def, out)
	}
}

// TestTMFSchemasRefuse: the definitions the tests check against do
// refuse what Vivace must never send (so the checks can fail).
func TestTMFSchemasRefuse(t *testing.T) {
	s := loadTMFSchemas(t)
	for def, body := range map[string]string{
		"Error":             `{"code": "X"}`,
		"Usage":             `{"id": "1", "status": "lost"}`,
		"Money":             `{"unit": "USD", "value": "1.50"}`,
		"RatedProductUsage": `{"ratingDate": "yesterday"}`,
		"EventSubscription": `{"callback": "http://x"}`,
	} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		sch, err := s.c.Compile("tmf635.json#/definitions/" + def)
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(v) == nil {
			t.Errorf("%s %s validates", def, body)
		}
	}
}
