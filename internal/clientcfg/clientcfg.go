// Package clientcfg reads the per-client settings file: how a client's
// files are laid out (format, delimiter, column names), the window and
// limits of its normal-form checks, and its mediation plugin. A client
// missing from the file uses the defaults, so a new client needs no set-up
// beyond its catalog.
package clientcfg

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"vivace.dev/vivace/internal/usage"
)

// Client is one client's settings.
type Client struct {
	Format     usage.Format      `yaml:"format"`
	Delimiter  string            `yaml:"delimiter"`
	Columns    map[string]string `yaml:"columns"`
	Validation Validation        `yaml:"validation"`
	// Source is where the client's files are fetched from, if anywhere
	// besides the inbox and HTTP upload. It is never inherited from
	// defaults.
	Source *Source `yaml:"source"`
	// Plugin is the client's mediation plugin; nil: none, records pass
	// through mediation unchanged. Only clients have one, not defaults.
	Plugin *Plugin `yaml:"plugin"`
	// UsageTime is how the client writes usage_time; nil: RFC 3339.
	UsageTime *UsageTime `yaml:"usage_time"`
	// FieldsFromMediation says that the client's mediation rules make
	// Vivace's fields, so its files need not name any of them (a client
	// with a plugin needs not say so).
	FieldsFromMediation *bool `yaml:"fields_from_mediation"`
	// Core is where the client's MURs are synced to; nil: the defaults.
	Core *Core `yaml:"core"`
}

// UsageTime is a client's timestamp format (docs/ingestion.md,
// "Timestamps").
type UsageTime struct {
	// Format is rfc3339 (the default), epoch_seconds, epoch_millis, or a
	// Go layout such as "2006-01-02 15:04:05".
	Format string `yaml:"format"`
	// Zone is the time zone a layout without an offset is read in: an
	// IANA name or an offset; default UTC.
	Zone string `yaml:"zone"`

	parsed usage.TimeFormat
}

// Plugin is a client's mediation plugin (docs/plugins.md).
type Plugin struct {
	// Path of the plugin binary; a relative path is taken from the
	// directory of the settings file.
	Path string `yaml:"path"`
	// SHA256 is the binary's checksum as sha256sum prints it. The binary
	// is not started unless it matches.
	SHA256 string `yaml:"sha256"`
	// Timeout bounds one batch's call; nil: the host's default (10s).
	Timeout *Duration `yaml:"timeout"`
	// Retries is how often a failed batch is tried again before its
	// records fail with PLUGIN_ERROR; nil: the host's default (2).
	Retries *int `yaml:"retries"`
	// Config is handed to the plugin as a JSON object.
	Config map[string]any `yaml:"config"`

	configJSON json.RawMessage
}

// ConfigJSON is the plugin's config block as a JSON object ("{}" when
// there is none).
func (p *Plugin) ConfigJSON() json.RawMessage {
	if p.configJSON == nil {
		return json.RawMessage("{}")
	}
	return p.configJSON
}

// Validation overrides the normal-form check defaults.
type Validation struct {
	MaxAge      *Duration `yaml:"max_age"`
	MaxFuture   *Duration `yaml:"max_future"`
	MaxQuantity string    `yaml:"max_quantity"`
}

// Duration reads Go duration strings ("2160h", "15m") from YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %s where a duration (e.g. 2160h, 15m) was expected", n.Line, describeNode(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 2160h, 15m)", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// File is the whole settings file.
type File struct {
	Defaults Client            `yaml:"defaults"`
	Clients  map[string]Client `yaml:"clients"`

	name string // the file, for messages and relative paths
}

