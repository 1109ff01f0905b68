package kafkax

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBrokers(t *testing.T) {
	got := Brokers([]string{" a:9092, b:9092 ,", "", "c:9092"})
	if !slices.Equal(got, []string{"a:9092", "b:9092", "c:9092"}) {
		t.Fatalf("Brokers = %q", got)
	}
}

// TestValidateListsEveryProblem, each naming its field.
func TestValidateListsEveryProblem(t *testing.T) {
	err := Config{SeedBrokers: []string{" , "}, SASL: []SASL{{Mechanism: "GSSAPI"}, {Mechanism: "PLAIN", Username: "u"}}}.Validate()
	for _, want := range []string{"seed_brokers: at least one broker address is required",
		`sasl[0].mechanism: "GSSAPI" is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`, "sasl[0].username: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "sasl[1]") {
		t.Errorf("a valid entry reported: %v", err)
	}
	if _, err := (Config{}).Opts(); err == nil {
		t.Error("Opts of an empty config: no error")
	}
	opts, err := Config{SeedBrokers: []string{"a:1"}, ClientID: "vivace",
		SASL: []SASL{{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}}}.Opts()
	if err != nil || len(opts) != 3 {
		t.Fatalf("Opts: %d options, %v", len(opts), err)
	}
}

// TestEnsureTopics creates what is missing and leaves what exists, on a
// real (in-process) broker.
func TestEnsureTopics(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, TopicUsageRaw))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	opts, err := Config{SeedBrokers: broker.ListenAddrs()}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 { // the second time everything exists
		if err := EnsureTopics(ctx, cl, 4, 1, DefaultTopics()...); err != nil {
			t.Fatal(err)
		}
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range DefaultTopics() {
		d, ok := details[topic]
		want := 4
		if topic == TopicUsageRaw {
			want = 2 // existed before, left as it was
		}
		if !ok || len(d.Partitions) != want {
			t.Errorf("topic %s: present %v, %d partitions, want %d", topic, ok, len(d.Partitions), want)
		}
	}
}

func TestConfigFromVars(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "brokers only", vars: map[string]string{EnvBrokers: "a:9092, b:9092"}, check: func(t *testing.T, c Config) {
			if len(c.SeedBrokers) != 2 || c.TLS != nil || c.SASL != nil {
				t.Errorf("got %+v, want two brokers, no TLS, no SASL", c)
			}
		}},
		{name: "cloud", vars: map[string]string{EnvBrokers: "x.cloud:9092", EnvTLS: "true", EnvSASLMechanism: "SCRAM-SHA-256",
			EnvSASLUsername: "u", EnvSASLPassword: "p"}, check: func(t *testing.T, c Config) {
			if c.TLS == nil || len(c.SASL) != 1 || c.SASL[0].Username != "u" || c.SASL[0].Password != "p" {
				t.Errorf("got %+v, want TLS and one SCRAM mechanism", c)
			}
		}},
		{name: "no brokers", vars: map[string]string{}, wantErr: "seed_brokers"},
		{name: "bad tls", vars: map[string]string{EnvBrokers: "a:1", EnvTLS: "yes please"}, wantErr: EnvTLS},
		{name: "bad ca", vars: map[string]string{EnvBrokers: "a:1", EnvTLS: "true", EnvTLSCAFile: ca}, wantErr: "no PEM certificate"},
		{name: "bad mechanism", vars: map[string]string{EnvBrokers: "a:1", EnvSASLMechanism: "GSSAPI", EnvSASLUsername: "u"}, wantErr: "GSSAPI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromVars(func(k string) string { return tc.vars[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
