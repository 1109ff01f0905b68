package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/api"
)

// exceptionsCommand shows, edits, reprocesses and discards exceptions of
// a running Vivace, and exports them (docs/cli.md, "vivace exceptions").
func exceptionsCommand() *cli.Command {
	c := exportCommand("exceptions", "exceptions (records that did not become MURs)")
	c.Usage = "show, edit, reprocess, discard and export exceptions (records that did not become MURs)"
	c.Subcommands = append(c.Subcommands, &cli.Command{
		Name:      "show",
		Usage:     "print exceptions, newest first, one JSON object per line; with ids, each with its history",
		ArgsUsage: "[EXCEPTION_ID...]",
		Description: "Without ids, prints the exceptions the filters select (at most --limit), then their\n" +
			"counts by code and stage on stderr. With ids, prints each one with the record as it\n" +
			"arrived, as edited, and its history.",
		Flags: append(workFilters(),
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many (without ids)"},
			apiFlag(), tokenFlag(), dataDirFlag()),
		Action: showExceptions,
	}, &cli.Command{
		Name:      "edit",
		Usage:     "change an open exception's record; it is checked as the pipeline checks it",
		ArgsUsage: "EXCEPTION_ID",
		Description: "Starts from the record's fields as vivace exceptions show prints them (\"fields\"), sets\n" +
			"each --set field=value and drops each --unset field, or takes the whole record from\n" +
			"--record (a JSON object of strings; - for stdin). A record that fails the checks is\n" +
			"refused with the code and field at fault, exit 1. Prints the exception; reprocess it\n" +
			"to send it.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "set", Usage: "field=value to set (repeatable)"},
			&cli.StringSliceFlag{Name: "unset", Usage: "field to remove (repeatable)"},
			&cli.StringFlag{Name: "record", Usage: "file with the whole record as a JSON object (- for stdin)"},
			apiFlag(), tokenFlag(), dataDirFlag(),
		},
		Action: editException,
	}, &cli.Command{
		Name:      "reprocess",
		Usage:     "send open exceptions' records back through the pipeline, to the stage that failed them",
		ArgsUsage: "[EXCEPTION_ID...]",
		Description: "By ids, or by filter (--file, --code, --stage, …; --all for every open exception the\n" +
			"token covers), as a job whose progress goes to stderr until it ends (--no-wait: print the\n" +
			"job and return). Prints the outcome (ids sent, ids skipped with why) or the job.",
		Flags: append(workFilters(),
			&cli.BoolFlag{Name: "all", Usage: "every open exception the filters (or the token) select"},
			&cli.BoolFlag{Name: "no-wait", Usage: "start the job and return"},
			apiFlag(), tokenFlag(), dataDirFlag()),
		Action: func(c *cli.Context) error { return workExceptions(c, "reprocess") },
	}, &cli.Command{
		Name:        "discard",
		Usage:       "mark open exceptions discarded, not to be billed, with a reason",
		ArgsUsage:   "[EXCEPTION_ID...]",
		Description: "Selects as reprocess does; --reason is required and kept with each exception.",
		Flags: append(workFilters(),
			&cli.StringFlag{Name: "reason", Usage: "why they are discarded", Required: true},
			&cli.BoolFlag{Name: "all", Usage: "every open exception the filters (or the token) select"},
			&cli.BoolFlag{Name: "no-wait", Usage: "start the job and return"},
			apiFlag(), tokenFlag(), dataDirFlag()),
		Action: func(c *cli.Context) error { return workExceptions(c, "discard") },
	})
	return c
}

