package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/loadgen"
)

// output opens the --out file, or standard output.
func output(path string) (io.Writer, func() error, error) {
	if path == "" || path == "-" {
		return os.Stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func feedGenerateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "write a generated catalog as feed events (JSON Lines), for tests, demos and benchmarks",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "client", Value: "bench", Usage: "client the catalog belongs to"},
			&cli.IntFlag{Name: "accounts", Value: 1000, Usage: "accounts, each with one subscription"},
			&cli.IntFlag{Name: "plans", Value: 10, Usage: "plans, each pricing every usage type"},
			&cli.StringFlag{Name: "currency", Value: "USD", Usage: "currencies of accounts and rates, comma-separated; accounts take them in turn"},
			&cli.StringFlag{Name: "models", Value: strings.Join(loadgen.Models, ","), Usage: "pricing models the plans cycle through, comma-separated"},
			&cli.BoolFlag{Name: "no-discounts", Usage: "leave discounts out"},
			&cli.IntFlag{Name: "trouble-every", Usage: "follow every n-th event with a repeated, stale, newer, malformed, unknown-op or wrongly typed one, in turn, and print the outcomes to expect on standard error (0: none)"},
			&cli.BoolFlag{Name: "extras", Usage: "add fields Vivace does not use everywhere (envelope extras, names, descriptions, unit prices on stairstep tiers, random fields): the catalog must apply as the one without them"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "with --extras, the random seed of the extra fields"},
			&cli.StringFlag{Name: "out", Usage: "file to write (default: standard output)"},
		},
		Action: func(c *cli.Context) error {
			w, closeFn, err := output(c.String("out"))
			if err != nil {
				return cli.Exit("vivace feed generate: "+err.Error(), 1)
			}
			var tally loadgen.Tally
			err = loadgen.Catalog(w, loadgen.CatalogOptions{Client: c.String("client"), Accounts: c.Int("accounts"),
				Plans: c.Int("plans"), Currencies: splitList(c.String("currency")), Models: splitList(c.String("models")),
				NoDiscounts: c.Bool("no-discounts"), TroubleEvery: c.Int("trouble-every"), Tally: &tally,
				Extras: c.Bool("extras"), Seed: c.Uint64("seed")})
			if cerr := closeFn(); err == nil {
				err = cerr
			}
			if err != nil {
				return cli.Exit("vivace feed generate: "+err.Error(), 1)
			}
			if c.Int("trouble-every") > 0 {
				b, _ := json.Marshal(tally)
				fmt.Fprintf(os.Stderr, "expected: %s\n", b)
			}
			return nil
		},
	}
}

func usageCommand() *cli.Command {
	return &cli.Command{
		Name:  "usage",
		Usage: "work with usage files",
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "write a generated CSV usage file matching `vivace feed generate`'s catalog",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Value: "bench", Usage: "client, used in the record ids"},
				&cli.IntFlag{Name: "records", Value: 1000000, Usage: "records to write"},
				&cli.IntFlag{Name: "accounts", Value: 1000, Usage: "accounts the records spread over"},
				&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed; the same seed writes the same file (record ids include it)"},
				&cli.IntFlag{Name: "bad-every", Usage: "make every n-th record invalid (0: none)"},
				&cli.IntFlag{Name: "unknown-every", Usage: "give every n-th record an account the catalog lacks (0: none)"},
				&cli.IntFlag{Name: "hot-accounts", Usage: "the first N accounts get --hot-percent of the records (0: no skew)"},
				&cli.IntFlag{Name: "hot-percent", Usage: "share of the records, in percent, that go to the --hot-accounts"},
				&cli.DurationFlag{Name: "spread", Value: 24 * time.Hour, Usage: "usage times spread over this period"},
				&cli.TimestampFlag{Name: "start", Layout: time.RFC3339, Usage: "earliest usage time, RFC 3339 (default: spread before now)"},
				&cli.StringFlag{Name: "out", Usage: "file to write (default: standard output)"},
			},
			Action: func(c *cli.Context) error {
				w, closeFn, err := output(c.String("out"))
				if err != nil {
					return cli.Exit("vivace usage generate: "+err.Error(), 1)
				}
				o := loadgen.UsageOptions{Client: c.String("client"), Records: c.Int("records"),
					Accounts: c.Int("accounts"), Seed: c.Uint64("seed"), BadEvery: c.Int("bad-every"), Spread: c.Duration("spread"),
					UnknownEvery: c.Int("unknown-every"), HotAccounts: c.Int("hot-accounts"), HotPercent: c.Int("hot-percent")}
				if t := c.Timestamp("start"); t != nil {
					o.Start = t.UTC()
				}
				err = loadgen.Usage(w, o)
				if cerr := closeFn(); err == nil {
					err = cerr
				}
				if err != nil {
					return cli.Exit(fmt.Sprintf("vivace usage generate: %v", err), 1)
				}
				return nil
			},
		}},
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
