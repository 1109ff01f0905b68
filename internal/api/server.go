package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"vivace.dev/vivace/internal/tmf635"
)

// HTTPOptions are the listener's limits and TLS. The zero value is the
// defaults below, without TLS.
type HTTPOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (default
	// 1m); on the routes that stream (an upload) it is the longest pause
	// between two reads of the body instead.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer (default 2m); on the routes
	// that stream (the exports) it is the longest pause between two
	// writes instead.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request (default 2m).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (default 64 KiB).
	MaxHeaderBytes int
	// TLSCert and TLSKey are PEM files of the server's certificate (with
	// its chain) and key: both or neither. With them the listener speaks
	// HTTPS only (TLS 1.2 or newer).
	TLSCert, TLSKey string
}

// The defaults of HTTPOptions, and the body limit of routes that do not
// have one of their own.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	// DefaultBodyLimit is the most a request body may hold on any route
	// but those with a limit of their own (bodyLimits, the upload).
	DefaultBodyLimit = 16 << 20
)

// bodyLimits are the routes whose bodies may be larger than
// DefaultBodyLimit. The upload's is Server.MaxUpload.
var bodyLimits = map[string]int64{
	"POST /api/v1/feed/outcomes": 64 << 20,
}

// streaming are the routes whose request or answer may take longer than
// the read or write timeout as a whole: an upload of a large file, the
// exports. Their deadlines move forward with each read or write, so a
// transfer that keeps going is never cut while one that stalls is.
var streaming = map[string]bool{
	"POST /api/v1/files":     true,
	"GET /api/v1/murs":       true,
	"GET /api/v1/exceptions": true,
}

// uploadPattern is the route whose body limit is Server.MaxUpload.
const uploadPattern = "POST /api/v1/files"

// HTTPServer returns the http.Server that serves s.Handler() with o's
// limits: the one way Vivace's processes build their API listener. A TLS
// certificate that does not load is an error naming its files.
func (s *Server) HTTPServer(o HTTPOptions) (*http.Server, error) {
	o = o.withDefaults()
	s.httpOpts = o
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		// The server's own complaints (a TLS handshake from a plain
		// client, a broken connection) go to the process log, as one
		// line each.
		ErrorLog: slog.NewLogLogger(s.log().With("component", "http").Handler(), slog.LevelWarn),
	}
	cfg, err := TLSConfig(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, err
	}
	srv.TLSConfig = cfg
	return srv, nil
}

// TLSConfig loads the server certificate and key (PEM files): nil
// without either, an error naming the files when they do not load or
// only one is given. Call it early to refuse a bad certificate before
// anything starts.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("TLS: give both a certificate (--tls-cert) and its key (--tls-key), or neither")
	}
	if certFile == "" {
		return nil, nil
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// Serve serves srv on ln, over TLS when srv has a TLS configuration
// (HTTPServer made it with a certificate). It returns what
// http.Server.Serve does; http.ErrServerClosed after Shutdown.
func Serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	}
	return srv.Serve(ln)
}

func (o HTTPOptions) withDefaults() HTTPOptions {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return o
}

// bodyLimit is the most the body of a request to pattern may hold.
func (s *Server) bodyLimit(pattern string) int64 {
	if pattern == uploadPattern {
		if s.MaxUpload > 0 {
			return s.MaxUpload
		}
		return 20 << 30
	}
	if n, ok := bodyLimits[pattern]; ok {
		return n
	}
	return DefaultBodyLimit
}

// limit applies the route's body limit and, on a streaming route, moves
// its deadlines forward with each read and write.
func (s *Server) limit(w http.ResponseWriter, req *http.Request, pattern string) (http.ResponseWriter, *http.Request) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = http.MaxBytesReader(w, req.Body, s.bodyLimit(pattern))
	}
	if !streaming[pattern] {
		return w, req
	}
	o := s.httpOpts.withDefaults()
	rc := http.NewResponseController(w)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &progressBody{ReadCloser: req.Body, rc: rc, d: o.ReadTimeout}
	}
	return &progressWriter{ResponseWriter: w, rc: rc, d: o.WriteTimeout}, req
}

// progressBody moves the connection's read deadline forward after each
// read that got something.
type progressBody struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	}
	return n, err
}

// progressWriter moves the connection's write deadline forward before
// each write.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *progressWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flushes).
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recovered answers a handler's panic with a plain 500 and logs it, with
// its stack, instead of the connection being dropped: the answer never
// carries the panic or the stack.
func (s *Server) recovered(w http.ResponseWriter, req *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	what, err := fmt.Sprintf("%s %s", req.Method, req.URL.Path), fmt.Errorf("panic: %v\n%s", v, debug.Stack())
	if strings.HasPrefix(req.URL.Path, tmf635.BasePath+"/") {
		s.tmfProblem(w, what, err) // a TMF Error body, as every TMF635 failure
		return
	}
	s.internalError(w, what, err)
}
