package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/pgtest"
)

// TestServeJoinsDevGroups runs `vivace serve --role mediate,rate` next to
// a running `vivace dev`, against its broker and database: the second
// process joins the mediate and rate consumer groups, both processes
// take part of a file's records, and every record still ends as exactly
// one MUR with the reference rater's amounts (or an exception). Then the
// serve process loses its database: /readyz says so with 503, and says
// ready again once the database is back. SIGTERM ends it with exit 0.
func TestServeJoinsDevGroups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := startDev(t, "")

	// serve reaches the database through a proxy the test can cut.
	dsn, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, dsn.Host)
	dsn.Host = proxy.addr
	s := startServe(t, d, dsn.String(), "mediate,rate")

	// Both processes are members of both groups, each with partitions.
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.Kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, group := range []string{"vivace-mediate", "vivace-rate"} {
		for {
			dg, err := adm.DescribeGroups(ctx, group)
			if err == nil && len(dg[group].Members) == 2 && dg[group].State == "Stable" {
				busy := 0
				for _, m := range dg[group].Members {
					if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 && len(a.Topics[0].Partitions) > 0 {
						busy++
					}
				}
				if busy == 2 {
					break
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("group %s never had both processes with partitions: %+v, %v\nserve:\n%s", group, dg, err, s.log.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}

	work := t.TempDir()
	client := "shared" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cat, usage := filepath.Join(work, "catalog.jsonl"), filepath.Join(work, "usage.csv")
	const records, accounts = 20000, 300
	start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	for _, args := range [][]string{
		{"feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "5",
			"--currency", "USD,JPY,BHD", "--out", cat},
		{"usage", "generate", "--client", client, "--records", fmt.Sprint(records), "--accounts", fmt.Sprint(accounts),
			"--seed", "7", "--bad-every", "97", "--start", start, "--out", usage},
		{"feed", "publish", "--wait", cat},
		{"ingest", "--client", client, "--wait", usage},
	} {
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s\n%s\nserve:\n%s", args, code, out, errOut, s.log.String())
		}
	}
	out, _, _ := d.run(ctx, "files", "list", "--client", client)
	files := decodeLines[fileResult](t, out)
	if len(files) != 1 {
		t.Fatalf("files of %s: %q", client, out)
	}
	f := files[0]
	if f.Status != "done" || f.Records != records || f.MURs+f.Exceptions+f.Filtered != f.Records || f.MURs == 0 {
		t.Fatalf("file %+v: want done with %d records that add up", f, records)
	}
	murs := mursBySuffix(ctx, t, d, client) // fails on a record with two MURs
	if int64(len(murs)) != f.MURs {
		t.Fatalf("%d MURs exported, the file counts %d", len(murs), f.MURs)
	}
	checkAgainstReference(t, cat, exportMURs(ctx, t, d, client))

	// Both processes mediated and rated part of the records.
	for _, p := range []struct{ name, api string }{{"vivace dev", d.API}, {"vivace serve", s.api}} {
		m := scrape(ctx, t, p.api)
		for _, stream := range []string{"mediate", "rate"} {
			if n := m.sum("input_received_total", `stream="`+stream+`"`); n == 0 {
				t.Errorf("%s received no records in its %s stream: the groups did not share the partitions", p.name, stream)
			}
		}
	}

	// The database goes away: not ready, with the reason; back: ready.
	proxy.cut()
	code, body := s.readyz(ctx, t, func(code int) bool { return code == http.StatusServiceUnavailable })
	if !strings.Contains(body, "database") {
		t.Errorf("readyz without the database: %d %s, want 503 naming the database", code, body)
	}
	proxy.restore(t)
	s.readyz(ctx, t, func(code int) bool { return code == http.StatusOK })

	s.stop(t)
	// Every line serve logged is one JSON object.
	sc := bufio.NewScanner(strings.NewReader(s.log.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v["msg"] == nil || v["level"] == nil {
			t.Errorf("log line is not a JSON object with level and msg: %q", sc.Text())
		} else if k := repeatedKey(sc.Bytes()); k != "" {
			t.Errorf("log line has the key %q twice: %s", k, sc.Text())
		}
	}
}

// repeatedKey returns a top-level key that a JSON object has more than
// once.
func repeatedKey(line []byte) string {
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return ""
		}
		if seen[k.(string)] {
			return k.(string)
		}
		seen[k.(string)] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
	}
	return ""
}

// serveProcess is a running `vivace serve`.
type serveProcess struct {
	cmd  *exec.Cmd
	api  string
	log  *syncBuffer
	done chan struct{}
	err  error
}

func startServe(t *testing.T, d *devProcess, dsn, roles string) *serveProcess {
	t.Helper()
	s := &serveProcess{api: "http://" + freeAddr(t), log: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve", "--role", roles, "--http-addr", strings.TrimPrefix(s.api, "http://"),
		"--data-dir", t.TempDir(), "--clients", filepath.Join(repoRoot(t), "tests/testdata/demo/clients.yaml"))
	s.cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "VIVACE_KAFKA_BROKERS="+d.Kafka)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.readyz(ctx, t, func(code int) bool { return code == http.StatusOK })
	return s
}

// readyz polls /readyz until ok accepts its status, and returns it with
// the body.
func (s *serveProcess) readyz(ctx context.Context, t *testing.T, ok func(int) bool) (int, string) {
	t.Helper()
	for {
		select {
		case <-s.done:
			t.Fatalf("vivace serve exited: %v\n%s", s.err, s.log.String())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.api+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return resp.StatusCode, string(b)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vivace serve: /readyz never answered as wanted:\n%s", s.log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and wants exit 0.
func (s *serveProcess) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("vivace serve after SIGTERM: %v\n%s", s.err, s.log.String())
		}
	case <-time.After(45 * time.Second):
		t.Errorf("vivace serve did not stop within 45s of SIGTERM:\n%s", s.log.String())
	}
}

// tcpProxy forwards connections to a server until cut.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{addr: freeAddr(t), target: target}
	p.restore(t)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection, as a database that goes
// away would.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// metrics are the samples of a /metrics page, line by line.
type metrics []string

func scrape(ctx context.Context, t *testing.T, api string) metrics {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

// sum adds the values of the samples of name whose labels hold label.
func (m metrics) sum(name, label string) float64 {
	var total float64
	for _, l := range m {
		if !strings.HasPrefix(l, name+"{") || !strings.Contains(l, label) {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			total += v
		}
	}
	return total
}
