package kafkax

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TopicLag is how many messages of a topic a consumer group has yet to
// take, summed over the topic's partitions.
type TopicLag struct {
	Group, Topic string
	Lag          int64
}

// Lag reports the lag of each consumer group on each topic it reads, in
// group and topic order. A group that cannot be described is an error
// naming it.
func Lag(ctx context.Context, adm *kadm.Client, groups ...string) ([]TopicLag, error) {
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	var out []TopicLag
	for _, g := range lags.Sorted() {
		if err := g.Error(); err != nil {
			return nil, fmt.Errorf("consumer lag of group %s: %w", g.Group, err)
		}
		for _, t := range g.Lag.TotalByTopic().Sorted() {
			out = append(out, TopicLag{Group: g.Group, Topic: t.Topic, Lag: t.Lag})
		}
	}
	return out, nil
}
