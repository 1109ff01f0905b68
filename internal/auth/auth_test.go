package auth

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		have, want Role
		ok         bool
	}{
		{Viewer, Viewer, true}, {Viewer, Operator, false}, {Viewer, Admin, false},
		{Operator, Viewer, true}, {Operator, Operator, true}, {Operator, Admin, false},
		{Admin, Viewer, true}, {Admin, Operator, true}, {Admin, Admin, true},
		{0, Viewer, false}, {Role(7), Viewer, false},
	} {
		if got := tc.have.AtLeast(tc.want); got != tc.ok {
			t.Errorf("%s at least %s = %v", tc.have, tc.want, got)
		}
	}
	for _, name := range []string{"viewer", "operator", "admin"} {
		r, err := ParseRole(name)
		if err != nil || r.String() != name {
			t.Errorf("ParseRole(%q) = %v, %v", name, r, err)
		}
	}
	if _, err := ParseRole("Admin"); err == nil || !strings.Contains(err.Error(), "viewer, operator or admin") {
		t.Errorf("ParseRole(Admin): %v", err)
	}
}

func TestPrincipal(t *testing.T) {
	acme := NewPrincipal("a", "acme-ops", Operator, []string{"acme", "acme2"})
	all := NewPrincipal("b", "local-admin", Admin, []string{"*"})
	viewer := NewPrincipal("c", "beta-view", Viewer, []string{"beta"})

	for _, tc := range []struct {
		p      Principal
		client string
		see    bool
		change bool
	}{
		{acme, "acme", true, true}, {acme, "acme2", true, true}, {acme, "beta", false, false},
		{all, "beta", true, true}, {viewer, "beta", true, false}, {viewer, "acme", false, false},
		{Principal{}, "acme", false, false},
	} {
		if got := tc.p.MaySee(tc.client); got != tc.see {
			t.Errorf("%s may see %s = %v", tc.p.Name, tc.client, got)
		}
		if err := tc.p.Change(tc.client); (err == nil) != tc.change || err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s change %s: %v", tc.p.Name, tc.client, err)
		}
	}
	if err := all.Every(); err != nil {
		t.Error(err)
	}
	if err := acme.Every(); !errors.Is(err, ErrForbidden) {
		t.Errorf("acme every: %v", err)
	}
	if err := acme.HasRole(Admin); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "admin") {
		t.Errorf("acme admin: %v", err)
	}

	for _, tc := range []struct {
		p         Principal
		requested string
		want      []string
		refused   bool
	}{
		{acme, "", []string{"acme", "acme2"}, false},
		{acme, "acme2", []string{"acme2"}, false},
		{acme, "beta", nil, true},
		{all, "", nil, false},
		{all, "beta", []string{"beta"}, false},
		{Principal{}, "", nil, true}, // the zero principal never means every client
		{NewPrincipal("z", "z", 0, []string{"*"}), "", nil, true},
	} {
		got, err := tc.p.Filter(tc.requested)
		if (err != nil) != tc.refused || strings.Join(got, ",") != strings.Join(tc.want, ",") || tc.want == nil && got != nil {
			t.Errorf("%q filter %q = %v, %v", tc.p.Name, tc.requested, got, err)
		}
	}

	ctx := NewContext(context.Background(), acme)
	if p, ok := FromContext(ctx); !ok || p.TokenID != "a" {
		t.Errorf("FromContext = %v %v", p, ok)
	}
	if _, ok := FromContext(context.Background()); ok {
		t.Error("a principal from an empty context")
	}
}

func TestValidateClients(t *testing.T) {
	for _, tc := range []struct {
		clients []string
		err     string
	}{
		{[]string{"*"}, ""},
		{[]string{"acme", "beta.eu"}, ""},
		{nil, "at least one client"},
		{[]string{"*", "acme"}, "stands alone"},
		{[]string{"acme", "acme"}, "named twice"},
		{[]string{"-x"}, `"-x"`},
		{[]string{""}, `""`},
	} {
		err := ValidateClients(tc.clients)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %v, want %q", tc.clients, err, tc.err)
		}
	}
}

func TestTokenFormat(t *testing.T) {
	id, tok, err := newSecret(bytes.NewReader(bytes.Repeat([]byte{0xA5}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, Prefix+id+"_") || len(id) != idLen || len(tok) != len(Prefix)+idLen+1+secretLen {
		t.Fatalf("id %q token %q", id, tok)
	}
	if got, err := ParseToken(tok); err != nil || got != id {
		t.Fatalf("ParseToken = %q, %v", got, err)
	}
	if !matches(tok, Hash(tok)) || matches(tok+"x", Hash(tok)) || matches(tok, Hash(tok[:len(tok)-1]+"a")) {
		t.Fatal("hash comparison")
	}
	for _, bad := range []string{"", "Bearer " + tok, strings.ToUpper(tok), tok + "a", tok[:len(tok)-1],
		Prefix + id, Prefix + id + "-" + tok[len(Prefix)+idLen+1:], strings.Replace(tok, "_", "", 1)} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
	if _, _, err := newSecret(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Error("a token from too few random bytes")
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("vivace_aaaaaaaa_" + strings.Repeat("b", secretLen))
	f.Add("vivace_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseToken(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(s, Prefix+id+"_") || len(s) != len(Prefix)+idLen+1+secretLen || !base32Word(id) {
			t.Fatalf("accepted %q as id %q", s, id)
		}
	})
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want string // RFC 3339, "" for none
		err  string
	}{
		{"", "", ""},
		{"never", "", ""},
		{"90d", "2026-06-08T12:00:00Z", ""},
		{"12h", "2026-03-11T00:00:00Z", ""},
		{"1h30m", "2026-03-10T13:30:00Z", ""},
		{"2027-01-31", "2027-01-31T00:00:00Z", ""},
		{"2026-04-01T08:00:00+02:00", "2026-04-01T06:00:00Z", ""},
		{"0d", "", "number of days"},
		{"-5h", "", "after now"},
		{"2020-01-01", "", "not in the future"},
		{"tomorrow", "", "use a duration"},
	} {
		got, err := ParseExpiry(tc.in, now)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want == "" && got != nil, tc.want != "" && (got == nil || got.Format(time.RFC3339) != tc.want):
			t.Errorf("%q = %v, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"90d", "12h", "2027-01-31", "2027-01-31T00:00:00Z", "never", "9999999d"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		at, err := ParseExpiry(s, now)
		if err == nil && at != nil && !at.After(now) {
			t.Fatalf("%q: %v is not after now", s, at)
		}
	})
}

func TestNewTokenValidate(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Hour)
	n := NewToken{Name: " x\x01", Role: 0, Clients: []string{"*", "acme"}, ExpiresAt: &past}
	err := n.Validate(now)
	for _, want := range []string{"role:", "stands alone", "not printable", "space", "not in the future"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	ok := NewToken{Name: "ci", Role: Viewer, Clients: []string{"acme"}}
	if err := ok.Validate(now); err != nil {
		t.Error(err)
	}
}
