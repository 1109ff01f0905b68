package s3source_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/ingest"
	"vivace.dev/vivace/internal/ingest/s3source"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// logBuffer collects log lines from concurrent polls.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	t    *testing.T
	st   *filestore.Store
	s3   *s3Server
	recv *ingest.Receiver
	logs *logBuffer
	env  map[string]string
	srcs map[string]clientcfg.BucketSource
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, st: filestore.New(pgtest.Store(t)), s3: newS3Server(t), logs: &logBuffer{},
		srcs: map[string]clientcfg.BucketSource{}}
	h.env = map[string]string{"S3_KEY": h.s3.KeyID, "S3_SECRET": h.s3.Secret}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.recv = &ingest.Receiver{Registry: h.st, ArchiveDir: t.TempDir(), Logger: logger}
	return h
}

// source is a bucket source on the test server with the right credentials.
func (h *harness) source(bucket, prefix string) clientcfg.BucketSource {
	return clientcfg.BucketSource{Endpoint: h.s3.URL, Region: "us-east-1", Bucket: bucket, Prefix: prefix,
		PathStyle: true, AccessKeyIDEnv: "S3_KEY", SecretAccessKeyEnv: "S3_SECRET", PollInterval: time.Minute}
}

// poller is a fresh poller, as after a restart.
func (h *harness) poller(pageSize int) *s3source.Buckets {
	return &s3source.Buckets{
		Receiver: h.recv, Taken: h.st, Logger: h.recv.Logger, PageSize: pageSize,
		Sources: func() map[string]clientcfg.BucketSource { return h.srcs },
		Getenv:  func(k string) string { return h.env[k] },
	}
}

