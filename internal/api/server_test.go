package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/auth"
)

// serve runs srv's HTTPServer with o on a fresh listener until the test
// ends and returns its address.
func serve(t *testing.T, srv *Server, o HTTPOptions) (*http.Server, string) {
	t.Helper()
	hs, err := srv.HTTPServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(hs, ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return hs, ln.Addr().String()
}

// TestHTTPServerLimits: the listener has read, write and idle timeouts
// and a header limit whatever the caller gives, and the upload route its
// own body limit.
func TestHTTPServerLimits(t *testing.T) {
	w := newFilesWorld(t)
	hs, err := w.srv.HTTPServer(HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hs.ReadHeaderTimeout != DefaultReadHeaderTimeout || hs.ReadTimeout != DefaultReadTimeout ||
		hs.WriteTimeout != DefaultWriteTimeout || hs.IdleTimeout != DefaultIdleTimeout || hs.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("server limits %v %v %v %v %d, want the defaults", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout,
			hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	if hs.TLSConfig != nil {
		t.Error("TLS without a certificate")
	}
	if got := w.srv.bodyLimit(uploadPattern); got != 20<<30 {
		t.Errorf("upload limit %d, want 20 GiB", got)
	}
	if got := w.srv.bodyLimit("POST /api/v1/sync/run"); got != DefaultBodyLimit {
		t.Errorf("a route without a limit of its own: %d, want %d", got, DefaultBodyLimit)
	}
}

// TestEveryRouteHasABodyLimit: a route that reads its body whole, without
// a limit of its own, is stopped at DefaultBodyLimit by the guard; the
// upload route takes MaxUpload.
func TestEveryRouteHasABodyLimit(t *testing.T) {
	w := newFilesWorld(t)
	srv := *w.srv
	srv.MaxUpload = 1 << 20
	var read int
	var readErr error
	srv.Mount(Route{"POST /streams/test/body", auth.Operator, EveryClient, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body) // no limit of its own
		read, readErr = len(b), err
		rw.WriteHeader(http.StatusNoContent)
	})})
	_, addr := serve(t, &srv, HTTPOptions{})
	url := "http://" + addr

	call(t, "POST", url+"/streams/test/body", "Bearer "+w.token, strings.Repeat("x", DefaultBodyLimit+1))
	var mbe *http.MaxBytesError
	if !errors.As(readErr, &mbe) || read != DefaultBodyLimit {
		t.Errorf("a body over the limit: read %d bytes, %v; want %d and the limit's error", read, readErr, DefaultBodyLimit)
	}
	call(t, "POST", url+"/streams/test/body", "Bearer "+w.token, strings.Repeat("x", 1000))
	if readErr != nil || read != 1000 {
		t.Errorf("a body within the limit: read %d, %v", read, readErr)
	}
	code, _, body := call(t, "POST", url+"/api/v1/files?client="+w.prefix+"settled&name=big.csv", "Bearer "+w.token,
		usageCSV+strings.Repeat("r9,A1,VOICE,1,2026-01-01T00:00:00Z\n", 40000))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "larger than 1048576 bytes") {
		t.Errorf("upload over MaxUpload: %d %s", code, body)
	}
}

// TestPanicsAnswerWithoutTheirStack: a handler that panics is answered
// with a plain 500 that points to the log, and the log has the stack.
func TestPanicsAnswerWithoutTheirStack(t *testing.T) {
	w := newFilesWorld(t)
	var logs syncBuf
	srv := *w.srv
	srv.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	srv.Mount(Route{"GET /streams/test/crash", auth.Viewer, EveryClient, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(errors.New("ERROR: relation \"murs\" does not exist: SELECT secret FROM murs"))
	})})
	_, addr := serve(t, &srv, HTTPOptions{})
	code, _, body := call(t, "GET", "http://"+addr+"/streams/test/crash", "Bearer "+w.token, "")
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || code != http.StatusInternalServerError {
		t.Fatalf("panic answered %d %s", code, body)
	}
	for _, bad := range []string{"goroutine", ".go:", "panic", "relation", "SELECT"} {
		if strings.Contains(e.Error, bad) {
			t.Errorf("the answer %q shows %q", e.Error, bad)
		}
	}
	if !strings.Contains(e.Error, "see the server log (ref ") {
		t.Errorf("the answer %q does not say where to look", e.Error)
	}
	if l := logs.String(); !strings.Contains(l, "SELECT secret FROM murs") || !strings.Contains(l, "server_test.go") {
		t.Errorf("the log lacks the panic and its stack:\n%s", l)
	}
}

