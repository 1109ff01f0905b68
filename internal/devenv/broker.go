// Package devenv runs the development dependencies of `vivace dev`: an
// in-process Kafka-compatible broker and, when no server is reachable, a
// private PostgreSQL cluster.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/kafkax"
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Addr is the host:port to listen on; port 0 picks a free one.
	Addr string
	// DataDir keeps topics, records and committed offsets across
	// restarts (and out of memory). Empty keeps everything in memory.
	DataDir string
	// Topics are created when missing, with Partitions partitions.
	Topics     []string
	Partitions int32 // 0 means 3
	Logger     *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// StartBroker starts a single-node Kafka-compatible broker and creates
// the configured topics that do not exist yet.
func StartBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: %w (want host:port)", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("kafka address %q: port must be a number from 0 to 65535", cfg.Addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	parts := cfg.Partitions
	if parts <= 0 {
		parts = 3
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(parts)),
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("kafka data directory: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("kafka address %s is in use: stop what listens there or pass --kafka-addr", cfg.Addr)
		}
		return nil, fmt.Errorf("start kafka broker on %s: %w", cfg.Addr, err)
	}
	b := &Broker{cluster: cluster, addr: cluster.ListenAddrs()[0]}
	// Topics are created here rather than seeded: a restart reloads the
	// topics it had and skips seeding, and any added since must appear.
	if err := b.ensureTopics(ctx, parts, cfg.Topics); err != nil {
		b.cluster.Close()
		return nil, err
	}
	if cfg.Logger != nil {
		cfg.Logger.Debug("kafka broker started", "addr", b.addr, "data_dir", cfg.DataDir)
	}
	return b, nil
}

func (b *Broker) ensureTopics(ctx context.Context, parts int32, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := kafkax.EnsureTopics(ctx, cl, parts, 1, topics...); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	return nil
}

// Addr is the address clients bootstrap from.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, writing its state to the data directory.
func (b *Broker) Close() error {
	b.cluster.Close()
	return nil
}

// Listening reports whether something accepts TCP connections at addr.
func Listening(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
