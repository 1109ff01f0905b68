package kafkax

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Forever is a Retention that keeps records until they are deleted by
// hand (retention.ms -1).
const Forever = time.Duration(-1)

// TopicSpec is how one topic is made.
type TopicSpec struct {
	Name        string
	Partitions  int32
	Replication int16
	// Retention is how long records are kept: 0 leaves the broker's
	// default, Forever keeps them.
	Retention time.Duration
}

// DefaultRetention is each default topic's retention: the usage topics
// long enough to replay a week; exceptions a month, since people review
// them; the core feed for ever, since a new catalog replays it from the
// start (docs/operations.md, "Topics").
var DefaultRetention = map[string]time.Duration{
	TopicUsageRaw:        7 * 24 * time.Hour,
	TopicUsageMediated:   7 * 24 * time.Hour,
	TopicUsageExceptions: 30 * 24 * time.Hour,
	TopicCoreFeed:        Forever,
	TopicMURSyncBatches:  7 * 24 * time.Hour,
	TopicMURSyncResults:  7 * 24 * time.Hour,
}

// RetentionMS is the topic's retention.ms value ("" for the broker's
// default).
func (s TopicSpec) RetentionMS() string {
	switch {
	case s.Retention == 0:
		return ""
	case s.Retention < 0:
		return "-1"
	}
	return strconv.FormatInt(s.Retention.Milliseconds(), 10)
}

// RPK is the rpk command that makes the same topic.
func (s TopicSpec) RPK() string {
	cmd := fmt.Sprintf("rpk topic create %s --partitions %d --replicas %d", s.Name, s.Partitions, s.Replication)
	if ms := s.RetentionMS(); ms != "" {
		cmd += " --topic-config retention.ms=" + ms
	}
	return cmd
}

// Validate names the first field that is wrong.
func (s TopicSpec) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if s.Partitions < 1 {
		errs = append(errs, fmt.Errorf("topic %s: partitions: %d is less than 1", s.Name, s.Partitions))
	}
	if s.Replication < 1 {
		errs = append(errs, fmt.Errorf("topic %s: replication: %d is less than 1", s.Name, s.Replication))
	}
	return errors.Join(errs...)
}

// TopicResult is what creating one topic did.
type TopicResult struct {
	Topic  string `json:"topic"`
	Status string `json:"status"` // created or exists
}

// CreateTopics creates each topic that does not exist yet; one that does
// is reported as "exists" and left as it is (describe shows how it is).
func CreateTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) ([]TopicResult, error) {
	var out []TopicResult
	var errs []error
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		var configs map[string]*string
		if ms := s.RetentionMS(); ms != "" {
			configs = map[string]*string{"retention.ms": &ms}
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, s.Replication, configs, s.Name)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(resp.Err, kerr.TopicAlreadyExists):
			out = append(out, TopicResult{Topic: s.Name, Status: "exists"})
		case err != nil:
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, err))
		case resp.Err != nil:
			errs = append(errs, fmt.Errorf("create topic %s: %w (%s)", s.Name, resp.Err, resp.ErrMessage))
		default:
			out = append(out, TopicResult{Topic: s.Name, Status: "created"})
		}
	}
	return out, errors.Join(errs...)
}

// TopicInfo is how a topic is on the brokers.
type TopicInfo struct {
	Topic       string `json:"topic"`
	Exists      bool   `json:"exists"`
	Partitions  int    `json:"partitions,omitempty"`
	Replication int    `json:"replication,omitempty"`
	// RetentionMS is the topic's retention.ms, "-1" for ever.
	RetentionMS   string `json:"retention_ms,omitempty"`
	CleanupPolicy string `json:"cleanup_policy,omitempty"`
}

// DescribeTopics tells how each named topic is, one that does not exist
// included (Exists false).
func DescribeTopics(ctx context.Context, adm *kadm.Client, names []string) ([]TopicInfo, error) {
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var present []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			present = append(present, n)
		}
	}
	configs := map[string]map[string]string{}
	if len(present) > 0 {
		rc, err := adm.DescribeTopicConfigs(ctx, present...)
		if err != nil {
			return nil, fmt.Errorf("describe topic configs: %w", err)
		}
		for _, c := range rc {
			m := map[string]string{}
			for _, kv := range c.Configs {
				if kv.Value != nil {
					m[kv.Key] = *kv.Value
				}
			}
			configs[c.Name] = m
		}
	}
	out := make([]TopicInfo, 0, len(names))
	for _, n := range names {
		d, ok := details[n]
		if !ok || d.Err != nil {
			if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("topic %s: %w", n, d.Err)
			}
			out = append(out, TopicInfo{Topic: n})
			continue
		}
		info := TopicInfo{Topic: n, Exists: true, Partitions: len(d.Partitions),
			RetentionMS: configs[n]["retention.ms"], CleanupPolicy: configs[n]["cleanup.policy"]}
		for _, p := range d.Partitions {
			info.Replication = max(info.Replication, len(p.Replicas))
		}
		out = append(out, info)
	}
	return out, nil
}

// ParseTopicOverride reads "NAME:key=value,key=value" (keys partitions,
// replication, retention — a Go duration, "7d", or "forever") onto the spec
// of that name in specs.
func ParseTopicOverride(specs []TopicSpec, s string) error {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return fmt.Errorf("--topic %q: want NAME:key=value[,key=value] (partitions, replication, retention)", s)
	}
	i := -1
	for j := range specs {
		if specs[j].Name == name {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("--topic %q: no topic %s (the topics are %s)", s, name, strings.Join(specNames(specs), ", "))
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "partitions":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 {
				return fmt.Errorf("--topic %q: partitions: %q is not a whole number of at least 1", s, v)
			}
			specs[i].Partitions = int32(n)
		case "replication":
			n, err := strconv.ParseInt(v, 10, 16)
			if err != nil || n < 1 {
				return fmt.Errorf("--topic %q: replication: %q is not a whole number of at least 1", s, v)
			}
			specs[i].Replication = int16(n)
		case "retention":
			d, err := ParseRetention(v)
			if err != nil {
				return fmt.Errorf("--topic %q: retention: %w", s, err)
			}
			specs[i].Retention = d
		default:
			return fmt.Errorf("--topic %q: %q is not partitions, replication or retention", s, k)
		}
	}
	return nil
}

// ParseRetention reads a retention: a Go duration ("36h"), a number of
// days ("7d"), or "forever".
func ParseRetention(v string) (time.Duration, error) {
	if v == "forever" {
		return Forever, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration (36h, 7d or forever)", v)
	}
	return d, nil
}

func specNames(specs []TopicSpec) []string {
	n := make([]string, len(specs))
	for i, s := range specs {
		n[i] = s.Name
	}
	return n
}
