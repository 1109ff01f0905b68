package settings

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"vivace.dev/vivace/internal/auth"
)

// MemStore keeps settings in memory, with the audit entries of their
// changes: for tests and for tools that run without a database.
type MemStore struct {
	mu      sync.Mutex
	values  map[string]Stored
	entries []auth.AuditEntry
}

var _ Store = (*MemStore)(nil)

// Load returns the values set.
func (m *MemStore) Load(context.Context) ([]Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Stored, 0, len(m.values))
	for _, v := range m.values {
		out = append(out, v)
	}
	return out, nil
}

// Put sets (or, for nil, removes) a value and records the entry.
func (m *MemStore) Put(_ context.Context, key string, value json.RawMessage, actor string, entry func(before json.RawMessage) auth.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values == nil {
		m.values = map[string]Stored{}
	}
	var before json.RawMessage
	if v, ok := m.values[key]; ok {
		before = v.Value
	}
	if value == nil {
		delete(m.values, key)
	} else {
		m.values[key] = Stored{Key: key, Value: value, UpdatedBy: actor, UpdatedAt: time.Now()}
	}
	m.entries = append(m.entries, entry(before))
	return nil
}

// Raw stores a value as it is, unchecked (a value written into the
// table by hand, say).
func (m *MemStore) Raw(key string, value json.RawMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values == nil {
		m.values = map[string]Stored{}
	}
	m.values[key] = Stored{Key: key, Value: value, UpdatedBy: "raw", UpdatedAt: time.Now()}
}

// Forget removes a value without an audit entry.
func (m *MemStore) Forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.values, key)
}

// Entries returns the audit entries recorded, oldest first.
func (m *MemStore) Entries() []auth.AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]auth.AuditEntry(nil), m.entries...)
}
