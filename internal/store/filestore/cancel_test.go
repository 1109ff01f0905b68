package filestore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/filestore/filestoretest"
)

// TestCancelFile: a cancelled file is failed at once with its reason and
// who cancelled it; what was read before still counts, and the counts add
// up for it once the reader has said how far it got.
func TestCancelFile(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs := filestore.New(st)
	client := "cancel-" + ids.New()[24:]
	move := func(id string, d filestore.Delta) {
		t.Helper()
		if err := st.Tx(ctx, func(tx pgx.Tx) error {
			_, err := filestore.ApplyDeltas(ctx, tx, filestore.Deltas{id: &d})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Received, not read yet: nothing of it was read, so it counts 0.
	waiting, _ := fs.RegisterFile(ctx, filestoretest.File(client, "w"))
	got, err := fs.CancelFile(ctx, waiting.FileID, "alice", "wrong client")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != files.Failed || got.Records == nil || *got.Records != 0 || got.CancelledBy != "alice" || got.CancelledAt == nil ||
		got.Reason != "cancelled by alice: wrong client; nothing of it had been read" || got.FinishedAt == nil {
		t.Fatalf("cancelled waiting file: %+v", got)
	}

	// Being read: failed at once; records in flight still count; the
	// reader then stores how far it got.
	reading, _ := fs.RegisterFile(ctx, filestoretest.File(client, "r"))
	filestoretest.Claim(t, fs, reading.FileID, "reader", time.Minute)
	move(reading.FileID, filestore.Delta{MURs: 2})
	got, err = fs.CancelFile(ctx, reading.FileID, "bob", "  the   file\nis from last year ")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != files.Failed || got.Records != nil || got.Reason != "cancelled by bob:   the   file\nis from last year " {
		t.Fatalf("cancelled file being read: %+v", got)
	}
	for range 3 {
		if f, err := fs.ClaimFile(ctx, "other", time.Minute); err == nil && f.FileID == reading.FileID {
			t.Fatal("a cancelled file was claimed")
		}
	}
	move(reading.FileID, filestore.Delta{Exceptions: 1})
	got, err = fs.StopRead(ctx, reading.FileID, 4, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Records == nil || *got.Records != 4 || got.MURs != 2 || got.Exceptions != 1 || got.Status != files.Failed ||
		!strings.HasSuffix(got.Reason, "; reading stopped after 4 records (the last on line 5): the rest of the file was not read") {
		t.Fatalf("stopped: %+v", got)
	}
	move(reading.FileID, filestore.Delta{Filtered: 1}) // the last record in flight
	got, _ = fs.GetFile(ctx, reading.FileID)
	if *got.Records != got.MURs+got.Exceptions+got.Filtered || got.Status != files.Failed {
		t.Fatalf("the counts of the records read do not add up: %+v", got)
	}
	if _, err := fs.StopRead(ctx, reading.FileID, 9, 9, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a second StopRead: %v", err)
	}

	// Read to the end, records still on their way: the count stays.
	read, _ := fs.RegisterFile(ctx, filestoretest.File(client, "d"))
	filestoretest.Claim(t, fs, read.FileID, "reader", time.Minute)
	if _, err := fs.FileRead(ctx, read.FileID, 3); err != nil {
		t.Fatal(err)
	}
	got, err = fs.CancelFile(ctx, read.FileID, "carol", "stuck")
	if err != nil || *got.Records != 3 || got.Reason != "cancelled by carol: stuck; every record had been read" {
		t.Fatalf("cancelled read file: %+v %v", got, err)
	}

	// Final already: unchanged, ErrFinal.
	if f, err := fs.CancelFile(ctx, waiting.FileID, "dave", "again"); !errors.Is(err, files.ErrFinal) || f.CancelledBy != "alice" {
		t.Fatalf("cancelling a failed file: %+v %v", f, err)
	}
	for _, id := range []string{ids.New(), "not-a-uuid", "'; DROP TABLE files; --"} {
		if _, err := fs.CancelFile(ctx, id, "x", "y"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cancel %q: %v", id, err)
		}
		if _, err := fs.GetFile(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get %q: %v", id, err)
		}
	}

	// The list filters by status.
	failed, err := fs.ListFiles(ctx, files.Filter{Clients: []string{client}, Status: files.Failed, Limit: 10})
	if err != nil || len(failed) != 3 {
		t.Fatalf("failed files: %d %v", len(failed), err)
	}
	if none, _ := fs.ListFiles(ctx, files.Filter{Clients: []string{client}, Status: files.Done, Limit: 10}); len(none) != 0 {
		t.Fatalf("done files: %+v", none)
	}
}
