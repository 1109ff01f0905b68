// Command misbehave is a mediation plugin for the host's tests: it echoes
// records, or crashes, hangs, answers garbage or speaks another protocol
// version, as its settings say. Counters live in files under state_dir
// because each restart is a new process.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"

	"vivace.dev/vivace/plugins/mediation"
)

// protocolVersion is set with -ldflags "-X main.protocolVersion=N" to build
// a plugin of another contract version; empty means the current one.
var protocolVersion string

type settings struct {
	// Mode: echo, crash, hang, wrong_count, batch_error, record_error.
	Mode string `json:"mode"`
	// Times is how many calls misbehave before the plugin echoes; 0 or
	// less means every call.
	Times int `json:"times"`
	// StateDir holds the call counter.
	StateDir string `json:"state_dir"`
	// Tag is added to every echoed record as the field "tag".
	Tag string `json:"tag"`
}

type misbehave struct{ cfg atomic.Pointer[settings] }

func main() {
	if f := os.Getenv("MISBEHAVE_STARTS"); f != "" {
		if err := appendByte(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	v, err := mediation.ProtocolVersion, error(nil)
	if protocolVersion != "" {
		v, err = strconv.Atoi(protocolVersion)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad protocol version", protocolVersion)
		os.Exit(1)
	}
	impl := &misbehave{}
	conf := mediation.ServeConfig(impl)
	// Exactly one version: the one asked for, with version 1's adapter
	// when it is 1 (a plugin built before version 2).
	conf.HandshakeConfig = plugin.HandshakeConfig{ProtocolVersion: uint(v),
		MagicCookieKey: mediation.Handshake.MagicCookieKey, MagicCookieValue: mediation.Handshake.MagicCookieValue}
	conf.VersionedPlugins = nil
	if v == 1 {
		conf.Plugins = plugin.PluginSet{mediation.PluginName: &mediation.GRPCPlugin{Impl: impl}}
	}
	plugin.Serve(conf)
}

func appendByte(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte{'.'}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (m *misbehave) Describe(context.Context) (mediation.Info, error) {
	return mediation.Info{Name: "misbehave", Version: "0", Description: "test plugin"}, nil
}

func (m *misbehave) Configure(_ context.Context, _ string, raw json.RawMessage) error {
	var s settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Mode == "refuse" {
		return errors.New("mode refuse: this config is refused")
	}
	m.cfg.Store(&s)
	return nil
}

// misbehaving counts this call and reports whether it is one of the first
// Times calls (every call when Times is 0 or less).
func (s *settings) misbehaving() bool {
	if s.Times <= 0 {
		return true
	}
	path := filepath.Join(s.StateDir, "calls")
	_ = appendByte(path)
	info, err := os.Stat(path)
	return err == nil && info.Size() <= int64(s.Times)
}

func (m *misbehave) Mediate(ctx context.Context, records []mediation.RawRecord) ([]mediation.Result, error) {
	s := m.cfg.Load()
	if s.Mode != "echo" && s.misbehaving() {
		switch s.Mode {
		case "crash":
			os.Exit(3)
		case "hang":
			<-ctx.Done()
			// A hung plugin does not notice the host gave up either.
			time.Sleep(time.Hour)
		case "wrong_count":
			return echo(s, records[:len(records)-1]), nil
		case "batch_error":
			return nil, errors.New("the batch cannot be handled")
		case "record_error":
			out := echo(s, records)
			for i, r := range records {
				if c, ok := r.Fields["code"]; ok {
					out[i] = mediation.Result{Error: &mediation.RecordError{Code: c, Field: "code", Message: "rejected by the test plugin"}}
				}
			}
			return out, nil
		}
	}
	return echo(s, records), nil
}

// echo answers each record with its own fields. A field "drop" names a
// field left out of the answer; "split" = "2" answers two records;
// "filter" = reason filters the record.
func echo(s *settings, records []mediation.RawRecord) []mediation.Result {
	out := make([]mediation.Result, len(records))
	for i, r := range records {
		if reason := r.Fields["filter"]; reason != "" {
			out[i] = mediation.Filter(reason)
			continue
		}
		rec := make(map[string]string, len(r.Fields)+1)
		for k, v := range r.Fields {
			rec[k] = v
		}
		delete(rec, rec["drop"])
		delete(rec, "drop")
		if s.Tag != "" {
			rec["tag"] = s.Tag
		}
		if r.Fields["split"] == "2" {
			second := make(map[string]string, len(rec))
			for k, v := range rec {
				second[k] = v
			}
			second["record_id"] += "-2"
			out[i] = mediation.Mediated(rec, second)
			continue
		}
		out[i] = mediation.Mediated(rec)
	}
	return out
}
