package pipelines

import (
	"slices"
	"testing"
)

func TestOptionalStreamsSayWhatTheyRequire(t *testing.T) {
	defs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, d := range defs {
		got[d.Name] = d.Requires
	}
	if !slices.Equal(got["aria_feed"], []string{"VIVACE_ARIA_FEED_URL"}) {
		t.Fatalf("aria_feed requires %q", got["aria_feed"])
	}
	for _, name := range []string{"ingest", "mediate", "rate", "catalog", "exceptions", "sync"} {
		if r, ok := got[name]; !ok || len(r) != 0 {
			t.Fatalf("stream %s: present %v, requires %q; the core streams always run", name, ok, r)
		}
	}
}
