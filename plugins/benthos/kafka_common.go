package benthos

import (
	"context"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/kafkax"
)

// kafkaConnFields are the connection fields both Kafka components share.
func kafkaConnFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringListField("seed_brokers").
			Description("Addresses of brokers to bootstrap from; an entry may hold several, comma-separated.").
			Example([]string{"127.0.0.1:9092"}).
			Example([]string{"redpanda-0:9092,redpanda-1:9092"}),
		service.NewStringField("client_id").Description("Client id reported to the brokers.").Default("vivace"),
		service.NewTLSToggledField("tls"),
		service.NewObjectListField("sasl",
			service.NewStringEnumField("mechanism", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512").
				Description("SASL mechanism."),
			service.NewStringField("username").Description("User name."),
			service.NewStringField("password").Description("Password.").Secret().Default(""),
		).Description("SASL authentication; several entries are tried in order.").Optional().Advanced(),
		service.NewStringField("sasl_mechanism").
			Description("One SASL mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) given as plain fields, so that a pipeline can take it from variables; empty for none. Tried after the `sasl` list.").
			Default("").Advanced(),
		service.NewStringField("sasl_username").Description("User name for `sasl_mechanism`.").Default("").Advanced(),
		service.NewStringField("sasl_password").Description("Password for `sasl_mechanism`.").Secret().Default("").Advanced(),
	}
}

// kafkaConn reads the shared connection fields.
func kafkaConn(conf *service.ParsedConfig) (kafkax.Config, error) {
	var c kafkax.Config
	var err error
	if c.SeedBrokers, err = conf.FieldStringList("seed_brokers"); err != nil {
		return c, err
	}
	if c.ClientID, err = conf.FieldString("client_id"); err != nil {
		return c, err
	}
	tlsConf, enabled, err := conf.FieldTLSToggled("tls")
	if err != nil {
		return c, err
	}
	if enabled {
		c.TLS = tlsConf
	}
	if conf.Contains("sasl") {
		list, err := conf.FieldObjectList("sasl")
		if err != nil {
			return c, err
		}
		for _, s := range list {
			var m kafkax.SASL
			if m.Mechanism, err = s.FieldString("mechanism"); err != nil {
				return c, err
			}
			if m.Username, err = s.FieldString("username"); err != nil {
				return c, err
			}
			if m.Password, err = s.FieldString("password"); err != nil {
				return c, err
			}
			c.SASL = append(c.SASL, m)
		}
	}
	mech, err := conf.FieldString("sasl_mechanism")
	if err != nil {
		return c, err
	}
	if mech != "" {
		m := kafkax.SASL{Mechanism: mech}
		if m.Username, err = conf.FieldString("sasl_username"); err != nil {
			return c, err
		}
		if m.Password, err = conf.FieldString("sasl_password"); err != nil {
			return c, err
		}
		c.SASL = append(c.SASL, m)
	}
	return c, c.Validate()
}

// connectClient builds a client and checks that a broker answers, so that
// an unreachable cluster fails Connect, which Benthos retries, rather than
// every read or write after it.
func connectClient(ctx context.Context, opts []kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka brokers unreachable: %w", err)
	}
	return cl, nil
}
