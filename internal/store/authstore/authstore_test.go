package authstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/authstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestTokens: a token works until it expires or is revoked; its secret is
// stored only as a hash; creating and revoking are audited; its last use
// is written at most once a minute.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	as := authstore.New(st)
	clk := &clock{time.Now().UTC().Truncate(time.Microsecond)}
	svc := &auth.Service{Store: as, Audit: as, Now: clk.now}

	in := clk.t.Add(48 * time.Hour)
	tok, secret, err := svc.Create(ctx, "cli:ops", auth.NewToken{Name: "acme-ci", Role: auth.Operator,
		Clients: []string{"acme", "acme2"}, ExpiresAt: &in})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, auth.Prefix+tok.ID+"_") || tok.Name != "acme-ci" || tok.CreatedBy != "cli:ops" {
		t.Fatalf("token %+v secret %q", tok, secret)
	}
	var stored []byte
	if err := st.Pool().QueryRow(ctx, `SELECT secret_hash FROM api_tokens WHERE token_id = $1`, tok.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if string(stored) != string(auth.Hash(secret)) || strings.Contains(string(stored), secret[len(auth.Prefix)+9:]) {
		t.Fatal("the stored hash is not the token's SHA-256")
	}

	p, err := svc.Authenticate(ctx, secret)
	if err != nil || p.TokenID != tok.ID || p.Name != "acme-ci" || p.Role != auth.Operator || !p.MaySee("acme2") || p.MaySee("beta") {
		t.Fatalf("principal %+v, %v", p, err)
	}
	lastUsed := func() *time.Time {
		t.Helper()
		var at *time.Time
		if err := st.Pool().QueryRow(ctx, `SELECT last_used_at FROM api_tokens WHERE token_id = $1`, tok.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := lastUsed()
	if first == nil || !first.Equal(clk.t) {
		t.Fatalf("last used %v, want %v", first, clk.t)
	}
	clk.t = clk.t.Add(30 * time.Second)
	if _, err := svc.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(*first) {
		t.Fatalf("last use written again after 30s: %v", got)
	}
	// Another process (a fresh Service) knows the last use from the row.
	other := &auth.Service{Store: as, Audit: as, Now: clk.now}
	if _, err := other.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(*first) {
		t.Fatalf("another process wrote the last use within the minute: %v", got)
	}
	clk.t = clk.t.Add(31 * time.Second)
	if _, err := svc.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(clk.t) {
		t.Fatalf("last used %v after a minute, want %v", got, clk.t)
	}

	last := "a"
	if strings.HasSuffix(secret, "a") {
		last = "b"
	}
	for _, bad := range []string{"", "nonsense", secret[:len(secret)-1] + last, auth.Prefix + "zzzzzzzz_" + secret[len(auth.Prefix)+9:]} {
		if _, err := svc.Authenticate(ctx, bad); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("token %q: %v", bad, err)
		}
	}

	clk.t = in
	if _, err := svc.Authenticate(ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	clk.t = in.Add(-time.Hour)

	revoked, err := svc.Revoke(ctx, "cli:boss", tok.ID)
	if err != nil || revoked.RevokedAt == nil || revoked.RevokedBy != "cli:boss" {
		t.Fatalf("revoke: %+v %v", revoked, err)
	}
	if _, err := svc.Authenticate(ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	if _, err := svc.Revoke(ctx, "cli:boss", tok.ID); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := svc.Revoke(ctx, "cli:boss", "nosuchid"); !errors.Is(err, auth.ErrTokenNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}

	list, err := svc.List(ctx)
	if err != nil || len(list) == 0 {
		t.Fatal(list, err)
	}
	var found bool
	for _, l := range list {
		if l.ID == tok.ID {
			found = true
			if l.Status(clk.t) != auth.Revoked || l.LastUsedAt == nil || strings.Join(l.Clients, ",") != "acme,acme2" {
				t.Fatalf("listed %+v", l)
			}
		}
	}
	if !found {
		t.Fatal("token not listed")
	}

	// The audit log has the creation and the revocation, never the secret.
	rows, err := st.Pool().Query(ctx, `SELECT actor, action, target, client, coalesce(before::text, ''), coalesce(after::text, '')
		FROM audit_log WHERE target = $1 ORDER BY at`, "token:"+tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var actor, action, target, before, after string
		var client *string
		if err := rows.Scan(&actor, &action, &target, &client, &before, &after); err != nil {
			t.Fatal(err)
		}
		if client != nil || strings.Contains(before+after, secret[len(auth.Prefix)+9:]) {
			t.Fatalf("audit row %s %s: client %v, %s %s", actor, action, client, before, after)
		}
		var a struct {
			Role      string     `json:"role"`
			RevokedAt *time.Time `json:"revoked_at"`
		}
		if err := json.Unmarshal([]byte(after), &a); err != nil || a.Role != "operator" {
			t.Fatalf("after %s: %v", after, err)
		}
		got = append(got, actor+" "+action+" "+map[bool]string{true: "revoked", false: "live"}[a.RevokedAt != nil])
	}
	if strings.Join(got, "; ") != "cli:ops token.create live; cli:boss token.revoke revoked" {
		t.Fatalf("audit log: %q", got)
	}
}

// TestCreateRefused: a bad request stores nothing and names each problem.
func TestCreateRefused(t *testing.T) {
	ctx := context.Background()
	as := authstore.New(pgtest.Store(t))
	svc := auth.NewService(as, as)
	before, _ := svc.List(ctx)
	_, _, err := svc.Create(ctx, "cli:x", auth.NewToken{Role: 0, Clients: []string{"*", "acme"}})
	if err == nil || !strings.Contains(err.Error(), "role") || !strings.Contains(err.Error(), "stands alone") {
		t.Fatalf("err = %v", err)
	}
	if after, _ := svc.List(ctx); len(after) != len(before) {
		t.Fatal("a refused token was stored")
	}
	tok, _, err := svc.Create(ctx, "cli:x", auth.NewToken{Role: auth.Viewer, Clients: []string{"*"}})
	if err != nil || tok.Name != "token-"+tok.ID {
		t.Fatalf("default name: %+v %v", tok, err)
	}
}

// countingStore counts the token reads that reach the database.
type countingStore struct {
	*authstore.Store
	reads int
}

func (c *countingStore) TokenByID(ctx context.Context, id string) (auth.Token, []byte, error) {
	c.reads++
	return c.Store.TokenByID(ctx, id)
}

// TestTokenChecksRemembered: a busy token costs one read every
// CheckEvery, not one a request; a revoke through the same service is
// refused at once, and one made by another process within CheckEvery.
func TestTokenChecksRemembered(t *testing.T) {
	ctx := context.Background()
	as := authstore.New(pgtest.Store(t))
	clk := &clock{time.Now().UTC().Truncate(time.Microsecond)}
	store := &countingStore{Store: as}
	svc := &auth.Service{Store: store, Audit: as, Now: clk.now, CheckEvery: 2 * time.Second}
	other := &auth.Service{Store: as, Audit: as, Now: clk.now}
	newToken := func() (auth.Token, string) {
		t.Helper()
		tok, secret, err := other.Create(ctx, "cli:ops", auth.NewToken{Name: "busy", Role: auth.Viewer, Clients: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		return tok, secret
	}
	tok, secret := newToken()
	for range 100 {
		if _, err := svc.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	if store.reads != 1 {
		t.Fatalf("100 requests within CheckEvery read the token %d times, want 1", store.reads)
	}
	// A wrong secret for a remembered id is still refused.
	if _, err := svc.Authenticate(ctx, secret[:len(secret)-1]+"x"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("wrong secret of a remembered token: %v", err)
	}
	// Revoked by another process: refused once CheckEvery has passed.
	if _, err := other.Revoke(ctx, "cli:boss", tok.ID); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if _, err := svc.Authenticate(ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked elsewhere, after CheckEvery: %v", err)
	}
	// Revoked through this service: refused at once.
	tok, secret = newToken()
	if _, err := svc.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Revoke(ctx, "cli:boss", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked here, next request: %v", err)
	}
	// CheckEvery < 0: every request reads.
	store.reads = 0
	svc.CheckEvery = -1
	_, secret = newToken()
	for range 3 {
		if _, err := svc.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	if store.reads != 3 {
		t.Fatalf("CheckEvery -1: %d reads for 3 requests", store.reads)
	}
}
