package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/urfave/cli/v2"
)

// exportFilters are the flags of an export and the API parameter each
// becomes, for murs or exceptions.
func exportFilters(what string) ([]cli.Flag, map[string]string) {
	when, status := "usage_time", "sync status (unsynced, batched, synced, failed)"
	params := map[string]string{"file-id": "file_id", "account": "account_id", "from": "from", "to": "to", "status": "sync_status"}
	if what == "exceptions" {
		when, status = "when recorded", "status (open, reprocessing, resolved, discarded)"
		params["status"], params["code"], params["stage"] = "status", "code", "stage"
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "file-id", Usage: "only those of this file"},
		&cli.StringFlag{Name: "account", Usage: "only those of this account id"},
		&cli.StringFlag{Name: "from", Usage: "only those with " + when + " at or after this time (RFC 3339, or a date: midnight UTC)"},
		&cli.StringFlag{Name: "to", Usage: "only those with " + when + " before this time (RFC 3339, or a date)"},
		&cli.StringFlag{Name: "status", Usage: "only those in this " + status},
	}
	if what == "exceptions" {
		flags = append(flags,
			&cli.StringFlag{Name: "code", Usage: "only this exception code (docs/exceptions.md)"},
			&cli.StringFlag{Name: "stage", Usage: "only those of this stage (ingest, mediate, rate, exceptions)"})
	}
	return flags, params
}

func exportCommand(what, desc string) *cli.Command {
	filters, params := exportFilters(what)
	return &cli.Command{
		Name:  what,
		Usage: "work with " + desc,
		Subcommands: []*cli.Command{{
			Name:      "export",
			Usage:     "print " + desc + " of a client, one JSON object per line (or CSV)",
			ArgsUsage: " ",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "client (tenant) whose " + what + " to print", Required: true},
				&cli.StringFlag{Name: "format", Value: "jsonl", Usage: "jsonl or csv"},
				apiFlag(),
				tokenFlag(), dataDirFlag(),
			}, filters...),
			Action: func(c *cli.Context) error {
				f := c.String("format")
				if f != "jsonl" && f != "csv" {
					return cli.Exit(fmt.Sprintf("vivace %s export: --format %q: use jsonl or csv", what, f), 2)
				}
				q := url.Values{"client": {c.String("client")}, "format": {f}}
				for flag, param := range params {
					if v := c.String(flag); v != "" {
						q.Set(param, v)
					}
				}
				cl := newAPIClient(c)
				req, err := cl.request(http.MethodGet, "/api/v1/"+what+"?"+q.Encode(), nil)
				if err != nil {
					return cli.Exit(fmt.Sprintf("vivace %s export: %v", what, err), 2)
				}
				resp, err := cl.http.Do(req)
				if err != nil {
					return cli.Exit(fmt.Sprintf("vivace %s export: %v (is vivace running at %s?)", what, err, cl.base), 1)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return cli.Exit(fmt.Sprintf("vivace %s export: %v", what, cl.apiError(resp)), 1)
				}
				if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
					return cli.Exit(fmt.Sprintf("vivace %s export: %v", what, err), 1)
				}
				return nil
			},
		}},
	}
}
