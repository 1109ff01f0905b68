package ratestage

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/retry"
)

// Catalogs caches one catalog snapshot per client.
//
// Freshness: Get reads the client's change counter (one primary-key read)
// and returns the cached snapshot when it is current, so a batch never
// rates against a catalog older than the last change committed before the
// batch began. When the catalog moved, Get waits for the refresh that
// brings the snapshot up to date.
//
// Off the hot path: Watch listens for the changes the feed announces as
// they commit (PostgreSQL LISTEN/NOTIFY, with a version poll behind it in
// case a notification is missed) and refreshes the cached clients in the
// background, so that by the time a batch asks, the refresh is usually
// done or under way. A refresh reads only the rows changed since the
// cached version and decodes only those; it then builds the new snapshot's
// indexes from the decoded rows it keeps. Readers of the old snapshot are
// never disturbed: snapshots are immutable and swapped whole.
type Catalogs struct {
	Store  CatalogSource
	Logger *slog.Logger
	// PollInterval is how often Watch compares the cached versions with
	// the database's, besides notifications; default 1s.
	PollInterval time.Duration

	mu      sync.Mutex
	clients map[string]*clientCatalog
}

// clientCatalog is one client's cache. The semaphore admits one refresh
// at a time; the state is read without locks.
type clientCatalog struct {
	sem   chan struct{}
	state atomic.Pointer[catalogState]
}

// catalogState is an immutable cached catalog: its version, its rows as
// decoded (or the problem each had) and the snapshot built from them.
type catalogState struct {
	version int64
	rows    map[rowKey]decodedRow
	snap    *catalog.Snapshot
}

type rowKey struct{ entity, id string }

type decodedRow struct {
	entity catalog.Entity
	err    error
}

func (c *Catalogs) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Catalogs) client(name string) *clientCatalog {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clients == nil {
		c.clients = map[string]*clientCatalog{}
	}
	cc := c.clients[name]
	if cc == nil {
		cc = &clientCatalog{sem: make(chan struct{}, 1)}
		c.clients[name] = cc
	}
	return cc
}

// Get returns the client's current catalog snapshot.
func (c *Catalogs) Get(ctx context.Context, client string) (*catalog.Snapshot, error) {
	version, err := c.Store.CatalogVersion(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("catalog version of client %q: %w", client, err)
	}
	cc := c.client(client)
	if st := cc.state.Load(); st != nil && st.version >= version {
		return st.snap, nil
	}
	st, err := c.refresh(ctx, client, cc, version)
	if err != nil {
		return nil, err
	}
	return st.snap, nil
}

// Version returns the version of the client's cached snapshot, and false
// when nothing is cached for it.
func (c *Catalogs) Version(client string) (int64, bool) {
	c.mu.Lock()
	cc := c.clients[client]
	c.mu.Unlock()
	if cc == nil {
		return 0, false
	}
	st := cc.state.Load()
	if st == nil {
		return 0, false
	}
	return st.version, true
}

// refresh brings the client's cache to at least version atLeast (to the
// newest version when atLeast is 0) and returns it. One refresh runs per
// client at a time; a caller that waited for another's finds the cache
// current and returns at once.
func (c *Catalogs) refresh(ctx context.Context, client string, cc *clientCatalog, atLeast int64) (*catalogState, error) {
	select {
	case cc.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-cc.sem }()
	old := cc.state.Load()
	if old != nil && atLeast > 0 && old.version >= atLeast {
		return old, nil
	}
	var since int64
	if old != nil {
		since = old.version
	}
	start := time.Now()
	changes, version, err := c.Store.LoadCatalogChanges(ctx, client, since)
	if err != nil {
		return nil, fmt.Errorf("load catalog of client %q: %w", client, err)
	}
	if old != nil && version <= old.version {
		return old, nil
	}
	var rows map[rowKey]decodedRow
	if old != nil {
		rows = maps.Clone(old.rows)
	} else {
		rows = make(map[rowKey]decodedRow, len(changes))
	}
	for _, r := range changes {
		k := rowKey{r.Entity, r.EntityID}
		if r.Deleted {
			delete(rows, k)
			continue
		}
		e, err := catalog.Decode(r.Entity, r.EntityID, r.Data)
		if err != nil {
			err = fmt.Errorf("%s %s: %w", r.Entity, r.EntityID, err)
		}
		rows[k] = decodedRow{entity: e, err: err}
	}
	var b catalog.Builder
	for _, r := range rows {
		if r.err != nil {
			b.AddProblem(r.err)
		} else {
			b.AddDecoded(r.entity)
		}
	}
	st := &catalogState{version: version, rows: rows, snap: b.Snapshot(client)}
	cc.state.Store(st)
	for _, p := range st.snap.Problems() {
		c.log().Warn("catalog entity left out", "client", client, "problem", p.Error())
	}
	c.log().Debug("catalog refreshed", "client", client, "version", version, "changed_rows", len(changes),
		"entities", len(rows), "took", time.Since(start))
	return st, nil
}

// listenRetry is how a lost listening connection is waited out.
var listenRetry = retry.Policy{First: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: retry.DefaultJitter}

// Watch refreshes the cached clients in the background as their catalogs
// change, until ctx ends. ready, if not nil, is called once notifications
// are being received.
func (c *Catalogs) Watch(ctx context.Context, ready func()) {
	poll := c.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	changed := make(chan []string, 64)
	go func() {
		backoff := listenRetry.Backoff()
		for ctx.Err() == nil {
			err := c.Store.ListenCatalog(ctx, func() {
				backoff.Reset()
				if ready != nil {
					ready()
					ready = nil
				}
				// Changes made while not listening were not announced.
				changed <- nil
			}, func(clients []string) {
				select {
				case changed <- clients:
				case <-ctx.Done():
				}
			})
			if err != nil {
				c.log().Warn("catalog change notifications interrupted; polling until they resume", "error", err)
			}
			_ = backoff.Wait(ctx) // ctx's end ends the loop
		}
	}()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		var clients []string // nil: check every cached client
		select {
		case <-ctx.Done():
			return
		case clients = <-changed:
		case <-t.C:
		}
		c.refreshChanged(ctx, clients)
	}
}

// refreshChanged refreshes the named clients that are cached, or, with no
// names, every cached client whose version moved.
func (c *Catalogs) refreshChanged(ctx context.Context, clients []string) {
	c.mu.Lock()
	cached := make(map[string]*clientCatalog, len(c.clients))
	if clients == nil {
		maps.Copy(cached, c.clients)
	}
	for _, name := range clients {
		if cc := c.clients[name]; cc != nil {
			cached[name] = cc
		}
	}
	c.mu.Unlock()
	if len(cached) == 0 {
		return
	}
	want := map[string]int64{}
	if clients == nil {
		names := make([]string, 0, len(cached))
		for name := range cached {
			names = append(names, name)
		}
		var err error
		if want, err = c.Store.CatalogVersions(ctx, names); err != nil {
			if ctx.Err() == nil {
				c.log().Warn("read catalog versions", "error", err)
			}
			return
		}
	}
	for name, cc := range cached {
		if st := cc.state.Load(); st == nil || (clients == nil && st.version >= want[name]) {
			continue // never asked for, or current
		}
		if _, err := c.refresh(ctx, name, cc, want[name]); err != nil && ctx.Err() == nil {
			c.log().Warn("refresh catalog", "client", name, "error", err)
		}
	}
}
