package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokens: vivace dev writes a local admin token the commands find on
// their own and keeps it across restarts; nothing but the probes answers
// without a token; a token made with vivace token create works within its
// role and client until it is revoked.
func TestTokens(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startDev(t, "")
	path := filepath.Join(d.DataDir, "token")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", info, err)
	}
	local, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(local), "vivace_") {
		t.Fatalf("token file holds %q", local)
	}

	for _, p := range []string{"/api/v1/files", "/api/v1/murs?client=demo", "/streams/ingest/ping", "/nothing"} {
		resp, err := http.Get(d.API + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s without a token: %d", p, resp.StatusCode)
		}
	}
	resp, err := d.get(ctx, "/api/v1/files")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the local token: %d", resp.StatusCode)
	}

	out, errOut, code := d.run(ctx, "token", "create", "--client", "demo", "--role", "viewer", "--name", "e2e-viewer", "--expires", "1d")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	viewer := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(viewer, "vivace_") || !strings.Contains(errOut, "viewer for demo") {
		t.Fatalf("token create: exit %d\n%s\n%s", code, out, errOut)
	}
	id := strings.SplitN(strings.TrimPrefix(viewer, "vivace_"), "_", 2)[0]

	if out, errOut, code := d.run(ctx, "murs", "export", "--client", "demo", "--token", viewer); code != 0 {
		t.Fatalf("viewer export: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := d.run(ctx, "murs", "export", "--client", "other", "--token", viewer); code == 0 || !strings.Contains(errOut, "403") ||
		!strings.Contains(errOut, `does not cover client "other"`) {
		t.Errorf("viewer export of another client: exit %d %s", code, errOut)
	}
	usage := filepath.Join(repoRoot(t), "tests/testdata/demo/usage.csv")
	if _, errOut, code := d.run(ctx, "ingest", "--client", "demo", "--token", viewer, usage); code == 0 || !strings.Contains(errOut, "operator role") {
		t.Errorf("viewer upload: exit %d %s", code, errOut)
	}

	out, _, code = d.run(ctx, "token", "list")
	if code != 0 || !strings.Contains(out, `"name":"e2e-viewer"`) || !strings.Contains(out, `"name":"local-admin"`) ||
		strings.Contains(out, viewer[len("vivace_")+9:]) || strings.Contains(out, string(local[len("vivace_")+9:60])) {
		t.Fatalf("token list: exit %d\n%s", code, out)
	}
	if out, errOut, code := d.run(ctx, "token", "revoke", id); code != 0 || !strings.Contains(out, `"status":"revoked"`) {
		t.Fatalf("token revoke: exit %d\n%s\n%s", code, out, errOut)
	}
	// A running process refuses a revoked token once it checks it again
	// (within two seconds, docs/cli.md).
	var refused string
	for range 40 {
		if _, refused, code = d.run(ctx, "murs", "export", "--client", "demo", "--token", viewer); code != 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if code == 0 || !strings.Contains(refused, "401") || !strings.Contains(refused, "revoked") {
		t.Errorf("revoked token: exit %d %s", code, refused)
	}
	if _, errOut, code := d.run(ctx, "token", "revoke", id); code == 0 || !strings.Contains(errOut, "already") {
		t.Errorf("second revoke: exit %d %s", code, errOut)
	}

	// A restart keeps the local token.
	d.stop()
	d.start()
	again, _ := os.ReadFile(path)
	if string(again) != string(local) {
		t.Fatal("vivace dev replaced a good local token")
	}
	if out, errOut, code := d.run(ctx, "feed", "errors", "list"); code != 0 {
		t.Fatalf("after the restart: exit %d\n%s\n%s", code, out, errOut)
	}
}
