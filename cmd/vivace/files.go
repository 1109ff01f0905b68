package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/api"
)

// filesCommand follows and works the file registry of a running Vivace
// (docs/cli.md, "vivace files").
func filesCommand() *cli.Command {
	return &cli.Command{
		Name:  "files",
		Usage: "list, show, wait for and cancel usage files",
		Subcommands: []*cli.Command{{
			Name:      "list",
			Usage:     "print the files received, newest first, one JSON object per line",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "only this client's"},
				&cli.StringFlag{Name: "status", Usage: "only files in this status (received, processing, done, failed, rejected)"},
				&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many (1 to 10000)"},
				apiFlag(), tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				q := url.Values{"limit": {fmt.Sprint(c.Int("limit"))}}
				for _, k := range []string{"client", "status"} {
					if v := c.String(k); v != "" {
						q.Set(k, v)
					}
				}
				var list []api.File
				if err := newAPIClient(c).getJSON("/api/v1/files?"+q.Encode(), &list); err != nil {
					return cli.Exit("vivace files list: "+err.Error(), 1)
				}
				if err := printLines(list); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "%d files\n", len(list))
				return nil
			},
		}, {
			Name:      "show",
			Usage:     "print files' entries in the registry, one JSON object per line",
			ArgsUsage: "FILE_ID...",
			Flags:     []cli.Flag{apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				return eachFile(c, "show", func(cl *apiClient, id string) (bool, error) {
					var f api.File
					if err := cl.getJSON("/api/v1/files/"+url.PathEscape(id), &f); err != nil {
						return false, err
					}
					return true, printLines([]api.File{f})
				})
			},
		}, {
			Name:      "wait",
			Usage:     "follow files until they are done, failed or rejected, and print their final counts",
			ArgsUsage: "FILE_ID...",
			Description: "Prints one JSON line per file, as vivace ingest --wait does:\n" +
				`{"file_id","name","status","records","murs","exceptions","filtered"}` + "\n" +
				"(with \"split\" and \"reason\" when there are any); progress goes to stderr.\n" +
				"Exits non-zero when a file failed, was rejected or was not final within --timeout.",
			Flags: []cli.Flag{
				&cli.DurationFlag{Name: "timeout", Value: time.Hour, Usage: "give up on a file after this long"},
				apiFlag(), tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				tty := isatty.IsTerminal(os.Stderr.Fd())
				return eachFile(c, "wait", func(cl *apiClient, id string) (bool, error) {
					var st fileStatus
					if err := cl.getJSON("/api/v1/files/"+url.PathEscape(id), &st); err != nil {
						return false, err
					}
					st, err := follow(cl, st, c.Duration("timeout"), tty)
					line, _ := json.Marshal(st.result())
					fmt.Println(string(line))
					if err != nil {
						return false, err
					}
					return st.Status == "done", nil
				})
			},
		}, {
			Name:      "cancel",
			Usage:     "fail files on purpose, with the reason, and stop reading them",
			ArgsUsage: "FILE_ID...",
			Description: "Each file, received or being processed, becomes failed at once with the reason\n" +
				"\"cancelled by <you>: <reason>\"; its reading stops at the next batch. The records read before\n" +
				"still end as MURs, exceptions or filtered records and are counted; the file's records\n" +
				"become how many were read, and the reason says where reading stopped (docs/cli.md).\n" +
				"Prints each file's entry; exits non-zero when a file is not there or is final already.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "reason", Usage: "why the files are cancelled (kept with each file)", Required: true},
				apiFlag(), tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				body, _ := json.Marshal(map[string]string{"reason": c.String("reason")})
				return eachFile(c, "cancel", func(cl *apiClient, id string) (bool, error) {
					var f api.File
					if err := cl.do("POST", "/api/v1/files/"+url.PathEscape(id)+"/cancel", strings.NewReader(string(body)), &f); err != nil {
						return false, err
					}
					return true, printLines([]api.File{f})
				})
			},
		}},
	}
}

// eachFile runs fn for each FILE_ID argument; an error is reported naming
// the file and the others go on. It exits 1 when fn failed or said not ok
// for any, 2 without an id.
func eachFile(c *cli.Context, sub string, fn func(cl *apiClient, id string) (ok bool, err error)) error {
	if c.NArg() == 0 {
		return cli.Exit(fmt.Sprintf("vivace files %s: name at least one FILE_ID", sub), 2)
	}
	cl := newAPIClient(c)
	bad := 0
	for _, id := range c.Args().Slice() {
		ok, err := fn(cl, id)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vivace files %s: %s: %v\n", sub, id, err)
		}
		if err != nil || !ok {
			bad++
		}
	}
	if bad > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

// printLines writes each value as one JSON line on standard output.
func printLines[T any](vs []T) error {
	enc := json.NewEncoder(os.Stdout)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}
