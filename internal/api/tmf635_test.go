package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/store/usagestore"
	"vivace.dev/vivace/internal/tmf635"
)

var (
	tmfSchemaOnce sync.Once
	tmfCompiler   *jsonschema.Compiler
	tmfSchemaErr  error
)

// tmfValid checks a body against a definition of the official TMF635
// v4.0.0 swagger ("[]Usage": a list of them).
func tmfValid(t *testing.T, def string, body []byte) {
	t.Helper()
	tmfSchemaOnce.Do(func() {
		f, err := os.Open("../../tests/testdata/tmf635/tmf635-v4.0.0.swagger.json")
		if err != nil {
			tmfSchemaErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			tmfSchemaErr = err
			return
		}
		tmfCompiler = jsonschema.NewCompiler()
		tmfCompiler.DefaultDraft(jsonschema.Draft4)
		tmfCompiler.AssertFormat()
		tmfSchemaErr = tmfCompiler.AddResource("tmf635.json", doc)
	})
	if tmfSchemaErr != nil {
		t.Fatal(tmfSchemaErr)
	}
	sch, err := tmfCompiler.Compile("tmf635.json#/definitions/" + strings.TrimPrefix(def, "[]"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v: %s", def, err, body)
	}
	items := []any{v}
	if strings.HasPrefix(def, "[]") {
		items, _ = v.([]any)
	}
	for _, it := range items {
		if err := sch.Validate(it); err != nil {
			t.Errorf("%s does not validate: %v\n%s", def, err, body)
		}
	}
}

// tmfDo sends a TMF request and checks the body: def on success, Error
// otherwise.
func (w *world) tmfDo(token, method, path, body, def string) (int, []byte) {
	w.t.Helper()
	code, b := w.do(token, method, tmf635.BasePath+path, body)
	switch {
	case code == http.StatusNoContent:
	case code/100 == 2:
		tmfValid(w.t, def, b)
	default:
		tmfValid(w.t, "Error", b)
	}
	return code, b
}

func (w *world) tmfIDs(token, path string) []string {
	w.t.Helper()
	code, b := w.tmfDo(token, "GET", path, "", "[]Usage")
	var us []struct{ ID string }
	if err := json.Unmarshal(b, &us); code != 200 || err != nil {
		w.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func init() {
	b := tmf635.BasePath
	usage := `{"usageType": "VOICE", "usageDate": "2026-01-01T00:00:00Z", "relatedParty": [{"id": "A1", "@referredType": "BillingAccount"}],
		"usageCharacteristic": [{"name": "quantity", "value": 1}, {"name": "client", "value": "%s"}]}`
	cases := map[string]func(w *world){
		"GET " + b + "/usage": func(w *world) {
			ids := w.tmfIDs("acme-viewer", "/usage")
			for _, id := range ids {
				if !strings.HasPrefix(id, w.acmeFile+".") {
					w.t.Errorf("acme's list holds %s", id)
				}
			}
			if len(ids) < 2 {
				w.t.Errorf("acme's list: %v", ids)
			}
			code, body := w.tmfDo("acme-viewer", "GET", "/usage?client="+w.beta, "", "")
			w.refused("beta's usages", code, body)
			all := w.tmfIDs("admin", "/usage?limit=1000")
			if !strings.Contains(strings.Join(all, ","), w.betaFile) {
				w.t.Errorf("admin's list lacks beta's: %v", all)
			}
		},
		"POST " + b + "/usage": func(w *world) {
			code, body := w.tmfDo("acme-operator", "POST", "/usage", strings.Replace(usage, "%s", w.beta, 1), "")
			w.refused("a usage for beta", code, body)
			if code, body := w.tmfDo("admin", "POST", "/usage", strings.Replace(usage, `, {"name": "client", "value": "%s"}`, "", 1), ""); code != 400 {
				w.t.Errorf("a usage of no client by a token of all: %d %s", code, body)
			}
			code, body = w.tmfDo("acme-operator", "POST", "/usage", strings.Replace(usage, `, {"name": "client", "value": "%s"}`, "", 1), "Usage")
			var u struct{ ID, Status string }
			if err := json.Unmarshal(body, &u); code != 201 || err != nil || u.Status != "received" {
				w.t.Fatalf("acme's own usage: %d %s", code, body)
			}
			if code, body := w.tmfDo("acme-viewer", "GET", "/usage/"+u.ID, "", "Usage"); code != 200 {
				w.t.Errorf("the posted usage: %d %s", code, body)
			}
			if ids := w.tmfIDs("acme-viewer", "/usage?status=received"); !strings.Contains(strings.Join(ids, ","), u.ID) {
				w.t.Errorf("received usages %v lack %s", ids, u.ID)
			}
		},
		"GET " + b + "/usage/{id}": func(w *world) {
			for _, id := range []string{w.betaFile + ".2", w.betaFile + ".3"} {
				code, body := w.tmfDo("acme-viewer", "GET", "/usage/"+id, "", "")
				if code != 404 || bytes.Contains(body, []byte(w.beta)) {
					w.t.Errorf("beta's usage %s: %d %s", id, code, body)
				}
			}
			// Other routes' cases may reprocess acme's exception.
			for id, status := range map[string]string{w.acmeFile + ".2": `"rated"`, w.acmeFile + ".3": `"re`} {
				code, body := w.tmfDo("acme-viewer", "GET", "/usage/"+id, "", "Usage")
				if code != 200 || !bytes.Contains(body, []byte(`"status":`+status)) {
					w.t.Errorf("acme's usage %s: %d %s", id, code, body)
				}
			}
		},
		"DELETE " + b + "/usage/{id}": func(w *world) {
			if code, body := w.tmfDo("admin", "DELETE", "/usage/"+w.acmeFile+".2", "", ""); code != 405 {
				w.t.Errorf("delete: %d %s", code, body)
			}
		},
		"GET " + b + "/usageSpecification": func(w *world) {
			code, body := w.tmfDo("acme-viewer", "GET", "/usageSpecification", "", "[]UsageSpecification")
			if code != 200 || bytes.Contains(body, []byte(w.beta)) {
				w.t.Errorf("acme's specifications: %d %s", code, body)
			}
			code, body = w.tmfDo("acme-viewer", "GET", "/usageSpecification?client="+w.beta, "", "")
			w.refused("beta's specifications", code, body)
		},
		"GET " + b + "/usageSpecification/{id}": func(w *world) {
			if code, body := w.tmfDo("acme-viewer", "GET", "/usageSpecification/"+w.beta+":VOICE", "", ""); code != 404 {
				w.t.Errorf("beta's specification: %d %s", code, body)
			}
		},
		"POST " + b + "/hub": func(w *world) {
			code, body := w.tmfDo("acme-viewer", "POST", "/hub?client="+w.beta, `{"callback": "http://127.0.0.1:1/x"}`, "")
			w.refused("a subscription to beta", code, body)
			if code, body := w.tmfDo("acme-viewer", "POST", "/hub", `{"callback": "http://127.0.0.1:1/x"}`, "EventSubscription"); code != 201 {
				w.t.Errorf("acme's subscription: %d %s", code, body)
			}
		},
		"DELETE " + b + "/hub/{id}": func(w *world) {
			code, body := w.tmfDo("admin", "POST", "/hub?client="+w.beta, `{"callback": "http://127.0.0.1:1/x"}`, "EventSubscription")
			var h struct{ ID string }
			if err := json.Unmarshal(body, &h); code != 201 || err != nil {
				w.t.Fatalf("beta's subscription: %d %s", code, body)
			}
			if code, body := w.tmfDo("acme-admin", "DELETE", "/hub/"+h.ID, "", ""); code != 404 {
				w.t.Errorf("acme deletes beta's subscription: %d %s", code, body)
			}
			if code, body := w.tmfDo("admin", "DELETE", "/hub/"+h.ID, "", ""); code != 204 {
				w.t.Errorf("admin deletes it: %d %s", code, body)
			}
		},
	}
	cases["PATCH "+b+"/usage/{id}"] = func(w *world) {
		fix := `{"usageType": "VOICE", "usageDate": "` + time.Now().UTC().Add(-time.Hour).Format(time.RFC3339) + `",
			"relatedParty": [{"id": "A1", "@referredType": "BillingAccount"}],
			"usageCharacteristic": [{"name": "quantity", "value": 2}, {"name": "record_id", "value": "fixed-1"}]}`
		if code, body := w.tmfDo("acme-operator", "PATCH", "/usage/"+w.betaFile+".3", fix, ""); code != 404 || bytes.Contains(body, []byte(w.beta)) {
			w.t.Errorf("acme corrects beta's usage: %d %s", code, body)
		}
		if code, body := w.tmfDo("acme-operator", "PATCH", "/usage/"+w.acmeFile+".2", fix, ""); code != 409 {
			w.t.Errorf("correcting a rated usage: %d %s", code, body)
		}
		// An exception of its own, which no other case works.
		if _, err := usagestore.New(w.st).InsertExceptions(context.Background(), []exceptions.Exception{{Client: w.acme, FileID: w.acmeFile,
			Line: 90, RecordID: "r90", Stage: "mediate", Code: "BAD_QUANTITY", Field: "quantity", Message: "bad",
			Record: json.RawMessage(`{"record_id":"r90","account_id":"A1","usage_type":"VOICE","quantity":"x","usage_time":"2026-01-01T00:00:00Z"}`)}}); err != nil {
			w.t.Fatal(err)
		}
		if code, body := w.tmfDo("acme-operator", "PATCH", "/usage/"+w.acmeFile+".90", `{"usageCharacteristic": [{"name": "quantity", "value": "lots"}]}`, ""); code != 400 ||
			!bytes.Contains(body, []byte(`"code":"MISSING_FIELD"`)) && !bytes.Contains(body, []byte(`"code":"BAD_QUANTITY"`)) {
			w.t.Errorf("a correction that fails the checks: %d %s", code, body)
		}
		code, body := w.tmfDo("acme-operator", "PATCH", "/usage/"+w.acmeFile+".90", fix, "Usage")
		if code != 200 || !bytes.Contains(body, []byte(`"status":"recycled"`)) {
			w.t.Errorf("acme corrects its usage: %d %s", code, body)
		}
		if code, body := w.tmfDo("acme-operator", "PATCH", "/usage/"+w.acmeFile+".90", fix, ""); code != 409 {
			w.t.Errorf("correcting a recycled usage: %d %s", code, body)
		}
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		m := m
		cases[m+" "+b+"/"] = func(w *world) {
			if code, _ := w.tmfDo("acme-viewer", m, "/usage/"+w.betaFile+".2/more", "", ""); code != 404 {
				w.t.Errorf("%s of a path no resource has: %d", m, code)
			}
		}
	}
	for k, v := range cases {
		crossClient[k] = v
	}
}

// TestTMFPanicIsAnError: a TMF635 handler that panics is answered with
// a TMF Error too, pointing to the log, without the panic.
func TestTMFPanicIsAnError(t *testing.T) {
	w := newFilesWorld(t)
	srv := *w.srv
	srv.Mount(Route{"GET " + tmf635.BasePath + "/crash", auth.Viewer, PerClient, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("SELECT secret FROM murs")
	})})
	_, addr := serve(t, &srv, HTTPOptions{})
	code, _, body := call(t, "GET", "http://"+addr+tmf635.BasePath+"/crash", "Bearer "+w.token, "")
	tmfValid(t, "Error", body)
	if code != http.StatusInternalServerError || !bytes.Contains(body, []byte("see the server log (ref ")) || bytes.Contains(body, []byte("SELECT")) {
		t.Errorf("panic answered %d %s", code, body)
	}
}
