package corelink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/bulkapi"
	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/synctest"
)

func clients(t *testing.T, yml string) *clientcfg.Watched {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := clientcfg.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func call(client string, recs ...mursync.Record) mursync.Call {
	set := settings.DefaultMURSync()
	set.MaxAttempts, set.CallTimeout = 2, 2*time.Second
	return mursync.Call{Client: client, BatchID: "01a2339c-c7f5-737f-9199-b107d6579213", Records: recs, Settings: set}
}

var rec = mursync.Record{ID: "01a2339c-c7f5-737f-9199-000000000001", AccountID: "A1", UsageType: "calls", Currency: "JPY",
	UsageDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Units: "1.5", Amount: "120", MURs: 2, Comments: "2 MURs of 2026-03-01",
	Qualifiers: [4]string{"roaming"}}

// Each client's endpoint and credentials come from its core block, the
// rest from the defaults; the key is never in an error.
func TestEndpoints(t *testing.T) {
	core := synctest.StartCore(t, fakecore.Credential{ClientNo: 1, AuthKey: "default-key"}, fakecore.Credential{ClientNo: 2, AuthKey: "acme-key"})
	env := map[string]string{"ACME_KEY": "acme-key", "GLOBEX_KEY": ""}
	l := &Link{Defaults: Defaults{URL: core.URL(), ClientNo: 1, AuthKey: bulkapi.NewSecret("default-key")},
		Clients: clients(t, `
clients:
  acme:
    core:
      client_no: 2
      auth_key_env: ACME_KEY
  globex:
    core:
      auth_key_env: GLOBEX_KEY
  initech:
    core:
      url: http://127.0.0.1:1
`), Getenv: func(k string) string { return env[k] }, BackoffBase: time.Millisecond}
	ctx := context.Background()

	for _, c := range []struct {
		client   string
		clientNo int64
	}{{"demo", 1}, {"acme", 2}} {
		ans, err := l.Send(ctx, call(c.client, rec))
		if err != nil || len(ans.Refused) != 0 || ans.Attempts != 1 {
			t.Fatalf("%s: %+v, %v", c.client, ans, err)
		}
		got := core.Records(fakecore.Filter{ClientNo: c.clientNo})
		if len(got) != 1 || got[0].Amt != "120" || got[0].UsageUnits != "1.5" || got[0].UsageDate != "2026-03-01 00:00:00" ||
			got[0].Qualifier1 != "roaming" || got[0].Account != "A1" || got[0].UsageType != "calls" {
			t.Fatalf("%s at the core: %+v", c.client, got)
		}
	}

	var ce *mursync.CallError
	if _, err := l.Send(ctx, call("globex", rec)); !errors.As(err, &ce) || ce.Failure != mursync.FailNoEndpoint ||
		!strings.Contains(ce.Message, "GLOBEX_KEY, which is not set") {
		t.Fatalf("globex: %v", err)
	}
	if _, err := l.Send(ctx, call("initech", rec)); !errors.As(err, &ce) || ce.Failure != mursync.FailUnavailable || ce.Attempts != 2 {
		t.Fatalf("initech: %v", err)
	}
	l.Defaults.AuthKey = bulkapi.NewSecret("wrong-key")
	_, err := l.Send(ctx, call("demo", rec))
	if !errors.As(err, &ce) || ce.Failure != mursync.FailRefused || ce.Code != 1004 {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-key") {
		t.Fatalf("the key is in the error: %v", err)
	}
	empty := &Link{}
	if _, err := empty.Send(ctx, call("demo", rec)); !errors.As(err, &ce) || ce.Failure != mursync.FailNoEndpoint ||
		!strings.Contains(ce.Message, "the core URL") || !strings.Contains(ce.Message, "the client_no") || !strings.Contains(ce.Message, "the auth key") {
		t.Fatalf("nothing set: %v", err)
	}
	bad := rec
	bad.Amount = "1.5" // JPY has no minor unit
	l.Defaults.AuthKey = bulkapi.NewSecret("default-key")
	if _, err := l.Send(ctx, call("demo", bad)); !errors.As(err, &ce) || ce.Failure != mursync.FailInvalid {
		t.Fatalf("an amount the currency cannot hold: %v", err)
	}
	if err := core.SetFaults(fakecore.Faults{RejectAccounts: map[string]fakecore.Rejection{"A1": {}}}); err != nil {
		t.Fatal(err)
	}
	ans, err := l.Send(ctx, call("demo", rec))
	if err != nil || ans.Refused[rec.ID].Code != 1009 {
		t.Fatalf("refused record: %+v, %v", ans, err)
	}
}

func TestParseClientNo(t *testing.T) {
	if n, err := ParseClientNo(""); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := ParseClientNo("1001"); n != 1001 || err != nil {
		t.Fatal(n, err)
	}
	for _, bad := range []string{"0", "-3", "x", "1.5"} {
		if _, err := ParseClientNo(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
