//go:build linux

package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
)

// usageFile is a usage file of about n bytes.
func usageFile(n int) []byte {
	b := []byte("record_id,account_id,usage_type,quantity,usage_time\n")
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "r%07d,A1,CALL,1,2026-03-01T00:00:00Z\n", i)
	}
	return b
}

// The disk tests fill the archive's disk with a file-size limit
// (RLIMIT_FSIZE) set in a child process of the test binary, which holds
// for root as for anyone: writing past it fails with "file too large",
// as a full disk fails a write with "no space left on device".
const (
	childEnv   = "VIVACE_TEST_FULL_DISK_CHILD"
	childDSN   = "VIVACE_TEST_FULL_DISK_DSN"
	childDirs  = "VIVACE_TEST_FULL_DISK_DIRS" // archive, inbox
	childLimit = 64 << 10
)

// TestFullArchive: with the archive's disk full, an upload gets a clear
// error that names what failed, an inbox file stays in the inbox with an
// error in the log, nothing is registered and nothing is left in the
// archive; once there is room again, both go through.
func TestFullArchive(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	archive, inbox := t.TempDir(), t.TempDir()
	client := "full-" + ids.New()[24:]
	body := usageFile(256 << 10) // larger than the child's limit
	if err := os.MkdirAll(filepath.Join(inbox, client), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inbox, client, "day.csv"), usageFile(200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullArchiveChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDSN+"="+dsn, childDirs+"="+archive+string(os.PathListSeparator)+inbox)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFullArchiveChild")) {
		t.Fatalf("with the disk full: %v\n%s", err, out)
	}

	// Room again: the same upload and the inbox file go through.
	fs := filestore.New(pgtest.Store(t))
	recv := &ingest.Receiver{Registry: fs, ArchiveDir: archive, Logger: slog.New(slog.DiscardHandler)}
	if _, err := recv.Receive(ctx, client, "upload.csv", "http", bytes.NewReader(body)); err != nil {
		t.Fatalf("upload once there is room: %v", err)
	}
	in := &ingest.Inbox{Dir: inbox, Receiver: recv, Logger: slog.New(slog.DiscardHandler)}
	in.Scan(ctx)
	in.Scan(ctx)
	if _, err := os.Stat(filepath.Join(inbox, client, "day.csv")); !os.IsNotExist(err) {
		t.Errorf("the inbox file was not taken once there was room: %v", err)
	}
	got, err := fs.ListFiles(ctx, files.Filter{Clients: []string{client}, Limit: 10})
	if err != nil || len(got) != 2 {
		t.Fatalf("files registered: %+v (%v), want the upload and the inbox file, once each", got, err)
	}
	for _, f := range got {
		if f.Status != files.Received {
			t.Errorf("file %s: %s (%s)", f.Name, f.Status, f.Reason)
		}
	}
}

// TestFullArchiveChild is TestFullArchive's child process.
func TestFullArchiveChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestFullArchive")
	}
	dirs := filepath.SplitList(os.Getenv(childDirs))
	archive, inbox := dirs[0], dirs[1]
	body, err := readAll(os.Stdin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, os.Getenv(childDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lim := syscall.Rlimit{Cur: childLimit, Max: childLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	fs := filestore.New(st)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	recv := &ingest.Receiver{Registry: fs, ArchiveDir: archive, Logger: log}
	entries, _ := os.ReadDir(inbox)
	client := entries[0].Name()

	_, err = recv.Receive(ctx, client, "upload.csv", "http", bytes.NewReader(body))
	var ae *ingest.ArchiveError
	if !errors.Is(err, ingest.ErrArchive) || !errors.As(err, &ae) {
		t.Fatalf("upload with the disk full: %v, want an archive error", err)
	}
	if r := ae.Reason(); !strings.Contains(r, "file too large") || !strings.Contains(r, "upload.csv") || strings.Contains(r, archive) {
		t.Errorf("reason %q: want the cause and the file's name, without the archive's path", r)
	}
	in := &ingest.Inbox{Dir: inbox, Receiver: recv, Logger: log}
	in.Scan(ctx)
	in.Scan(ctx)
	if _, err := os.Stat(filepath.Join(inbox, client, "day.csv")); err != nil {
		t.Errorf("the inbox file is gone although it could not be stored: %v", err)
	}
	if !strings.Contains(logs.String(), "the file archive cannot store it") {
		t.Errorf("no clear error in the log:\n%s", logs.String())
	}
	if got, err := fs.ListFiles(ctx, files.Filter{Clients: []string{client}, Limit: 10}); err != nil || len(got) != 0 {
		t.Errorf("files registered with the disk full: %+v (%v)", got, err)
	}
	left, _ := filepath.Glob(filepath.Join(archive, client, "*"))
	if len(left) != 0 {
		t.Errorf("left in the archive: %v", left)
	}
}

func readAll(f *os.File) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}

// TestArchiveFolderNotAFolder: a client's archive folder replaced by a
// file (a disk an operator tidied up by hand) fails the upload with an
// archive error and registers nothing; once it is a folder again the
// file goes through.
func TestArchiveFolderNotAFolder(t *testing.T) {
	ctx := context.Background()
	fs := filestore.New(pgtest.Store(t))
	archive := t.TempDir()
	client := "notdir-" + ids.New()[24:]
	if err := os.WriteFile(filepath.Join(archive, client), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	recv := &ingest.Receiver{Registry: fs, ArchiveDir: archive, Logger: slog.New(slog.DiscardHandler)}
	body := usageFile(1 << 10)
	if _, err := recv.Receive(ctx, client, "a.csv", "http", bytes.NewReader(body)); !errors.Is(err, ingest.ErrArchive) {
		t.Fatalf("upload into a folder that is a file: %v, want an archive error", err)
	}
	if got, _ := fs.ListFiles(ctx, files.Filter{Clients: []string{client}, Limit: 10}); len(got) != 0 {
		t.Errorf("registered: %+v", got)
	}
	if err := os.Remove(filepath.Join(archive, client)); err != nil {
		t.Fatal(err)
	}
	if _, err := recv.Receive(ctx, client, "a.csv", "http", bytes.NewReader(body)); err != nil {
		t.Errorf("upload once the folder is back: %v", err)
	}
}
