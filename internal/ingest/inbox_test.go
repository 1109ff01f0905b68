package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestInboxRefusesUnknownClients: a file in the inbox folder of a client
// Vivace does not know is refused where an operator sees it: a rejected
// file with the reason, the file moved to rejected/, and a log line. A
// known client's file is taken.
func TestInboxRefusesUnknownClients(t *testing.T) {
	ctx := context.Background()
	fs := filestore.New(pgtest.Store(t))
	suffix := ids.New()[24:]
	known, unknown := "acme-"+suffix, "acmee-"+suffix
	var logs bytes.Buffer // Scan logs as it goes, on this goroutine
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	recv := &ingest.Receiver{Registry: fs, ArchiveDir: t.TempDir(), Logger: log,
		Clients: ingest.KnownClients{InSettings: func(c string) bool { return c == known }}}
	inbox := &ingest.Inbox{Dir: dir, Receiver: recv, Logger: log}
	for _, c := range []string{known, unknown} {
		if err := os.MkdirAll(filepath.Join(dir, c), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c, "day-01.csv"), []byte("record_id,account_id,usage_type,quantity,usage_time\nr1,A1,V,1,2026-03-01T00:00:00Z\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inbox.Scan(ctx) // sees the files
	inbox.Scan(ctx) // takes those that stayed the same

	if _, err := os.Stat(filepath.Join(dir, known, "day-01.csv")); !os.IsNotExist(err) {
		t.Errorf("the known client's file is still in the inbox: %v", err)
	}
	if got, _ := fs.ListFiles(ctx, files.Filter{Clients: []string{known}, Limit: 10}); len(got) != 1 || got[0].Status != files.Received {
		t.Errorf("known client's files: %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, unknown, "rejected", "day-01.csv")); err != nil {
		t.Errorf("the unknown client's file is not in rejected/: %v", err)
	}
	got, _ := fs.ListFiles(ctx, files.Filter{Clients: []string{unknown}, Limit: 10})
	if len(got) != 1 || got[0].Status != files.Rejected || got[0].Source != "inbox" ||
		!strings.HasPrefix(got[0].Reason, `client "`+unknown+`" is not known`) {
		t.Fatalf("unknown client's files: %+v", got)
	}
	if l := logs.String(); !strings.Contains(l, `msg="file rejected: the client is not known" client=`+unknown) {
		t.Errorf("no log line for the refused file:\n%s", l)
	}
}
