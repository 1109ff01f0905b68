package app

import (
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/exceptionstore"
	"vivace.dev/vivace/internal/usage"
)

// newExceptionWork is the service that works exceptions for the API: the
// exceptions' store, a producer (on the connection options conn) that
// sends reprocessed records to the pipelines' topics (raw and mediated:
// VIVACE_TOPIC_RAW, VIVACE_TOPIC_MEDIATED, as the pipelines name them,
// empty for the defaults), and the clients' normal-form rules for edits.
// close stops the producer.
func newExceptionWork(st *store.Store, conn []kgo.Opt, raw, mediated string, settings *clientcfg.Watched, log *slog.Logger) (*exceptions.Service, func(), error) {
	cl, err := kgo.NewClient(append(append(kafkax.SyncProducerOpts(), conn...), kgo.ClientID("vivace-exceptions"))...)
	if err != nil {
		return nil, nil, fmt.Errorf("exceptions: kafka client: %w", err)
	}
	pub := &kafkax.Reprocess{Client: cl, Raw: raw, Mediated: mediated}
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
