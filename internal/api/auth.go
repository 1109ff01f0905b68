package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"vivace.dev/vivace/internal/auth"
)

// Route is one entry of the route table: every request is served through
// one, and each says who may use it.
type Route struct {
	// Pattern is an http.ServeMux pattern with its method
	// ("GET /api/v1/files/{id}").
	Pattern string
	// Role is the least role a token needs.
	Role auth.Role
	// Clients says how the route keeps to the token's clients.
	Clients Scope
	Handler http.Handler
}

// Scope is how a route keeps to the clients of the token.
type Scope int8

// The scopes. A route must declare one.
const (
	// PerClient: the handler checks every client it reads or changes,
	// whether named in the query, in the body or by the object it loads
	// (a file, a feed event), and answers list queries with the token's
	// clients only. The guard refuses a client query parameter the token
	// does not cover before the handler runs.
	PerClient Scope = iota + 1
	// EveryClient: what is not any one client's (the process's internals):
	// only a token for every client (*).
	EveryClient
	// Open: no token at all. Only the probes, the metrics and the
	// console's embedded files are open.
	Open
)

// openPatterns are the only routes that answer without a token: the
// probes, the metrics, and the console's page and assets (MountConsole),
// which are embedded files that hold no data: everything the console
// shows it asks of /graphql with the token its user logged in with.
var openPatterns = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true,
	ConsolePage: true, ConsoleAssets: true}

// Authenticator checks a presented token (an auth.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (auth.Principal, error)
}

// Mount adds a route served by another package (a pipeline's endpoints,
// profiles, GraphQL) to the table, under the same guard as the rest.
// Call it before Handler.
func (s *Server) Mount(r Route) { s.mounted = append(s.mounted, r) }

// Routes is the route table: the API's own routes and those mounted.
func (s *Server) Routes() []Route { return append(s.routes(), s.mounted...) }

// Handler serves the route table behind the guard: every request but
// those of Open routes needs a good token (401 without), one with the
// route's role and, for an EveryClient route, every client (403 without).
// It panics on a route that declares no role or scope, and on an Open
// route other than the probes and metrics: those are mistakes in the
// table, not in a request.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	table := map[string]Route{}
	for _, r := range s.Routes() {
		switch {
		case r.Clients == Open && !openPatterns[r.Pattern]:
			panic(fmt.Sprintf("api: route %q is open: only %v may answer without a token", r.Pattern, openPatterns))
		case r.Clients != Open && !r.Role.Valid():
			panic(fmt.Sprintf("api: route %q declares no role", r.Pattern))
		case r.Clients != PerClient && r.Clients != EveryClient && r.Clients != Open:
			panic(fmt.Sprintf("api: route %q declares no client scope", r.Pattern))
		}
		mux.Handle(r.Pattern, r.Handler)
		table[r.Pattern] = r
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer s.recovered(w, req)
		_, pattern := mux.Handler(req)
		w, req = s.limit(w, req, pattern)
		route, known := table[pattern]
		if known && route.Clients == Open {
			mux.ServeHTTP(w, req)
			return
		}
		if s.Auth == nil {
			deny(w, &auth.Error{Code: auth.Unauthenticated, Reason: "this server checks no tokens, so it answers only /healthz, /readyz and /metrics"})
			return
		}
		p, err := s.Auth.Authenticate(req.Context(), bearer(req))
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				s.internalError(w, "checking the token", err)
				return
			}
			deny(w, err)
			return
		}
		if known {
			if err := route.allows(p, req); err != nil {
				deny(w, err)
				return
			}
		}
		// Unknown paths and methods get the mux's 404 or 405, but only
		// after the token is checked: nothing answers without one.
		mux.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), p)))
	})
}

// allows checks what the table says of the route: its role, a token for
// every client where it needs one, and a client query parameter.
func (r Route) allows(p auth.Principal, req *http.Request) error {
	if err := p.HasRole(r.Role); err != nil {
		return err
	}
	if r.Clients == EveryClient {
		return p.Every()
	}
	if c := req.URL.Query().Get("client"); c != "" {
		return p.See(c)
	}
	return nil
}

// bearer is the token of "Authorization: Bearer <token>". A bare token
// with Vivace's prefix is taken too: some webhook senders (older MinIO
// releases among them) send the configured token as the whole header.
func bearer(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	if strings.HasPrefix(h, auth.Prefix) {
		return h
	}
	return ""
}

// deny answers a refusal: 401 with a WWW-Authenticate challenge, or 403.
func deny(w http.ResponseWriter, err error) {
	var e *auth.Error
	if !errors.As(err, &e) {
		e = &auth.Error{Code: auth.Forbidden, Reason: err.Error()}
	}
	status := http.StatusForbidden
	if e.Code == auth.Unauthenticated {
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer realm="vivace"`)
	}
	// reason and status too: TMF635's Error body, the same for every route.
	writeJSON(w, status, map[string]string{"error": e.Reason, "code": string(e.Code), "reason": e.Reason, "status": strconv.Itoa(status)})
}

// principal is who the request acts as; the guard put it there.
func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// clientFilter is the client filter of a list query for the request's token,
// or false when it answered a refusal.
func clientFilter(w http.ResponseWriter, r *http.Request, requested string) ([]string, bool) {
	cs, err := principal(r).Filter(requested)
	if err != nil {
		deny(w, err)
		return nil, false
	}
	return cs, true
}

// internalError logs what failed and answers 500 with a reference to the
// log line, never the error itself: it may hold SQL or a server's words.
func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	ref := make([]byte, 6)
	_, _ = rand.Read(ref)
	id := hex.EncodeToString(ref)
	s.log().Error("request failed", "what", what, "ref", id, "err", err)
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error %s: see the server log (ref %s)", what, id))
}
