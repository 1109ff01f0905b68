package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/kafkax"
)

// topicVars are the variables that rename each default topic, as the
// pipelines read them.
var topicVars = []struct{ def, env string }{
	{kafkax.TopicUsageRaw, "VIVACE_TOPIC_RAW"},
	{kafkax.TopicUsageMediated, "VIVACE_TOPIC_MEDIATED"},
	{kafkax.TopicUsageExceptions, "VIVACE_TOPIC_EXCEPTIONS"},
	{kafkax.TopicCoreFeed, "VIVACE_TOPIC_FEED"},
	{kafkax.TopicMURSyncBatches, "VIVACE_TOPIC_SYNC_BATCHES"},
	{kafkax.TopicMURSyncResults, "VIVACE_TOPIC_SYNC_RESULTS"},
}

func kafkaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "brokers", Value: "127.0.0.1:9092", EnvVars: []string{kafkax.EnvBrokers}, Usage: "seed brokers, comma-separated"},
		&cli.BoolFlag{Name: "kafka-tls", EnvVars: []string{kafkax.EnvTLS}, Usage: "connect over TLS"},
		&cli.StringFlag{Name: "kafka-tls-ca-file", EnvVars: []string{kafkax.EnvTLSCAFile}, Usage: "PEM file of the CA to trust (default: the system's roots)"},
		&cli.StringFlag{Name: "kafka-sasl-mechanism", EnvVars: []string{kafkax.EnvSASLMechanism}, Usage: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)"},
		&cli.StringFlag{Name: "kafka-sasl-username", EnvVars: []string{kafkax.EnvSASLUsername}, Usage: "SASL user name"},
		&cli.StringFlag{Name: "kafka-sasl-password", EnvVars: []string{kafkax.EnvSASLPassword}, Usage: "SASL password"},
	}
}

// kafkaAdmin connects an admin client with kafkaFlags' settings.
func kafkaAdmin(c *cli.Context) (*kadm.Client, func(), error) {
	vars := map[string]string{
		kafkax.EnvBrokers: c.String("brokers"), kafkax.EnvTLSCAFile: c.String("kafka-tls-ca-file"),
		kafkax.EnvSASLMechanism: c.String("kafka-sasl-mechanism"), kafkax.EnvSASLUsername: c.String("kafka-sasl-username"),
		kafkax.EnvSASLPassword: c.String("kafka-sasl-password"),
	}
	if c.Bool("kafka-tls") {
		vars[kafkax.EnvTLS] = "true"
	}
	conf, err := kafkax.ConfigFromVars(func(k string) string { return vars[k] })
	if err != nil {
		return nil, nil, err
	}
	opts, err := conf.Opts()
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID("vivace-topics"))...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// topicSpecs are the topics with the flags' partitions, replication and
// retention, then each --topic override.
func topicSpecs(c *cli.Context) ([]kafkax.TopicSpec, error) {
	var retention time.Duration
	if r := c.String("retention"); r != "" {
		var err error
		if retention, err = kafkax.ParseRetention(r); err != nil {
			return nil, fmt.Errorf("--retention: %w", err)
		}
	}
	var specs []kafkax.TopicSpec
	for _, t := range topicVars {
		name := t.def
		if v := os.Getenv(t.env); v != "" {
			name = v
		}
		s := kafkax.TopicSpec{Name: name, Partitions: int32(c.Int("partitions")), Replication: int16(c.Int("replication")),
			Retention: kafkax.DefaultRetention[t.def]}
		if retention != 0 {
			s.Retention = retention
		}
		specs = append(specs, s)
	}
	// The flag library splits values at commas: a part without a topic
	// name belongs to the override before it.
	var overrides []string
	for _, o := range c.StringSlice("topic") {
		if n := len(overrides); n > 0 && !strings.Contains(o, ":") {
			overrides[n-1] += "," + o
			continue
		}
		overrides = append(overrides, o)
	}
	for _, o := range overrides {
		if err := kafkax.ParseTopicOverride(specs, o); err != nil {
			return nil, err
		}
	}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	return specs, nil
}

func topicsCommand() *cli.Command {
	return &cli.Command{
		Name:  "topics",
		Usage: "create or describe Vivace's Kafka/Redpanda topics",
		Description: "The topics every pipeline reads and writes (renamed by the VIVACE_TOPIC_* variables, as the\n" +
			"pipelines are). docs/operations.md gives the rpk command of each.",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create every topic that does not exist yet; print one JSON line per topic",
				Description: "Creates each topic with --partitions, --replication and its retention (usage topics\n" +
					"7 days, exceptions 30, the core feed for ever; --retention sets them all), then each\n" +
					"--topic override. A topic that exists is left as it is and reported as \"exists\".\n" +
					"--print-rpk prints the rpk commands that would do the same and creates nothing.",
				Flags: append(kafkaFlags(),
					&cli.IntFlag{Name: "partitions", Value: 12, Usage: "partitions of each topic (the most processes a role can usefully run)"},
					&cli.IntFlag{Name: "replication", Value: 3, Usage: "replicas of each partition (1 on a single broker)"},
					&cli.StringFlag{Name: "retention", Usage: "retention of every topic: a duration (36h), days (7d) or forever (default: each topic's own)"},
					&cli.StringSliceFlag{Name: "topic", Usage: "one topic's own settings, NAME:partitions=P,replication=R,retention=D (repeatable)"},
					&cli.BoolFlag{Name: "print-rpk", Usage: "print the equivalent rpk commands instead of creating anything"},
				),
				Action: func(c *cli.Context) error {
					specs, err := topicSpecs(c)
					if err != nil {
						return cli.Exit("vivace topics create: "+err.Error(), 2)
					}
					if c.Bool("print-rpk") {
						for _, s := range specs {
							fmt.Fprintln(c.App.Writer, s.RPK())
						}
						return nil
					}
					adm, closeFn, err := kafkaAdmin(c)
					if err != nil {
						return cli.Exit("vivace topics create: "+err.Error(), 2)
					}
					defer closeFn()
					res, err := kafkax.CreateTopics(c.Context, adm, specs)
					enc := json.NewEncoder(c.App.Writer)
					for _, r := range res {
						_ = enc.Encode(r)
					}
					if err != nil {
						return cli.Exit("vivace topics create: "+err.Error(), 1)
					}
					return nil
				},
			},
			{
				Name:  "describe",
				Usage: "print each topic's partitions, replication, retention and cleanup policy as JSON lines",
				Flags: kafkaFlags(),
				Action: func(c *cli.Context) error {
					adm, closeFn, err := kafkaAdmin(c)
					if err != nil {
						return cli.Exit("vivace topics describe: "+err.Error(), 2)
					}
					defer closeFn()
					var names []string
					for _, t := range topicVars {
						name := t.def
						if v := os.Getenv(t.env); v != "" {
							name = v
						}
						names = append(names, name)
					}
					infos, err := kafkax.DescribeTopics(c.Context, adm, names)
					if err != nil {
						return cli.Exit("vivace topics describe: "+err.Error(), 1)
					}
					enc := json.NewEncoder(c.App.Writer)
					for _, i := range infos {
						_ = enc.Encode(i)
					}
					return nil
				},
			},
		},
	}
}