// Parse reads settings from YAML, naming the file in errors.
func Parse(name string, b []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %s", name, yamlProblem(err))
	}
	if errs := checkKeys(name, &doc); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var f File
	if err := doc.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %s", name, yamlProblem(err))
	}
	var errs []error
	check := func(where string, c Client) {
		if c.Format != "" && c.Format != usage.FormatCSV && c.Format != usage.FormatJSONL {
			errs = append(errs, fmt.Errorf("%s: %s.format: %q is not csv or jsonl", name, where, c.Format))
		}
		if r := []rune(c.Delimiter); len(r) > 1 || c.Delimiter == "\n" || c.Delimiter == "\"" {
			errs = append(errs, fmt.Errorf("%s: %s.delimiter: %q must be one character other than a quote or newline", name, where, c.Delimiter))
		}
		if u := c.UsageTime; u != nil {
			tf, err := usage.NewTimeFormat(u.Format, u.Zone)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s.usage_time: %w", name, where, err))
			}
			u.parsed = tf
		}
		if c.Validation.MaxQuantity != "" {
			if _, err := usage.ParseQuantity(c.Validation.MaxQuantity, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s.validation.max_quantity: %q is not a non-negative decimal", name, where, c.Validation.MaxQuantity))
			}
		}
		seen := map[string]string{}
		keys := make([]string, 0, len(c.Columns))
		for k := range c.Columns {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := c.Columns[k]
			if v == "" {
				errs = append(errs, fmt.Errorf("%s: %s.columns.%s: empty target field", name, where, k))
			}
			if prev, dup := seen[v]; dup {
				errs = append(errs, fmt.Errorf("%s: %s.columns: %q and %q both map to %q", name, where, prev, k, v))
			}
			seen[v] = k
		}
	}
	check("defaults", f.Defaults)
	if f.Defaults.Plugin != nil {
		errs = append(errs, fmt.Errorf("%s: defaults.plugin: a mediation plugin is set per client, under clients.<name>.plugin", name))
	}
	for k, c := range f.Clients {
		check("clients."+k, c)
		if c.Plugin != nil {
			errs = append(errs, checkPlugin(name, "clients."+k+".plugin", c.Plugin)...)
		}
	}
	errs = append(errs, f.checkSources(name)...)
	errs = append(errs, f.checkCores(name)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f.name = name
	return &f, nil
}

// checkSources validates the bucket sources: each on its own, and no two
// clients polling the same place.
func (f *File) checkSources(name string) []error {
	var errs []error
	if s := f.Defaults.Source; s != nil {
		errs = append(errs, fmt.Errorf("%s: line %d: defaults.source: a source belongs to one client; put it under clients.<name>.source", name, s.line))
	}
	clients := make([]string, 0, len(f.Clients))
	for k := range f.Clients {
		clients = append(clients, k)
	}
	sort.Strings(clients)
	polled := map[[3]string]string{}
	for _, k := range clients {
		src := f.Clients[k].Source
		if src == nil {
			continue
		}
		for _, u := range src.unknown {
			errs = append(errs, fmt.Errorf("%s: clients.%s.source: %s is not a kind of source (known: s3)", name, k, u))
		}
		if src.S3 == nil {
			continue
		}
		b, serrs := src.S3.resolve(name, "clients."+k)
		errs = append(errs, serrs...)
		if len(serrs) > 0 {
			continue
		}
		place := [3]string{b.Endpoint, b.Bucket, b.Prefix}
		if other, dup := polled[place]; dup {
			errs = append(errs, fmt.Errorf("%s: line %d: clients.%s.source.s3: %s is already the source of client %s; each client needs its own bucket or prefix",
				name, src.S3.line, k, b.Location(), other))
		}
		polled[place] = k
	}
	return errs
}

// checkPlugin validates a plugin block, resolves its path against the
// settings file's directory and encodes its config.
func checkPlugin(name, where string, p *Plugin) []error {
	var errs []error
	if p.Path == "" {
		errs = append(errs, fmt.Errorf("%s: %s.path: the plugin binary is required", name, where))
	} else if !filepath.IsAbs(p.Path) {
		p.Path = filepath.Join(filepath.Dir(name), p.Path)
	}
	if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != 32 {
		errs = append(errs, fmt.Errorf("%s: %s.sha256: %q is not a SHA-256 checksum (64 hexadecimal digits, as sha256sum prints)", name, where, p.SHA256))
	}
	if p.Timeout != nil && p.Timeout.Duration == 0 {
		errs = append(errs, fmt.Errorf("%s: %s.timeout: must be above zero", name, where))
	}
	if p.Retries != nil && *p.Retries < 0 {
		errs = append(errs, fmt.Errorf("%s: %s.retries: %d is negative", name, where, *p.Retries))
	}
	if p.Config != nil {
		b, err := json.Marshal(p.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s.config: cannot be handed to the plugin as JSON (keys must be strings): %v", name, where, err))
		}
		p.configJSON = b
	}
	return errs
}

// Plugin returns a client's mediation plugin, or nil when it has none.
func (f *File) Plugin(client string) *Plugin {
	if f == nil {
		return nil
	}
	return f.Clients[client].Plugin
}

// HasPlugins reports whether any client has a mediation plugin.
func (f *File) HasPlugins() bool {
	if f == nil {
		return false
	}
	for _, c := range f.Clients {
		if c.Plugin != nil {
			return true
		}
	}
	return false
}

