package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/settings"
)

// Settings serves the system settings: GET /api/v1/settings lists every
// key with the value in effect, GET /api/v1/settings/{key} shows one,
// PUT /api/v1/settings/{key} {"value": V} changes it and DELETE puts it
// back to its default. Changes are checked strictly (an unknown key is
// 404, a value of the wrong type or out of range 400) and audited with
// the token's name. System settings are no one client's: every route
// needs an admin token for every client.
type Settings struct {
	// Server is the API the routes are mounted on (its error handling).
	Server  *Server
	Service *settings.Service
}

// Routes are the settings' routes, for Server.Mount.
func (s *Settings) Routes() []Route {
	a := auth.Admin
	return []Route{
		{"GET /api/v1/settings", a, EveryClient, http.HandlerFunc(s.list)},
		{"GET /api/v1/settings/{key}", a, EveryClient, http.HandlerFunc(s.get)},
		{"PUT /api/v1/settings/{key}", a, EveryClient, http.HandlerFunc(s.put)},
		{"DELETE /api/v1/settings/{key}", a, EveryClient, http.HandlerFunc(s.reset)},
	}
}

func (s *Settings) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, settings.ErrUnknownKey):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, settings.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.Server.internalError(w, "system settings", err)
	}
}

func (s *Settings) list(w http.ResponseWriter, r *http.Request) {
	all, err := s.Service.List(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"settings": all})
}

func (s *Settings) get(w http.ResponseWriter, r *http.Request) {
	set, err := s.Service.Get(r.Context(), r.PathValue("key"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

func (s *Settings) put(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Value json.RawMessage `json:"value"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Value) == 0 {
		writeError(w, http.StatusBadRequest, `request body: want {"value": ...}`)
		return
	}
	set, err := s.Service.Set(r.Context(), r.PathValue("key"), string(req.Value), principal(r).Name)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

func (s *Settings) reset(w http.ResponseWriter, r *http.Request) {
	set, err := s.Service.Reset(r.Context(), r.PathValue("key"), principal(r).Name)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}
