// Package kafkax holds what every Kafka client of Vivace shares: the
// connection settings (brokers, TLS, SASL) turned into franz-go options,
// the default topic names and topic creation.
package kafkax

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Default topic names (docs/architecture.md, "Topics"); every pipeline can
// name others.
const (
	TopicUsageRaw        = "usage.raw"
	TopicUsageMediated   = "usage.mediated"
	TopicUsageExceptions = "usage.exceptions"
	TopicCoreFeed        = "core.feed"
	TopicMURSyncBatches  = "mur.sync.batches"
	TopicMURSyncResults  = "mur.sync.results"
)

// DefaultTopics lists the default topics.
func DefaultTopics() []string {
	return []string{TopicUsageRaw, TopicUsageMediated, TopicUsageExceptions, TopicCoreFeed,
		TopicMURSyncBatches, TopicMURSyncResults}
}

// SASL is one SASL mechanism with its credentials.
type SASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username  string
	Password  string
}

// Config is how to reach a Kafka cluster.
type Config struct {
	SeedBrokers []string
	ClientID    string
	TLS         *tls.Config
	SASL        []SASL
}

// Brokers splits comma-separated entries and drops blanks.
func Brokers(entries []string) []string {
	var out []string
	for _, e := range entries {
		for _, b := range strings.Split(e, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// Validate reports every problem, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if len(Brokers(c.SeedBrokers)) == 0 {
		errs = append(errs, errors.New("seed_brokers: at least one broker address is required"))
	}
	for i, s := range c.SASL {
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			errs = append(errs, fmt.Errorf("sasl[%d].mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", i, s.Mechanism))
		}
		if s.Username == "" {
			errs = append(errs, fmt.Errorf("sasl[%d].username: required", i))
		}
	}
	return errors.Join(errs...)
}

// Opts turns the config into franz-go client options.
func (c Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(Brokers(c.SeedBrokers)...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	var mechs []sasl.Mechanism
	for _, s := range c.SASL {
		switch s.Mechanism {
		case "PLAIN":
			mechs = append(mechs, plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism())
		case "SCRAM-SHA-256":
			mechs = append(mechs, scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism())
		case "SCRAM-SHA-512":
			mechs = append(mechs, scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism())
		}
	}
	if len(mechs) > 0 {
		opts = append(opts, kgo.SASL(mechs...))
	}
	return opts, nil
}

// EnsureTopics creates the topics that do not exist yet; existing ones are
// left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, replication int16, topics ...string) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, replication, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// MessageLimits returns the largest record batch, in bytes, that the
// brokers accept on each of topics: the topic's max.message.bytes, or for
// a topic that does not exist yet (the producer may create it) the
// brokers' message.max.bytes.
func MessageLimits(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]int, error) {
	adm := kadm.NewClient(cl)
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil && len(rcs) == 0 {
		return nil, fmt.Errorf("describe topics %v: %w", topics, err)
	}
	limits := map[string]int{}
	var missing []string
	for _, rc := range rcs {
		if rc.Err != nil {
			if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				missing = append(missing, rc.Name)
				continue
			}
			return nil, fmt.Errorf("describe topic %s: %w", rc.Name, rc.Err)
		}
		n, ok, err := configInt(rc.Configs, "max.message.bytes")
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", rc.Name, err)
		}
		if !ok {
			missing = append(missing, rc.Name)
			continue
		}
		limits[rc.Name] = n
	}
	if len(missing) > 0 {
		brs, err := adm.DescribeBrokerConfigs(ctx)
		if err != nil && len(brs) == 0 {
			return nil, fmt.Errorf("describe brokers: %w", err)
		}
		lowest := 0
		for _, b := range brs {
			if b.Err != nil {
				return nil, fmt.Errorf("describe broker %s: %w", b.Name, b.Err)
			}
			n, ok, err := configInt(b.Configs, "message.max.bytes")
			if err != nil {
				return nil, fmt.Errorf("broker %s: %w", b.Name, err)
			}
			if ok && (lowest == 0 || n < lowest) {
				lowest = n
			}
		}
		if lowest == 0 {
			return nil, fmt.Errorf("the brokers do not say their message.max.bytes (topics %v do not exist)", missing)
		}
		for _, t := range missing {
			limits[t] = lowest
		}
	}
	return limits, nil
}

func configInt(cs []kadm.Config, key string) (int, bool, error) {
	for _, c := range cs {
		if c.Key != key || c.Value == nil {
			continue
		}
		n, err := strconv.Atoi(*c.Value)
		if err != nil {
			return 0, false, fmt.Errorf("%s %q is not a number", key, *c.Value)
		}
		return n, true, nil
	}
	return 0, false, nil
}
