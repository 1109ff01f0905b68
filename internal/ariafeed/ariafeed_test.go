package ariafeed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/ariafeed"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/catalogstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// scripted is one event the test feed server sends.
type scripted struct {
	id, kind, lomType string
	ids               string // the header's ids object
	tick              int64
	entity            string
}

func (s scripted) wire() string {
	header := fmt.Sprintf(`{"ref":{"type":%q,"ids":%s},"tstamp":"2026-03-01T10:00:00+02:00","tick":%d}`, s.lomType, s.ids, s.tick)
	return fmt.Sprintf("id: %s\nevent: %s\ndata: %s\ndata: %s\n\n", s.id, s.kind, header, s.entity)
}

// feedServer is a Data Feed of our own on loopback: OAuth2 client
// credentials with tokens it revokes after the first connection, and a
// stream that drops connections part way, repeats the event before the
// one asked for on every resume, and holds events out of order.
type feedServer struct {
	t      *testing.T
	script []scripted
	drops  []int // events sent on the n-th connection before it is dropped

	mu          sync.Mutex
	tokens      map[string]bool
	issued      int
	connections int
	refused     int // requests with a token no longer valid
	resumedFrom []string
}

func (f *feedServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "vivace" || secret != "s3cret" || r.FormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		f.issued++
		tok := fmt.Sprintf("tok-%d", f.issued)
		f.tokens[tok] = true
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":3600}`, tok)
	})
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !f.tokens[tok] {
			f.refused++
			f.mu.Unlock()
			http.Error(w, "token expired", http.StatusUnauthorized)
			return
		}
		conn := f.connections
		f.connections++
		if conn == 0 {
			f.tokens = map[string]bool{} // every token issued so far is revoked
		}
		last := r.Header.Get("Last-Event-ID")
		f.resumedFrom = append(f.resumedFrom, last)
		f.mu.Unlock()
		if q := r.URL.Query().Get("last_id"); q != last {
			f.t.Errorf("last_id %q and Last-Event-ID %q differ", q, last)
		}
		start := 0
		if last != "" {
			for i, s := range f.script {
				if s.id == last {
					start = max(i, 0) // at least once: the last one again
				}
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		fmt.Fprint(w, ": hello\nretry: 20\n\n")
		sent := 0
		for _, s := range f.script[start:] {
			if conn < len(f.drops) && sent == f.drops[conn] {
				return // the connection drops
			}
			fmt.Fprint(w, ": keep-alive\n\n", s.wire())
			fl.Flush()
			sent++
		}
		<-r.Context().Done()
	})
	return mux
}

