package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/app"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/store"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run one or more production roles against DATABASE_URL and the brokers",
		Description: "Runs the roles named by --role (comma-separated: api, ingest, mediate, rate, catalog,\n" +
			"sync, or all) against the database of DATABASE_URL (already migrated: `vivace migrate`)\n" +
			"and the brokers of VIVACE_KAFKA_BROKERS, with nothing embedded. Every process serves\n" +
			"/healthz, /readyz (503 with the reason while the database or the brokers do not answer or\n" +
			"a pipeline is down) and /metrics on --http-addr; the api role serves the whole API there.\n" +
			"Processes of the same role share the partitions through their consumer groups, so a role\n" +
			"scales by running more of them. SIGTERM stops taking work, lets the pipelines finish what\n" +
			"they hold and commit their offsets, and exits. docs/deploy.md describes each role.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "role", EnvVars: []string{"VIVACE_ROLE"}, Required: true,
				Usage: "roles to run: api, ingest, mediate, rate, catalog, sync or all, comma-separated"},
			&cli.StringFlag{Name: "http-addr", Value: ":8080", EnvVars: []string{"VIVACE_HTTP_ADDR"}, Usage: "address of the probes, metrics and (api role) the API"},
			&cli.StringFlag{Name: "brokers", EnvVars: []string{kafkax.EnvBrokers}, Usage: "Kafka/Redpanda seed brokers, comma-separated (required)"},
			&cli.BoolFlag{Name: "kafka-tls", EnvVars: []string{kafkax.EnvTLS}, Usage: "connect to the brokers over TLS"},
			&cli.StringFlag{Name: "kafka-tls-ca-file", EnvVars: []string{kafkax.EnvTLSCAFile}, Usage: "PEM file of the CA to trust for the brokers' certificates (default: the system's roots)"},
			&cli.StringFlag{Name: "kafka-sasl-mechanism", EnvVars: []string{kafkax.EnvSASLMechanism}, Usage: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)"},
			&cli.StringFlag{Name: "kafka-sasl-username", EnvVars: []string{kafkax.EnvSASLUsername}, Usage: "SASL user name"},
			&cli.StringFlag{Name: "kafka-sasl-password", EnvVars: []string{kafkax.EnvSASLPassword}, Usage: "SASL password (better given as the variable than as a flag)"},
			&cli.StringFlag{Name: "data-dir", Value: ".vivace", EnvVars: []string{"VIVACE_DATA_DIR"},
				Usage: "the file archive (files/) and the inbox (inbox/<client>/); the api and ingest roles must share it"},
			&cli.StringFlag{Name: "pipelines", EnvVars: []string{"VIVACE_PIPELINES_DIR"}, Usage: "directory of pipeline YAML files to run instead of the embedded ones"},
			&cli.StringFlag{Name: "clients", EnvVars: []string{"VIVACE_CLIENTS_FILE"}, Usage: "client settings file (column mapping, validation window, bucket source, plugins)"},
			&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"VIVACE_TLS_CERT"}, Usage: "PEM file of the TLS certificate (and chain): the process then speaks HTTPS only, probes included; needs --tls-key"},
			&cli.StringFlag{Name: "tls-key", EnvVars: []string{"VIVACE_TLS_KEY"}, Usage: "PEM file of the TLS certificate's private key"},
			&cli.StringFlag{Name: "public-url", EnvVars: []string{"VIVACE_PUBLIC_URL"}, Usage: "the API's base URL as its clients reach it, for the links in TMF635 hub callbacks (default: the listener's address)"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"VIVACE_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "json", EnvVars: []string{"VIVACE_LOG_FORMAT"}, Usage: "json (one object per line) or text"},
			&cli.BoolFlag{Name: "pprof", Usage: "serve Go profiles under /debug/pprof/ to admin tokens (api role)"},
		},
		Action: untilSignal("vivace serve", runServe),
	}
}

func runServe(ctx context.Context, c *cli.Context) error {
	roles, err := app.ParseRoles(c.String("role"))
	if err != nil {
		return errors.New("--role: " + err.Error())
	}
	log, err := newFormattedLogger(c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	if _, err := api.TLSConfig(c.String("tls-cert"), c.String("tls-key")); err != nil {
		return err
	}
	dsn := databaseURL()
	if dsn == "" {
		return errors.New("DATABASE_URL is not set: serve runs only against a database it is given")
	}
	// serve never migrates: a schema older than the binary's would fail
	// every batch, so it is refused at the start.
	if cur, target, err := store.SchemaVersions(ctx, dsn); err != nil {
		return dbError(dsn, err)
	} else if cur < target {
		return fmt.Errorf("%s is at schema version %d, this binary needs %d: run `vivace migrate` (the migration job) first", targetOf(dsn), cur, target)
	}
	// The flags win over the variables of the same name; the pipelines
	// read the variables, so they get the flags' values.
	vars := map[string]string{
		kafkax.EnvBrokers:       c.String("brokers"),
		kafkax.EnvTLSCAFile:     c.String("kafka-tls-ca-file"),
		kafkax.EnvSASLMechanism: c.String("kafka-sasl-mechanism"),
		kafkax.EnvSASLUsername:  c.String("kafka-sasl-username"),
		kafkax.EnvSASLPassword:  c.String("kafka-sasl-password"),
		"DATABASE_URL":          dsn,
	}
	if c.Bool("kafka-tls") {
		vars[kafkax.EnvTLS] = "true"
	}
	kafka, err := kafkax.ConfigFromVars(func(k string) string { return vars[k] })
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return err
	}
	clientsFile := c.String("clients")
	if clientsFile != "" {
		if clientsFile, err = filepath.Abs(clientsFile); err != nil {
			return err
		}
	}
	vars["VIVACE_DATA_DIR"], vars["VIVACE_CLIENTS_FILE"] = dataDir, clientsFile
	vars["VIVACE_HTTP_ADDR"] = c.String("http-addr")
	if roles.Has(app.RoleIngest) || roles.Has(app.RoleAPI) {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return err
		}
	}
	a, err := app.New(ctx, app.Config{
		Roles:        roles,
		DSN:          dsn,
		Kafka:        kafka,
		HTTPAddr:     c.String("http-addr"),
		DataDir:      dataDir,
		ClientsFile:  clientsFile,
		PipelinesDir: c.String("pipelines"),
		Env:          vars,
		HTTP:         api.HTTPOptions{TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key")},
		PublicURL:    c.String("public-url"),
		Pprof:        c.Bool("pprof"),
		Logger:       log,
	})
	if de := (*app.DatabaseError)(nil); errors.As(err, &de) {
		return dbError(dsn, de.Err)
	} else if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

// untilSignal is the action of a long-running command: run with a context
// that ends on SIGINT or SIGTERM, its error printed after the command's
// name.
func untilSignal(name string, run func(context.Context, *cli.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := run(ctx, c); err != nil {
			return cli.Exit(name+": "+err.Error(), 1)
		}
		return nil
	}
}
