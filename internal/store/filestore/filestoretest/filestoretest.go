// Package filestoretest helps the tests of the stores that need files in
// the registry.
package filestoretest

import (
	"context"
	"testing"
	"time"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/store/filestore"
)

// File is a usage file of client with content hash sha, to register.
func File(client, sha string) files.File {
	return files.File{FileID: ids.New(), Client: client, Name: "usage.csv", Source: "http",
		Location: "/archive/usage.csv", Format: "csv", SizeBytes: 10, SHA256: sha}
}

// Claim claims files until it gets want and returns it; other tests'
// files may be claimed on the way (each package shares one database).
func Claim(tb testing.TB, fs *filestore.Store, want, owner string, lease time.Duration) files.File {
	tb.Helper()
	for i := 0; i < 1000; i++ {
		f, err := fs.ClaimFile(context.Background(), owner, lease)
		if err != nil {
			tb.Fatalf("claim: %v", err)
		}
		if f.FileID == want {
			return f
		}
	}
	tb.Fatalf("file %s never claimed", want)
	return files.File{}
}