func (h *harness) files(client string) []files.File {
	h.t.Helper()
	fs, err := h.st.ListFiles(context.Background(), []string{client}, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	slices.SortFunc(fs, func(a, b files.File) int { return strings.Compare(a.Name, b.Name) })
	return fs
}

func pollOK(t *testing.T, b *s3source.Buckets) {
	t.Helper()
	if errs := b.PollOnce(context.Background()); len(errs) > 0 {
		t.Fatalf("poll: %v", errs)
	}
}

func uniqueClient(name string) string { return name + "-" + ids.New()[24:] }

func usageCSV(tag string, rows int) []byte {
	var b bytes.Buffer
	b.WriteString("record_id,account_id,usage_type,quantity,usage_time\n")
	for i := range rows {
		fmt.Fprintf(&b, "%s-%d,acct-1,calls,%d,2026-01-02T03:04:05Z\n", tag, i, i+1)
	}
	return b.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func names(fs []files.File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name + ":" + string(f.Status)
	}
	return out
}

func TestBucketTakesObjectsOnce(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("acme")
	h.s3.createBucket(t, "acme-usage")
	h.srcs[client] = h.source("acme-usage", "in/")

	plain := usageCSV("a", 3)
	gz := gzipped(t, usageCSV("b", 5))
	h.s3.put(t, "acme-usage", "in/a.csv", plain)
	h.s3.put(t, "acme-usage", "in/b.jsonl.gz", gzipped(t, []byte(`{"record_id":"j1","account_id":"x","usage_type":"calls","quantity":"1","usage_time":"2026-01-02T03:04:05Z"}`+"\n")))
	h.s3.put(t, "acme-usage", "in/c.csv.gz", gz)
	// Not the client's files: deeper keys, folder markers, hidden and
	// partial names, other prefixes.
	h.s3.put(t, "acme-usage", "in/archive/old.csv", usageCSV("old", 1))
	h.s3.put(t, "acme-usage", "in/folder/", nil)
	h.s3.put(t, "acme-usage", "in/.hidden.csv", usageCSV("h", 1))
	h.s3.put(t, "acme-usage", "in/upload.csv.part", usageCSV("p", 1))
	h.s3.put(t, "acme-usage", "other/x.csv", usageCSV("x", 1))

	pollOK(t, h.poller(0))
	fs := h.files(client)
	if got, want := names(fs), []string{"a.csv:received", "b.jsonl.gz:received", "c.csv.gz:received"}; !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v\nlog:\n%s", got, want, h.logs)
	}
	for _, f := range fs {
		if f.Source != "s3" || f.Client != client {
			t.Errorf("%s: source %q client %q", f.Name, f.Source, f.Client)
		}
	}
	if fs[0].SHA256 != sha(plain) || fileSHA(t, fs[0].Location) != sha(plain) || fs[0].Format != "csv" {
		t.Errorf("a.csv: archived content or format wrong: %+v", fs[0])
	}
	if fs[1].Format != "jsonl" {
		t.Errorf("b.jsonl.gz: format %q, want jsonl", fs[1].Format)
	}
	// The gzip object arrives as it is stored, compressed.
	if fs[2].SHA256 != sha(gz) || fs[2].SizeBytes != int64(len(gz)) || fs[2].Format != "csv" {
		t.Errorf("c.csv.gz = %+v, want the gzip bytes (%d)", fs[2], len(gz))
	}

	// Polling again, with the same poller or a new one (a restart), takes
	// nothing more.
	b := h.poller(0)
	pollOK(t, b)
	pollOK(t, b)
	pollOK(t, h.poller(0))
	if got := len(h.files(client)); got != 3 {
		t.Fatalf("after polling again: %d files, want 3\nlog:\n%s", got, h.logs)
	}
	taken, err := h.st.ListTakenObjects(context.Background(), client, "acme-usage", 10)
	if err != nil || len(taken) != 3 {
		t.Fatalf("taken objects: %+v %v", taken, err)
	}
	// The objects are left in place by default.
	if got := h.s3.keys(t, "acme-usage", "in/"); !slices.Contains(got, "in/a.csv") {
		t.Fatalf("objects after taking: %v", got)
	}

	// The same content under a new key is taken and refused as a
	// duplicate file, visibly.
	h.s3.put(t, "acme-usage", "in/a-again.csv", plain)
	pollOK(t, b)
	fs = h.files(client)
	if got, want := names(fs), []string{"a-again.csv:rejected", "a.csv:received", "b.jsonl.gz:received", "c.csv.gz:received"}; !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	if !strings.Contains(fs[0].Reason, "duplicate file") || !strings.Contains(fs[0].Reason, `"a.csv"`) {
		t.Errorf("duplicate reason = %q", fs[0].Reason)
	}
	if !strings.Contains(h.logs.String(), "bucket object refused") {
		t.Errorf("refusal not logged:\n%s", h.logs)
	}
	// Refused objects are recorded too: not taken again.
	pollOK(t, h.poller(0))
	if got := len(h.files(client)); got != 4 {
		t.Fatalf("refused object taken again: %d files", got)
	}

	// A rewritten object (new ETag) is new content and is taken again.
	h.s3.put(t, "acme-usage", "in/a.csv", usageCSV("a2", 4))
	pollOK(t, b)
	n := 0
	for _, f := range h.files(client) {
		if f.Name == "a.csv" && f.Status == files.Received {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("rewritten a.csv: %d received copies, want 2: %v", n, names(h.files(client)))
	}
	// Rewritten with the first content again: S3 gives a single PUT the
	// MD5 of the content as ETag, so this is the object taken first and is
	// not taken again.
	h.s3.put(t, "acme-usage", "in/a.csv", plain)
	pollOK(t, b)
	if got := len(h.files(client)); got != 5 {
		t.Fatalf("a.csv back to its first content: %v, want no new file", names(h.files(client)))
	}
}

func TestBucketErrorsAreLoggedAndOthersGoOn(t *testing.T) {
	h := newHarness(t)
	h.s3.createBucket(t, "good")
	h.s3.createBucket(t, "shared")
	good, creds := uniqueClient("good"), uniqueClient("file-creds")
	noBucket, badSecret, badKey, noEnv := uniqueClient("nobucket"), uniqueClient("badsecret"), uniqueClient("badkey"), uniqueClient("noenv")

	h.srcs[good] = h.source("good", "")
	h.srcs[noBucket] = h.source("missing-bucket", "in/")
	h.env["WRONG_SECRET"], h.env["WRONG_KEY"] = "not-the-secret", "NOTAKEY"
	s := h.source("shared", "bad-secret/")
	s.SecretAccessKeyEnv = "WRONG_SECRET"
	h.srcs[badSecret] = s
	s = h.source("shared", "bad-key/")
	s.AccessKeyIDEnv = "WRONG_KEY"
	h.srcs[badKey] = s
	s = h.source("shared", "no-env/")
	s.SecretAccessKeyEnv = "UNSET_SECRET"
	h.srcs[noEnv] = s
	// Credentials from a file in the AWS shared credentials format, and
	// the region found by asking the store.
	credFile := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(credFile, []byte("[usage]\naws_access_key_id = "+h.s3.KeyID+"\naws_secret_access_key = "+h.s3.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = h.source("shared", "file-creds/")
	s.AccessKeyIDEnv, s.SecretAccessKeyEnv, s.CredentialsFile, s.Profile, s.Region = "", "", credFile, "usage", ""
	h.srcs[creds] = s

	h.s3.put(t, "good", "g.csv", usageCSV("g", 2))
	for _, p := range []string{"bad-secret/", "bad-key/", "no-env/", "file-creds/"} {
		h.s3.put(t, "shared", p+"f.csv", usageCSV(p, 2))
	}

	errs := h.poller(0).PollOnce(context.Background())
	for client, want := range map[string][]string{
		noBucket:  {noBucket, "s3://missing-bucket/in/", "NoSuchBucket"},
		badSecret: {badSecret, "s3://shared/bad-secret/", "SignatureDoesNotMatch", "check the credentials"},
		badKey:    {badKey, "s3://shared/bad-key/", "InvalidAccessKeyId"},
		noEnv:     {noEnv, "environment variable UNSET_SECRET not set"},
	} {
		err := errs[client]
		if err == nil {
			t.Errorf("%s: no error", client)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", client, err, w)
			}
		}
	}
	if len(errs) != 4 {
		t.Errorf("errors = %v, want 4", errs)
	}
	logs := h.logs.String()
	for _, w := range []string{
		"client=" + noBucket + " bucket=missing-bucket prefix=in/",
		"client=" + badSecret + " bucket=shared prefix=bad-secret/",
		"code=NoSuchBucket", "code=SignatureDoesNotMatch", "code=InvalidAccessKeyId",
	} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, h.s3.Secret) || strings.Contains(logs, "not-the-secret") {
		t.Error("a secret was logged")
	}
	// The good sources were taken all the same.
	for _, c := range []string{good, creds} {
		if fs := h.files(c); len(fs) != 1 || fs[0].Status != files.Received || fs[0].Source != "s3" {
			t.Errorf("%s: files %v", c, names(fs))
		}
	}
	for _, c := range []string{noBucket, badSecret, badKey, noEnv} {
		if fs := h.files(c); len(fs) != 0 {
			t.Errorf("%s: files %v", c, names(fs))
		}
	}

	// Fixed, the failing source is taken on the next poll.
	h.env["WRONG_SECRET"] = h.s3.Secret
	errs = h.poller(0).PollOnce(context.Background())
	if errs[badSecret] != nil {
		t.Fatalf("after fixing the secret: %v", errs[badSecret])
	}
	if fs := h.files(badSecret); len(fs) != 1 || fs[0].Status != files.Received {
		t.Fatalf("after fixing the secret: %v", names(fs))
	}
}

func TestBucketPagination(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("pages")
	h.s3.createBucket(t, "pages")
	h.srcs[client] = h.source("pages", "usage/")
	const n = 11
	for i := range n {
		h.s3.put(t, "pages", fmt.Sprintf("usage/f%02d.csv", i), usageCSV(fmt.Sprintf("p%d", i), 1))
	}
	before := h.s3.lists.Load()
	pollOK(t, h.poller(3))
	if lists := h.s3.lists.Load() - before; lists < 4 {
		t.Errorf("%d list requests for %d objects at 3 a page, want at least 4", lists, n)
	}
	fs := h.files(client)
	if len(fs) != n {
		t.Fatalf("%d files, want %d: %v", len(fs), n, names(fs))
	}
	for i, f := range fs {
		if want := fmt.Sprintf("f%02d.csv", i); f.Name != want || f.Status != files.Received {
			t.Errorf("file %d = %s %s, want %s received", i, f.Name, f.Status, want)
		}
	}
	pollOK(t, h.poller(3))
	if got := len(h.files(client)); got != n {
		t.Fatalf("second poll: %d files, want %d", got, n)
	}
}

// patternReader yields size bytes of a CSV usage file without holding it.
type patternReader struct {
	header []byte
	size   int64
	off    int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		if r.off < int64(len(r.header)) {
			p[n] = r.header[r.off]
		} else if (r.off-int64(len(r.header)))%64 == 63 {
			p[n] = '\n'
		} else {
			p[n] = 'a' + byte(r.off%26)
		}
		n++
		r.off++
	}
	return n, nil
}

