package ariafeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"vivace.dev/vivace/internal/retry"
)

// Tokens gets and caches OAuth2 access tokens by the client credentials
// grant, renewing them shortly before they expire or when told a token was
// refused.
type Tokens struct {
	URL, ClientID, ClientSecret string
	HTTP                        *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

// Token returns a valid access token.
func (t *Tokens) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && time.Now().Before(t.expires) {
		return t.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token request to %s: %w", t.URL, err)
	}
	req.SetBasicAuth(url.QueryEscape(t.ClientID), url.QueryEscape(t.ClientSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("token request to %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request to %s: %s: %s", t.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token request to %s: the answer holds no access_token", t.URL)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour
	}
	// Renew a little early, so a token does not expire in flight.
	t.token, t.expires = tok.AccessToken, time.Now().Add(life-min(life/10, 30*time.Second))
	return t.token, nil
}

// Forget drops the cached token after the server refused it.
func (t *Tokens) Forget() {
	t.mu.Lock()
	t.token = ""
	t.mu.Unlock()
}

func (t *Tokens) client() *http.Client {
	if t.HTTP != nil {
		return t.HTTP
	}
	return http.DefaultClient
}

// Stream connects to the Data Feed and resumes after the last event id it
// was given, reconnecting with backoff when the connection drops.
type Stream struct {
	URL    string
	Tokens *Tokens
	HTTP   *http.Client // no overall timeout: the stream is long-lived
	// From is where a stream with no last event id starts (an ISO
	// timestamp or a span such as 5hours); empty: the server's default.
	From string
	// MaxBackoff caps the wait between reconnects; default 30s.
	MaxBackoff time.Duration
	// IdleTimeout ends a connection that has carried nothing, not even a
	// keep-alive comment, for this long, so a connection that died without
	// closing is noticed and replaced; default 2m.
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// ErrStatus is a refusal by the feed server.
type ErrStatus struct {
	URL    string
	Status string
	Body   string
}

func (e *ErrStatus) Error() string {
	return fmt.Sprintf("data feed %s: %s: %s", e.URL, e.Status, e.Body)
}

// Run reads the feed from lastID until ctx ends, calling handle for each
// event; handle's error ends Run. Connection failures are logged and
// retried with backoff, resuming from the last event handled.
func (s *Stream) Run(ctx context.Context, lastID string, handle func(SSE) error) error {
	maxBackoff := s.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	backoff := retry.Policy{First: min(250*time.Millisecond, maxBackoff), Max: maxBackoff, Jitter: retry.DefaultJitter}.Backoff()
	var serverDelay time.Duration
	for ctx.Err() == nil {
		received := false
		err := s.connect(ctx, lastID, func(ev SSE) error {
			received = true
			if ev.ID != "" {
				lastID = ev.ID
			}
			if ev.Retry > 0 {
				serverDelay = ev.Retry // the server's own reconnection delay
			}
			if ev.Data == "" {
				return nil // an id or retry on its own
			}
			return handle(ev)
		})
		var herr *handlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		if ctx.Err() != nil {
			return nil
		}
		if received {
			// A connection that carried events starts the pauses again,
			// from the server's own delay when it sent one.
			backoff.Reset()
			backoff.Set(serverDelay)
		}
		wait := backoff.Next()
		if s.Logger != nil {
			s.Logger.Warn("data feed connection ended; reconnecting", "url", s.URL, "last_event_id", lastID,
				"error", err, "in", wait)
		}
		if retry.Sleep(ctx, wait) != nil {
			return nil
		}
	}
	return nil
}

type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

func (s *Stream) connect(ctx context.Context, lastID string, handle func(SSE) error) error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("data feed url %q: %w", s.URL, err)
	}
	q := u.Query()
	if lastID != "" {
		q.Set("last_id", lastID)
	} else if s.From != "" {
		q.Set("from", s.From)
	}
	u.RawQuery = q.Encode()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for attempt := 0; ; attempt++ {
		tok, err := s.Tokens.Token(ctx)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cache-Control", "no-cache")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		client := s.HTTP
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("data feed %s: %w", s.URL, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			resp.Body.Close()
			s.Tokens.Forget() // expired or revoked: one new token, once
			continue
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			return &ErrStatus{URL: s.URL, Status: resp.Status, Body: strings.TrimSpace(string(body))}
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
			resp.Body.Close()
			return fmt.Errorf("data feed %s: content type %q, want text/event-stream", s.URL, resp.Header.Get("Content-Type"))
		}
		defer resp.Body.Close()
		watchdog := time.AfterFunc(idle, func() {
			cancel(fmt.Errorf("nothing received for %s", idle))
		})
		defer watchdog.Stop()
		r := NewSSEReader(&idleReader{r: resp.Body, timer: watchdog, idle: idle})
		for {
			ev, err := r.Next()
			if err != nil {
				if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
					return fmt.Errorf("data feed %s: %w", s.URL, cause)
				}
				if errors.Is(err, io.EOF) {
					return errors.New("the server closed the stream")
				}
				return fmt.Errorf("data feed %s: %w", s.URL, err)
			}
			if err := handle(ev); err != nil {
				return &handlerError{err}
			}
		}
	}
}

// idleReader restarts the idle timer whenever bytes arrive.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.timer.Reset(i.idle)
	}
	return n, err
}
