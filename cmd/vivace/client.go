package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// apiClient talks to a running Vivace's HTTP API with a token.
type apiClient struct {
	base  string
	http  *http.Client
	token string
	// from says where the token came from, for a refusal's message.
	from string
}

// localTokenFile is where vivace dev writes its local admin token, under
// its data directory.
const localTokenFile = "token"

func tokenFlag() cli.Flag {
	return &cli.StringFlag{Name: "token", EnvVars: []string{"VIVACE_TOKEN"},
		Usage: "API token (default: the local admin token vivace dev wrote under --data-dir)"}
}

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Value: ".vivace", EnvVars: []string{"VIVACE_DATA_DIR"},
		Usage: "vivace dev's data directory, where its local admin token is"}
}

// newAPIClient is a client of the API at --api with the token of --token,
// else VIVACE_TOKEN, else the file vivace dev wrote under --data-dir
// (none when that cannot be read: the API then says what it needs, and
// the message says where the token was looked for).
func newAPIClient(c *cli.Context) *apiClient {
	cl := &apiClient{base: strings.TrimRight(c.String("api"), "/"), http: &http.Client{Timeout: 0}}
	if cl.token = strings.TrimSpace(c.String("token")); cl.token != "" {
		cl.from = "--token or VIVACE_TOKEN"
		return cl
	}
	path := filepath.Join(c.String("data-dir"), localTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cl.from = "none: pass --token, set VIVACE_TOKEN, or run vivace dev, which writes one to " + path
	case err != nil:
		cl.from = "none: " + err.Error()
	default:
		cl.token, cl.from = strings.TrimSpace(string(b)), path
	}
	return cl
}

// request is a request to the API with the token.
func (c *apiClient) request(method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// apiError reads the {"error": …} body of a failed request; a refused
// token also says which token was sent.
func (c *apiClient) apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		msg += " (token: " + c.from + ")"
	}
	return fmt.Errorf("%s: %s", resp.Status, msg)
}

func (c *apiClient) getJSON(path string, v any) error {
	return c.send(30*time.Second, http.MethodGet, path, nil, v)
}

// do sends a request with a JSON (or raw) body and decodes a JSON answer
// into v; a non-2xx answer is an error with the API's message.
func (c *apiClient) do(method, path string, body io.Reader, v any) error {
	return c.send(0, method, path, body, v)
}

// send is do with a timeout for the whole exchange (0: none).
func (c *apiClient) send(timeout time.Duration, method, path string, body io.Reader, v any) error {
	req, err := c.request(method, path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	cl := *c.http
	cl.Timeout = timeout
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is vivace running at %s?)", err, c.base)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return c.apiError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
