package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFeedBadInputAndRepair publishes a feed file with every kind of bad
// input through the running catalog stream, checks that the counts add up
// and that nothing stopped, then repairs the errors with the CLI as an
// operator would and reads an account's history.
func TestFeedBadInputAndRepair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Setenv("VIVACE_FEED_DEPENDENCY_WAIT", "3s")
	t.Setenv("VIVACE_FEED_RETRY_INTERVAL", "500ms")
	d := startDev(t, "")
	c := "feedbad" + fmt.Sprint(time.Now().UnixNano()%1e9)
	ev := func(id, entity, eid string, version int, op, data string) string {
		s := fmt.Sprintf(`{"event_id":"%s-%s","client":"%s","entity":"%s","entity_id":"%s","version":%d,"occurred_at":"2026-01-0%dT00:00:00Z","op":"%s"`,
			c, id, c, entity, eid, version, version, op)
		if data != "" {
			s += `,"data":` + data
		}
		return s + "}"
	}
	lines := []string{
		// The subscription comes first, its account and plan later (and
		// on other partitions): it waits, then applies.
		ev("sub", "subscription", "S1", 1, "upsert", `{"account_id":"A1","plan_id":"P1"}`),
		ev("ut", "usage_type", "VOICE", 1, "upsert", `{"unit":"minute"}`),
		ev("plan", "plan", "P1", 1, "upsert", `{"rates":[{"usage_type":"VOICE","currency":"USD","model":"per_unit","unit_price":"0.05"}]}`),
		ev("a1v2", "account", "A1", 2, "upsert", `{"currency":"USD","status":"active","name":"second"}`),
		ev("a1v1", "account", "A1", 1, "upsert", `{"currency":"USD","status":"active","name":"first"}`),  // backwards: ignored
		ev("a1v2", "account", "A1", 2, "upsert", `{"currency":"USD","status":"active","name":"second"}`), // duplicate
		ev("a2del", "account", "A2", 3, "delete", ""),                                                    // delete before its create
		ev("a2", "account", "A2", 1, "upsert", `{"currency":"USD","status":"active"}`),
		`{"event_id": "` + c + `-broken", "client": "` + c + `", `, // malformed JSON
		ev("badop", "account", "A3", 1, "merge", `{"currency":"USD","status":"active"}`),
		ev("badtype", "account", "A4", 1, "upsert", `{"currency":"USD","status":7}`),
		ev("orphan", "subscription", "S9", 1, "upsert", `{"account_id":"A1","plan_id":"NOPE"}`),
	}
	file := filepath.Join(t.TempDir(), "feed.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := d.run(ctx, "feed", "publish", "--wait", file)
	if code == 0 {
		t.Fatalf("publish --wait exited 0 although events failed:\n%s", out)
	}
	var counts struct{ Events, Applied, Ignored, Failed, Pending int }
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &counts); err != nil {
		t.Fatalf("publish output %q (%s): %v", out, errOut, err)
	}
	// applied: sub, ut, plan, a1v2, a2del; ignored: a1v1, the duplicate,
	// a2; failed: broken, badop, badtype, orphan (after the wait).
	if counts.Events != 12 || counts.Applied != 5 || counts.Ignored != 3 || counts.Failed != 4 || counts.Pending != 0 ||
		counts.Applied+counts.Ignored+counts.Failed != counts.Events {
		t.Fatalf("counts %+v\n%s", counts, errOut)
	}

	out, errOut, code = d.run(ctx, "feed", "errors", "list", "--client", c)
	if code != 0 {
		t.Fatalf("errors list: exit %d %s", code, errOut)
	}
	type listed struct {
		EventID string `json:"event_id"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Outcome string `json:"outcome"`
	}
	errs := decodeLines[listed](t, out)
	byID := map[string]listed{}
	for _, e := range errs {
		byID[strings.TrimPrefix(e.EventID, c+"-")] = e
	}
	if len(errs) != 3 || byID["orphan"].Code != "MISSING_REFERENCE" || !strings.Contains(byID["orphan"].Message, `plan "NOPE"`) ||
		!strings.Contains(byID["badop"].Message, `"merge"`) || !strings.Contains(byID["badtype"].Message, "status") {
		t.Fatalf("errors list (the malformed line has no client, so is not listed under one):\n%s", out)
	}

	// Fix the orphan's plan and the bad type; reprocess the bad op as it is.
	fixed := ev("orphan", "subscription", "S9", 1, "upsert", `{"account_id":"A1","plan_id":"P1"}`)
	edit := filepath.Join(t.TempDir(), "fixed.json")
	_ = os.WriteFile(edit, []byte(fixed), 0o644)
	if out, errOut, code := d.run(ctx, "feed", "errors", "edit", "--file", edit, c+"-orphan"); code != 0 || !strings.Contains(out, `"applied"`) {
		t.Fatalf("edit: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, _, code := d.run(ctx, "feed", "errors", "reprocess", c+"-badop"); code == 0 || !strings.Contains(out, `"failed"`) {
		t.Fatalf("reprocessing an invalid event as it is must fail again: exit %d\n%s", code, out)
	}
	out, _, _ = d.run(ctx, "feed", "errors", "list", "--client", c)
	if n := len(decodeLines[listed](t, out)); n != 2 {
		t.Fatalf("%d errors left after the edit, want 2:\n%s", n, out)
	}

	// History: both applied versions of A1, and the one in effect on
	// 2026-01-01 is the first... which never applied (it came late), so
	// there is none; on the 2nd it is version 2.
	out, errOut, code = d.run(ctx, "feed", "history", "--client", c, "--entity", "account", "--id", "A1")
	if code != 0 || len(decodeLines[listed](t, out)) != 1 {
		t.Fatalf("history: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, _, code := d.run(ctx, "feed", "history", "--client", c, "--entity", "account", "--id", "A1", "--at", "2026-01-01T12:00:00Z"); code == 0 {
		t.Fatal("history at a time before any applied version should fail")
	}
	out, _, code = d.run(ctx, "feed", "history", "--client", c, "--entity", "account", "--id", "A1", "--at", "2026-01-02T12:00:00Z")
	if code != 0 || !strings.Contains(out, `second`) {
		t.Fatalf("history at 2026-01-02: exit %d\n%s", code, out)
	}
}

// TestFeedTroubleCounts publishes a generated catalog laced with repeats,
// stale and newer versions, cut-short lines, unknown ops and wrongly typed
// data through the running catalog stream (four batches in flight) and
// checks that what publish --wait reports is exactly what the generator
// says the sync must make of it: nothing applied twice, nothing lost,
// nothing left pending.
func TestFeedTroubleCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startDev(t, "")
	c := "trouble" + fmt.Sprint(time.Now().UnixNano()%1e9)
	file := filepath.Join(t.TempDir(), "trouble.jsonl")
	_, expected, code := d.run(ctx, "feed", "generate", "--client", c, "--accounts", "2000", "--plans", "6",
		"--trouble-every", "7", "--out", file)
	if code != 0 {
		t.Fatalf("feed generate: exit %d: %s", code, expected)
	}
	want := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(expected), "expected: "))
	out, errOut, code := d.run(ctx, "feed", "publish", "--wait", file)
	if code == 0 {
		t.Fatalf("publish --wait exited 0 although events failed:\n%s", out)
	}
	if got := strings.TrimSpace(out); got != want {
		t.Fatalf("publish --wait reported %s, the file calls for %s\n%s", got, want, lastLines(errOut, 10))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestDataFeedIntoCatalog runs vivace dev with the core system's native
// Data Feed configured (a server-sent event stream of our own on
// loopback) and checks that its entities arrive in the catalog through
// the aria_feed and catalog streams.
func TestDataFeedIntoCatalog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "vivace" || secret != "e2e-secret" {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"t1","expires_in":3600}`)
	})
	events := []string{
		`id: 1` + "\nevent: load\n" + `data: {"ref":{"type":"Usage_Type","ids":{"usage_type_cd":"VOICE"}},"tstamp":"2026-01-01T00:00:00Z","tick":1}` + "\n" +
			`data: {"usage_type_cd":"VOICE","usage_unit_type":"minute"}` + "\n\n",
		`id: 2` + "\nevent: load\n" + `data: {"ref":{"type":"Account","ids":{"account_no":42,"client_account_id":"A-42"}},"tstamp":"2026-01-01T00:00:00Z","tick":2}` + "\n" +
			`data: {"account_no":42,"client_account_id":"A-42","currency":"usd","status":1,"company_name":"Forty Two"}` + "\n\n",
		`id: 3` + "\nevent: update\n" + `data: {"ref":{"type":"Account","ids":{"account_no":42,"client_account_id":"A-42"}},"tstamp":"2026-01-02T00:00:00Z","tick":3}` + "\n" +
			`data: {"account_no":42,"status":-1}` + "\n\n",
	}
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t1" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			fmt.Fprint(w, e)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ts := httptest.NewServer(mux)
	// Registered before vivace dev is, so it runs after dev has stopped
	// and let go of the stream.
	t.Cleanup(ts.Close)
	c := "datafeed" + fmt.Sprint(time.Now().UnixNano()%1e9)
	for k, v := range map[string]string{"VIVACE_ARIA_FEED_URL": ts.URL + "/feed", "VIVACE_ARIA_TOKEN_URL": ts.URL + "/token",
		"VIVACE_ARIA_CLIENT_ID": "vivace", "VIVACE_ARIA_CLIENT_SECRET": "e2e-secret", "VIVACE_ARIA_CLIENT": c} {
		t.Setenv(k, v)
	}
	d := startDev(t, "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _, code := d.run(ctx, "feed", "history", "--client", c, "--entity", "account", "--id", "A-42")
		if code == 0 && strings.Contains(out, `"version":3`) {
			if !strings.Contains(out, `suspended`) || !strings.Contains(out, `USD`) {
				t.Fatalf("the partial update was not completed from the account's full form:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account A-42 did not arrive at version 3 through the data feed: %s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
