package kafkax

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCreateAndDescribeTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	specs := []TopicSpec{
		{Name: TopicUsageRaw, Partitions: 6, Replication: 1, Retention: 7 * 24 * time.Hour},
		{Name: TopicCoreFeed, Partitions: 2, Replication: 1, Retention: Forever},
	}
	res, err := CreateTopics(ctx, adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != "created" {
			t.Errorf("first create of %s: %s, want created", r.Topic, r.Status)
		}
	}
	res, err = CreateTopics(ctx, adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != "exists" {
			t.Errorf("second create of %s: %s, want exists", r.Topic, r.Status)
		}
	}
	infos, err := DescribeTopics(ctx, adm, []string{TopicUsageRaw, TopicCoreFeed, "no.such.topic"})
	if err != nil {
		t.Fatal(err)
	}
	want := []TopicInfo{
		{Topic: TopicUsageRaw, Exists: true, Partitions: 6, Replication: 1, RetentionMS: "604800000"},
		{Topic: TopicCoreFeed, Exists: true, Partitions: 2, Replication: 1, RetentionMS: "-1"},
		{Topic: "no.such.topic"},
	}
	for i, w := range want {
		got := infos[i]
		got.CleanupPolicy = ""
		if got != w {
			t.Errorf("describe %s: %+v, want %+v", w.Topic, got, w)
		}
	}
}

func TestTopicOverridesAndRPK(t *testing.T) {
	specs := []TopicSpec{{Name: TopicUsageRaw, Partitions: 12, Replication: 3, Retention: 7 * 24 * time.Hour}}
	if err := ParseTopicOverride(specs, "usage.raw:partitions=24,retention=36h"); err != nil {
		t.Fatal(err)
	}
	if got, want := specs[0].RPK(), "rpk topic create usage.raw --partitions 24 --replicas 3 --topic-config retention.ms=129600000"; got != want {
		t.Errorf("RPK() = %q, want %q", got, want)
	}
	for in, want := range map[string]string{
		"usage.raw":                 "want NAME:",
		"nope:partitions=2":         "no topic nope",
		"usage.raw:partitions=0":    "partitions",
		"usage.raw:retention=soon":  "retention",
		"usage.raw:compaction=true": "is not partitions",
	} {
		if err := ParseTopicOverride(specs, in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("override %q: error %v, want one with %q", in, err, want)
		}
	}
}
