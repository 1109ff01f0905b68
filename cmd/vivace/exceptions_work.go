package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/exceptionstore"
	"vivace.dev/vivace/internal/usage"
)

// newExceptionWork is the service that works exceptions for the API: the
// exceptions' store, a producer that sends reprocessed records to the
// pipelines' topics (VIVACE_TOPIC_RAW, VIVACE_TOPIC_MEDIATED, as the
// pipelines name them), and the clients' normal-form rules for edits.
// close stops the producer.
func newExceptionWork(st *store.Store, brokers string, settings *clientcfg.Watched, log *slog.Logger) (*exceptions.Service, func(), error) {
	cl, err := kgo.NewClient(append(kafkax.SyncProducerOpts(), kgo.SeedBrokers(kafkax.Brokers([]string{brokers})...),
		kgo.ClientID("vivace-exceptions"))...)
	if err != nil {
		return nil, nil, fmt.Errorf("exceptions: kafka client: %w", err)
	}
	pub := &kafkax.Reprocess{Client: cl, Raw: os.Getenv("VIVACE_TOPIC_RAW"), Mediated: os.Getenv("VIVACE_TOPIC_MEDIATED")}
	svc := &exceptions.Service{Store: exceptionstore.New(st), Publisher: pub, Logger: log,
		Rules: func(client string) usage.Rules {
			if settings == nil {
				return usage.DefaultRules()
			}
			f, _ := settings.Current()
			if f == nil {
				return usage.DefaultRules()
			}
			return f.Rules(client)
		}}
	return svc, cl.Close, nil
}