func TestDataFeedThroughVivace(t *testing.T) {
	script := []scripted{
		{"e1", "load", "Usage_Type", `{"usage_type_no":7}`, 10, `{"usage_type_no":7,"usage_type_cd":"VOICE","usage_type_desc":"Voice","usage_unit_type":{"type":"Usage_Unit_Type","ids":{"code":"minute"}}}`},
		{"e2", "load", "Plan", `{"plan_no":70,"client_plan_id":"GOLD"}`, 11, `{"plan_no":70,"client_plan_id":"GOLD","rate_schedules":[{"currency_cd":"usd","usage_type_cd":"VOICE","pricing_rule":"Standard","rate_tiers":[{"from_unit":1,"to_unit":null,"rate_per_unit":0.05}]}]}`},
		{"e3", "create", "Account", `{"account_no":1001,"client_account_id":"A-1"}`, 12, `{"account_no":1001,"client_account_id":"A-1","currency":{"type":"Currency","ids":{"currency_cd":"usd","code":"usd"}},"status":{"type":"Account_Status","ids":{"status_no":1}},"company_name":"Acme"}`},
		{"e4", "create", "Account", `{"account_no":1002,"userid":"bob"}`, 13, `{"account_no":1002,"userid":"bob","currency":"eur","status":1}`},
		{"e5", "create", "Contact", `{"contact_no":9}`, 14, `{"contact_no":9,"email":"a@example.com"}`},
		{"e6", "create", "Plan_Instance", `{"plan_instance_no":5001}`, 15, `{"plan_instance_no":5001,"account_no":1001,"client_plan_id":"GOLD","activation_date":"2026-01-01"}`},
		// Out of order: tick 17 before tick 16. The update leaves out what
		// did not change.
		{"e7", "update", "Account", `{"account_no":1001,"client_account_id":"A-1"}`, 17, `{"account_no":1001,"status":{"type":"Account_Status","ids":{"status_no":-1}}}`},
		{"e8", "update", "Account", `{"account_no":1001,"client_account_id":"A-1"}`, 16, `{"account_no":1001,"company_name":"Old name"}`},
		{"e9", "update", "Account", `{"account_no":1002}`, 18, `{"account_no":1002,"currency":`},
		{"e10", "create", "Discount_Rule", `{"client_rule_id":"D1"}`, 19, `{"client_rule_id":"D1","account_no":1002,"discount_type":"P","amount":10,"priority":2,"start_date":"2026-01-01"}`},
		{"e11", "delete", "Plan_Instance", `{"plan_instance_no":5001}`, 20, `{"plan_instance_no":5001}`},
		{"e12", "create", "Plan", `{"client_plan_id":"SILVER"}`, 21, `{"client_plan_id":"SILVER","rate_schedules":[{"currency_cd":"usd","usage_type_cd":"VOICE","pricing_rule":"Volume Discount","rate_tiers":[{"to_unit":100,"rate_per_unit":"0.10"},{"to_unit":null,"rate_per_unit":"0.05"}]}]}`},
	}
	srv := &feedServer{t: t, script: script, drops: []int{3, 4, 2}, tokens: map[string]bool{}}
	ts := httptest.NewServer(srv.handler())
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := pgtest.Store(t)
	st := catalogstore.New(db)
	client := "aria-" + store.NewID()[24:]
	mapper := &ariafeed.Mapper{Client: client, State: catalogstore.NewAriaFeedState(db)}
	stream := &ariafeed.Stream{URL: ts.URL + "/feed", MaxBackoff: 50 * time.Millisecond,
		Tokens: &ariafeed.Tokens{URL: ts.URL + "/oauth/token", ClientID: "vivace", ClientSecret: "s3cret"}}
	var events []feed.Event
	skipped, received := 0, 0
	runCtx, stop := context.WithCancel(ctx)
	err := stream.Run(runCtx, "", func(ev ariafeed.SSE) error {
		received++
		e, err := mapper.Map(ctx, ariafeed.Message{ID: ev.ID, Kind: ev.Type, Data: ev.Data})
		switch {
		case err == nil:
			events = append(events, e)
		case strings.Contains(err.Error(), ariafeed.ErrSkipped.Error()):
			skipped++
		default:
			return err
		}
		if ev.ID == "e12" {
			stop()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv.connections < 4 || srv.refused == 0 {
		t.Fatalf("%d connections, %d refused tokens: the test did not drop the stream or expire the token", srv.connections, srv.refused)
	}
	if received <= len(script) || skipped == 0 {
		t.Fatalf("received %d events for a script of %d, skipped %d: no repeats seen", received, len(script), skipped)
	}

	fails := make([]error, len(events))
	for i := range events {
		fails[i] = events[i].Validate(catalog.ValidateData)
	}
	out, err := feed.NewApplier(st, catalog.ValidateData).Apply(ctx, events, fails)
	if err != nil {
		t.Fatal(err)
	}
	count := map[feed.Result]int{}
	for _, o := range out {
		count[o.Outcome]++
	}
	if count[feed.Pending] != 0 || count[feed.Failed] == 0 {
		for _, o := range out {
			t.Logf("%s %s %s", o.EventID, o.Outcome, o.Message)
		}
		t.Fatalf("outcomes %v", count)
	}
	rows, _, err := st.LoadCatalog(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Entity+"/"+r.EntityID] = fmt.Sprintf("v%d %s", r.Version, r.Data)
	}
	want := map[string]string{
		"usage_type/VOICE": `v10 {"unit": "minute", "description": "Voice"}`,
		"plan/GOLD":        `v11 {"rates": [{"model": "per_unit", "currency": "USD", "unit_price": "0.05", "usage_type": "VOICE"}]}`,
		"plan/SILVER":      `v21 {"rates": [{"model": "volume", "tiers": [{"up_to": "100", "unit_price": "0.10"}, {"up_to": null, "unit_price": "0.05"}], "currency": "USD", "usage_type": "VOICE"}]}`,
		"account/A-1":      `v17 {"name": "Acme", "status": "suspended", "currency": "USD"}`,
		"account/1002":     `v13 {"name": "bob", "status": "active", "currency": "EUR"}`,
		"discount/D1":      `v19 {"kind": "percent", "value": "10", "priority": 2, "account_id": "1002", "effective_from": "2026-01-01T00:00:00Z"}`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s:\n got %s\nwant %s", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("catalog holds %d entities, want %d (the plan instance was deleted): %v", len(got), len(want), got)
	}
	hist, err := st.EntityHistory(ctx, client, "subscription", "5001")
	if err != nil || len(hist) != 2 || !strings.Contains(string(hist[0].Payload), `"account_id": "A-1"`) {
		t.Fatalf("the plan instance's history: %+v %v", hist, err)
	}
	failed, _ := st.ListFeedEvents(ctx, feed.EventFilter{Client: client, Outcome: feed.Failed})
	if len(failed) != 1 || !strings.Contains(failed[0].Message, "feed event e9") || !strings.Contains(failed[0].Message, "entity line") {
		t.Fatalf("failed events: %+v", failed)
	}
	// Every reconnect asked to resume after the last event it had.
	for _, from := range srv.resumedFrom[1:] {
		if from == "" {
			t.Fatalf("a reconnect did not resume: %q", srv.resumedFrom)
		}
	}
	if !json.Valid(events[0].Data) {
		t.Fatal("mapped data is not JSON")
	}
}

func TestTokenRefused(t *testing.T) {
	srv := &feedServer{t: t, tokens: map[string]bool{}}
	ts := httptest.NewServer(srv.handler())
	defer ts.Close()
	tok := &ariafeed.Tokens{URL: ts.URL + "/oauth/token", ClientID: "vivace", ClientSecret: "wrong"}
	_, err := tok.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), ts.URL) {
		t.Fatalf("err = %v, want a 401 naming the token URL", err)
	}
}

