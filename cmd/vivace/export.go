package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/urfave/cli/v2"
)

func exportCommand(what, desc string) *cli.Command {
	return &cli.Command{
		Name:  what,
		Usage: "work with " + desc,
		Subcommands: []*cli.Command{{
			Name:      "export",
			Usage:     "print " + desc + " of a client, one JSON object per line (or CSV)",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "client (tenant) whose " + what + " to print", Required: true},
				&cli.StringFlag{Name: "format", Value: "jsonl", Usage: "jsonl or csv"},
				&cli.StringFlag{Name: "file-id", Usage: "only those of this file"},
				apiFlag(),
				tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				f := c.String("format")
				if f != "jsonl" && f != "csv" {
					return cli.Exit(fmt.Sprintf("vivace %s export: --format %q: use jsonl or csv", what, f), 2)
				}
				q := url.Values{"client": {c.String("client")}, "format": {f}}
				if id := c.String("file-id"); id != "" {
					q.Set("file_id", id)
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