func TestBucketLargeObjectIsStreamed(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("large")
	h.s3.createBucket(t, "large")
	h.srcs[client] = h.source("large", "")
	const size = 40 << 20
	header := []byte("record_id,account_id,usage_type,quantity,usage_time\n")
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{header: header, size: size}); err != nil {
		t.Fatal(err)
	}
	h.s3.putReader(t, "large", "big.csv", &patternReader{header: header, size: size}, size)
	pollOK(t, h.poller(0))
	fs := h.files(client)
	if len(fs) != 1 || fs[0].Status != files.Received {
		t.Fatalf("files %v\nlog:\n%s", names(fs), h.logs)
	}
	if fs[0].SizeBytes != size || fs[0].SHA256 != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("big.csv: %d bytes sha %s", fs[0].SizeBytes, fs[0].SHA256)
	}
	if got := fileSHA(t, fs[0].Location); got != fs[0].SHA256 {
		t.Fatalf("archived copy differs: %s", got)
	}
}

func TestBucketMovesTakenObjects(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("mover")
	h.s3.createBucket(t, "mover")
	src := h.source("mover", "drop/")
	src.Move, src.ProcessedPrefix, src.RejectedPrefix = true, "drop/processed/", "drop/rejected/"
	h.srcs[client] = src
	first := usageCSV("m", 2)
	h.s3.put(t, "mover", "drop/one.csv", first)
	h.s3.put(t, "mover", "drop/two.csv", first) // same content: refused
	h.s3.put(t, "mover", "drop/notes.txt", []byte("\x00\x01 not usage"))

	b := h.poller(0)
	pollOK(t, b)
	want := []string{"drop/processed/one.csv", "drop/rejected/notes.txt", "drop/rejected/two.csv"}
	if got := h.s3.keys(t, "mover", "drop/"); !slices.Equal(got, want) {
		t.Fatalf("keys after moving = %v, want %v\nlog:\n%s", got, want, h.logs)
	}
	if got, want := names(h.files(client)), []string{"notes.txt:rejected", "one.csv:received", "two.csv:rejected"}; !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	// Moved objects are below the polled prefix and never taken again.
	pollOK(t, b)
	pollOK(t, h.poller(0))
	if got := len(h.files(client)); got != 3 {
		t.Fatalf("after polling again: %d files", got)
	}
}

