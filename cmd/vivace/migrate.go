package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/devenv"
	"vivace.dev/vivace/internal/store"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "apply the database schema to DATABASE_URL",
		Description: "Applies every pending migration to the database named by DATABASE_URL\n" +
			"(default " + store.DefaultDSN + "). Safe to run from several processes at once.\n" +
			"With --create, the database is created first when it does not exist (the user needs\n" +
			"the right to create databases; the server's postgres database is used to do it).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "create", Usage: "create the database first if it does not exist"},
		},
		Action: func(c *cli.Context) error {
			dsn := databaseURL()
			if dsn == "" {
				dsn = store.DefaultDSN
			}
			if c.Bool("create") {
				if err := createDatabase(c, dsn); err != nil {
					return cli.Exit("vivace migrate: "+err.Error(), 1)
				}
			}
			if err := store.Migrate(c.Context, dsn, newLogger("info")); err != nil {
				return cli.Exit("vivace migrate: "+err.Error(), 1)
			}
			return nil
		},
	}
}

// createDatabase creates the database dsn names, connecting to the same
// server's postgres database to do it.
func createDatabase(c *cli.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return fmt.Errorf("DATABASE_URL names no database to create")
	}
	admin := *u
	admin.Path = "/postgres"
	_, err = devenv.EnsureDatabase(c.Context, admin.String(), name)
	return err
}
