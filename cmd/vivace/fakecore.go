package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/fakecore"
)

func fakeCoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "fake-core",
		Usage: "run a stand-in core billing system (bulk usage API) for demos and tests",
		Description: "Serves the core's bulk_record_usage_m call at POST " + fakecore.Path + "\n" +
			"with the core's checks and error codes, keeps the records by client_record_id (a resend\n" +
			"replaces), reports totals per client, account and usage type at GET /fake/totals and the\n" +
			"records at GET /fake/records, and puts faults into its answers on demand (--faults, or\n" +
			"PUT/PATCH/DELETE /fake/faults while it runs). Prints its base URL on the first line of\n" +
			"standard output. Credentials: --client-no and --auth-key (better: VIVACE_CORE_CLIENT_NO and\n" +
			"VIVACE_CORE_AUTH_KEY, which keep the key out of the process list), and --credential for more\n" +
			"clients. docs/fake-core.md has every endpoint and fault.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8090", EnvVars: []string{"VIVACE_FAKE_CORE_ADDR"}, Usage: "address to listen on (port 0: a free port)"},
			&cli.Int64Flag{Name: "client-no", EnvVars: []string{"VIVACE_CORE_CLIENT_NO"}, Usage: "the core client number allowed to call"},
			&cli.StringFlag{Name: "auth-key", EnvVars: []string{"VIVACE_CORE_AUTH_KEY"}, Usage: "its auth_key"},
			&cli.StringSliceFlag{Name: "credential", EnvVars: []string{"VIVACE_FAKE_CORE_CREDENTIALS"}, Usage: "more clients, as CLIENT_NO=AUTH_KEY (repeat, or comma-separate)"},
			&cli.StringSliceFlag{Name: "accounts", Usage: "the only accounts that exist (others get 1009); default: every account exists"},
			&cli.StringFlag{Name: "faults", EnvVars: []string{"VIVACE_FAKE_CORE_FAULTS"}, Usage: "faults from the start: JSON, or @FILE holding it (docs/fake-core.md)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the fraction faults (same seed, same faults)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug (each call), info (faults), warn or error"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := fakeCoreConfig(c)
			if err != nil {
				return cli.Exit("vivace fake-core: "+err.Error(), 1)
			}
			srv, err := fakecore.Start(c.String("addr"), cfg)
			if err != nil {
				return cli.Exit("vivace fake-core: "+err.Error(), 1)
			}
			fmt.Fprintln(c.App.Writer, srv.URL())
			cfg.Logger.Info("fake core listening", "url", srv.URL(), "api", srv.APIURL(), "clients", len(cfg.Credentials))
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return cli.Exit("vivace fake-core: "+err.Error(), 1)
			}
			return nil
		},
	}
}

func fakeCoreConfig(c *cli.Context) (fakecore.Config, error) {
	cfg := fakecore.Config{Seed: c.Uint64("seed"), Accounts: c.StringSlice("accounts"), Logger: newLogger(c.String("log-level"))}
	var errs []error
	if c.Int64("client-no") != 0 || c.String("auth-key") != "" {
		cfg.Credentials = append(cfg.Credentials, fakecore.Credential{ClientNo: c.Int64("client-no"), AuthKey: c.String("auth-key")})
	}
	for _, s := range c.StringSlice("credential") {
		no, k, ok := strings.Cut(s, "=")
		n, err := strconv.ParseInt(no, 10, 64)
		if !ok || err != nil {
			// Quote only what stands before the key.
			errs = append(errs, fmt.Errorf("--credential %q…: want CLIENT_NO=AUTH_KEY", no))
			continue
		}
		cfg.Credentials = append(cfg.Credentials, fakecore.Credential{ClientNo: n, AuthKey: k})
	}
	if len(cfg.Credentials) == 0 {
		errs = append(errs, errors.New("no credentials: give --client-no and --auth-key (or VIVACE_CORE_CLIENT_NO and VIVACE_CORE_AUTH_KEY)"))
	}
	if spec := c.String("faults"); spec != "" {
		data, label := []byte(spec), "--faults"
		if name, ok := strings.CutPrefix(spec, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return cfg, fmt.Errorf("--faults: %w", err)
			}
			data, label = b, "--faults "+spec
		}
		f, err := fakecore.ParseFaults(fakecore.Faults{}, data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
		}
		cfg.Faults = f
	}
	return cfg, errors.Join(errs...)
}
