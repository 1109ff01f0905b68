package fakecore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is a fake core listening on a TCP address.
type Server struct {
	*Core
	srv  *http.Server
	ln   net.Listener
	url  string
	done chan error
}

// Start makes a fake core and serves it on addr ("127.0.0.1:0" or "" for
// a free port on the loopback interface). Close or Shutdown stops it.
func Start(addr string, cfg Config) (*Server, error) {
	core, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fake core: listen on %s: %w", addr, err)
	}
	s := &Server{
		Core: core, ln: ln, url: "http://" + ln.Addr().String(), done: make(chan error, 1),
		srv: &http.Server{Handler: core, ReadHeaderTimeout: 10 * time.Second},
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// URL is the server's base URL (http://127.0.0.1:port): give it to the
// bulk API client or as --core-url.
func (s *Server) URL() string { return s.url }

// APIURL is the URL bulk calls are posted to.
func (s *Server) APIURL() string { return s.url + Path }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops taking calls and waits for those in progress (calls a
// Hang fault holds are released first) until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Core.Close()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serr := <-s.done; serr != nil && err == nil {
		err = serr
	}
	s.done <- nil
	return err
}

// Close stops the server at once, dropping open connections.
func (s *Server) Close() error {
	s.Core.Close()
	err := s.srv.Close()
	if serr := <-s.done; serr != nil && err == nil {
		err = serr
	}
	s.done <- nil
	return err
}
