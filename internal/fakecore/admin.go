package fakecore

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// routes: the bulk API at Path, and the fake core's own endpoints under
// /fake/ (reports and faults; unauthenticated: a stand-in for demos and
// tests, never to be exposed).
func (c *Core) routes() {
	m := http.NewServeMux()
	m.HandleFunc(Path, c.handleCall)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /fake/totals", c.getTotals)
	m.HandleFunc("GET /fake/records", c.getRecords)
	m.HandleFunc("GET /fake/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, c.Stats()) })
	m.HandleFunc("GET /fake/faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, c.Faults()) })
	m.HandleFunc("PUT /fake/faults", c.putFaults(false))
	m.HandleFunc("PATCH /fake/faults", c.putFaults(true))
	m.HandleFunc("DELETE /fake/faults", func(w http.ResponseWriter, _ *http.Request) {
		_ = c.SetFaults(Faults{})
		writeJSON(w, http.StatusOK, c.Faults())
	})
	m.HandleFunc("POST /fake/reset", func(w http.ResponseWriter, _ *http.Request) {
		c.Reset()
		writeJSON(w, http.StatusOK, c.Stats())
	})
	c.mux = m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// filter reads client_no, account, usage_type and client_record_id from
// the query.
func filter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "client_no", "account", "usage_type", "client_record_id":
		default:
			return Filter{}, fmt.Errorf("unknown query parameter %q (client_no, account, usage_type, client_record_id)", k)
		}
	}
	f := Filter{Account: q.Get("account"), UsageType: q.Get("usage_type"), ClientRecordID: q.Get("client_record_id")}
	if s := q.Get("client_no"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return f, fmt.Errorf("client_no %q is not an integer", s)
		}
		f.ClientNo = n
	}
	return f, nil
}

func (c *Core) getTotals(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	totals, err := c.Totals(f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"totals": totals})
}

func (c *Core) getRecords(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	recs := c.Records(f)
	writeJSON(w, http.StatusOK, map[string]any{"count": len(recs), "records": recs})
}

// putFaults replaces the faults (PUT) or changes only the keys given
// (PATCH).
func (c *Core) putFaults(patch bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		base := Faults{}
		if patch {
			base = c.Faults()
		}
		f, err := ParseFaults(base, body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := c.SetFaults(f); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, c.Faults())
	}
}
