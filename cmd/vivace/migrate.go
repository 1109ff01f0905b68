package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/store"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "apply the database schema to DATABASE_URL",
		ArgsUsage: " ",
		Description: "Applies every pending migration to the database named by DATABASE_URL\n" +
			"(default " + store.DefaultDSN + ", the database vivace dev uses).\n" +
			"Safe to run from several processes at once. With --create, the database is created\n" +
			"first when it does not exist (the user needs the right to create databases; the\n" +
			"server's postgres database is used to do it).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "create", Usage: "create the database first if it does not exist"},
		},
		Action: func(c *cli.Context) error {
			dsn := databaseDSN()
			if c.Bool("create") {
				created, err := ensureDatabase(c.Context, dsn)
				if err != nil {
					return cli.Exit("vivace migrate: "+err.Error(), 1)
				}
				if created {
					fmt.Fprintf(os.Stderr, "vivace migrate: created %s\n", targetOf(dsn))
				}
			}
			if err := store.Migrate(c.Context, dsn, newLogger("info")); err != nil {
				return cli.Exit("vivace migrate: "+dbError(dsn, err).Error(), 1)
			}
			return nil
		},
	}
}
