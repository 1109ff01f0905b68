package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/books"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/checkstore"
)

// checkCommand verifies the books: that every record read ended in
// exactly one place and that the counters, allowances and sync state
// agree with the MURs. It works on the database directly, like migrate.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "verify the books: file counts, one MUR per record id, counters, allowances, synced MURs",
		ArgsUsage: " ",
		Description: "Works on the database named by DATABASE_URL (default " + store.DefaultDSN + "), in one\n" +
			"read-only snapshot, while the pipelines run. Checks that every done file's records =\n" +
			"MURs + exceptions + filtered, that each file's counts match its rows, one MUR per client\n" +
			"and record id, every usage counter = the sum of its MURs' quantities (account, usage type,\n" +
			"month), every allowance = the free units its MURs took, and every synced MUR is in an\n" +
			"aggregated record the core acknowledged. Prints a report (--json: one JSON object).\n" +
			"Exit status: 0 the books balance, 1 a finding, 2 the check could not run.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "client", Usage: "check one client only"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object"},
			&cli.IntFlag{Name: "samples", Value: 20, Usage: "findings listed per invariant (all are counted)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("vivace check: takes no arguments (--client C checks one client)", 2)
			}
			var rep books.Report
			err := withStore(c.Context, func(st *store.Store) error {
				var err error
				rep, err = books.Check(c.Context, checkstore.New(st), books.Options{Client: c.String("client"), Samples: c.Int("samples")})
				return err
			})
			if err != nil {
				return cli.Exit("vivace check: could not check the books: "+err.Error(), 2)
			}
			if c.Bool("json") {
				if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
					return err
				}
			} else if err := rep.WriteText(os.Stdout); err != nil {
				return err
			}
			if !rep.Clean() {
				return cli.Exit(fmt.Sprintf("vivace check: %d finding(s)", rep.Findings()), 1)
			}
			return nil
		},
	}
}
