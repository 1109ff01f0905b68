package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/settings"
)

// configCommand reads and changes the system settings through the
// running service, which records who changed what.
func configCommand() *cli.Command {
	var keys []string
	for _, d := range settings.Defs() {
		keys = append(keys, fmt.Sprintf("  %-24s %-8s default %-7s %s", d.Key, d.Type, d.Default, d.Help))
	}
	return &cli.Command{
		Name:  "config",
		Usage: "read or change a system setting (vivace config get|set|reset KEY [VALUE])",
		Description: "System settings are not per client; a change is checked (an unknown key or a value of the\n" +
			"wrong type is an error), recorded in the audit log with who made it, and taken up by the\n" +
			"next sync cycle or call without a restart. Asks the running service (--api, VIVACE_API).\n" +
			"Keys:\n" + strings.Join(keys, "\n"),
		Subcommands: []*cli.Command{{
			Name:      "get",
			Usage:     "print a setting (every setting without KEY) as JSON: key, value, default, who set it and when",
			ArgsUsage: "[KEY]",
			Flags:     []cli.Flag{apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				cl := newAPIClient(c)
				if c.NArg() == 0 {
					var got struct {
						Settings []json.RawMessage `json:"settings"`
					}
					if err := cl.getJSON("/api/v1/settings", &got); err != nil {
						return cli.Exit("vivace config get: "+err.Error(), 1)
					}
					for _, s := range got.Settings {
						fmt.Fprintln(c.App.Writer, string(s))
					}
					return nil
				}
				if c.NArg() != 1 {
					return cli.Exit("vivace config get: name one KEY (or none for all)", 2)
				}
				var got json.RawMessage
				if err := cl.getJSON("/api/v1/settings/"+url.PathEscape(c.Args().First()), &got); err != nil {
					return cli.Exit("vivace config get: "+err.Error(), 1)
				}
				fmt.Fprintln(c.App.Writer, string(got))
				return nil
			},
		}, {
			Name:      "set",
			Usage:     "change a setting: a JSON value (500, true, \"5m\") or, for a duration, the bare text (5m)",
			ArgsUsage: "KEY VALUE",
			Flags:     []cli.Flag{apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				if c.NArg() != 2 {
					return cli.Exit("vivace config set: want KEY VALUE", 2)
				}
				key := c.Args().Get(0)
				// Checked here too, so that a bad value is refused with the
				// same words even before the service is asked.
				v, err := settings.Parse(key, c.Args().Get(1))
				if err != nil {
					return cli.Exit("vivace config set: "+err.Error(), 1)
				}
				body, _ := json.Marshal(map[string]json.RawMessage{"value": v})
				var got json.RawMessage
				if err := newAPIClient(c).do("PUT", "/api/v1/settings/"+url.PathEscape(key), bytes.NewReader(body), &got); err != nil {
					return cli.Exit("vivace config set: "+err.Error(), 1)
				}
				fmt.Fprintln(c.App.Writer, string(got))
				return nil
			},
		}, {
			Name:      "reset",
			Usage:     "put a setting back to its default",
			ArgsUsage: "KEY",
			Flags:     []cli.Flag{apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("vivace config reset: name one KEY", 2)
				}
				var got json.RawMessage
				if err := newAPIClient(c).do("DELETE", "/api/v1/settings/"+url.PathEscape(c.Args().First()), nil, &got); err != nil {
					return cli.Exit("vivace config reset: "+err.Error(), 1)
				}
				fmt.Fprintln(c.App.Writer, string(got))
				return nil
			},
		}},
	}
}
