package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
)

// The exports' filters (docs/api.md, "Exports"): each parameter is
// checked, and a wrong one answered 400 naming it, before anything is
// sent.

// murFilter reads GET /api/v1/murs's parameters: file_id, account_id,
// sync_status, from and to (usage_time, from ≤ t < to); the clients come
// from clientFilter.
func murFilter(w http.ResponseWriter, q url.Values) (murs.Filter, bool) {
	f := murs.Filter{FileID: q.Get("file_id"), AccountID: q.Get("account_id"),
		SyncStatus: murs.SyncStatus(q.Get("sync_status"))}
	if f.SyncStatus != "" && !f.SyncStatus.Valid() {
		return f, badParam(w, "sync_status", string(f.SyncStatus), "a sync status", joinStatuses(murs.SyncStatuses))
	}
	var ok bool
	if f.From, f.To, ok = timeRange(w, q); !ok {
		return f, false
	}
	return f, fileIDParam(w, f.FileID)
}

// exceptionFilter reads GET /api/v1/exceptions's parameters: file_id,
// account_id, stage, code, status, from and to (when the exception was
// recorded); the clients come from clientFilter.
func exceptionFilter(w http.ResponseWriter, q url.Values) (exceptions.Filter, bool) {
	f := exceptions.Filter{FileID: q.Get("file_id"), AccountID: q.Get("account_id"),
		Stage: q.Get("stage"), Code: codes.Code(q.Get("code")), Status: exceptions.Status(q.Get("status"))}
	switch {
	case f.Status != "" && !f.Status.Valid():
		return f, badParam(w, "status", string(f.Status), "an exception status", joinStatuses(exceptions.Statuses))
	case f.Stage != "" && !slices.Contains(exceptions.Stages, f.Stage):
		return f, badParam(w, "stage", f.Stage, "a stage", joinStatuses(exceptions.Stages))
	case f.Code != "" && !codes.Known(f.Code):
		return f, badParam(w, "code", string(f.Code), "an exception code", joinStatuses(codes.Ordered))
	}
	var ok bool
	if f.From, f.To, ok = timeRange(w, q); !ok {
		return f, false
	}
	return f, fileIDParam(w, f.FileID)
}

func badParam(w http.ResponseWriter, name, got, what, known string) bool {
	writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q is not %s (%s)", name, got, what, known))
	return false
}

func fileIDParam(w http.ResponseWriter, id string) bool {
	if id != "" && !ids.Valid(id) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("file_id: %q is not a file id (a UUID such as 0193a2b4-c5d6-7e8f-9012-3456789abcde)", id))
		return false
	}
	return true
}

// timeRange reads from and to: RFC 3339 timestamps, or dates
// (2026-03-01, midnight UTC). from must come before to.
func timeRange(w http.ResponseWriter, q url.Values) (from, to *time.Time, ok bool) {
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t, err = time.Parse(time.DateOnly, v)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q is not an RFC 3339 time (2026-03-01T00:00:00Z) or a date (2026-03-01, midnight UTC)", p.name, v))
			return nil, nil, false
		}
		t = t.UTC()
		*p.dst = &t
	}
	if from != nil && to != nil && !from.Before(*to) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from (%s) must be before to (%s): the range is from ≤ t < to", from.Format(time.RFC3339), to.Format(time.RFC3339)))
		return nil, nil, false
	}
	return from, to, true
}
