package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTopicsCommands runs vivace topics against vivace dev's broker: the
// topics dev made are described and left as they are, and a topic renamed
// by its variable is created with the partitions and retention asked.
func TestTopicsCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := startDev(t, "")

	out, errOut, code := d.run(ctx, "topics", "describe")
	if code != 0 {
		t.Fatalf("topics describe: exit %d: %s", code, errOut)
	}
	type info struct {
		Topic       string `json:"topic"`
		Exists      bool   `json:"exists"`
		Partitions  int    `json:"partitions"`
		Replication int    `json:"replication"`
		RetentionMS string `json:"retention_ms"`
	}
	described := decodeLines[info](t, out)
	if len(described) != 6 {
		t.Fatalf("topics describe printed %d topics, want 6: %s", len(described), out)
	}
	for _, i := range described {
		if !i.Exists || i.Partitions != 4 || i.Replication != 1 {
			t.Errorf("topic %+v: want dev's, with 4 partitions and 1 replica", i)
		}
	}

	out, errOut, code = d.run(ctx, "topics", "create", "--replication", "1")
	if code != 0 {
		t.Fatalf("topics create: exit %d: %s", code, errOut)
	}
	for _, r := range decodeLines[struct{ Topic, Status string }](t, out) {
		if r.Status != "exists" {
			t.Errorf("topic %s: %s, want exists (dev made it; create leaves it as it is)", r.Topic, r.Status)
		}
	}

	// A topic renamed by its variable is created as asked.
	run := func(args ...string) (string, string, int) {
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = append(os.Environ(), "VIVACE_KAFKA_BROKERS="+d.Kafka, "VIVACE_TOPIC_RAW=other.raw")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), 0
	}
	out, errOut, code = run("topics", "create", "--replication", "1", "--topic", "other.raw:partitions=3,retention=2d")
	if code != 0 || !strings.Contains(out, `{"topic":"other.raw","status":"created"}`) {
		t.Fatalf("topics create with VIVACE_TOPIC_RAW: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, _ = run("topics", "describe")
	if !strings.Contains(out, `{"topic":"other.raw","exists":true,"partitions":3,"replication":1,"retention_ms":"172800000"`) {
		t.Errorf("the renamed topic is not as asked: %s", out)
	}
	// A bad override is refused before anything is created.
	if _, errOut, code := run("topics", "create", "--topic", "usage.raw:partitions=0"); code != 2 || !strings.Contains(errOut, "partitions") {
		t.Errorf("a bad --topic: exit %d, %q; want 2 naming partitions", code, errOut)
	}
}
