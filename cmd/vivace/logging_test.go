package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// TestJSONLogsOneValuePerKey: a key given at several levels (as Benthos
// gives "path") appears once in the line, with its last value.
func TestJSONLogsOneValuePerKey(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(&lastWins{inner: slog.NewJSONHandler(&b, nil)})
	log.With("stream", "rate", "path", "root").With("path", "root.output").Info("active", "label", "rate", "path", "root.output.x")
	line := b.Bytes()
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		seen[k.(string)]++
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	if seen["path"] != 1 || m["path"] != "root.output.x" || m["stream"] != "rate" || m["label"] != "rate" {
		t.Errorf("line %s: want one path (the last), stream and label", line)
	}
}