func TestBucketSettleTime(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("settle")
	h.s3.createBucket(t, "settle")
	src := h.source("settle", "")
	src.Settle = time.Nanosecond
	h.srcs[client] = src
	h.s3.put(t, "settle", "s.csv", usageCSV("s", 1))
	b := h.poller(0)
	pollOK(t, b)
	if fs := h.files(client); len(fs) != 0 {
		t.Fatalf("taken on first sight despite a settle time: %v", names(fs))
	}
	// Rewritten before the next look: it has not settled yet.
	h.s3.put(t, "settle", "s.csv", usageCSV("s2", 2))
	pollOK(t, b)
	if fs := h.files(client); len(fs) != 0 {
		t.Fatalf("taken while changing: %v", names(fs))
	}
	pollOK(t, b)
	fs := h.files(client)
	if len(fs) != 1 || fs[0].SHA256 != sha(usageCSV("s2", 2)) {
		t.Fatalf("after settling: %v", names(fs))
	}
}

func TestBucketRunStopsOnCancel(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("run")
	h.s3.createBucket(t, "run")
	h.srcs[client] = h.source("run", "")
	h.s3.put(t, "run", "r.csv", usageCSV("r", 1))
	b := h.poller(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	// Run polls a new source at once; wait for the file, bounded.
	deadline := time.Now().Add(30 * time.Second)
	for len(h.files(client)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if fs := h.files(client); len(fs) != 1 || fs[0].Status != files.Received {
		t.Fatalf("files %v\nlog:\n%s", names(fs), h.logs)
	}
}

// TestBucketNotifyPollsAtOnce: an S3 event notification has the source
// polled now, not on its (here hour-long) interval; one for another bucket
// or outside the prefix polls nothing.
func TestBucketNotifyPollsAtOnce(t *testing.T) {
	h := newHarness(t)
	client := uniqueClient("notify")
	h.s3.createBucket(t, "notify")
	src := h.source("notify", "in/")
	src.PollInterval = time.Hour
	h.srcs[client] = src
	h.s3.put(t, "notify", "in/a.csv", usageCSV("a", 1))
	b := h.poller(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }() // it ends with the context
	defer func() { cancel(); <-done }()
	waitFiles := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(h.files(client)) < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if fs := h.files(client); len(fs) != n {
			t.Fatalf("files %v, want %d\nlog:\n%s", names(fs), n, h.logs)
		}
	}
	waitFiles(1) // the first poll, at start

	h.s3.put(t, "notify", "in/b.csv", usageCSV("b", 1))
	if got := b.Notify("other", "in/b.csv"); len(got) != 0 {
		t.Fatalf("another bucket's event polled %v", got)
	}
	if got := b.Notify("notify", "elsewhere/b.csv"); len(got) != 0 {
		t.Fatalf("an event outside the prefix polled %v", got)
	}
	if got := b.NotifyFor("notify", "in/b.csv", func(c string) bool { return c != client }); len(got) != 0 {
		t.Fatalf("a sender without the client polled %v", got)
	}
	if got := b.Notify("notify", "in/b.csv"); !slices.Equal(got, []string{client}) {
		t.Fatalf("Notify = %v, want [%s]", got, client)
	}
	waitFiles(2)
	// Notified while polling: it looks again once the poll ends.
	h.s3.put(t, "notify", "in/c.csv", usageCSV("c", 1))
	h.s3.put(t, "notify", "in/d.csv", usageCSV("d", 1))
	b.Notify("notify", "in/c.csv")
	b.Notify("notify", "in/d.csv")
	waitFiles(4)
}

func TestParseBucketEvents(t *testing.T) {
	aws := `{"Records":[
	  {"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
	   "s3":{"bucket":{"name":"usage-drop","arn":"arn:aws:s3:::usage-drop"},"object":{"key":"acme/day+01%2B%C3%A9.csv","size":1024,"eTag":"x"}}},
	  {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"usage-drop"},"object":{"key":"acme/old.csv"}}}]}`
	got, err := s3source.ParseBucketEvents([]byte(aws))
	if err != nil || len(got) != 1 || got[0] != (s3source.BucketEvent{Bucket: "usage-drop", Key: "acme/day 01+é.csv"}) {
		t.Fatalf("AWS notification: %+v %v", got, err)
	}
	minio := `{"EventName":"s3:ObjectCreated:CompleteMultipartUpload","Key":"usage-drop/acme/big.csv.gz",
	  "Records":[{"eventName":"s3:ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"usage-drop"},"object":{"key":"acme%2Fbig.csv.gz"}}}]}`
	if got, err := s3source.ParseBucketEvents([]byte(minio)); err != nil || len(got) != 1 || got[0].Key != "acme/big.csv.gz" {
		t.Fatalf("MinIO notification: %+v %v", got, err)
	}
	if got, err := s3source.ParseBucketEvents([]byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"usage-drop"}`)); err != nil || len(got) != 0 {
		t.Fatalf("test event: %+v %v", got, err)
	}
	for body, want := range map[string]string{
		`{"hello":1}`: "it has no Records list",
		`not json`:    "not an S3 event notification",
		`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":""},"object":{"key":"k"}}}]}`:     "the notification's Records[0]: s3.bucket.name and s3.object.key are required",
		`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}`: `the notification's Records[0]: s3.object.key "a%zz" is not URL-encoded`,
	} {
		if _, err := s3source.ParseBucketEvents([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want …%s…", body, err, want)
		}
	}
}
