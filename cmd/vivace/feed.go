package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/kafkax"
)

func feedCommand() *cli.Command {
	return &cli.Command{
		Name:  "feed",
		Usage: "work with the core system's catalog-account feed",
		Subcommands: []*cli.Command{feedGenerateCommand(), feedErrorsCommand(), feedHistoryCommand(), {
			Name:      "publish",
			Usage:     "publish core feed events (JSON Lines) to the feed topic",
			ArgsUsage: "FILE.jsonl",
			Description: "Publishes one message per line, keyed by entity_id so that an entity's events keep\n" +
				"their order. Each line is read first: one that is not a feed event is reported by file and\n" +
				"line, and sent all the same, so that the sync records it as failed. A broker that does not\n" +
				"answer within seconds is an error naming it. With --wait, returns when every event has been\n" +
				`applied, ignored (not newer than what is stored) or failed, and prints {"events","applied",` + "\n" +
				`"ignored","failed"} ("warned": events applied with fields Vivace ignores, when there are any);` + "\n" +
				"an event waiting for an entity that has not arrived (pending) is waited for.\n" +
				"Exits non-zero when an event failed or a line is not an event; the failures are listed on stderr.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "brokers", Value: "127.0.0.1:9092", EnvVars: []string{"VIVACE_KAFKA_BROKERS"}, Usage: "Kafka seed brokers, comma-separated"},
				&cli.StringFlag{Name: "topic", Value: kafkax.TopicCoreFeed, Usage: "feed topic"},
				&cli.BoolFlag{Name: "wait", Usage: "wait until every event is applied or failed and print the counts"},
				&cli.StringFlag{Name: "api", Value: defaultAPI, EnvVars: []string{"VIVACE_API"}, Usage: "Vivace API base URL (for --wait)"},
				tokenFlag(), dataDirFlag(),
				&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "with --wait, give up after this long"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("vivace feed publish: name one FILE.jsonl", 2)
				}
				if err := publishFeed(c.Context, c); err != nil {
					return cli.Exit("vivace feed publish: "+err.Error(), 1)
				}
				return nil
			},
		}},
	}
}

func publishFeed(ctx context.Context, c *cli.Context) error {
	path := c.Args().First()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	brokers := c.String("brokers")
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond),
		kgo.DialTimeout(5*time.Second), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		return fmt.Errorf("--brokers %s: %w", brokers, err)
	}
	defer cl.Close()
	// Records are only buffered until a broker answers: without a look
	// first, an unreachable broker means waiting in silence.
	pingCtx, cancel := context.WithTimeout(ctx, brokerWait)
	err = cl.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("no Kafka broker answers at %s within %s: %w (is vivace dev running, and is --brokers right?)", brokers, brokerWait, err)
	}
	topic := c.String("topic")
	// Records are produced as the file is read, so a file of any size
	// takes only its event ids in memory. A line without an id is known
	// by where it landed, which is how the sync records it too.
	var (
		mu      sync.Mutex
		ids     []string
		sendErr error
		// where the lines without an event id are in the file, by their
		// place among the events sent
		unnamed   = map[int]string{}
		malformed []string
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	line, n := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		// A line that is not an event is reported here and still sent:
		// the sync records it as failed, which is what the counts must
		// show.
		head, perr := feed.Parse(b)
		where := fmt.Sprintf("%s:%d", path, line)
		if perr != nil {
			malformed = append(malformed, where)
			fmt.Fprintf(os.Stderr, "%s: %v (sent all the same: the sync records it as failed)\n", where, perr)
		}
		r := &kgo.Record{Topic: topic, Value: append([]byte(nil), b...), Key: []byte(head.EntityID)}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "vivace_line", Value: []byte(strconv.Itoa(line))})
		i := n
		n++
		if head.EventID == "" {
			unnamed[i] = where
		}
		mu.Lock()
		ids = append(ids, head.EventID)
		mu.Unlock()
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if sendErr == nil {
					sendErr = err
				}
				return
			}
			if ids[i] == "" {
				ids[i] = fmt.Sprintf("unidentified/%s/%d/%d", r.Topic, r.Partition, r.Offset)
			}
		})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", path, line+1, err)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("publish to %s: %w", brokers, err)
	}
	if sendErr != nil {
		return fmt.Errorf("publish to %s: %w", brokers, sendErr)
	}
	fmt.Fprintf(os.Stderr, "published %d events to %s\n", n, topic)
	// An event without an id is known by where it landed on the topic;
	// it is reported by where it is in the file.
	labels := make(map[string]string, len(unnamed))
	for i, where := range unnamed {
		labels[ids[i]] = where
	}
	if c.Bool("wait") {
		return waitFeed(newAPIClient(c), ids, labels, c.Duration("timeout"))
	}
	if len(malformed) > 0 {
		return fmt.Errorf("%d lines are not feed events: %s", len(malformed), strings.Join(malformed, ", "))
	}
	return nil
}