// TestStalledBodiesAreCut: a request whose body stops arriving is cut
// at the read timeout on an ordinary route; on the upload route a body
// that keeps arriving, slowly, for longer than the read timeout is taken
// whole, and one that stalls is cut.
func TestStalledBodiesAreCut(t *testing.T) {
	w := newFilesWorld(t)
	srv := *w.srv
	srv.Mount(Route{"POST /streams/test/whole", auth.Operator, EveryClient, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		rw.WriteHeader(http.StatusOK)
	})})
	_, addr := serve(t, &srv, HTTPOptions{ReadTimeout: time.Second})

	send := func(path string, chunks []string, pause time.Duration, stallAfter bool) (string, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		size := 0
		for _, c := range chunks {
			size += len(c)
		}
		if stallAfter {
			size += 1000 // promised and never sent
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", path, w.token, size)
		for _, c := range chunks {
			if _, err := io.WriteString(conn, c); err != nil {
				return "", err
			}
			time.Sleep(pause)
		}
		// The test's own bound: the server must end the exchange itself.
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the server kept a stalled request open", path)
		}
		return string(b), err
	}

	if out, _ := send("/streams/test/whole", []string{"part"}, 0, false); !strings.Contains(out, "200 OK") {
		t.Errorf("a whole body was not taken: %q", out)
	}
	if out, _ := send("/streams/test/whole", []string{"part"}, 0, true); strings.Contains(out, "200 OK") {
		t.Errorf("a stalled body was answered as whole: %q", out)
	}
	lines := strings.Split(strings.Repeat("r1,A1,VOICE,1,2026-01-01T00:00:00Z\n", 5), "\n")
	chunks := []string{usageCSV}
	for _, l := range lines[:5] {
		chunks = append(chunks, strings.Replace(l, "r1", "r"+fmt.Sprint(len(chunks)), 1)+"\n")
	}
	up := "/api/v1/files?client=" + w.prefix + "settled&name=slow.csv"
	out, err := send(up, chunks, 400*time.Millisecond, false)
	if !strings.Contains(out, "201 Created") {
		t.Errorf("an upload that kept arriving for %v was not taken: %v %q", 400*time.Millisecond*time.Duration(len(chunks)), err, out)
	}
	if out, _ := send(up+"2", chunks[:2], 0, true); strings.Contains(out, "201 Created") {
		t.Errorf("a stalled upload was taken: %q", out)
	}
}

// TestTLS: with a certificate the API speaks HTTPS; a bad certificate or
// half of one is refused before anything is served, naming the files.
func TestTLS(t *testing.T) {
	w := newFilesWorld(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	_, addr := serve(t, w.srv, HTTPOptions{TLSCert: certFile, TLSKey: keyFile})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("healthz over TLS: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP to the TLS listener gets no API answer.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered %d %s", resp.StatusCode, b)
		}
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cert, key, want string
	}{
		{certFile, "", "give both a certificate (--tls-cert) and its key (--tls-key)"},
		{"", keyFile, "give both"},
		{filepath.Join(dir, "missing.pem"), keyFile, "missing.pem"},
		{bad, keyFile, "TLS certificate " + bad},
	} {
		if _, err := w.srv.HTTPServer(HTTPOptions{TLSCert: c.cert, TLSKey: c.key}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("cert %q key %q: %v, want an error saying %q", c.cert, c.key, err, c.want)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key under dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vivace test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// syncBuf is a log buffer handlers write to from their goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
