package kafkax

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
)

// The variables that say how to reach the brokers. The pipelines read the
// same ones (docs/deploy.md, "Connecting to Redpanda").
const (
	EnvBrokers       = "VIVACE_KAFKA_BROKERS"
	EnvTLS           = "VIVACE_KAFKA_TLS"
	EnvTLSCAFile     = "VIVACE_KAFKA_TLS_CA_FILE"
	EnvSASLMechanism = "VIVACE_KAFKA_SASL_MECHANISM"
	EnvSASLUsername  = "VIVACE_KAFKA_SASL_USERNAME"
	EnvSASLPassword  = "VIVACE_KAFKA_SASL_PASSWORD"
)

// ConfigFromVars builds a Config from the variables above, read with
// lookup: brokers comma-separated, TLS on when VIVACE_KAFKA_TLS is true
// (trusting the system's roots, or only the CA file's when one is named),
// one SASL mechanism when VIVACE_KAFKA_SASL_MECHANISM is set. Errors name
// the variable.
func ConfigFromVars(lookup func(string) string) (Config, error) {
	c := Config{SeedBrokers: Brokers([]string{lookup(EnvBrokers)})}
	if v := lookup(EnvTLS); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: %q is not true or false", EnvTLS, v)
		}
		if on {
			c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			if f := lookup(EnvTLSCAFile); f != "" {
				pem, err := os.ReadFile(f)
				if err != nil {
					return c, fmt.Errorf("%s: %w", EnvTLSCAFile, err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return c, fmt.Errorf("%s: %s holds no PEM certificate", EnvTLSCAFile, f)
				}
				c.TLS.RootCAs = pool
			}
		}
	}
	if m := lookup(EnvSASLMechanism); m != "" {
		c.SASL = []SASL{{Mechanism: m, Username: lookup(EnvSASLUsername), Password: lookup(EnvSASLPassword)}}
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", EnvBrokers+" and the other VIVACE_KAFKA_* variables", err)
	}
	return c, nil
}
