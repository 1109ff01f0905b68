package filestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/filestore/filestoretest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRegisterDuplicate(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs := filestore.New(st)
	client := "dup-" + ids.New()[24:]
	first, err := fs.RegisterFile(ctx, filestoretest.File(client, "abc"))
	if err != nil || first.Status != files.Received {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := fs.RegisterFile(ctx, filestoretest.File(client, "abc"))
	if !errors.Is(err, files.ErrDuplicate) {
		t.Fatalf("second: err = %v, want ErrDuplicateFile", err)
	}
	if second.Status != files.Rejected || second.FileID == first.FileID || second.Reason == "" {
		t.Fatalf("second = %+v", second)
	}
	// Another client may send the same content.
	if _, err := fs.RegisterFile(ctx, filestoretest.File(client+"-other", "abc")); err != nil {
		t.Fatal(err)
	}
	// A third copy is refused too, and both refusals stay visible.
	if _, err := fs.RegisterFile(ctx, filestoretest.File(client, "abc")); !errors.Is(err, files.ErrDuplicate) {
		t.Fatalf("third: %v", err)
	}
	files, err := fs.ListFiles(ctx, []string{client}, 10)
	if err != nil || len(files) != 3 {
		t.Fatalf("list: %d files, %v", len(files), err)
	}
}

func TestExpiredLeaseIsReclaimed(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	fs := filestore.New(st)
	client := "lease-" + ids.New()[24:]
	// Other tests' files, held for an hour: a one-millisecond lease on an
	// older file would otherwise expire before every next claim and be
	// claimed again and again.
	for {
		if _, err := fs.ClaimFile(ctx, "drain", time.Hour); err != nil {
			break
		}
	}
	f, _ := fs.RegisterFile(ctx, filestoretest.File(client, "x1"))
	filestoretest.Claim(t, fs, f.FileID, "dead-reader", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	again := filestoretest.Claim(t, fs, f.FileID, "new-reader", time.Minute)
	if again.FileID != f.FileID {
		t.Fatal("expired lease not reclaimed")
	}
	if err := fs.ReleaseLease(ctx, f.FileID, "new-reader"); err != nil {
		t.Fatal(err)
	}
	filestoretest.Claim(t, fs, f.FileID, "third-reader", time.Minute)
}
