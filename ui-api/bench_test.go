package uiapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/usagestore"
)

// benchRows is how many exceptions BenchmarkExceptionsList stores:
// VIVACE_BENCH_EXCEPTIONS, default 1,000,000.
func benchRows(b *testing.B) int {
	if v := os.Getenv("VIVACE_BENCH_EXCEPTIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("VIVACE_BENCH_EXCEPTIONS=%q: a number of at least 1000", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkExceptionsList answers the console's exceptions queries
// through the GraphQL schema over a large exceptions table: 10 clients,
// a file per 100,000 exceptions, a mix of codes and stages, nine in ten
// open. Each sub-benchmark is one query as the console sends it;
// reported: ms/query at the 95th percentile next to Go's mean.
func BenchmarkExceptionsList(b *testing.B) {
	ctx := context.Background()
	st := pgtest.Store(b)
	us, fs := usagestore.New(st), filestore.New(st)
	n := benchRows(b)
	start := time.Now()
	clients := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"}
	kinds := []struct {
		code  codes.Code
		stage string
	}{{"BAD_QUANTITY", "mediate"}, {"BAD_TIMESTAMP", "mediate"}, {"MISSING_FIELD", "mediate"}, {"UNKNOWN_ACCOUNT", "rate"},
		{"NO_RATE", "rate"}, {"MALFORMED_RECORD", "ingest"}}
	const chunk = 10000
	var fileID, client string
	for i := 0; i < n; i += chunk {
		if i%100000 == 0 {
			client = clients[(i/100000)%len(clients)]
			f, err := fs.RegisterFile(ctx, files.File{FileID: ids.New(), Client: client, Name: fmt.Sprintf("f%d.csv", i), Source: "http",
				Location: "x", Format: "csv", SHA256: ids.New(), Status: files.Received})
			if err != nil {
				b.Fatal(err)
			}
			fileID = f.FileID
		}
		exs := make([]exceptions.Exception, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			k := kinds[j%len(kinds)]
			exs = append(exs, exceptions.Exception{ExceptionID: ids.New(), Client: client, FileID: fileID, Line: int64(j%100000 + 2),
				RecordID: "r" + strconv.Itoa(j), Stage: k.stage, Code: k.code, Field: "quantity", Message: "quantity: not a number",
				Record: json.RawMessage(`{"account_id":"A` + strconv.Itoa(j%5000) + `","quantity":"x"}`)})
		}
		if _, err := us.InsertExceptions(ctx, exs); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d exceptions stored in %s", n, time.Since(start).Round(time.Second))
	a := newAPI(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := a.Init(); err != nil {
		b.Fatal(err)
	}
	admin := auth.NewContext(ctx, auth.NewPrincipal("bench", "bench", auth.Admin, []string{"*"}))
	one := auth.NewContext(ctx, auth.NewPrincipal("bench", "bench", auth.Operator, []string{"c3"}))
	// A cursor 100 pages deep into c3's open exceptions.
	var deep string
	{
		r := a.schema.Exec(withCost(one), `{ exceptions(filter: {status: "open"}, first: 500) { pageInfo { endCursor } } }`, "", nil)
		var out struct {
			Exceptions struct{ PageInfo struct{ EndCursor string } }
		}
		if len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil {
			b.Fatalf("%v", r.Errors)
		}
		deep = out.Exceptions.PageInfo.EndCursor
	}
	page := `query($f: ExceptionFilter, $after: String) { exceptions(filter: $f, first: 50, after: $after) {
		edges { node { id client recordId fileId line stage code field message status record createdAt } } pageInfo { endCursor hasNextPage } } }`
	withCounts := `query($f: ExceptionFilter) { exceptions(filter: $f, first: 50) {
		totalCount countsByCode { code count } edges { node { id code message } } pageInfo { endCursor hasNextPage } } }`
	for _, c := range []struct {
		name  string
		ctx   context.Context
		query string
		vars  map[string]any
	}{
		{"page/all-clients/open", admin, page, map[string]any{"f": map[string]any{"status": "open"}}},
		{"page/one-client/open", one, page, map[string]any{"f": map[string]any{"status": "open"}}},
		{"page/one-client/code", one, page, map[string]any{"f": map[string]any{"status": "open", "code": "NO_RATE"}}},
		{"page/one-client/deep", one, page, map[string]any{"f": map[string]any{"status": "open"}, "after": deep}},
		{"page/one-client/account", one, page, map[string]any{"f": map[string]any{"accountId": "A42"}}},
		{"counts/one-client/open", one, withCounts, map[string]any{"f": map[string]any{"status": "open"}}},
		{"counts/all-clients/open", admin, withCounts, map[string]any{"f": map[string]any{"status": "open"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				r := a.schema.Exec(withCost(c.ctx), c.query, "", c.vars)
				took = append(took, time.Since(t0))
				if len(r.Errors) > 0 {
					b.Fatalf("%v", r.Errors)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
