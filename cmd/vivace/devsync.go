package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/corelink"
	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/syncstore"
	vbenthos "vivace.dev/vivace/plugins/benthos"
)

// The client_no the built-in fake core lets in when VIVACE_CORE_CLIENT_NO
// is not set.
const devCoreClientNo = 1001

// FakeCoreURLFile is where vivace dev writes the built-in fake core's
// base URL, under its data directory (for scripts: its /fake/totals).
const FakeCoreURLFile = "fake-core.url"

// devCore is the core endpoint vivace dev gives the sync stream: the
// --core-url given, or a built-in fake core on a free port.
type devCore struct {
	URL, ClientNo, AuthKey string
	fake                   *fakecore.Server
}

func (c *devCore) close() {
	if c.fake != nil {
		_ = c.fake.Close()
	}
}

// startDevCore starts the built-in fake core unless url names a core. It
// lets in the default credentials (VIVACE_CORE_CLIENT_NO and
// VIVACE_CORE_AUTH_KEY, else client 1001 with a key made up now) and those
// of every client whose settings name a client_no and an auth key
// variable that is set.
func startDevCore(url, dataDir string, settings *clientcfg.Watched, log *slog.Logger) (*devCore, error) {
	c := &devCore{URL: url, ClientNo: os.Getenv(corelink.EnvClientNo), AuthKey: os.Getenv(corelink.EnvAuthKey)}
	_ = os.Remove(filepath.Join(dataDir, FakeCoreURLFile))
	if url != "" {
		return c, nil
	}
	if c.ClientNo == "" {
		c.ClientNo = strconv.Itoa(devCoreClientNo)
	}
	no, err := corelink.ParseClientNo(c.ClientNo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", corelink.EnvClientNo, err)
	}
	if c.AuthKey == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.AuthKey = hex.EncodeToString(b[:])
	}
	creds := []fakecore.Credential{{ClientNo: no, AuthKey: c.AuthKey}}
	if f, _ := settings.Current(); f != nil {
		for name := range f.Clients {
			if cc := f.Core(name); cc != nil && cc.ClientNo != 0 && cc.AuthKeyEnv != "" && os.Getenv(cc.AuthKeyEnv) != "" {
				creds = append(creds, fakecore.Credential{ClientNo: cc.ClientNo, AuthKey: os.Getenv(cc.AuthKeyEnv)})
			}
		}
	}
	srv, err := fakecore.Start("127.0.0.1:0", fakecore.Config{Credentials: creds, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("built-in fake core: %w", err)
	}
	c.URL, c.fake = srv.URL(), srv
	if err := os.WriteFile(filepath.Join(dataDir, FakeCoreURLFile), []byte(srv.URL()+"\n"), 0o644); err != nil {
		_ = srv.Close()
		return nil, err
	}
	log.Info("built-in fake core billing system (no --core-url given)", "url", srv.URL(), "client_no", no,
		"totals", srv.URL()+"/fake/totals")
	return c, nil
}

// devSync is the operations side of MUR sync in vivace dev: the cycles
// on schedule and on demand, the API routes, and the backlog metric.
// The sync service itself is the sync pipeline.
type devSync struct {
	ops    *mursync.Ops
	sched  *mursync.Scheduler
	st     *syncstore.Store
	kafka  *kgo.Client
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	lastRead map[string]time.Time
}

func newDevSync(st *store.Store, brokers string, log *slog.Logger) (*devSync, error) {
	cl, err := kgo.NewClient(append(kafkax.SyncProducerOpts(), kgo.SeedBrokers(brokers), kgo.ClientID("vivace-sync-ops"))...)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	d := &devSync{st: syncstore.New(st), kafka: cl, log: log, lastRead: map[string]time.Time{}}
	set := &settings.Service{Store: settingstore.New(st)}
	// The same topic as the sync pipeline reads (VIVACE_TOPIC_SYNC_BATCHES).
	topic := os.Getenv("VIVACE_TOPIC_SYNC_BATCHES")
	d.ops = &mursync.Ops{Store: d.st, Broker: &kafkax.SyncBatches{Client: cl, Topic: topic}, Settings: set, NewID: store.NewID,
		Owner: fmt.Sprintf("%s:%d", host, os.Getpid()), Logger: log,
		Observe: func(client string, oldest time.Time) {
			d.mu.Lock()
			d.lastRead[client] = time.Now()
			d.mu.Unlock()
			vbenthos.SyncBacklog(client, time.Since(oldest).Seconds())
		}}
	d.sched = &mursync.Scheduler{Ops: d.ops, Settings: set, Logger: log}
	return d, nil
}

// mount adds the sync and settings routes to the API's route table.
func (d *devSync) mount(srv *api.Server, st *store.Store) {
	routes := (&api.Sync{Server: srv, Ops: d.ops, Reader: d.st}).Routes()
	routes = append(routes, (&api.Settings{Server: srv, Service: &settings.Service{Store: settingstore.New(st)}}).Routes()...)
	for _, r := range routes {
		srv.Mount(r)
	}
}

// start runs the scheduler and the backlog metric until stop.
func (d *devSync) start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = d.sched.Run(ctx) }()
		go func() { defer wg.Done(); d.meter(ctx) }()
		wg.Wait()
	}()
}

// meter keeps vivace_sync_oldest_unsynced_seconds: per client, the age of
// the oldest MUR of a record not synced yet, or, for MURs not yet in a
// record, the time since the last cycle took the client's MURs (they
// came after it), whichever is greater.
func (d *devSync) meter(ctx context.Context) {
	seen := map[string]bool{}
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		if bl, err := d.st.Backlogs(ctx); err == nil {
			now := time.Now()
			cur := map[string]bool{}
			for _, b := range bl {
				var age time.Duration
				if !b.OldestRatedAt.IsZero() {
					age = now.Sub(b.OldestRatedAt)
				}
				d.mu.Lock()
				last, ok := d.lastRead[b.Client]
				d.mu.Unlock()
				if b.Unsynced && ok && now.Sub(last) > age {
					age = now.Sub(last)
				}
				if b.Unsynced && !ok && age == 0 {
					continue // not known until a cycle has read the client's MURs
				}
				vbenthos.SyncBacklog(b.Client, age.Seconds())
				cur[b.Client] = true
			}
			for c := range seen {
				if !cur[c] {
					vbenthos.SyncBacklog(c, 0)
				}
			}
			for c := range cur {
				seen[c] = true
			}
		} else if ctx.Err() == nil {
			d.log.Warn("sync backlog metric not updated", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// stop ends the scheduler (a cycle that is waiting for answers stops
// waiting; what it committed stays) and closes the producer.
func (d *devSync) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	d.kafka.Close()
}
