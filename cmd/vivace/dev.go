package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/app"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/devenv"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/store"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run everything in one process on embedded defaults",
		Description: "Starts an embedded Kafka-compatible broker, connects to PostgreSQL (DATABASE_URL, its\n" +
			"database created when it does not exist; without it, the --database database on the server\n" +
			"at 127.0.0.1:5432, or on a private cluster under --data-dir started from the local\n" +
			"PostgreSQL binaries), applies the schema, runs every pipeline, serves the API, health and\n" +
			"metrics on --http-addr, watches <data-dir>/inbox/<client>/ for usage files, polls the\n" +
			"bucket source of each client that has one in the --clients settings, and syncs MURs to the\n" +
			"core billing system every mur_sync.interval (--core-url, else a built-in fake core).\n" +
			"At start it makes sure of a local admin token (every client) in <data-dir>/token, readable\n" +
			"by its owner only, which the other commands use when given neither --token nor VIVACE_TOKEN.\n" +
			"The API listens on 127.0.0.1 unless --http-addr says otherwise (\":8080\": every interface).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http-addr", Value: "127.0.0.1:8080", Usage: "address of the API, console, health and metrics (\":8080\" listens on every interface)"},
			&cli.StringFlag{Name: "kafka-addr", Value: "127.0.0.1:9092", Usage: "address of the embedded broker"},
			&cli.StringFlag{Name: "data-dir", Value: ".vivace", EnvVars: []string{"VIVACE_DATA_DIR"}, Usage: "where the broker, the file archive, the inbox, the local admin token and a private database live"},
			&cli.StringFlag{Name: "pipelines", Usage: "directory of pipeline YAML files to run instead of the embedded ones"},
			&cli.StringFlag{Name: "clients", EnvVars: []string{"VIVACE_CLIENTS_FILE"}, Usage: "client settings file (column mapping, validation window, bucket source)"},
			&cli.StringFlag{Name: "database", Value: targetOf(store.DefaultDSN).Name, Usage: "database name to use when DATABASE_URL is not set (created when missing)"},
			&cli.BoolFlag{Name: "reset", Usage: "start from empty: drop the --database database and the data directory first (not allowed with DATABASE_URL)"},
			&cli.StringFlag{Name: "core-url", EnvVars: []string{"VIVACE_CORE_URL"},
				Usage: "core billing API base URL for MUR sync (default: a built-in fake core on a free port; its URL goes to <data-dir>/" + FakeCoreURLFile + ")"},
			&cli.IntFlag{Name: "partitions", Value: 4, Usage: "partitions of each topic the embedded broker creates"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"VIVACE_TLS_CERT"}, Usage: "PEM file of the API's TLS certificate (and chain): the API then speaks HTTPS only; needs --tls-key"},
			&cli.StringFlag{Name: "tls-key", EnvVars: []string{"VIVACE_TLS_KEY"}, Usage: "PEM file of the TLS certificate's private key"},
			&cli.BoolFlag{Name: "pprof", Usage: "serve Go profiles under /debug/pprof/ on --http-addr (for performance work; keep off where the address is reachable by others)"},
		},
		Action: untilSignal("vivace dev", runDev),
	}
}

