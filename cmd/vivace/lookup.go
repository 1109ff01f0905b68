package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
)

// lookupCommand manages the lookup tables the vivace_lookup mediation rule
// reads. It works on the database directly, like migrate.
func lookupCommand() *cli.Command {
	client := func(required bool) cli.Flag {
		return &cli.StringFlag{Name: "client", Usage: "client (tenant) whose lookup table it is", Required: required}
	}
	name := &cli.StringFlag{Name: "lookup", Usage: "the lookup table's name, as vivace_lookup's lookup field gives it", Required: true}
	return &cli.Command{
		Name:  "lookup",
		Usage: "load and inspect the lookup tables of mediation rules (vivace_lookup)",
		Description: "Works on the database named by DATABASE_URL (default " + store.DefaultDSN + ").\n" +
			"Pipelines see a change within the rule's cache_ttl.",
		Subcommands: []*cli.Command{{
			Name:      "load",
			Usage:     "load a lookup table from CSV: a header, the key column first, then the value columns",
			ArgsUsage: "FILE.csv",
			Description: "Adds the file's entries and changes those whose values differ, in one transaction;\n" +
				"with --replace, entries whose key is not in the file are dropped too. A bad line\n" +
				"(wrong number of fields, empty or repeated key) stops the load, naming file and line,\n" +
				"and changes nothing. Prints {\"entries\",\"inserted\",\"updated\",\"unchanged\",\"deleted\"}.",
			Flags: []cli.Flag{
				client(true), name,
				&cli.BoolFlag{Name: "replace", Usage: "drop the entries whose key is not in the file"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("vivace lookup load: name one CSV file", 2)
				}
				path := c.Args().First()
				res, err := loadLookupFile(c.Context, path, rules.LookupLoad{
					Client: c.String("client"), Lookup: c.String("lookup"), Replace: c.Bool("replace")})
				if err != nil {
					return cli.Exit("vivace lookup load: "+err.Error(), 1)
				}
				return json.NewEncoder(os.Stdout).Encode(res)
			},
		}, {
			Name:      "list",
			Usage:     "print the lookup tables with their number of entries, one JSON object per line",
			ArgsUsage: " ",
			Flags:     []cli.Flag{client(false)},
			Action: func(c *cli.Context) error {
				return lookupExit("list", withStore(c.Context, func(st *store.Store) error {
					list, err := rulestore.New(st).ListLookups(c.Context, c.String("client"))
					if err != nil {
						return err
					}
					enc := json.NewEncoder(os.Stdout)
					for _, l := range list {
						if err := enc.Encode(l); err != nil {
							return err
						}
					}
					return nil
				}))
			},
		}, {
			Name:      "get",
			Usage:     "print the entries of keys, one JSON object per line ({\"key\", \"values\"}; values null: no entry)",
			ArgsUsage: "KEY...",
			Flags:     []cli.Flag{client(true), name},
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("vivace lookup get: name at least one KEY", 2)
				}
				return lookupExit("get", withStore(c.Context, func(st *store.Store) error {
					keys := make([]rules.LookupKey, c.NArg())
					for i, k := range c.Args().Slice() {
						keys[i] = rules.LookupKey{Client: c.String("client"), Key: k}
					}
					got, err := rulestore.New(st).LookupValues(c.Context, c.String("lookup"), keys)
					if err != nil {
						return err
					}
					enc := json.NewEncoder(os.Stdout)
					missing := 0
					for _, k := range keys {
						v, ok := got[k]
						if !ok {
							missing++
						}
						if err := enc.Encode(struct {
							Key    string            `json:"key"`
							Values map[string]string `json:"values"`
						}{k.Key, v}); err != nil {
							return err
						}
					}
					if missing > 0 {
						return fmt.Errorf("%d of %d keys have no entry", missing, len(keys))
					}
					return nil
				}))
			},
		}},
	}
}

func loadLookupFile(ctx context.Context, path string, l rules.LookupLoad) (rules.LookupLoadResult, error) {
	var res rules.LookupLoadResult
	if err := l.Validate(); err != nil {
		return res, err
	}
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	rows, err := rules.NewLookupCSV(path, f)
	if err != nil {
		return res, err
	}
	err = withStore(ctx, func(st *store.Store) error {
		res, err = rulestore.New(st).LoadLookup(ctx, l, rows)
		return err
	})
	return res, err
}

func lookupExit(cmd string, err error) error {
	if err != nil {
		return cli.Exit("vivace lookup "+cmd+": "+err.Error(), 1)
	}
	return nil
}
