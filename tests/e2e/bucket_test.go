package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestBucketSource runs vivace dev with a client whose usage files come
// from an S3-compatible bucket: the file is taken, processed to the end
// and moved under processed/, and dev stops cleanly with the poller on.
func TestBucketSource(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	if err := backend.CreateBucket("usage-drop"); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(repoRoot(t), "tests/testdata/demo/usage.csv"))
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat)}
	if _, err := backend.PutObject("usage-drop", "s3demo/usage.csv", meta, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_S3_KEY", "e2e-key")
	t.Setenv("E2E_S3_SECRET", "e2e-secret")
	settings := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(settings, []byte(`clients:
  s3demo:
    validation:
      max_age: 87600h
    source:
      s3:
        endpoint: `+srv.URL+`
        region: us-east-1
        bucket: usage-drop
        prefix: s3demo/
        path_style: true
        access_key_id_env: E2E_S3_KEY
        secret_access_key_env: E2E_S3_SECRET
        poll_interval: 1s
        after_receive: move
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDev(t, "", "--clients", settings)

	var file struct {
		Name, Source, Status       string
		Records                    *int64
		MURs, Exceptions, Filtered int64
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := d.get(t.Context(), "/api/v1/files?client=s3demo")
		if err != nil {
			t.Fatal(err)
		}
		var files []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&files)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 1 {
			if err := json.Unmarshal(files[0], &file); err != nil {
				t.Fatal(err)
			}
			if file.Status == "done" || file.Status == "failed" || file.Status == "rejected" {
				break
			}
		}
		if len(files) > 1 || time.Now().After(deadline) {
			t.Fatalf("files of s3demo: %s\nlog:\n%s", files, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if file.Name != "usage.csv" || file.Source != "s3" || file.Status != "done" || file.Records == nil || *file.Records != 19 ||
		file.MURs+file.Exceptions+file.Filtered != 19 {
		t.Fatalf("file = %+v\nlog:\n%s", file, d.log.String())
	}
	list, err := backend.ListBucket("usage-drop", &gofakes3.Prefix{Prefix: "s3demo/", HasPrefix: true}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || list.Contents[0].Key != "s3demo/processed/usage.csv" {
		t.Fatalf("bucket after taking: %+v", list.Contents)
	}
	d.stop()
	select {
	case <-d.done:
	default:
		t.Fatal("vivace dev still running")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("vivace dev exit %d after SIGTERM:\n%s", code, d.log.String())
	}
}