func runDev(ctx context.Context, c *cli.Context) error {
	log := newLogger(c.String("log-level"))
	devenv.TuneGC() // the process lives as long as the command: nothing to put back
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return err
	}
	if c.Bool("reset") {
		if databaseURL() != "" {
			return errors.New("--reset drops a database, so it only works on the one dev manages: unset DATABASE_URL")
		}
		log.Warn("reset: removing the data directory", "dir", dataDir)
		if err := os.RemoveAll(dataDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	clientsFile := c.String("clients")
	if clientsFile != "" {
		if clientsFile, err = filepath.Abs(clientsFile); err != nil {
			return err
		}
		if _, err := clientcfg.Open(clientsFile); err != nil {
			return err
		}
	}

	// The HTTP address and certificate are checked first: failing after
	// the database and broker are up would waste the operator's time.
	if _, err := api.TLSConfig(c.String("tls-cert"), c.String("tls-key")); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("http-addr"))
	if err != nil {
		return fmt.Errorf("http address %s: %w (pass --http-addr)", c.String("http-addr"), err)
	}
	defer ln.Close()

	broker, err := devenv.StartBroker(ctx, devenv.BrokerConfig{
		Addr:       c.String("kafka-addr"),
		DataDir:    filepath.Join(dataDir, "kafka"),
		Topics:     kafkax.DefaultTopics(),
		Partitions: int32(c.Int("partitions")),
		Logger:     log.With("component", "broker"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := broker.Close(); err != nil {
			log.Error("broker close", "err", err)
		}
	}()
	log.Info("kafka broker ready", "addr", broker.Addr())

	dsn, stopDB, err := devDatabase(ctx, log, dataDir, c.String("database"), c.Bool("reset"))
	if err != nil {
		return err
	}
	defer stopDB()
	if err := store.Migrate(ctx, dsn, log); err != nil {
		return dbError(dsn, err)
	}

	settings, err := clientcfg.Open(clientsFile)
	if err != nil {
		return err
	}
	core, err := startDevCore(c.String("core-url"), dataDir, settings, log.With("component", "fake-core"))
	if err != nil {
		return err
	}
	defer core.close()

	a, err := app.New(ctx, app.Config{
		Roles:        app.Roles{app.RoleAll},
		DSN:          dsn,
		Kafka:        kafkax.Config{SeedBrokers: []string{broker.Addr()}},
		Listener:     ln,
		DataDir:      dataDir,
		ClientsFile:  clientsFile,
		PipelinesDir: c.String("pipelines"),
		Env: map[string]string{
			"DATABASE_URL":          dsn,
			"VIVACE_KAFKA_BROKERS":  broker.Addr(),
			"VIVACE_CLIENTS_FILE":   clientsFile,
			"VIVACE_DATA_DIR":       dataDir,
			"VIVACE_CORE_URL":       core.URL,
			"VIVACE_CORE_CLIENT_NO": core.ClientNo,
			"VIVACE_CORE_AUTH_KEY":  core.AuthKey,
			"VIVACE_HTTP_ADDR":      ln.Addr().String(),
			"VIVACE_KAFKA_ADDR":     broker.Addr(),
			"VIVACE_PIPELINES_FROM": c.String("pipelines"),
		},
		HTTP:   api.HTTPOptions{TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key")},
		Pprof:  c.Bool("pprof"),
		Logger: log,
	})
	if de := (*app.DatabaseError)(nil); errors.As(err, &de) {
		return dbError(dsn, de.Err)
	} else if err != nil {
		return err
	}
	defer a.Close()
	if err := localAdminToken(ctx, a.Tokens, dataDir, log); err != nil {
		return err
	}
	log.Info("vivace dev is starting; stop with Ctrl-C", "api", a.Addr(), "pipelines", a.Pipelines())
	return a.Run(ctx)
}

// localAdminToken makes sure that <dataDir>/token holds a good admin
// token for every client: the one there when it still is, else a new one
// (named local-admin). The file is its owner's only.
func localAdminToken(ctx context.Context, tokens *auth.Service, dataDir string, log *slog.Logger) error {
	path := filepath.Join(dataDir, localTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		p, err := tokens.Authenticate(ctx, strings.TrimSpace(string(b)))
		if err == nil && p.Role == auth.Admin && p.AllClients() {
			log.Info("local admin token", "file", path, "token", p.TokenID)
			return os.Chmod(path, 0o600)
		}
		if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
			return err
		}
	}
	t, secret, err := tokens.Create(ctx, "vivace dev", auth.NewToken{Name: "local-admin", Role: auth.Admin, Clients: []string{auth.AllClients}})
	if err != nil {
		return fmt.Errorf("local admin token: %w", err)
	}
	tmp, err := os.CreateTemp(dataDir, ".token-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(secret + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	log.Info("local admin token created", "file", path, "token", t.ID)
	return nil
}

// devDatabase picks the database: DATABASE_URL as given, created when the
// server says it does not exist; otherwise a database named name on the
// local server, or on a private cluster under dataDir when nothing
// listens on 127.0.0.1:5432.
func devDatabase(ctx context.Context, log *slog.Logger, dataDir, name string, reset bool) (string, func(), error) {
	if dsn := databaseURL(); dsn != "" {
		created, err := ensureDatabase(ctx, dsn)
		if err != nil {
			return "", nil, err
		}
		if created {
			log.Info("database created", "database", targetOf(dsn).Name, "server", targetOf(dsn).Server)
		}
		return dsn, func() {}, nil
	}
	admin, err := adminDSN(store.DefaultDSN)
	if err != nil {
		return "", nil, err
	}
	stop := func() {}
	if !devenv.Listening(ctx, "127.0.0.1:5432") {
		log.Info("no PostgreSQL on 127.0.0.1:5432: starting a private cluster", "dir", filepath.Join(dataDir, "postgres"))
		pg, err := devenv.StartPostgres(ctx, devenv.PGConfig{DataDir: filepath.Join(dataDir, "postgres"), Logger: log.With("component", "postgres")})
		if err != nil {
			return "", nil, err
		}
		admin = pg.DSN()
		stop = func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pg.Stop(sctx); err != nil {
				log.Error("postgres stop", "err", err)
			}
		}
	}
	if reset {
		if err := dropDatabase(ctx, admin, name); err != nil {
			stop()
			return "", nil, err
		}
	}
	dsn, err := devenv.EnsureDatabase(ctx, admin, name)
	if err != nil {
		stop()
		return "", nil, err
	}
	log.Info("database ready", "database", name, "server", hostOf(dsn))
	return dsn, stop, nil
}

func dropDatabase(ctx context.Context, admin, name string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func hostOf(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "?"
	}
	return u.Host
}