// workFilters are the filters of show, reprocess and discard, and the
// API parameter each becomes.
func workFilters() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "client", Usage: "only this client's"},
		&cli.StringFlag{Name: "file", Aliases: []string{"file-id"}, Usage: "only those of this file (its id)"},
		&cli.StringFlag{Name: "code", Usage: "only this exception code (docs/exceptions.md)"},
		&cli.StringFlag{Name: "stage", Usage: "only those of this stage (ingest, mediate, rate, exceptions)"},
		&cli.StringFlag{Name: "status", Usage: "only those in this status (open, reprocessing, resolved, discarded; show only)"},
		&cli.StringFlag{Name: "account", Usage: "only those whose record has this account_id"},
		&cli.StringFlag{Name: "from", Usage: "only those recorded at or after this time (RFC 3339, or a date)"},
		&cli.StringFlag{Name: "to", Usage: "only those recorded before this time"},
	}
}

var workParams = map[string]string{"client": "client", "file": "file_id", "code": "code", "stage": "stage",
	"status": "status", "account": "account_id", "from": "from", "to": "to"}

func workFilter(c *cli.Context) map[string]string {
	f := map[string]string{}
	for flag, param := range workParams {
		if v := c.String(flag); v != "" {
			f[param] = v
		}
	}
	return f
}

func showExceptions(c *cli.Context) error {
	cl := newAPIClient(c)
	if c.NArg() > 0 {
		bad := 0
		for _, id := range c.Args().Slice() {
			var d api.ExceptionDetail
			if err := cl.getJSON("/api/v1/exceptions/"+url.PathEscape(id), &d); err != nil {
				fmt.Fprintf(os.Stderr, "vivace exceptions show: %s: %v\n", id, err)
				bad++
				continue
			}
			if err := printLines([]api.ExceptionDetail{d}); err != nil {
				return err
			}
		}
		if bad > 0 {
			return cli.Exit("", 1)
		}
		return nil
	}
	q := url.Values{}
	for k, v := range workFilter(c) {
		q.Set(k, v)
	}
	limit := c.Int("limit")
	if limit < 1 {
		return cli.Exit("vivace exceptions show: --limit must be at least 1", 2)
	}
	n := 0
	for after := ""; n < limit; {
		page := min(limit-n, 1000)
		q.Set("limit", fmt.Sprint(page))
		if after != "" {
			q.Set("after", after)
		}
		var p api.ExceptionPage
		if err := cl.getJSON("/api/v1/exceptions/list?"+q.Encode(), &p); err != nil {
			return cli.Exit("vivace exceptions show: "+err.Error(), 1)
		}
		if err := printLines(p.Exceptions); err != nil {
			return err
		}
		n += len(p.Exceptions)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	q.Del("limit")
	q.Del("after")
	var counts struct {
		Counts []api.ExceptionCount `json:"counts"`
		Total  int64                `json:"total"`
	}
	if err := cl.getJSON("/api/v1/exceptions/counts?"+q.Encode(), &counts); err != nil {
		return cli.Exit("vivace exceptions show: "+err.Error(), 1)
	}
	var parts []string
	for _, k := range counts.Counts {
		parts = append(parts, fmt.Sprintf("%s/%s %d", k.Stage, k.Code, k.Count))
	}
	fmt.Fprintf(os.Stderr, "%d shown of %d", n, counts.Total)
	if len(parts) > 0 {
		fmt.Fprintf(os.Stderr, ": %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(os.Stderr)
	return nil
}

func editException(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("vivace exceptions edit: name one EXCEPTION_ID", 2)
	}
	id := c.Args().First()
	cl := newAPIClient(c)
	var record json.RawMessage
	switch path := c.String("record"); {
	case path != "" && (len(c.StringSlice("set")) > 0 || len(c.StringSlice("unset")) > 0):
		return cli.Exit("vivace exceptions edit: --record replaces the whole record; use it without --set and --unset", 2)
	case path != "":
		var b []byte
		var err error
		if path == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(path)
		}
		if err != nil {
			return cli.Exit("vivace exceptions edit: --record: "+err.Error(), 2)
		}
		record = bytes.TrimSpace(b)
	default:
		if len(c.StringSlice("set")) == 0 && len(c.StringSlice("unset")) == 0 {
			return cli.Exit("vivace exceptions edit: give --set field=value, --unset field or --record FILE", 2)
		}
		var d api.ExceptionDetail
		if err := cl.getJSON("/api/v1/exceptions/"+url.PathEscape(id), &d); err != nil {
			return cli.Exit("vivace exceptions edit: "+err.Error(), 1)
		}
		fields := d.Fields
		if fields == nil {
			fields = map[string]string{}
		}
		for _, kv := range c.StringSlice("set") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return cli.Exit(fmt.Sprintf("vivace exceptions edit: --set %q: write field=value", kv), 2)
			}
			fields[strings.TrimSpace(k)] = v
		}
		for _, k := range c.StringSlice("unset") {
			delete(fields, k)
		}
		record, _ = json.Marshal(fields)
	}
	body, _ := json.Marshal(map[string]json.RawMessage{"record": record})
	var d api.ExceptionDetail
	if err := cl.do("POST", "/api/v1/exceptions/"+url.PathEscape(id), bytes.NewReader(body), &d); err != nil {
		return cli.Exit("vivace exceptions edit: "+err.Error(), 1)
	}
	return printLines([]api.ExceptionDetail{d})
}

