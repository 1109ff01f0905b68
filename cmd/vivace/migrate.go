package main

import (
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/store"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "apply the database schema to DATABASE_URL",
		Description: "Applies every pending migration to the database named by DATABASE_URL\n" +
			"(default " + store.DefaultDSN + "). Safe to run from several processes at once.",
		Action: func(c *cli.Context) error {
			dsn := databaseURL()
			if dsn == "" {
				dsn = store.DefaultDSN
			}
			if err := store.Migrate(c.Context, dsn, newLogger("info")); err != nil {
				return cli.Exit("vivace migrate: "+err.Error(), 1)
			}
			return nil
		},
	}
}
