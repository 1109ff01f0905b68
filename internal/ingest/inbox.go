package ingest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Inbox watches <dir>/<client>/ for usage files. A file is taken once its
// size and modification time have stayed the same for one scan, so a file
// still being copied in is not read half-written; names starting with '.'
// or ending in .tmp or .part are never taken. A received file leaves the
// inbox (the archive keeps the original); a refused one moves to
// <dir>/<client>/rejected/.
type Inbox struct {
	Dir      string
	Receiver *Receiver
	Interval time.Duration
	Logger   *slog.Logger

	seen map[string]fileState
	// kept: files received (or moved nowhere after a refusal) that the
	// inbox could not remove, a read-only folder: not taken again while
	// they stay as they are, so that no copy is registered twice.
	kept map[string]fileState
}

type fileState struct {
	size int64
	mod  time.Time
}

// Run scans until ctx ends.
func (in *Inbox) Run(ctx context.Context) error {
	if in.Interval <= 0 {
		in.Interval = time.Second
	}
	if err := os.MkdirAll(in.Dir, 0o755); err != nil {
		return err
	}
	t := time.NewTicker(in.Interval)
	defer t.Stop()
	for {
		in.Scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan looks at the inbox once and takes the files that are ready.
func (in *Inbox) Scan(ctx context.Context) {
	if in.seen == nil {
		in.seen = map[string]fileState{}
		in.kept = map[string]fileState{}
	}
	clients, err := os.ReadDir(in.Dir)
	if err != nil {
		in.log().Error("inbox unreadable", "dir", in.Dir, "err", err)
		return
	}
	current := map[string]bool{}
	for _, c := range clients {
		if !c.IsDir() || strings.HasPrefix(c.Name(), ".") {
			continue
		}
		client := c.Name()
		if err := ValidClient(client); err != nil {
			in.log().Warn("inbox folder ignored", "dir", filepath.Join(in.Dir, client), "err", err)
			continue
		}
		entries, err := os.ReadDir(filepath.Join(in.Dir, client))
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part") {
				continue
			}
			path := filepath.Join(in.Dir, client, name)
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			current[path] = true
			st := fileState{info.Size(), info.ModTime()}
			if k, ok := in.kept[path]; ok && k == st {
				continue
			}
			delete(in.kept, path)
			if prev, ok := in.seen[path]; !ok || prev != st {
				in.seen[path] = st
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if !in.take(ctx, client, path) {
				in.kept[path] = st
			}
			delete(in.seen, path)
		}
	}
	for p := range in.seen {
		if !current[p] {
			delete(in.seen, p)
		}
	}
	for p := range in.kept {
		if !current[p] {
			delete(in.kept, p)
		}
	}
}

// take receives one inbox file and removes it (a refused one goes to
// rejected/). It returns false when the file was dealt with but could not
// be removed or moved: the inbox folder cannot be written.
func (in *Inbox) take(ctx context.Context, client, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		in.log().Error("inbox file unreadable", "file", path, "err", err)
		return true
	}
	got, err := in.Receiver.Receive(ctx, client, filepath.Base(path), "inbox", f)
	f.Close()
	switch {
	case err == nil:
		if err := os.Remove(path); err != nil {
			in.log().Error("file received but the inbox cannot remove it; it is left in place and not taken again while it is unchanged",
				"file", path, "file_id", got.FileID, "err", err)
			return false
		}
	case errors.Is(err, ErrRejected):
		dir := filepath.Join(filepath.Dir(path), "rejected")
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = os.Rename(path, filepath.Join(dir, filepath.Base(path)))
		}
		if err != nil {
			in.log().Error("file refused but the inbox cannot move it to rejected/; it is left in place and not taken again while it is unchanged",
				"file", path, "file_id", got.FileID, "err", err)
			return false
		}
	case errors.Is(err, ErrArchive):
		// Nothing registered: the file stays for the next scan, which
		// takes it once the archive has room again.
		in.log().Error("inbox file not received: the file archive cannot store it; will retry", "file", path, "err", err)
	default:
		// The database failed: leave the file for the next scan.
		in.log().Error("inbox file not received; will retry", "file", path, "err", err)
	}
	return true
}

func (in *Inbox) log() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.Default()
}