// workExceptions reprocesses or discards by ids or by filter, following a
// job to its end unless --no-wait.
func workExceptions(c *cli.Context, action string) error {
	req := map[string]any{}
	filter := workFilter(c)
	switch {
	case c.NArg() > 0 && (len(filter) > 0 || c.Bool("all")):
		return cli.Exit(fmt.Sprintf("vivace exceptions %s: name ids or filters, not both", action), 2)
	case c.NArg() > 0:
		req["ids"] = c.Args().Slice()
	case len(filter) == 0 && !c.Bool("all"):
		return cli.Exit(fmt.Sprintf("vivace exceptions %s: name EXCEPTION_IDs, a filter (--file, --code, --stage, …) or --all", action), 2)
	default:
		if filter["status"] != "" {
			return cli.Exit(fmt.Sprintf("vivace exceptions %s: --status: only open exceptions are worked", action), 2)
		}
		req["filter"], req["all"] = filter, c.Bool("all")
	}
	if action == "discard" {
		req["reason"] = c.String("reason")
	}
	body, _ := json.Marshal(req)
	cl := newAPIClient(c)
	var out api.ExceptionOutcome
	if err := cl.do("POST", "/api/v1/exceptions/"+action, bytes.NewReader(body), &out); err != nil {
		return cli.Exit(fmt.Sprintf("vivace exceptions %s: %v", action, err), 1)
	}
	if out.Job == nil {
		if err := printLines([]api.ExceptionOutcome{out}); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%d %s, %d skipped\n", len(out.Done), map[string]string{"reprocess": "sent again", "discard": "discarded"}[action], len(out.Skipped))
		if len(out.Skipped) > 0 && c.NArg() > 0 {
			return cli.Exit("", 1)
		}
		return nil
	}
	j := *out.Job
	tty := isatty.IsTerminal(os.Stderr.Fd())
	for !c.Bool("no-wait") && j.Status == "running" {
		time.Sleep(500 * time.Millisecond)
		if err := cl.getJSON("/api/v1/exceptions/jobs/"+url.PathEscape(j.JobID), &j); err != nil {
			return cli.Exit(fmt.Sprintf("vivace exceptions %s: job %s: %v", action, j.JobID, err), 1)
		}
		if tty {
			fmt.Fprintf(os.Stderr, "\rjob %s: %d taken, %d done, %d skipped", j.JobID, j.Taken, j.Done, j.Skipped)
		}
	}
	if tty && !c.Bool("no-wait") {
		fmt.Fprintln(os.Stderr)
	}
	if err := printLines([]api.ExceptionJob{j}); err != nil {
		return err
	}
	if j.Status == "failed" {
		return cli.Exit(fmt.Sprintf("vivace exceptions %s: job %s failed: %s", action, j.JobID, j.Error), 1)
	}
	return nil
}
