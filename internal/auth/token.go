package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Prefix starts every token, so that one pasted in the wrong place (a
// log, a repository) is recognised for what it is.
const Prefix = "vivace_"

const (
	idBytes     = 5  // 8 characters: short enough to type in token revoke
	secretBytes = 32 // 256 bits
	idLen       = 8
	secretLen   = 52
)

// lowercase RFC 4648 base32: letters and digits only, so a token is one
// word to a double click and survives any shell or header unquoted.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token is a token as stored: everything but its secret.
type Token struct {
	ID         string
	Name       string
	Role       Role
	Clients    []string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	RevokedBy  string
	LastUsedAt *time.Time
}

// Status is where a token stands.
type Status string

// The statuses.
const (
	Active  Status = "active"
	Expired Status = "expired"
	Revoked Status = "revoked"
)

// Status at now.
func (t *Token) Status(now time.Time) Status {
	switch {
	case t.RevokedAt != nil:
		return Revoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return Expired
	default:
		return Active
	}
}

// Principal is who a request with this token acts as.
func (t *Token) Principal() Principal { return NewPrincipal(t.ID, t.Name, t.Role, t.Clients) }

// auditJSON is the token as the audit log shows it: never its hash.
func (t *Token) auditJSON() json.RawMessage {
	b, _ := json.Marshal(struct {
		ID        string     `json:"id"`
		Name      string     `json:"name"`
		Role      string     `json:"role"`
		Clients   []string   `json:"clients"`
		ExpiresAt *time.Time `json:"expires_at"`
		RevokedAt *time.Time `json:"revoked_at"`
	}{t.ID, t.Name, t.Role.String(), t.Clients, t.ExpiresAt, t.RevokedAt})
	return b
}

// newSecret draws a token: its public id and the whole token.
func newSecret(random io.Reader) (id, token string, err error) {
	b := make([]byte, idBytes+secretBytes)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	id = encoding.EncodeToString(b[:idBytes])
	return id, Prefix + id + "_" + encoding.EncodeToString(b[idBytes:]), nil
}

// ParseToken checks that s has the shape of a token and returns its id.
// It says nothing of whether the token is good.
func ParseToken(s string) (id string, err error) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return "", errors.New("not a Vivace token (they start with " + Prefix + ")")
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != idLen || len(secret) != secretLen || !base32Word(id) || !base32Word(secret) {
		return "", errors.New("not a Vivace token: malformed")
	}
	return id, nil
}

func base32Word(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Hash is what is stored of a token: SHA-256 of the whole token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// matches compares a presented token with a stored hash in constant time.
func matches(token string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(token), hash) == 1
}

// NewToken is what token create is given.
type NewToken struct {
	// Name is who the token's actions are recorded as; empty: token-<id>.
	Name      string
	Role      Role
	Clients   []string
	ExpiresAt *time.Time // nil: never
}

// Validate checks the request at now; every problem is reported, each
// naming its field.
func (n *NewToken) Validate(now time.Time) error {
	var errs []error
	if !n.Role.Valid() {
		errs = append(errs, errors.New("role: use viewer, operator or admin"))
	}
	if err := ValidateClients(n.Clients); err != nil {
		errs = append(errs, err)
	}
	if len(n.Name) > 100 {
		errs = append(errs, errors.New("name: at most 100 characters"))
	}
	if strings.IndexFunc(n.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		errs = append(errs, fmt.Errorf("name: %q has characters that are not printable", n.Name))
	}
	if n.Name != strings.TrimSpace(n.Name) {
		errs = append(errs, fmt.Errorf("name: %q starts or ends with a space", n.Name))
	}
	if n.ExpiresAt != nil && !n.ExpiresAt.After(now) {
		errs = append(errs, fmt.Errorf("expires: %s is not in the future", n.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// ParseExpiry reads when a token expires, from now: a duration in days,
// hours, minutes or seconds ("90d", "12h", "1h30m"), a date ("2027-01-31":
// the token expires at the start of that day, UTC) or an RFC 3339 time.
// Empty or "never" is no expiry (nil).
func ParseExpiry(s string, now time.Time) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "never" {
		return nil, nil
	}
	var at time.Time
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 36500 {
			return nil, fmt.Errorf("expires %q: a number of days from 1 to 36500 (\"90d\")", s)
		}
		at = now.AddDate(0, 0, n)
	} else if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return nil, fmt.Errorf("expires %q: must be after now", s)
		}
		at = now.Add(d)
	} else if t, err := time.Parse(time.DateOnly, s); err == nil {
		at = t
	} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		at = t
	} else {
		return nil, fmt.Errorf("expires %q: use a duration (90d, 12h), a date (2027-01-31) or an RFC 3339 time", s)
	}
	if !at.After(now) {
		return nil, fmt.Errorf("expires %q: %s is not in the future", s, at.UTC().Format(time.RFC3339))
	}
	at = at.UTC()
	return &at, nil
}
