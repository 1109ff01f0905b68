package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/kafkax"
)

func TestFirstCopies(t *testing.T) {
	unique, copies := firstCopies([]string{"b", "a", "b", "c", "b", "a"})
	if !slices.Equal(unique, []string{"b", "a", "c"}) || fmt.Sprint(copies) != "map[a:1 b:2]" {
		t.Fatalf("unique %v, copies %v", unique, copies)
	}
	ids := []string{"x", "y", "z"}
	unique, copies = firstCopies(ids)
	if !slices.Equal(unique, ids) || len(copies) != 0 || !slices.Equal(ids, []string{"x", "y", "z"}) {
		t.Fatalf("no repeats: unique %v, copies %v, ids now %v", unique, copies, ids)
	}
}

// runFeed runs a feed subcommand in the process and returns its error.
func runFeed(t *testing.T, args ...string) error {
	t.Helper()
	app := &cli.App{Name: "vivace", Commands: []*cli.Command{feedCommand()}, ExitErrHandler: func(*cli.Context, error) {}}
	return app.RunContext(context.Background(), append([]string{"vivace", "feed"}, args...))
}

func feedFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodEvent = `{"event_id":"e1","client":"c","entity":"usage_type","entity_id":"VOICE","version":1,` +
	`"occurred_at":"2026-01-01T00:00:00Z","op":"upsert","data":{"unit":"minute"},"source":"core"}`

// TestPublishUnreachableBroker: publish returns, naming the broker, when
// none answers.
func TestPublishUnreachableBroker(t *testing.T) {
	err := runFeed(t, "publish", "--brokers", "127.0.0.1:1", feedFile(t, goodEvent))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "no Kafka broker answers") {
		t.Fatalf("publish to nothing: %v", err)
	}
}

// TestPublishNamesMalformedLines: a line that is not a feed event is
// reported by file and line (and still sent, for the sync to record).
func TestPublishNamesMalformedLines(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	file := feedFile(t, goodEvent, `{"event_id":"e2","client":"c","entity":`, ``, `[1,2]`)
	err = runFeed(t, "publish", "--brokers", strings.Join(cluster.ListenAddrs(), ","), file)
	if err == nil || !strings.Contains(err.Error(), "2 lines are not feed events: "+file+":2, "+file+":4") {
		t.Fatalf("publish: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(kafkax.TopicCoreFeed),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got int
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for got < 3 && ctx.Err() == nil {
		got += cl.PollFetches(ctx).NumRecords()
	}
	if got != 3 {
		t.Fatalf("%d records on the topic, want all 3 lines", got)
	}
}
