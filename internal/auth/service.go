package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Store is what tokens need from storage.
type Store interface {
	// InsertToken stores a new token with the hash of its secret;
	// ErrTokenIDTaken when its id is in use.
	InsertToken(ctx context.Context, t Token, hash []byte) error
	// TokenByID returns a token and its hash, or ErrTokenNotFound.
	TokenByID(ctx context.Context, id string) (Token, []byte, error)
	// Tokens returns every token, newest first.
	Tokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks an unrevoked token revoked and returns it;
	// ErrTokenNotFound when there is none, ErrAlreadyRevoked when it was.
	RevokeToken(ctx context.Context, id, by string, at time.Time) (Token, error)
	// TouchToken records that the token was used at at.
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// Auditor records human actions.
type Auditor interface {
	Audit(ctx context.Context, entries ...AuditEntry) error
}

// AuditEntry is one human action: who did what to which target, when,
// and the target before and after (JSON; nil where there is none).
type AuditEntry struct {
	At     time.Time
	Actor  string // the token's name (or who ran a command with database access)
	Action string // "token.create", "feed.reprocess", …
	Target string // "token:<id>", "feed_event:<id>", …
	Client string // the client the target belongs to; empty when none
	Before json.RawMessage
	After  json.RawMessage
}

// Errors of the Store.
var (
	ErrTokenNotFound  = errors.New("no such token")
	ErrTokenIDTaken   = errors.New("token id in use")
	ErrAlreadyRevoked = errors.New("token already revoked")
)

// Service creates, lists and revokes tokens and checks them.
type Service struct {
	Store Store
	Audit Auditor
	// Now and Random default to the clock and crypto/rand.
	Now    func() time.Time
	Random io.Reader
	// TouchEvery is how seldom a token's last use is written (per token
	// and process); default one minute.
	TouchEvery time.Duration
	// CheckEvery is how long a token read from the store is used for
	// further requests before it is read again (default two seconds), so
	// that a busy client costs one read every CheckEvery rather than one a
	// request. A token revoked through this Service is refused at once;
	// one revoked by another process is refused here within CheckEvery. A
	// negative value reads the store on every request.
	CheckEvery time.Duration
	Logger     *slog.Logger

	mu      sync.Mutex
	touched map[string]time.Time
	checked map[string]checkedToken
}

// checkedToken is a token as the store last gave it, and when.
type checkedToken struct {
	token Token
	hash  []byte
	read  time.Time
}

// maxChecked bounds the tokens remembered; past it the memory starts
// afresh (a flood of distinct tokens costs reads, never memory).
const maxChecked = 10000

// NewService is a Service over st that audits to a.
func NewService(st Store, a Auditor) *Service { return &Service{Store: st, Audit: a} }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Create makes a token and returns it with its secret, the only time the
// secret is seen. actor is who asked, for the audit log.
func (s *Service) Create(ctx context.Context, actor string, n NewToken) (Token, string, error) {
	now := s.now().UTC()
	if err := n.Validate(now); err != nil {
		return Token{}, "", err
	}
	random := s.Random
	if random == nil {
		random = rand.Reader
	}
	for range 5 { // an id drawn twice is 40 bits of bad luck; draw again
		id, secret, err := newSecret(random)
		if err != nil {
			return Token{}, "", err
		}
		t := Token{ID: id, Name: n.Name, Role: n.Role, Clients: n.Clients, CreatedAt: now, CreatedBy: actor, ExpiresAt: n.ExpiresAt}
		if t.Name == "" {
			t.Name = "token-" + id
		}
		err = s.Store.InsertToken(ctx, t, Hash(secret))
		if errors.Is(err, ErrTokenIDTaken) {
			continue
		}
		if err != nil {
			return Token{}, "", fmt.Errorf("store token: %w", err)
		}
		if err := s.Audit.Audit(ctx, AuditEntry{At: now, Actor: actor, Action: "token.create", Target: "token:" + id,
			After: t.auditJSON()}); err != nil {
			return t, secret, fmt.Errorf("token %s created, but not written to the audit log: %w", id, err)
		}
		return t, secret, nil
	}
	return Token{}, "", errors.New("token id: drew one in use five times; is the random source broken?")
}

// Revoke ends a token at once. actor is who asked, for the audit log.
func (s *Service) Revoke(ctx context.Context, actor, id string) (Token, error) {
	before, _, err := s.Store.TokenByID(ctx, id)
	if err != nil {
		return Token{}, fmt.Errorf("token %q: %w", id, err)
	}
	now := s.now().UTC()
	s.forget(id)
	after, err := s.Store.RevokeToken(ctx, id, actor, now)
	if errors.Is(err, ErrAlreadyRevoked) {
		return before, fmt.Errorf("token %q was revoked at %s by %s already", id, before.RevokedAt.UTC().Format(time.RFC3339), before.RevokedBy)
	}
	s.forget(id) // again: a request may have read it while it was being revoked
	if err != nil {
		return Token{}, fmt.Errorf("token %q: %w", id, err)
	}
	if err := s.Audit.Audit(ctx, AuditEntry{At: now, Actor: actor, Action: "token.revoke", Target: "token:" + id,
		Before: before.auditJSON(), After: after.auditJSON()}); err != nil {
		return after, fmt.Errorf("token %s revoked, but not written to the audit log: %w", id, err)
	}
	return after, nil
}

// List returns every token, newest first; never a secret.
func (s *Service) List(ctx context.Context) ([]Token, error) { return s.Store.Tokens(ctx) }

// Authenticate checks a presented token and returns who it acts as. A
// token that is missing, malformed, unknown, expired or revoked is an
// ErrUnauthenticated; a failing store is an error of its own.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, unauthenticated("no token: send Authorization: Bearer <token> (vivace token create makes one)")
	}
	id, err := ParseToken(token)
	if err != nil {
		return Principal{}, unauthenticated("%s", err)
	}
	now := s.now()
	t, hash, err := s.lookup(ctx, id, now)
	if errors.Is(err, ErrTokenNotFound) {
		return Principal{}, unauthenticated("unknown token")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("check token: %w", err)
	}
	if !matches(token, hash) {
		return Principal{}, unauthenticated("unknown token")
	}
	switch t.Status(now) {
	case Revoked:
		return Principal{}, unauthenticated("token %s was revoked", id)
	case Expired:
		return Principal{}, unauthenticated("token %s expired at %s", id, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	s.touch(ctx, &t, now)
	return t.Principal(), nil
}

// lookup returns the token with id as the store gave it at most
// CheckEvery ago. Only tokens the store has are remembered: an unknown
// id is read again each time.
func (s *Service) lookup(ctx context.Context, id string, now time.Time) (Token, []byte, error) {
	every := s.CheckEvery
	if every == 0 {
		every = 2 * time.Second
	}
	if every > 0 {
		s.mu.Lock()
		c, ok := s.checked[id]
		s.mu.Unlock()
		if ok && now.Sub(c.read) < every && !now.Before(c.read) {
			return c.token, c.hash, nil
		}
	}
	t, hash, err := s.Store.TokenByID(ctx, id)
	if err != nil || every < 0 {
		return t, hash, err
	}
	s.mu.Lock()
	if s.checked == nil || len(s.checked) >= maxChecked {
		s.checked = map[string]checkedToken{}
	}
	s.checked[id] = checkedToken{token: t, hash: hash, read: now}
	s.mu.Unlock()
	return t, hash, nil
}

// forget drops what is remembered of a token, so that its next use reads
// the store.
func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.checked, id)
	s.mu.Unlock()
}

// touch writes a token's last use when the last one written is older
// than TouchEvery, so that a busy token costs one write a minute, not one
// a request.
func (s *Service) touch(ctx context.Context, t *Token, now time.Time) {
	every := s.TouchEvery
	if every <= 0 {
		every = time.Minute
	}
	s.mu.Lock()
	last, ok := s.touched[t.ID]
	if !ok && t.LastUsedAt != nil {
		last, ok = *t.LastUsedAt, true
	}
	due := !ok || now.Sub(last) >= every
	if due {
		if s.touched == nil {
			s.touched = map[string]time.Time{}
		}
		s.touched[t.ID] = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if err := s.Store.TouchToken(ctx, t.ID, now); err != nil {
		// The request goes on: its last use is written next time.
		s.mu.Lock()
		delete(s.touched, t.ID)
		s.mu.Unlock()
		if s.Logger != nil {
			s.Logger.Warn("token last use not recorded", "token", t.ID, "err", err)
		}
	}
}
