// Package uiapi is Vivace's GraphQL API (schema.graphql, embedded) and
// the operations console that uses it (console/, embedded), both served
// by the API's process: GraphQL at /graphql and the console at / (docs/api.md,
// docs/console.md). It is an adapter: the resolvers answer with the
// stores and domain services the REST API uses, under the same access
// control (internal/auth): every field keeps to the token's clients, and
// what changes data needs an operator token for the data's client.
package uiapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
	"github.com/prometheus/client_golang/prometheus"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store/auditstore"
	"vivace.dev/vivace/internal/store/syncstore"
)

//go:embed schema.graphql
var schemaText string

// Schema is the GraphQL schema's text, for the docs' test.
func Schema() string { return schemaText }

// What the resolvers read and change; the stores under internal/store and
// the domain services implement it.
type (
	// Files reads the file registry (filestore).
	Files interface {
		GetFile(ctx context.Context, id string) (files.File, error)
		ListFiles(ctx context.Context, f files.Filter) ([]files.File, error)
	}
	// MURs reads MURs (usagestore).
	MURs interface {
		ListMURs(ctx context.Context, f murs.Filter, p murs.Page) ([]murs.MUR, error)
		MURTotals(ctx context.Context, f murs.Filter) ([]murs.CurrencyTotal, error)
	}
	// FeedEvents reads the feed events on record (catalogstore).
	FeedEvents interface {
		ListFeedEvents(ctx context.Context, f feed.EventFilter) ([]feed.EventRecord, error)
		// CountOpenFeedEvents counts the failed and pending events of
		// clients (every client when empty).
		CountOpenFeedEvents(ctx context.Context, clients []string) (failed, pending int, err error)
	}
	// FeedRepair applies failed and pending feed events again (a
	// feed.Applier).
	FeedRepair interface {
		Reprocess(ctx context.Context, ids []string, by string) ([]feed.Outcome, error)
	}
	// SyncBacklogs reports the clients whose MURs wait for the sync
	// (syncstore).
	SyncBacklogs interface {
		Backlogs(ctx context.Context) ([]syncstore.Backlog, error)
	}
	// SyncRunner runs a MUR sync cycle (a *mursync.Ops).
	SyncRunner interface {
		Run(ctx context.Context, req mursync.Request) (mursync.Summary, error)
	}
	// AuditLog reads the audit log (auditstore).
	AuditLog interface {
		List(ctx context.Context, f auditstore.Filter) ([]auth.AuditEntry, error)
	}
	// Lag reports how far each consumer group is behind (kafkax.Lag).
	Lag func(ctx context.Context) ([]GroupLag, error)
)

// GroupLag is how many messages of a topic a consumer group has yet to
// take, summed over the topic's partitions.
type GroupLag struct {
	Group, Topic string
	Lag          int64
}

// API holds what the resolvers need. Fields left nil answer their part
// of the schema with an error that says it is not served by this process
// (SyncRunner, Lag, Repair, Settings), or are required (the readers).
type API struct {
	Work       ExceptionWork
	Files      Files
	MURs       MURs
	Feed       FeedEvents
	Repair     FeedRepair
	Sync       mursync.Reader
	SyncRunner SyncRunner
	Backlogs   SyncBacklogs
	Settings   *settings.Service
	AuditLog   AuditLog
	// Audit records the human actions taken through GraphQL.
	Audit    auth.Auditor
	Gatherer prometheus.Gatherer
	Lag      Lag
	Logger   *slog.Logger

	schema *graphql.Schema
}

// The limits every request is held to (docs/api.md, "Limits").
const (
	// MaxBody bounds a request's body.
	MaxBody = 1 << 20
	// MaxQueryLength bounds the query text.
	MaxQueryLength = 16 << 10
	// MaxDepth bounds how deep selections nest.
	MaxDepth = 8
	// MaxSelections bounds the fields a query selects once its fragments
	// are expanded.
	MaxSelections = 400
	// MaxFirst bounds a list's page (first:).
	MaxFirst = 500
	// MaxCost bounds a request's complexity: each list costs the number of
	// items it may answer with (its first:), each nested list costs that
	// many times over; a request over it is refused before it reads more.
	MaxCost = 10000
	// MaxIDs bounds the ids one mutation names.
	MaxIDs = 100000
)

// Init parses the schema against the resolvers; call it once before
// Handler.
func (a *API) Init() error {
	s, err := graphql.ParseSchema(schemaText, &resolver{a: a},
		graphql.UseFieldResolvers(),
		graphql.MaxDepth(MaxDepth),
		graphql.MaxQueryLength(MaxQueryLength),
		graphql.MaxSelections(MaxSelections),
		graphql.PanicHandler(panicHandler{a}),
	)
	if err != nil {
		return err
	}
	a.schema = s
	return nil
}

func (a *API) log() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

type request struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

// Handler serves POST /graphql: {"query", "operationName", "variables"}
// → {"data", "errors"}. The route table's guard has checked the token
// (api.Route{Role: auth.Viewer, Clients: api.PerClient}); the resolvers
// keep to its clients and roles.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.schema == nil {
			panic("uiapi: Handler before Init")
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			writeErrors(w, http.StatusRequestEntityTooLarge, "request body: larger than 1 MiB, or not received whole")
			return
		}
		var req request
		if err := json.Unmarshal(body, &req); err != nil || req.Query == "" {
			writeErrors(w, http.StatusBadRequest, `request body: want {"query": "...", "variables": {...}}`)
			return
		}
		ctx := withCost(r.Context())
		resp := a.schema.Exec(ctx, req.Query, req.OperationName, req.Variables)
		for _, e := range resp.Errors {
			a.clean(e)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(resp)
	})
}

func writeErrors(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"message": msg}}})
}

// principal is who the request acts as; the route's guard put it there.
func principal(ctx context.Context) auth.Principal {
	p, _ := auth.FromContext(ctx)
	return p
}

// audit records entries; a failure to write them is logged, as the REST
// API does: the action has happened.
func (a *API) audit(ctx context.Context, entries ...auth.AuditEntry) {
	if len(entries) == 0 {
		return
	}
	if a.Audit == nil {
		a.log().Error("no audit log: actions not recorded", "actor", principal(ctx).Name, "entries", len(entries))
		return
	}
	if err := a.Audit.Audit(context.WithoutCancel(ctx), entries...); err != nil {
		a.log().Error("audit log not written", "actor", principal(ctx).Name, "entries", len(entries), "err", err)
	}
}

func entry(ctx context.Context, action, target, client string, before, after any) auth.AuditEntry {
	e := auth.AuditEntry{At: time.Now().UTC(), Actor: principal(ctx).Name, Action: action, Target: target, Client: client}
	if before != nil {
		e.Before, _ = json.Marshal(before)
	}
	if after != nil {
		e.After, _ = json.Marshal(after)
	}
	return e
}

var errNotServed = errors.New("not served by this process")
