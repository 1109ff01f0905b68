package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/synctest"
)

// TestSecretsNeverLogged runs vivace dev at debug level through a full
// cycle — a database password, a bucket source with S3 credentials, MUR
// sync to a core with its auth key, API tokens good and bad — and greps
// everything it and the commands wrote for each secret.
func TestSecretsNeverLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	secret := func(what string) string { return what + "-" + strings.ReplaceAll(ids.New(), "-", "") }
	var (
		dbPassword = secret("pgpass")
		s3Secret   = secret("s3secret")
		coreKey    = secret("corekey")
		badToken   = "vivace_" + strings.ReplaceAll(ids.New(), "-", "")
	)

	backend := s3mem.New()
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	defer s3.Close()
	if err := backend.CreateBucket("secret-drop"); err != nil {
		t.Fatal(err)
	}
	usage, err := os.ReadFile(filepath.Join(repoRoot(t), "tests/testdata/demo/usage.csv"))
	if err != nil {
		t.Fatal(err)
	}
	s3client := "s3sec" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat)}
	if _, err := backend.PutObject("secret-drop", s3client+"/usage.csv", meta, bytes.NewReader(usage), int64(len(usage)), nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_SECRET_S3_KEY", "secret-test-key")
	t.Setenv("E2E_SECRET_S3_SECRET", s3Secret)

	const clientNo = 7709
	core := synctest.StartCore(t, fakecore.Credential{ClientNo: clientNo, AuthKey: coreKey})
	t.Setenv("VIVACE_CORE_CLIENT_NO", strconv.Itoa(clientNo))
	t.Setenv("VIVACE_CORE_AUTH_KEY", coreKey)

	demo, err := os.ReadFile(filepath.Join(repoRoot(t), "tests/testdata/demo/clients.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	settings := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(settings, append(demo, []byte(`  `+s3client+`:
    validation:
      max_age: 87600h
    source:
      s3:
        endpoint: `+s3.URL+`
        region: us-east-1
        bucket: secret-drop
        prefix: `+s3client+`/
        path_style: true
        access_key_id_env: E2E_SECRET_S3_KEY
        secret_access_key_env: E2E_SECRET_S3_SECRET
        poll_interval: 1s
`)...), 0o644); err != nil {
		t.Fatal(err)
	}

	// A database of its own: the sample file is ingested for the sample
	// client here as in TestSampleDataSet.
	u, err := url.Parse(ownDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), dbPassword) // trust authentication: any password goes
	d := newDev(t, "")
	d.DSN = u.String()
	d.start("--log-level", "debug", "--core-url", core.URL(), "--clients", settings)

	var outputs []string
	run := func(args ...string) (string, int) {
		out, errOut, code := d.run(ctx, args...)
		outputs = append(outputs, errOut)
		return out, code
	}
	out, code := run("token", "create", "--client", "*", "--role", "operator", "--name", "secret-test")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(token, "vivace_") {
		t.Fatalf("token create: exit %d: %q", code, out)
	}
	localToken, err := os.ReadFile(filepath.Join(d.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if _, code := run("feed", "publish", "--wait", filepath.Join(repoRoot(t), "tests/testdata/demo/catalog.jsonl")); code != 0 {
		t.Fatalf("feed publish: exit %d", code)
	}
	body := string(usage)
	file := filepath.Join(t.TempDir(), "usage.csv")
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := run("ingest", "--client", "demo", "--token", token, "--wait", file); code != 0 && !strings.Contains(out, "done") {
		t.Fatalf("ingest: exit %d %s", code, out)
	}
	if _, code := run("files", "list", "--token", badToken); code == 0 {
		t.Fatal("a made-up token was taken")
	}
	if _, code := run("sync", "run", "--client", "demo", "--token", token); code != 0 {
		t.Fatalf("sync run: exit %d; log:\n%s", code, d.log.String())
	}
	// The bucket's file was taken with the S3 credentials.
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := run("files", "list", "--client", s3client, "--token", token)
		if strings.Contains(out, `"status":"done"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bucket's file was not done: %s\nlog:\n%s", out, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.stop()

	logs := d.log.String() + strings.Join(outputs, "\n")
	if !strings.Contains(logs, "level=DEBUG") {
		t.Fatal("no debug lines: the test did not see everything vivace dev can log")
	}
	for what, s := range map[string]string{
		"the database password": dbPassword, "the S3 secret key": s3Secret, "the core auth key": coreKey,
		"the token made with vivace token create": token, "the local admin token": strings.TrimSpace(string(localToken)),
		"a refused token": badToken,
	} {
		if i := strings.Index(logs, s); i >= 0 {
			from := max(0, strings.LastIndex(logs[:i], "\n"))
			to := i + strings.Index(logs[i:]+"\n", "\n")
			t.Errorf("%s is in the logs: %s", what, logs[from:to])
		}
	}
}
