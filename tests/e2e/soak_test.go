package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakTally counts each command of the load by exit status: commands
// may fail while the process restarts, but most must work.
type soakTally struct {
	mu       sync.Mutex
	ok, fail map[string]int
}

func (c *soakTally) run(ctx context.Context, d *devProcess, args ...string) (string, int) {
	out, _, code := d.run(ctx, args...)
	name := strings.Join(args[:2], " ")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok == nil {
		c.ok, c.fail = map[string]int{}, map[string]int{}
	}
	if code == 0 {
		c.ok[name]++
	} else {
		c.fail[name]++
	}
	return out, code
}

var tally soakTally

// soakSample is one reading of vivace dev's memory and goroutines.
type soakSample struct {
	At         time.Duration
	Phase      int
	PID        int
	RSSKiB     int64
	Goroutines int64
}

// TestSoak runs mixed load on vivace dev for SOAK_DURATION (make soak:
// 30m; not run otherwise): usage files, feed changes, exception
// reprocessing and sync cycles, phase after phase (SOAK_PHASE, default
// 3m). Each phase ends with a SIGKILL of vivace dev and a restart, except
// the middle one, which ends with its PostgreSQL stopped for SOAK_OUTAGE
// (default 30s) and started again; after each, once every file is done,
// vivace check must find the books balanced. vivace dev's resident memory
// and goroutines are sampled every five seconds into SOAK_DIR (default
// .data/soak): samples.csv, and summary.md with each phase's first, last
// and largest readings. A phase whose goroutines end at more than twice
// the first phase's (plus 100) fails the run: something leaks.
func TestSoak(t *testing.T) {
	total := envDuration(t, "SOAK_DURATION", 0)
	if total == 0 {
		t.Skip("the soak runs with SOAK_DURATION set (make soak)")
	}
	phaseLen := envDuration(t, "SOAK_PHASE", 3*time.Minute)
	outage := envDuration(t, "SOAK_OUTAGE", 30*time.Second)
	phases := max(1, int(total/phaseLen))
	outDir := os.Getenv("SOAK_DIR")
	if outDir == "" {
		outDir = filepath.Join(repoRoot(t), ".data", "soak")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), total+time.Duration(phases)*5*time.Minute+outage)
	defer cancel()

	pg := startCluster(t, ctx)
	t.Setenv("VIVACE_FILE_LEASE", "2s")
	_, client, flags := startCore(t, "soak")
	d := newDev(t, "")
	d.DSN = pg.dsn
	d.start(flags...)

	work := t.TempDir()
	cat := filepath.Join(work, "catalog.jsonl")
	const accounts = 200
	for _, args := range [][]string{
		{"feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "5", "--currency", "USD,JPY", "--out", cat},
		{"feed", "publish", "--wait", cat},
	} {
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}

	// The sampler reads /proc and /metrics of whichever process runs.
	var (
		mu      sync.Mutex
		samples []soakSample
		phase   int
	)
	began := time.Now()
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			p, cmd := phase, d.cmd
			mu.Unlock()
			if cmd == nil || cmd.Process == nil {
				continue
			}
			rss, ok := rssKiB(cmd.Process.Pid)
			g, gok := goroutines(d.API)
			if ok && gok {
				mu.Lock()
				samples = append(samples, soakSample{At: time.Since(began), Phase: p, PID: cmd.Process.Pid, RSSKiB: rss, Goroutines: g})
				mu.Unlock()
			}
		}
	}()

	file := 0
	for p := 1; p <= phases; p++ {
		mu.Lock()
		phase = p
		mu.Unlock()
		end := time.Now().Add(phaseLen)
		for time.Now().Before(end) && ctx.Err() == nil {
			file++
			soakRound(ctx, t, d, client, cat, work, file, accounts)
		}
		if p == (phases+1)/2 && phases > 1 || phases == 1 {
			t.Logf("phase %d: database outage of %s", p, outage)
			// A file in flight while the database goes.
			file++
			soakIngest(ctx, t, d, client, work, file, accounts)
			pg.stop(ctx)
			time.Sleep(outage)
			pg.start(ctx)
		}
		if p < phases || phases == 1 {
			file++
			soakIngest(ctx, t, d, client, work, file, accounts)
			time.Sleep(time.Second)
			t.Logf("phase %d: SIGKILL", p)
			mu.Lock() // the sampler reads d.cmd
			d.kill()
			d.start(flags...)
			mu.Unlock()
		}
		waitAllFiles(ctx, t, d, client)
		d.checkBooks(ctx, client)
		t.Logf("phase %d: %d files so far, the books balance", p, file)
	}
	stopSampling()
	<-sampled

	mu.Lock()
	defer mu.Unlock()
	writeSoakReport(t, outDir, samples, phases)
}

