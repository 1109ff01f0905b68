package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/store"
)

// fileRoutes are the file routes added with `vivace files` (docs/api.md,
// "Files"), for the route table: cancelling a file changes it, so it needs
// an operator of the file's client. The reads they go with, GET
// /api/v1/files (with status=) and GET /api/v1/files/{id}, are a viewer's.
func (s *Server) fileRoutes() []Route {
	return []Route{
		{"POST /api/v1/files/{id}/cancel", auth.Operator, PerClient, http.HandlerFunc(s.cancelFile)},
	}
}

// takesClient answers the refusal of an upload for a client Vivace does
// not know (404, naming the client and what would make it known), before
// the body is read; new_client=true takes it all the same, on purpose. It
// reports whether to go on.
func (s *Server) takesClient(w http.ResponseWriter, r *http.Request, client string) bool {
	switch v := r.URL.Query().Get("new_client"); v {
	case "true":
		return true
	case "", "false":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("new_client: %q is not true or false", v))
		return false
	}
	err := s.Receiver.Known(r.Context(), client)
	var unknown *ingest.UnknownClientError
	switch {
	case errors.As(err, &unknown):
		s.log().Warn("upload refused: the client is not known", "client", client, "file", r.URL.Query().Get("name"))
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error(), "code": "UNKNOWN_CLIENT"})
		return false
	case err != nil:
		s.internalError(w, fmt.Sprintf("checking client %q", client), err)
		return false
	}
	return true
}

// fileFilter reads the list's status parameter, or answers 400 naming
// it; the clients come from clientFilter.
func fileFilter(w http.ResponseWriter, r *http.Request) (files.Filter, bool) {
	f := files.Filter{Status: files.Status(r.URL.Query().Get("status"))}
	if f.Status != "" && !f.Status.Valid() {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status: %q is not a file status (%s)", f.Status, joinStatuses(files.Statuses)))
		return f, false
	}
	return f, true
}

func joinStatuses[S ~string](list []S) string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}

// maxReason bounds the reason an operator gives for cancelling a file.
const maxReason = 1000

// cancelFile fails a file on purpose:
// POST /api/v1/files/{id}/cancel {"reason": "…"} → the file, now failed.
// 404 for no such file, 409 when it is done, failed or rejected already,
// 400 without a reason. What becomes of its records is in
// filestore.CancelFile (docs/api.md).
func (s *Server) cancelFile(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+bodyProblem(err, `a JSON object {"reason": "why the file is cancelled"}`))
		return
	}
	why := strings.Join(strings.Fields(req.Reason), " ")
	switch {
	case why == "":
		writeError(w, http.StatusBadRequest, `reason: say why the file is cancelled ({"reason": "…"}); it is kept with the file`)
		return
	case utf8.RuneCountInString(why) > maxReason:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reason: at most %d characters", maxReason))
		return
	}
	id := r.PathValue("id")
	// The file is read first: who may cancel it depends on its client (an
	// operator of that client).
	before, err := s.Files.GetFile(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no file "+id)
		return
	} else if err != nil {
		s.internalError(w, "reading the file", err)
		return
	}
	p := principal(r)
	if err := p.ChangeOf(fmt.Sprintf("file %q", id), before.Client); err != nil {
		deny(w, err)
		return
	}
	f, err := s.Files.CancelFile(r.Context(), id, p.Name, why)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no file "+id)
	case errors.Is(err, files.ErrFinal):
		writeError(w, http.StatusConflict, fmt.Sprintf("file %s is %s already: there is nothing to cancel", id, f.Status))
	case err != nil:
		s.internalError(w, "cancelling the file", err)
	default:
		s.log().Info("file cancelled", "file_id", f.FileID, "client", f.Client, "file", f.Name, "by", f.CancelledBy, "reason", f.Reason)
		s.auditCancel(r, before, f)
		writeJSON(w, http.StatusOK, NewFile(f))
	}
}

// auditCancel writes the cancel to the audit log: the file's status and
// counts before, and after with the reason.
func (s *Server) auditCancel(r *http.Request, before, after files.File) {
	type state struct {
		Status  files.Status `json:"status"`
		Reason  string       `json:"reason,omitempty"`
		Records *int64       `json:"records"`
	}
	b, _ := json.Marshal(state{before.Status, before.Reason, before.Records})
	a, _ := json.Marshal(state{after.Status, after.Reason, after.Records})
	s.audit(r, auth.AuditEntry{At: time.Now().UTC(), Actor: principal(r).Name, Action: "file.cancel",
		Target: "file:" + after.FileID, Client: after.Client, Before: b, After: a})
}
