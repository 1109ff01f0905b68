package ratestage

import "sync"

// maxStoredFiles bounds storedFiles; past it the set starts again empty
// (a file forgotten costs its next batch one more attempt, nothing else).
const maxStoredFiles = 10_000

// storedFiles is the set of files one of whose batches met a record id
// that already had a MUR: a file sent again, or a batch replayed after a
// restart. Their later batches look their record ids up before rating
// instead of learning it from a refused COPY. Safe for concurrent use.
type storedFiles struct {
	mu    sync.Mutex
	files map[string]struct{}
}

// any reports whether a file of items is in the set.
func (f *storedFiles) any(items []Item) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.files) == 0 {
		return false
	}
	last := ""
	for i := range items {
		id := items[i].Record.FileID
		if id == last {
			continue
		}
		last = id
		if _, ok := f.files[id]; ok {
			return true
		}
	}
	return false
}

// add puts the files of items in the set.
func (f *storedFiles) add(items []Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil || len(f.files) >= maxStoredFiles {
		f.files = map[string]struct{}{}
	}
	for i := range items {
		f.files[items[i].Record.FileID] = struct{}{}
	}
}