// client merges a client's settings over the defaults.
func (f *File) client(name string) Client {
	if f == nil {
		return Client{}
	}
	c := f.Defaults
	o, ok := f.Clients[name]
	if !ok {
		return c
	}
	if o.Format != "" {
		c.Format = o.Format
	}
	if o.Delimiter != "" {
		c.Delimiter = o.Delimiter
	}
	if o.Columns != nil {
		c.Columns = o.Columns
	}
	if o.Validation.MaxAge != nil {
		c.Validation.MaxAge = o.Validation.MaxAge
	}
	if o.Validation.MaxFuture != nil {
		c.Validation.MaxFuture = o.Validation.MaxFuture
	}
	if o.Validation.MaxQuantity != "" {
		c.Validation.MaxQuantity = o.Validation.MaxQuantity
	}
	if o.UsageTime != nil {
		c.UsageTime = o.UsageTime
	}
	if o.FieldsFromMediation != nil {
		c.FieldsFromMediation = o.FieldsFromMediation
	}
	c.Plugin = o.Plugin
	return c
}

// Has reports whether the settings have an entry for the client under
// clients: (an empty one, "acme: {}", is enough). Such a client is known
// to Vivace before its catalog arrives.
func (f *File) Has(client string) bool {
	if f == nil {
		return false
	}
	_, ok := f.Clients[client]
	return ok
}

// ReaderOptions are the file-reading settings of a client.
func (f *File) ReaderOptions(client string) usage.ReaderOptions {
	c := f.client(client)
	o := usage.ReaderOptions{Format: c.Format, Columns: c.Columns,
		AnyColumns: c.Plugin != nil || (c.FieldsFromMediation != nil && *c.FieldsFromMediation)}
	if r := []rune(c.Delimiter); len(r) == 1 {
		o.Delimiter = r[0]
	}
	return o
}

// Rules are the normal-form check settings of a client.
func (f *File) Rules(client string) usage.Rules {
	c := f.client(client)
	r := usage.DefaultRules()
	if c.Validation.MaxAge != nil {
		r.MaxAge = c.Validation.MaxAge.Duration
	}
	if c.Validation.MaxFuture != nil {
		r.MaxFuture = c.Validation.MaxFuture.Duration
	}
	r.MaxQuantity = c.Validation.MaxQuantity
	if c.UsageTime != nil {
		r.Time = c.UsageTime.parsed
	}
	return r
}

// Watched is a settings file that is re-read when it changes on disk. An
// empty path means no file: defaults for every client.
type Watched struct {
	path string

	mu      sync.Mutex
	f       *File
	mod     time.Time
	checked time.Time
}

// Open reads the settings file at path (none when path is empty).
func Open(path string) (*Watched, error) {
	w := &Watched{path: path}
	if path == "" {
		return w, nil
	}
	if err := w.load(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Watched) load() error {
	info, err := os.Stat(w.path)
	if err != nil {
		return fmt.Errorf("client settings: %w", err)
	}
	b, err := os.ReadFile(w.path)
	if err != nil {
		return fmt.Errorf("client settings: %w", err)
	}
	f, err := Parse(w.path, b)
	if err != nil {
		return err
	}
	w.f, w.mod = f, info.ModTime()
	return nil
}

// Current returns the settings, re-reading the file at most once a second
// when it changed. A changed file that does not parse keeps the previous
// settings (the error is returned so it can be logged).
func (w *Watched) Current() (*File, error) {
	if w.path == "" {
		return nil, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.checked) < time.Second {
		return w.f, nil
	}
	w.checked = time.Now()
	info, err := os.Stat(w.path)
	if err != nil || info.ModTime().Equal(w.mod) {
		return w.f, nil
	}
	prev := w.f
	if err := w.load(); err != nil {
		w.f = prev
		return prev, err
	}
	return w.f, nil
}

// yamlLine is one of the YAML decoder's complaints about a value.
var yamlLine = regexp.MustCompile("^line (\\d+): cannot unmarshal (\\S+)(?: `([^`]*)`)? into .*$")

// yamlLineNumber is the line a YAML complaint starts with.
var yamlLineNumber = regexp.MustCompile(`^line (\d+): `)

// yamlProblem says what the YAML library found wrong, without its Go
// types: "line 4: a list where another kind of value was expected".
func yamlProblem(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			m := yamlLine.FindStringSubmatch(e)
			if m == nil {
				where := "a value"
				if l := yamlLineNumber.FindStringSubmatch(e); l != nil {
					where = "line " + l[1] + ": a value"
				}
				msgs = append(msgs, where+" of another kind than expected")
				continue
			}
			what := map[string]string{"!!seq": "a list", "!!map": "a mapping", "!!str": "text", "!!int": "a number",
				"!!float": "a number", "!!bool": "true or false", "!!null": "nothing"}[m[2]]
			switch {
			case m[3] != "":
				what = fmt.Sprintf("%q", m[3])
			case what == "":
				what = fmt.Sprintf("a value tagged %s", m[2])
			}
			msgs = append(msgs, fmt.Sprintf("line %s: %s where another kind of value was expected", m[1], what))
		}
		return strings.Join(msgs, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
