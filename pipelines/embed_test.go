package pipelines

import (
	"os"
	"slices"
	"strings"
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

// TestEveryStreamHasARole: vivace serve --role R runs the streams whose
// "# vivace:role" line names R; a stream without one would run nowhere
// but under --role all.
func TestEveryStreamHasARole(t *testing.T) {
	defs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ingest": "ingest", "mediate": "mediate", "rate": "rate", "exceptions": "rate",
		"catalog": "catalog", "aria_feed": "catalog", "sync": "sync"}
	for _, d := range defs {
		if d.Role != want[d.Name] {
			t.Errorf("stream %s: role %q, want %q", d.Name, d.Role, want[d.Name])
		}
	}
}

// TestEveryKafkaBlockTakesTLSAndSASL: every place a pipeline names the
// brokers also takes VIVACE_KAFKA_TLS and the SASL variables, so that a
// broker behind TLS and SASL (docs/deploy.md) needs no edited YAML.
func TestEveryKafkaBlockTakesTLSAndSASL(t *testing.T) {
	defs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Load(os.DirFS("examples"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append(defs, ex...) {
		brokers := strings.Count(d.YAML, "seed_brokers:")
		for _, v := range []string{"${VIVACE_KAFKA_TLS:false}", "${VIVACE_KAFKA_TLS_CA_FILE:}", "${VIVACE_KAFKA_SASL_MECHANISM:}",
			"${VIVACE_KAFKA_SASL_USERNAME:}", "${VIVACE_KAFKA_SASL_PASSWORD:}"} {
			if n := strings.Count(d.YAML, v); n != brokers {
				t.Errorf("%s: %d seed_brokers, %d of %s", d.Name, brokers, n, v)
			}
		}
	}
}