// soakRound is one round of the mixed load: a usage file, every third
// round a feed change, an exception reprocess and a sync cycle. Commands
// may fail while the process restarts or the database is away; the
// books are checked at the end of the phase.
func soakRound(ctx context.Context, t *testing.T, d *devProcess, client, cat, work string, n, accounts int) {
	soakIngest(ctx, t, d, client, work, n, accounts)
	if n%3 == 0 {
		// The catalog again with fields Vivace ignores (new event
		// content, the same entities): applied, a new catalog version the
		// rate stage picks up mid-stream.
		alt := filepath.Join(work, fmt.Sprintf("catalog-%d.jsonl", n))
		if _, code := tally.run(ctx, d, "feed", "generate", "--client", client, "--accounts", fmt.Sprint(accounts), "--plans", "5",
			"--currency", "USD,JPY", "--extras", "--seed", fmt.Sprint(n), "--out", alt); code == 0 {
			tally.run(ctx, d, "feed", "publish", alt)
		}
	}
	tally.run(ctx, d, "exceptions", "reprocess", "--client", client, "--no-wait")
	tally.run(ctx, d, "sync", "run", "--client", client, "--timeout", "1m")
	time.Sleep(time.Second)
}

// soakIngest writes usage file n (record ids of its own, every 97th
// record bad) and hands it in without waiting.
func soakIngest(ctx context.Context, t *testing.T, d *devProcess, client, work string, n, accounts int) {
	f := filepath.Join(work, fmt.Sprintf("usage-%d.csv", n))
	if out, errOut, code := d.run(ctx, "usage", "generate", "--client", client, "--records", "3000", "--accounts", fmt.Sprint(accounts),
		"--seed", fmt.Sprint(n), "--bad-every", "97", "--out", f); code != 0 {
		t.Fatalf("usage generate: %s %s", out, errOut)
	}
	body, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	body = []byte(strings.ReplaceAll(string(body), client+"-", fmt.Sprintf("%s-%d-", client, n)))
	if err := os.WriteFile(f, body, 0o644); err != nil {
		t.Fatal(err)
	}
	tally.run(ctx, d, "ingest", "--client", client, f)
}

// waitAllFiles waits until none of the client's files is received or
// processing.
func waitAllFiles(ctx context.Context, t *testing.T, d *devProcess, client string) {
	t.Helper()
	for {
		pending := -1
		if resp, err := d.get(ctx, "/api/v1/files?client="+client+"&limit=10000"); err == nil {
			var fs []fileResult
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&fs) == nil {
				pending = 0
				for _, f := range fs {
					if f.Status == "received" || f.Status == "processing" {
						pending++
					}
				}
			}
			resp.Body.Close()
		}
		if pending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d files of %s not finished:\n%s", pending, client, d.log.String())
		case <-time.After(time.Second):
		}
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration such as 30m", name, s)
	}
	return d
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// goroutines reads go_goroutines from the process's /metrics.
func goroutines(api string) (int64, bool) {
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err == nil
		}
	}
	return 0, false
}

// writeSoakReport writes the samples and the per-phase summary, and fails
// the test when the goroutines grow from phase to phase.
func writeSoakReport(t *testing.T, dir string, samples []soakSample, phases int) {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("seconds,phase,pid,rss_kib,goroutines\n")
	for _, s := range samples {
		fmt.Fprintf(&csv, "%d,%d,%d,%d,%d\n", int(s.At.Seconds()), s.Phase, s.PID, s.RSSKiB, s.Goroutines)
	}
	if err := os.WriteFile(filepath.Join(dir, "samples.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	type span struct{ first, last, max soakSample }
	per := map[int]*span{}
	for _, s := range samples {
		sp := per[s.Phase]
		if sp == nil {
			sp = &span{first: s, max: s}
			per[s.Phase] = sp
		}
		sp.last = s
		if s.RSSKiB > sp.max.RSSKiB {
			sp.max.RSSKiB = s.RSSKiB
		}
		if s.Goroutines > sp.max.Goroutines {
			sp.max.Goroutines = s.Goroutines
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Soak: %d phases, %d samples\n\n", phases, len(samples))
	md.WriteString("| phase | RSS first (MiB) | RSS last | RSS max | goroutines first | last | max |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	var base *span
	for p := 1; p <= phases; p++ {
		sp := per[p]
		if sp == nil {
			continue
		}
		if base == nil {
			base = sp
		}
		fmt.Fprintf(&md, "| %d | %.0f | %.0f | %.0f | %d | %d | %d |\n", p, float64(sp.first.RSSKiB)/1024, float64(sp.last.RSSKiB)/1024,
			float64(sp.max.RSSKiB)/1024, sp.first.Goroutines, sp.last.Goroutines, sp.max.Goroutines)
		if sp.last.Goroutines > 2*base.last.Goroutines+100 {
			t.Errorf("phase %d ends with %d goroutines, the first ended with %d: a leak", p, sp.last.Goroutines, base.last.Goroutines)
		}
	}
	md.WriteString("\n| command | worked | failed (while restarting or the database was away) |\n| --- | --- | --- |\n")
	tally.mu.Lock()
	for _, name := range []string{"ingest --client", "feed generate", "feed publish", "exceptions reprocess", "sync run"} {
		fmt.Fprintf(&md, "| %s | %d | %d |\n", name, tally.ok[name], tally.fail[name])
		if tally.ok[name] == 0 {
			t.Errorf("vivace %s never worked during the soak", name)
		}
	}
	tally.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("soak report in %s:\n%s", dir, md.String())
}
