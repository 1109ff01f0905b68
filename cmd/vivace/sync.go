package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"
)

// syncCommand runs MUR sync cycles on the running service and shows what
// the sync did.
func syncCommand() *cli.Command {
	timeout := &cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "how long to wait for the core's answers"}
	return &cli.Command{
		Name:  "sync",
		Usage: "run MUR sync cycles to the core billing system, send failed records again, list jobs, batches and failures",
		Description: "Asks the running service (--api, VIVACE_API). docs/sync.md explains the cycle, the\n" +
			"settings (vivace config), the failure codes and resending.",
		Subcommands: []*cli.Command{{
			Name:      "run",
			Usage:     "run one sync cycle now and wait for the core's answers",
			ArgsUsage: " ",
			Description: "Runs a cycle for the client (or for every client with MURs to sync), waits until every\n" +
				"batch has its answer and prints {\"aggregates\",\"batches\",\"synced\",\"failed\",\"murs\"}:\n" +
				"aggregated records sent, batches, records synced and failed, MURs covered. Exits 0 when\n" +
				"the cycle ran (records the core refused count as failed), 1 when it could not run to its\n" +
				"end (the core unreachable after its retries, credentials refused, no answer in time),\n" +
				"2 when another cycle for the client was running and did not end within --timeout.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "the client (tenant); default: every client with MURs to sync"},
				timeout, apiFlag(), tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				body := map[string]any{"client": c.String("client"), "timeout": c.Duration("timeout").String()}
				return syncCall(c, "run", "/api/v1/sync/run", body)
			},
		}, {
			Name:      "retry",
			Usage:     "send failed aggregated records again, with the same client_record_id",
			ArgsUsage: " ",
			Description: "After a fix (an account created at the core, credentials corrected), sends again the\n" +
				"failed records of one batch (--batch) or every failed record of the client (--failed),\n" +
				"in new batches, each record with the id the core knows it by, and waits for the answers.\n" +
				"Prints and exits as vivace sync run does; 1 also when there was nothing to send.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Usage: "the client (tenant)", Required: true},
				&cli.StringFlag{Name: "batch", Usage: "the batch whose failed records to send"},
				&cli.BoolFlag{Name: "failed", Usage: "every failed record of the client"},
				timeout, apiFlag(), tokenFlag(), dataDirFlag(),
			},
			Action: func(c *cli.Context) error {
				if (c.String("batch") == "") == !c.Bool("failed") {
					return cli.Exit("vivace sync retry: give either --batch ID or --failed", 2)
				}
				body := map[string]any{"client": c.String("client"), "batch_id": c.String("batch"),
					"failed": c.Bool("failed"), "timeout": c.Duration("timeout").String()}
				return syncCall(c, "retry", "/api/v1/sync/retry", body)
			},
		}, {
			Name:      "jobs",
			Usage:     "print sync jobs (cycles), newest first, one JSON object per line",
			ArgsUsage: " ",
			Flags:     []cli.Flag{&cli.StringFlag{Name: "client", Usage: "only this client's"}, limitFlag(100), apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				return syncList(c, "jobs", "/api/v1/sync/jobs", url.Values{"client": {c.String("client")}}, "jobs")
			},
		}, {
			Name:      "batches",
			Usage:     "print sync batches, newest first, one JSON object per line",
			ArgsUsage: " ",
			Flags: []cli.Flag{&cli.StringFlag{Name: "client", Usage: "only this client's"},
				&cli.StringFlag{Name: "status", Usage: "only ready, published, sending, done or failed ones"},
				&cli.StringFlag{Name: "job", Usage: "only this job's"}, limitFlag(100), apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				q := url.Values{"client": {c.String("client")}, "status": {c.String("status")}, "job_id": {c.String("job")}}
				return syncList(c, "batches", "/api/v1/sync/batches", q, "batches")
			},
		}, {
			Name:      "failed",
			Usage:     "print failed aggregated records with the core's code and message, one JSON object per line",
			ArgsUsage: " ",
			Flags: []cli.Flag{&cli.StringFlag{Name: "client", Usage: "only this client's"},
				&cli.StringFlag{Name: "batch", Usage: "only this batch's"}, limitFlag(1000), apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				q := url.Values{"client": {c.String("client")}, "batch_id": {c.String("batch")}}
				return syncList(c, "failed", "/api/v1/sync/failed", q, "records")
			},
		}, {
			Name:      "totals",
			Usage:     "print the client's MURs summed per account, usage type and currency: all, and synced",
			ArgsUsage: " ",
			Flags:     []cli.Flag{&cli.StringFlag{Name: "client", Usage: "the client (tenant)", Required: true}, apiFlag(), tokenFlag(), dataDirFlag()},
			Action: func(c *cli.Context) error {
				return syncList(c, "totals", "/api/v1/sync/totals", url.Values{"client": {c.String("client")}}, "totals")
			},
		}},
	}
}

