package s3source_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// s3Server is a real S3 protocol server on loopback (gofakes3 with its
// in-memory backend) that, like S3, checks each request's AWS Signature
// Version 4 against the one key pair it knows.
type s3Server struct {
	URL     string
	Backend *s3mem.Backend
	KeyID   string
	Secret  string
	lists   atomic.Int64 // list requests answered
}

func newS3Server(t *testing.T) *s3Server {
	t.Helper()
	s := &s3Server{Backend: s3mem.New(), KeyID: "VIVACETESTKEY", Secret: "vivace-test-secret"}
	fake := gofakes3.New(s.Backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := s.verify(r); code != "" {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
			return
		}
		if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
			s.lists.Add(1)
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *s3Server) createBucket(t *testing.T, name string) {
	t.Helper()
	if err := s.Backend.CreateBucket(name); err != nil {
		t.Fatal(err)
	}
}

// put stores an object directly in the backend, with the metadata the
// server's own PUT handler would give it.
func (s *s3Server) put(t *testing.T, bucket, key string, body []byte) {
	t.Helper()
	s.putReader(t, bucket, key, bytes.NewReader(body), int64(len(body)))
}

func (s *s3Server) putReader(t *testing.T, bucket, key string, body io.Reader, size int64) {
	t.Helper()
	meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat)}
	if _, err := s.Backend.PutObject(bucket, key, meta, body, size, nil); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func (s *s3Server) keys(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	list, err := s.Backend.ListBucket(bucket, &gofakes3.Prefix{Prefix: prefix, HasPrefix: true}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Contents {
		out = append(out, c.Key)
	}
	sort.Strings(out)
	return out
}

// verify checks the request's Signature Version 4 header the way S3 does
// and returns the S3 error code and message when it is not good.
func (s *s3Server) verify(r *http.Request) (string, string) {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "AccessDenied", "Access Denied"
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 {
		return "AuthorizationHeaderMalformed", "malformed credential"
	}
	if scope[0] != s.KeyID {
		return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	var canonHeaders strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		canonHeaders.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	path, _, _ := strings.Cut(r.RequestURI, "?")
	canonical := strings.Join([]string{
		r.Method,
		path,
		strings.ReplaceAll(r.URL.Query().Encode(), "+", "%20"),
		canonHeaders.String(),
		fields["SignedHeaders"],
		r.Header.Get("X-Amz-Content-Sha256"),
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + r.Header.Get("X-Amz-Date") + "\n" +
		strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + s.Secret)
	for _, part := range scope[1:] {
		key = hmacSHA256(key, part)
	}
	if want := hex.EncodeToString(hmacSHA256(key, toSign)); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
	}
	return "", ""
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
