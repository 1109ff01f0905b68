package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/syncstore"
	vbenthos "vivace.dev/vivace/plugins/benthos"
)

// murSync is the operations side of MUR sync: the cycles
// on schedule and on demand, the API routes, and the backlog metric.
// The sync service itself is the sync pipeline.
type murSync struct {
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

// newMURSync builds the sync's operations on the connection options conn;
// topic is the one the sync pipeline reads (VIVACE_TOPIC_SYNC_BATCHES,
// empty for the default).
func newMURSync(st *store.Store, conn []kgo.Opt, topic string, log *slog.Logger) (*murSync, error) {
	cl, err := kgo.NewClient(append(append(kafkax.SyncProducerOpts(), conn...), kgo.ClientID("vivace-sync-ops"))...)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	d := &murSync{st: syncstore.New(st), kafka: cl, log: log, lastRead: map[string]time.Time{}}
	set := &settings.Service{Store: settingstore.New(st)}
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
func (d *murSync) mount(srv *api.Server, st *store.Store) {
	routes := (&api.Sync{Server: srv, Ops: d.ops, Reader: d.st}).Routes()
	routes = append(routes, (&api.Settings{Server: srv, Service: &settings.Service{Store: settingstore.New(st)}}).Routes()...)
	for _, r := range routes {
		srv.Mount(r)
	}
}

// start runs the scheduler and the backlog metric until stop.
func (d *murSync) start(ctx context.Context) {
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
func (d *murSync) meter(ctx context.Context) {
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
func (d *murSync) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	d.kafka.Close()
}