func limitFlag(def int) cli.Flag {
	return &cli.IntFlag{Name: "limit", Value: def, Usage: "at most this many"}
}

// syncCall posts a run or retry and prints the counts; details of what
// went wrong go to standard error.
func syncCall(c *cli.Context, what, path string, body map[string]any) error {
	b, _ := json.Marshal(body)
	cl := newAPIClient(c)
	req, err := cl.request(http.MethodPost, path, bytes.NewReader(b))
	if err != nil {
		return cli.Exit("vivace sync "+what+": "+err.Error(), 1)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.http.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("vivace sync %s: %v (is vivace running at %s?)", what, err, cl.base), 1)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	var ans struct {
		Aggregates int   `json:"aggregates"`
		Batches    int   `json:"batches"`
		Synced     int   `json:"synced"`
		Failed     int   `json:"failed"`
		MURs       int64 `json:"murs"`
		Cycles     []struct {
			Client string `json:"client"`
			JobID  string `json:"job_id"`
			Error  string `json:"error"`
		} `json:"cycles"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.Cycles == nil && ans.Error == "" {
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		return cli.Exit(fmt.Sprintf("vivace sync %s: %v", what, cl.apiError(resp)), 1)
	}
	if ans.Cycles != nil {
		out, _ := json.Marshal(struct {
			Aggregates int   `json:"aggregates"`
			Batches    int   `json:"batches"`
			Synced     int   `json:"synced"`
			Failed     int   `json:"failed"`
			MURs       int64 `json:"murs"`
		}{ans.Aggregates, ans.Batches, ans.Synced, ans.Failed, ans.MURs})
		fmt.Fprintln(c.App.Writer, string(out))
	}
	for _, cy := range ans.Cycles {
		if cy.Error != "" {
			fmt.Fprintf(c.App.ErrWriter, "client %s, job %s: %s\n", cy.Client, cy.JobID, cy.Error)
		}
	}
	switch {
	case resp.StatusCode == http.StatusConflict:
		return cli.Exit("vivace sync "+what+": "+ans.Error, 2)
	case resp.StatusCode/100 != 2:
		return cli.Exit("vivace sync "+what+": "+ans.Error, 1)
	}
	return nil
}

// syncList prints one JSON object per line of the answer's list field.
func syncList(c *cli.Context, what, path string, q url.Values, field string) error {
	if c.IsSet("limit") || c.Int("limit") != 0 {
		q.Set("limit", fmt.Sprint(c.Int("limit")))
	}
	for k, v := range q {
		if len(v) == 1 && v[0] == "" {
			q.Del(k)
		}
	}
	var got map[string][]json.RawMessage
	if err := newAPIClient(c).getJSON(path+"?"+q.Encode(), &got); err != nil {
		return cli.Exit("vivace sync "+what+": "+err.Error(), 1)
	}
	for _, item := range got[field] {
		fmt.Fprintln(c.App.Writer, string(item))
	}
	return nil
}