func TestSSEReader(t *testing.T) {
	in := ": comment\nid: 1\nevent: create\ndata: a\ndata: b\n\nretry: 1500\n\ndata: c\r\n\r\n"
	r := ariafeed.NewSSEReader(strings.NewReader(in))
	ev, err := r.Next()
	if err != nil || ev.ID != "1" || ev.Type != "create" || ev.Data != "a\nb" {
		t.Fatalf("first: %+v %v", ev, err)
	}
	ev, err = r.Next()
	if err != nil || ev.Retry != 1500*time.Millisecond || ev.Data != "" {
		t.Fatalf("retry: %+v %v", ev, err)
	}
	ev, err = r.Next()
	if err != nil || ev.Type != "message" || ev.Data != "c" || ev.ID != "1" {
		t.Fatalf("third: %+v %v", ev, err)
	}
	if _, err := ariafeed.NewSSEReader(strings.NewReader("data: cut")).Next(); err == nil {
		t.Fatal("an event cut by the end of the stream was returned")
	}
}

// TestSilentConnectionIsReplaced: a connection that stops carrying
// anything, keep-alives included, is dropped after the idle timeout and
// the stream resumes after the last event.
func TestSilentConnectionIsReplaced(t *testing.T) {
	var mu sync.Mutex
	var resumed []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"access_token":"t","expires_in":60}`)
	})
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.Header.Get("Last-Event-ID"))
		n := len(resumed)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: s%d\nevent: create\ndata: h\ndata: e\n\n", n)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := &ariafeed.Stream{URL: ts.URL + "/feed", IdleTimeout: 150 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Tokens: &ariafeed.Tokens{URL: ts.URL + "/token"}}
	runCtx, stop := context.WithCancel(ctx)
	got := 0
	if err := s.Run(runCtx, "", func(ev ariafeed.SSE) error {
		if got++; got == 3 {
			stop()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) < 3 || resumed[1] != "s1" || resumed[2] != "s2" {
		t.Fatalf("connections resumed from %q", resumed)
	}
}
