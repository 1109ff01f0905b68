package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/files"
)

const defaultAPI = "http://127.0.0.1:8080"

// fileStatus is the part of the API's file object the CLI prints.
type fileStatus struct {
	FileID     string `json:"file_id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	Records    *int64 `json:"records"`
	Split      int64  `json:"split"`
	MURs       int64  `json:"murs"`
	Exceptions int64  `json:"exceptions"`
	Filtered   int64  `json:"filtered"`
}

func (f fileStatus) final() bool {
	return files.Status(f.Status).Final()
}

// result is the one JSON line printed per file.
type result struct {
	FileID     string `json:"file_id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Records    int64  `json:"records"`
	MURs       int64  `json:"murs"`
	Exceptions int64  `json:"exceptions"`
	Filtered   int64  `json:"filtered"`
	Split      int64  `json:"split,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

func (f fileStatus) result() result {
	r := result{FileID: f.FileID, Name: f.Name, Status: f.Status, MURs: f.MURs, Exceptions: f.Exceptions,
		Filtered: f.Filtered, Split: f.Split, Reason: f.Reason}
	if f.Records != nil {
		r.Records = *f.Records
	}
	return r
}

func ingestCommand() *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "submit usage files to a running Vivace",
		ArgsUsage: "FILE...",
		Description: "Uploads each file over HTTP for a client. With --wait, follows each file until it\n" +
			"is done (progress on a terminal, plain lines otherwise) and prints one JSON line per file:\n" +
			`{"file_id","name","status","records","murs","exceptions","filtered"}` + "\n" +
			"(records counts what the file's lines became: a line that mediation split into n\n" +
			"records counts n, and \"split\" says how many records splitting added).\n" +
			"Exits non-zero when a file is rejected (a duplicate, or not a usage file) or fails.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "client", Usage: "client (tenant) the files belong to", Required: true},
			apiFlag(),
			tokenFlag(), dataDirFlag(),
			&cli.BoolFlag{Name: "wait", Usage: "wait until each file is processed and print its final counts"},
			&cli.DurationFlag{Name: "timeout", Value: time.Hour, Usage: "with --wait, give up after this long"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("vivace ingest: name at least one FILE", 2)
			}
			cl := newAPIClient(c)
			tty := isatty.IsTerminal(os.Stderr.Fd())
			failed := 0
			for _, path := range c.Args().Slice() {
				st, err := upload(cl, c.String("client"), path)
				if err != nil {
					fmt.Fprintf(os.Stderr, "vivace ingest: %s: %v\n", path, err)
					failed++
					continue
				}
				if c.Bool("wait") && !st.final() {
					if st, err = follow(cl, st, c.Duration("timeout"), tty); err != nil {
						fmt.Fprintf(os.Stderr, "vivace ingest: %s: %v\n", path, err)
						failed++
					}
				}
				line, _ := json.Marshal(st.result())
				fmt.Println(string(line))
				if s := files.Status(st.Status); s == files.Rejected || s == files.Failed {
					failed++
				}
			}
			if failed > 0 {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}

func upload(cl *apiClient, client, path string) (fileStatus, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileStatus{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fileStatus{}, err
	}
	if info.IsDir() {
		return fileStatus{}, errors.New("is a directory")
	}
	q := url.Values{"client": {client}, "name": {filepath.Base(path)}}
	req, err := cl.request(http.MethodPost, "/api/v1/files?"+q.Encode(), f)
	if err != nil {
		return fileStatus{}, err
	}
	req.ContentLength = info.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := cl.http.Do(req)
	if err != nil {
		return fileStatus{}, fmt.Errorf("%w (is vivace running at %s?)", err, cl.base)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusConflict, http.StatusUnprocessableEntity:
		var st fileStatus
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return fileStatus{}, fmt.Errorf("unreadable answer: %w", err)
		}
		return st, nil
	default:
		return fileStatus{}, cl.apiError(resp)
	}
}

// follow polls a file until it is final, showing progress on stderr.
func follow(cl *apiClient, st fileStatus, timeout time.Duration, tty bool) (fileStatus, error) {
	start := time.Now()
	show := newProgress(os.Stderr, tty, time.Now)
	for !st.final() {
		if time.Since(start) > timeout {
			show.update(st)
			if tty {
				fmt.Fprintln(os.Stderr)
			}
			return st, fmt.Errorf("not done after %s (status %s)", timeout, st.Status)
		}
		time.Sleep(200 * time.Millisecond)
		var next fileStatus
		if err := cl.getJSON("/api/v1/files/"+st.FileID, &next); err != nil {
			if tty {
				fmt.Fprintln(os.Stderr)
			}
			return st, err
		}
		st = next
		if !st.final() {
			show.update(st)
		}
	}
	show.finish(st)
	return st, nil
}
