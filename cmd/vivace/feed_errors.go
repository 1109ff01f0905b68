package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/feed"
)

func apiFlag() cli.Flag {
	return &cli.StringFlag{Name: "api", Value: defaultAPI, EnvVars: []string{"VIVACE_API"}, Usage: "Vivace API base URL"}
}

// feedErrorsCommand works the sync errors: events that failed, and events
// pending on an entity that has not arrived.
func feedErrorsCommand() *cli.Command {
	return &cli.Command{
		Name:  "errors",
		Usage: "list, reprocess and edit feed events that failed or wait for an entity",
		Subcommands: []*cli.Command{{
			Name:      "list",
			Usage:     "print failed (or, with --pending, pending; with --warnings, warned) events, one JSON object per line",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "only this client's"},
				&cli.BoolFlag{Name: "pending", Usage: "list pending events (waiting for an entity) instead of failed ones"},
				&cli.BoolFlag{Name: "warnings", Usage: "list events of any outcome that carried fields Vivace ignores, with the warnings naming them"},
				&cli.StringFlag{Name: "code", Usage: "only this code (INVALID_EVENT, MISSING_REFERENCE, REFERENCE_FAILED)"},
				&cli.IntFlag{Name: "limit", Value: 1000, Usage: "at most this many"},
				apiFlag(),
				tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				q := url.Values{"outcome": {string(feed.Failed)}, "limit": {fmt.Sprint(c.Int("limit"))}}
				switch {
				case c.Bool("pending") && c.Bool("warnings"):
					return cli.Exit("vivace feed errors list: --pending or --warnings, not both", 2)
				case c.Bool("pending"):
					q.Set("outcome", string(feed.Pending))
				case c.Bool("warnings"):
					q.Del("outcome")
					q.Set("warnings", "true")
				}
				for _, k := range []string{"client", "code"} {
					if v := c.String(k); v != "" {
						q.Set(k, v)
					}
				}
				var got struct {
					Events []api.FeedEvent `json:"events"`
				}
				if err := newAPIClient(c).do("GET", "/api/v1/feed/events?"+q.Encode(), nil, &got); err != nil {
					return cli.Exit("vivace feed errors list: "+err.Error(), 1)
				}
				enc := json.NewEncoder(os.Stdout)
				for _, e := range got.Events {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				fmt.Fprintf(os.Stderr, "%d events\n", len(got.Events))
				return nil
			},
		}, {
			Name:      "reprocess",
			Usage:     "apply failed or pending events again, by id or all of a client's",
			ArgsUsage: "[EVENT_ID...]",
			Description: "Prints each event's new outcome, one JSON object per line. An event whose entity\n" +
				"still is not there stays pending; one that is still invalid stays failed with the reason.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "with --all: the client whose events to reprocess"},
				&cli.BoolFlag{Name: "all", Usage: "every failed and pending event of --client"},
				&cli.StringFlag{Name: "code", Usage: "with --all: only events with this code"},
				apiFlag(),
				tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				req := map[string]any{}
				switch {
				case c.NArg() > 0 && c.Bool("all"):
					return cli.Exit("vivace feed errors reprocess: name event ids or --all, not both", 2)
				case c.NArg() > 0:
					req["event_ids"] = c.Args().Slice()
				case c.Bool("all") && c.String("client") != "":
					req["client"], req["code"] = c.String("client"), c.String("code")
				default:
					return cli.Exit("vivace feed errors reprocess: name event ids, or --all --client C", 2)
				}
				body, _ := json.Marshal(req)
				var got struct {
					Outcomes []api.FeedOutcome `json:"outcomes"`
				}
				if err := newAPIClient(c).do("POST", "/api/v1/feed/events/reprocess", bytes.NewReader(body), &got); err != nil {
					return cli.Exit("vivace feed errors reprocess: "+err.Error(), 1)
				}
				return printOutcomes(got.Outcomes)
			},
		}, {
			Name:      "edit",
			Usage:     "replace a failed or pending event with an edited one and reprocess it",
			ArgsUsage: "[--file F] EVENT_ID",
			Description: "Reads the edited event (the whole event, as `vivace feed errors list` prints its payload)\n" +
				"from --file or standard input. The event as first received is kept on record.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "file", Value: "-", Usage: "edited event JSON; - for standard input"},
				apiFlag(),
				tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("vivace feed errors edit: name one EVENT_ID", 2)
				}
				var r io.Reader = os.Stdin
				if p := c.String("file"); p != "-" {
					f, err := os.Open(p)
					if err != nil {
						return cli.Exit("vivace feed errors edit: "+err.Error(), 1)
					}
					defer f.Close()
					r = f
				}
				body, err := io.ReadAll(r)
				if err != nil {
					return cli.Exit("vivace feed errors edit: "+err.Error(), 1)
				}
				var out api.FeedOutcome
				if err := newAPIClient(c).do("PUT", "/api/v1/feed/events/"+url.PathEscape(c.Args().First()),
					bytes.NewReader(body), &out); err != nil {
					return cli.Exit("vivace feed errors edit: "+err.Error(), 1)
				}
				return printOutcomes([]api.FeedOutcome{out})
			},
		}},
	}
}

// printOutcomes prints outcomes as JSON lines and fails when one is not
// applied or ignored.
func printOutcomes(outs []api.FeedOutcome) error {
	enc := json.NewEncoder(os.Stdout)
	var bad []string
	for _, o := range outs {
		_ = enc.Encode(o)
		if feed.Result(o.Outcome).Repairable() {
			bad = append(bad, o.EventID)
		}
	}
	if len(bad) > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d events still %s: %s", len(bad), len(outs), "failed or pending", strings.Join(bad, ", ")), 1)
	}
	return nil
}

// feedHistoryCommand prints what an entity looked like.
func feedHistoryCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "print the applied changes of one catalog entity, or the one in effect at a time",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "client", Required: true, Usage: "client"},
			&cli.StringFlag{Name: "entity", Required: true, Usage: "account, usage_type, plan, subscription or discount"},
			&cli.StringFlag{Name: "id", Required: true, Usage: "the entity's id"},
			&cli.StringFlag{Name: "at", Usage: "RFC 3339 time: print only the version in effect then"},
			apiFlag(),
			tokenFlag(), dataDirFlag(),
		},
		Action: func(c *cli.Context) error {
			q := url.Values{"client": {c.String("client")}, "entity": {c.String("entity")}, "entity_id": {c.String("id")}}
			if at := c.String("at"); at != "" {
				q.Set("at", at)
			}
			var got struct {
				Events []api.FeedEvent `json:"events"`
			}
			if err := newAPIClient(c).do("GET", "/api/v1/feed/history?"+q.Encode(), nil, &got); err != nil {
				return cli.Exit("vivace feed history: "+err.Error(), 1)
			}
			enc := json.NewEncoder(os.Stdout)
			for _, e := range got.Events {
				_ = enc.Encode(e)
			}
			return nil
		},
	}
}