// brokerWait is how long publish waits for a broker to answer.
const brokerWait = 10 * time.Second

// waitFeed waits for the outcomes of ids and prints the counts; labels
// name events by where they are in the file rather than by id.
func waitFeed(cl *apiClient, ids []string, labels map[string]string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var counts struct {
		Events  int `json:"events"`
		Applied int `json:"applied"`
		Ignored int `json:"ignored"`
		Failed  int `json:"failed"`
		Pending int `json:"pending,omitempty"` // still waiting when --timeout ran out
		Warned  int `json:"warned,omitempty"`  // settled with warnings: fields Vivace ignores
	}
	counts.Events = len(ids)
	// An id published twice in one file is counted once per line: each
	// line is an event sent, and a later copy of an applied event is
	// ignored as stale. copies holds only the ids sent more than once.
	pending, copies := firstCopies(ids)
	// Settled events are counted and dropped as they settle, and a
	// failure is reported at once: only the unsettled ids stay in memory.
	settle := func(id string, o api.FeedOutcome) {
		n := 1 + copies[id]
		if len(o.Warnings) > 0 {
			counts.Warned += n
		}
		switch feed.Result(o.Outcome) {
		case feed.Applied:
			counts.Applied++
			counts.Ignored += n - 1
		case feed.Ignored:
			counts.Ignored += n
		default:
			counts.Failed += n
			name := id
			if where, ok := labels[id]; ok {
				name = where
			}
			for range n {
				fmt.Fprintf(os.Stderr, "event %s failed: %s\n", name, o.Message)
			}
		}
	}
	for len(pending) > 0 && !time.Now().After(deadline) {
		// Events apply roughly in the order sent, so each round asks about
		// the oldest unsettled ones only (the API answers for at most
		// 100,000 ids a request), which keeps the polling light while a
		// large file is still being applied.
		chunk := pending[:min(len(pending), 50000)]
		body, _ := json.Marshal(map[string][]string{"event_ids": chunk})
		var got struct {
			Outcomes map[string]api.FeedOutcome `json:"outcomes"`
		}
		if err := cl.do("POST", "/api/v1/feed/outcomes", bytes.NewReader(body), &got); err != nil {
			return err
		}
		// A pending event waits for an entity still on its way; it ends
		// applied, or failed when the wait runs out.
		kept := pending[:0]
		for i, id := range pending {
			if o, ok := got.Outcomes[id]; ok && i < len(chunk) && feed.Result(o.Outcome) != feed.Pending {
				settle(id, o)
				continue
			}
			kept = append(kept, id)
		}
		settledNow := len(pending) - len(kept)
		pending = kept
		if settledNow < len(chunk) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, id := range pending {
		counts.Pending += 1 + copies[id]
	}
	b, _ := json.Marshal(counts)
	fmt.Println(string(b))
	if counts.Warned > 0 {
		fmt.Fprintf(os.Stderr, "%d events carried fields Vivace ignores (see vivace feed errors list --warnings)\n", counts.Warned)
	}
	if counts.Failed > 0 {
		return fmt.Errorf("%d of %d events failed", counts.Failed, counts.Events)
	}
	if counts.Pending > 0 {
		return fmt.Errorf("%d of %d events not applied after %s (see vivace feed errors list --pending)", counts.Pending, counts.Events, timeout)
	}
	return nil
}

// firstCopies returns ids without repeats, in the order of their first
// appearance, and how many further times each repeated id appears. It
// finds repeats by sorting a copy of the list, so that no set of every id
// is built.
func firstCopies(ids []string) (unique []string, copies map[string]int) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	copies = map[string]int{}
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			copies[sorted[i]]++
		}
	}
	if len(copies) == 0 {
		return ids, copies
	}
	seen := make(map[string]bool, len(copies))
	unique = ids[:0:0]
	for _, id := range ids {
		if copies[id] > 0 {
			if seen[id] {
				continue
			}
			seen[id] = true
		}
		unique = append(unique, id)
	}
	return unique, copies
}
