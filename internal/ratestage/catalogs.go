package ratestage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/store"
)

// Catalogs caches one catalog snapshot per client. Get compares the
// cached snapshot's change counter with the database's (one primary-key
// read) and rebuilds the snapshot when the catalog changed, so a batch
// never rates against a catalog older than the last change committed
// before the batch began.
type Catalogs struct {
	Store  *store.Store
	Logger *slog.Logger

	mu      sync.Mutex
	clients map[string]*cachedCatalog
}

type cachedCatalog struct {
	version int64
	snap    *catalog.Snapshot
}

// Get returns the client's current catalog snapshot.
func (c *Catalogs) Get(ctx context.Context, client string) (*catalog.Snapshot, error) {
	version, err := c.Store.CatalogVersion(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("catalog version of client %q: %w", client, err)
	}
	c.mu.Lock()
	cached := c.clients[client]
	c.mu.Unlock()
	if cached != nil && cached.version == version {
		return cached.snap, nil
	}
	rows, version, err := c.Store.LoadCatalog(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("load catalog of client %q: %w", client, err)
	}
	var b catalog.Builder
	for _, r := range rows {
		_ = b.Add(r.Entity, r.EntityID, r.Data) // kept in Problems
	}
	snap := b.Snapshot(client)
	if c.Logger != nil {
		for _, p := range snap.Problems() {
			c.Logger.Warn("catalog entity left out", "client", client, "problem", p.Error())
		}
		c.Logger.Debug("catalog loaded", "client", client, "version", version, "entities", len(rows))
	}
	c.mu.Lock()
	if c.clients == nil {
		c.clients = map[string]*cachedCatalog{}
	}
	if cur := c.clients[client]; cur == nil || cur.version <= version {
		c.clients[client] = &cachedCatalog{version: version, snap: snap}
	}
	c.mu.Unlock()
	return snap, nil
}
