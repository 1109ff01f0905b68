package clientcfg_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/clientcfg"
)

func TestBucketSources(t *testing.T) {
	const yml = `
defaults:
  format: csv
clients:
  acme:
    source:
      s3:
        endpoint: http://minio.internal:9000
        region: us-east-1
        bucket: acme-usage
        prefix: /usage/daily
        path_style: true
        access_key_id_env: ACME_S3_KEY
        secret_access_key_env: ACME_S3_SECRET
        poll_interval: 15s
        settle: 1m
        after_receive: move
  globex:
    source:
      s3:
        bucket: globex-usage
        credentials_file: secrets/globex.ini
        profile: usage
  initech:
    format: jsonl
`
	f, err := clientcfg.Parse("/etc/vivace/clients.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	got := f.BucketSources()
	if len(got) != 2 {
		t.Fatalf("sources = %+v, want acme and globex", got)
	}
	want := clientcfg.BucketSource{
		Endpoint: "http://minio.internal:9000", Region: "us-east-1", Bucket: "acme-usage",
		Prefix: "usage/daily/", PathStyle: true, AccessKeyIDEnv: "ACME_S3_KEY", SecretAccessKeyEnv: "ACME_S3_SECRET",
		PollInterval: 15 * time.Second, Settle: time.Minute, Move: true,
		ProcessedPrefix: "usage/daily/processed/", RejectedPrefix: "usage/daily/rejected/",
	}
	if got["acme"] != want {
		t.Errorf("acme = %+v\nwant  %+v", got["acme"], want)
	}
	want = clientcfg.BucketSource{
		Endpoint: clientcfg.DefaultS3Endpoint, Bucket: "globex-usage",
		CredentialsFile: filepath.Join("/etc/vivace", "secrets/globex.ini"), Profile: "usage",
		PollInterval: clientcfg.DefaultPollInterval,
	}
	if got["globex"] != want {
		t.Errorf("globex = %+v\nwant  %+v", got["globex"], want)
	}
	if loc := got["acme"].Location(); loc != "s3://acme-usage/usage/daily/" {
		t.Errorf("location = %q", loc)
	}
	var none *clientcfg.File
	if none.BucketSources() != nil {
		t.Error("no settings file: want no sources")
	}
}

func TestBucketSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yml  string
		want []string // each must appear in the error
	}{
		{"missing bucket", `
clients:
  acme:
    source:
      s3:
        access_key_id_env: K
        secret_access_key_env: S
`, []string{"line 5: clients.acme.source.s3.bucket: required"}},
		{"no credentials", `
clients:
  acme:
    source:
      s3:
        bucket: usage
`, []string{"line 5: clients.acme.source.s3.access_key_id_env: credentials are required"}},
		{"secret in yaml", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        access_key_id_env: AKIA EXAMPLE
        secret_access_key_env: S
`, []string{"line 7: clients.acme.source.s3.access_key_id_env:", "not an environment variable name"}},
		{"half env pair", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        secret_access_key_env: S
`, []string{"clients.acme.source.s3.access_key_id_env: required with secret_access_key_env"}},
		{"both credential kinds", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        access_key_id_env: K
        secret_access_key_env: S
        credentials_file: creds.ini
`, []string{"line 9: clients.acme.source.s3.credentials_file: give either"}},
		{"bad endpoint and typo", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        endpoint: ftp://files.example
        acess_key_id_env: K
        secret_access_key_env: S
`, []string{"line 7: clients.acme.source.s3.endpoint: \"ftp://files.example\": scheme must be http or https",
			"line 8: clients.acme.source.s3.acess_key_id_env: unknown setting"}},
		{"endpoint with bucket path", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        endpoint: https://s3.example.com/usage
        credentials_file: c.ini
`, []string{"clients.acme.source.s3.endpoint", "give only scheme, host and port"}},
		{"poll interval", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        credentials_file: c.ini
        poll_interval: 10ms
`, []string{"line 8: clients.acme.source.s3.poll_interval: 10ms is too short"}},
		{"bad duration", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        credentials_file: c.ini
        settle: soon
`, []string{"line 8: \"soon\" is not a duration"}},
		{"after receive", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        credentials_file: c.ini
        after_receive: delete
`, []string{"line 8: clients.acme.source.s3.after_receive: \"delete\" is not leave or move"}},
		{"processed prefix when left", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        credentials_file: c.ini
        after_receive: leave
        processed_prefix: done/
`, []string{"line 9: clients.acme.source.s3.processed_prefix: only used with after_receive: move"}},
		{"processed is the polled prefix", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        prefix: in
        credentials_file: c.ini
        after_receive: move
        processed_prefix: in/
`, []string{"line 10: clients.acme.source.s3.processed_prefix: \"in/\" is the prefix polled"}},
		{"bad bucket name", `
clients:
  acme:
    source:
      s3:
        bucket: "a/b"
        credentials_file: c.ini
`, []string{"line 6: clients.acme.source.s3.bucket: \"a/b\" is not a bucket name"}},
		{"profile without file", `
clients:
  acme:
    source:
      s3:
        bucket: usage
        access_key_id_env: K
        secret_access_key_env: S
        profile: prod
`, []string{"clients.acme.source.s3.profile: only used with credentials_file"}},
		{"source in defaults", `
defaults:
  source:
    s3:
      bucket: usage
      credentials_file: c.ini
`, []string{"line 4: defaults.source: a source belongs to one client"}},
		{"unknown source kind", `
clients:
  acme:
    source:
      sftp: {}
`, []string{"clients.acme.source: line 5: \"sftp\" is not a kind of source"}},
		{"two clients one place", `
clients:
  acme:
    source:
      s3: {bucket: usage, prefix: in, credentials_file: a.ini}
  globex:
    source:
      s3: {bucket: usage, prefix: in/, credentials_file: b.ini}
`, []string{"line 8: clients.globex.source.s3: s3://usage/in/ is already the source of client acme"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clientcfg.Parse("clients.yaml", []byte(tc.yml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "clients.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}
