package feed

import (
	"strings"
	"testing"

	"vivace.dev/vivace/internal/msgcheck"
)

// FuzzEventMessages: whatever a feed line holds, the reason it is not an
// event, or not a valid one, is in the line's terms, never Go's.
func FuzzEventMessages(f *testing.F) {
	for _, s := range []string{
		`[1,2]`, `"text"`, `12`, `null`, `{"event_id":`, `{"event_id":1}`, `{"version":"3"}`, `{"occurred_at":"yesterday"}`,
		`{"event_id":"e","client":"c","entity":"plan","entity_id":"P","version":1,"op":"upsert","data":[1]}`,
		`{"event_id":"e","client":"c","entity":"thing","entity_id":"P","version":-1,"op":"merge","extra":{"a":[1]}}`,
		`{"a":1} {"b":2}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := Parse([]byte(line))
		if err == nil {
			err = e.Validate(nil)
		}
		if err == nil {
			return
		}
		if w := msgcheck.Internals(err.Error()); w != "" {
			t.Fatalf("%q: speaks of Go (%q): %v", line, w, err)
		}
	})
}

func TestEventMessagesSayWhatTheLineHolds(t *testing.T) {
	for line, want := range map[string]string{
		`[1,2]`:           "not a feed event: a JSON array where an event object was expected",
		`{"version":"3"}`: "version: a JSON string where a whole number was expected",
		`{"event_id":`:    "the JSON ends before an event object is complete",
	} {
		_, err := Parse([]byte(line))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", line, err, want)
		}
	}
}
