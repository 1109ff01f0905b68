package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/loadgen"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/tmf635"
)

// BenchmarkTMF635PostToMUR posts usages to a running vivace dev at a
// steady VIVACE_BENCH_TMF_RATE per second (default 1000) for
// VIVACE_BENCH_TMF_SECONDS (default 30), and measures each one from the
// moment it was due to be sent to the moment its MUR is visible in the
// database (polled every 5 ms): the streaming latency, backlog included
// when the service falls behind. The percentiles leave out the usages due
// in the first VIVACE_BENCH_TMF_WARMUP seconds (default 5), whose p99 is
// reported as well (mur-p99-with-warmup-ms). Run with -benchtime 1x.
func BenchmarkTMF635PostToMUR(b *testing.B) {
	rate, seconds := 1000, 30
	if v, err := strconv.Atoi(os.Getenv("VIVACE_BENCH_TMF_RATE")); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("VIVACE_BENCH_TMF_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	// VIVACE_BENCH_TMF_WARMUP: the first seconds of the load, left out of
	// the percentiles (default 5).
	warmup := 5 * time.Second
	if v, err := strconv.Atoi(os.Getenv("VIVACE_BENCH_TMF_WARMUP")); err == nil && v >= 0 {
		warmup = time.Duration(v) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second+5*time.Minute)
	defer cancel()
	// VIVACE_BENCH_TMF_PPROF=file: a 10 s CPU profile of vivace dev
	// under the load, written there.
	prof := os.Getenv("VIVACE_BENCH_TMF_PPROF")
	var extra []string
	if prof != "" {
		extra = append(extra, "--pprof")
	}
	d := startDev(b, "", extra...)
	const accounts = 1000
	client := "tmfbench"
	file := prepareClient(ctx, b, d, client, 10, accounts)
	usageType := firstRecord(b, file)["usage_type"]
	token, err := os.ReadFile(filepath.Join(d.DataDir, "token"))
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, pgtest.DSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}, Timeout: time.Minute}

	for b.Loop() {
		total := rate * seconds
		due := make([]time.Time, total+1) // by line; line n is the n-th usage committed, not sent
		var mu sync.Mutex
		var postTook []time.Duration
		var fileID string
		jobs := make(chan int, total)
		var wg sync.WaitGroup
		for w := 0; w < 512; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					body := fmt.Sprintf(`{"usageType": %q, "usageDate": %q, "relatedParty": [{"id": %q, "@referredType": "BillingAccount"}],
						"usageCharacteristic": [{"name": "client", "value": %q}, {"name": "quantity", "value": 1}, {"name": "record_id", "value": "b%d"}]}`,
						usageType, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), loadgen.AccountID(i%accounts), client, i)
					mu.Lock()
					scheduled := due[0].Add(time.Duration(i) * time.Second / time.Duration(rate))
					mu.Unlock()
					req, _ := http.NewRequestWithContext(ctx, "POST", d.API+tmfBase+"/usage", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					var u struct{ ID string }
					err = json.NewDecoder(resp.Body).Decode(&u)
					resp.Body.Close()
					if resp.StatusCode != 201 || err != nil {
						b.Errorf("POST: %d %v", resp.StatusCode, err)
						return
					}
					f, line, _, ok := tmf635.ParseID(u.ID)
					if !ok || line > int64(total) {
						b.Errorf("id %q", u.ID)
						return
					}
					mu.Lock()
					fileID = f
					due[line] = scheduled
					postTook = append(postTook, time.Since(scheduled))
					mu.Unlock()
				}
			}()
		}
		// Watch for MURs of the day's api submission.
		seen := make([]time.Time, total+1)
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			low, left := int64(1), total
			for left > 0 && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				f := fileID
				mu.Unlock()
				if f == "" {
					continue
				}
				rows, err := st.Pool().Query(ctx, `SELECT line FROM murs WHERE file_id = $1 AND line >= $2`, f, low)
				if err != nil {
					b.Error(err)
					return
				}
				now := time.Now()
				for rows.Next() {
					var l int64
					if rows.Scan(&l) == nil && l <= int64(total) && seen[l].IsZero() {
						seen[l] = now
						left--
					}
				}
				rows.Close()
				for low <= int64(total) && !seen[low].IsZero() {
					low++
				}
			}
		}()
		start := time.Now()
		if prof != "" {
			go func() {
				time.Sleep(5 * time.Second)
				resp, err := d.get(ctx, "/debug/pprof/profile?seconds=10")
				if err != nil {
					b.Error(err)
					return
				}
				defer resp.Body.Close()
				f, err := os.Create(prof)
				if err == nil {
					_, _ = io.Copy(f, resp.Body)
					f.Close()
				}
			}()
		}
		mu.Lock()
		due[0] = start
		mu.Unlock()
		tick := time.NewTicker(10 * time.Millisecond)
		sent := 0
		for sent < total {
			<-tick.C
			n := min(int(time.Since(start)*time.Duration(rate)/time.Second)+1, total) - sent
			for ; n > 0; n-- {
				jobs <- sent
				sent++
			}
		}
		tick.Stop()
		close(jobs)
		wg.Wait()
		posted := time.Since(start)
		<-watchDone
		if ctx.Err() != nil {
			b.Fatal("MURs did not all appear")
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		// The percentiles are of the sustained load: usages due in the
		// first warm-up seconds (the day's api submission created, the
		// consumers' first fetches, the catalog read once) are left out of
		// them, and reported on their own as the whole run's p99.
		lat := make([]time.Duration, 0, total)
		all := make([]time.Duration, 0, total)
		for l := 1; l <= total; l++ {
			all = append(all, seen[l].Sub(due[l]))
			if due[l].Sub(start) >= warmup {
				lat = append(lat, seen[l].Sub(due[l]))
			}
		}
		if len(lat) == 0 {
			b.Fatalf("no usage was due after the warm-up of %v", warmup)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		b.ReportMetric(ms(all[len(all)*99/100]), "mur-p99-with-warmup-ms")
		sort.Slice(postTook, func(i, j int) bool { return postTook[i] < postTook[j] })
		// Where the time went, by the database's clocks (each a
		// transaction's start): posted → on usage.raw → rated.
		var hops [4]float64
		if err := st.Pool().QueryRow(ctx, `SELECT
				percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.sent_at - a.received_at)),
				percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.sent_at - a.received_at)),
				percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM m.rated_at - a.sent_at)),
				percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM m.rated_at - a.sent_at))
			FROM api_usage a JOIN murs m ON m.file_id = a.file_id AND m.line = a.line WHERE a.file_id = $1`, fileID).
			Scan(&hops[0], &hops[1], &hops[2], &hops[3]); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(hops[0]*1000, "to-raw-p50-ms")
		b.ReportMetric(hops[1]*1000, "to-raw-p99-ms")
		b.ReportMetric(hops[2]*1000, "raw-to-rated-p50-ms")
		b.ReportMetric(hops[3]*1000, "raw-to-rated-p99-ms")
		b.ReportMetric(float64(total)/posted.Seconds(), "posted/s")
		b.ReportMetric(ms(postTook[len(postTook)*99/100]), "post-p99-ms")
		b.ReportMetric(ms(lat[len(lat)/2]), "mur-p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "mur-p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "mur-max-ms")
	}
}
