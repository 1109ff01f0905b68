package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// apiClient talks to a running Vivace's HTTP API.
type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 0}}
}

// apiError reads the {"error": …} body of a failed request.
func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

func (c *apiClient) getJSON(path string, v any) error {
	return c.send(30*time.Second, http.MethodGet, path, nil, v)
}

// do sends a request with a JSON (or raw) body and decodes a JSON answer
// into v; a non-2xx answer is an error with the API's message. The
// X-Vivace-Operator header names who asked, for the record.
func (c *apiClient) do(method, path string, body io.Reader, v any) error {
	return c.send(0, method, path, body, v)
}

// send is do with a timeout for the whole exchange (0: none).
func (c *apiClient) send(timeout time.Duration, method, path string, body io.Reader, v any) error {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if u := os.Getenv("USER"); u != "" {
		req.Header.Set("X-Vivace-Operator", u)
	}
	cl := *c.http
	cl.Timeout = timeout
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is vivace running at %s?)", err, c.base)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return apiError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
