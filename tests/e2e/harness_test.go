// Package e2e drives the built vivace binary end to end: `vivace dev` with
// its embedded broker against the real PostgreSQL server, and the CLI
// commands an operator uses.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vivace-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "vivace")
	// Built like a release: the race detector runs on the unit tests, and
	// a race build of the whole binary would triple this package's time.
	build := exec.Command("go", "build", "-o", binary, "vivace.dev/vivace/cmd/vivace")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vivace:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	pgtest.Main(m, func() { _ = os.RemoveAll(dir) })
}

// repoRoot is where tests/testdata lives.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// devProcess is a running `vivace dev`.
type devProcess struct {
	t       testing.TB
	cmd     *exec.Cmd
	API     string
	Kafka   string
	DataDir string
	// DSN is the database it runs on: the package's unless set before
	// start.
	DSN  string
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDev runs vivace dev on fresh ports and data dir against this
// package's database and waits until it is ready.
func startDev(t testing.TB, dataDir string, extra ...string) *devProcess {
	t.Helper()
	return newDev(t, dataDir).start(extra...)
}

// newDev is a vivace dev on fresh ports and data dir (unless dataDir is
// given), not started yet.
func newDev(t testing.TB, dataDir string) *devProcess {
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	return &devProcess{t: t, API: "http://" + freeAddr(t), Kafka: freeAddr(t), DataDir: dataDir,
		log: &syncBuffer{}, done: make(chan struct{})}
}

func (d *devProcess) start(extra ...string) *devProcess {
	t := d.t
	args := append([]string{"dev", "--http-addr", strings.TrimPrefix(d.API, "http://"), "--kafka-addr", d.Kafka,
		"--data-dir", d.DataDir, "--clients", filepath.Join(repoRoot(t), "tests/testdata/demo/clients.yaml"),
		"--log-level", "warn"}, extra...)
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = append(os.Environ(), "DATABASE_URL="+d.dsn())
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.done = make(chan struct{})
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.done:
			t.Fatalf("vivace dev exited before it was ready:\n%s", d.log.String())
		default:
		}
		resp, err := http.Get(d.API + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vivace dev not ready after 60s:\n%s", d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *devProcess) dsn() string {
	if d.DSN != "" {
		return d.DSN
	}
	return pgtest.DSN(d.t)
}

// stop sends SIGTERM and waits for a clean exit.
func (d *devProcess) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(45 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("vivace dev did not stop within 45s after SIGTERM:\n%s", d.log.String())
	}
}

// get sends a GET to the API with the local admin token vivace dev wrote
// under its data directory.
func (d *devProcess) get(ctx context.Context, path string) (*http.Response, error) {
	d.t.Helper()
	token, err := os.ReadFile(filepath.Join(d.DataDir, "token"))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.API+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	return http.DefaultClient.Do(req)
}

// kill ends the process at once, as a crash would.
func (d *devProcess) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// run runs a vivace command against this process and returns stdout,
// stderr and the exit code.
func (d *devProcess) run(ctx context.Context, args ...string) (string, string, int) {
	d.t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "VIVACE_API="+d.API, "VIVACE_KAFKA_BROKERS="+d.Kafka, "DATABASE_URL="+d.dsn(),
		"VIVACE_DATA_DIR="+d.DataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.t.Fatalf("vivace %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// checkBooks runs vivace check (for one client, or every client when
// client is empty) and fails the test on any finding, with the report.
func (d *devProcess) checkBooks(ctx context.Context, client string) {
	d.t.Helper()
	args := []string{"check"}
	if client != "" {
		args = append(args, "--client", client)
	}
	out, errOut, code := d.run(ctx, args...)
	if code != 0 || !strings.Contains(out, "the books balance") {
		d.t.Fatalf("vivace %s: exit %d, the books do not balance:\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
}

// ownDatabase names a database of the test's own on the package
// database's server, for a vivace dev whose client data must not meet
// another test's (the same sample file for the same client is a duplicate
// file); vivace dev creates it, and it is dropped when the test ends.
func ownDatabase(t testing.TB) string {
	t.Helper()
	base := pgtest.DSN(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/") + "_" + hex.EncodeToString(b[:])
	u.Path = "/" + name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return u.String()
}

// startDevOwnDB is startDev on a database of the test's own.
func startDevOwnDB(t testing.TB, extra ...string) *devProcess {
	t.Helper()
	d := newDev(t, "")
	d.DSN = ownDatabase(t)
	return d.start(extra...)
}
