package clientcfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/msgcheck"
	"vivace.dev/vivace/internal/usage"
)

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestPluginBlock(t *testing.T) {
	f, err := Parse(filepath.Join("etc", "vivace", "clients.yaml"), []byte(`
clients:
  acme:
    plugin:
      path: plugins/telco-1.0.0
      sha256: `+sum+`
      timeout: 5s
      retries: 3
      config:
        test_msisdn_prefixes: ["4479000"]
        nested: { a: 1 }
  nimbus:
    plugin:
      path: /opt/plugins/cloud
      sha256: `+sum+`
  plain:
    delimiter: ";"
`))
	if err != nil {
		t.Fatal(err)
	}
	p := f.Plugin("acme")
	if p == nil || p.Path != filepath.Join("etc", "vivace", "plugins", "telco-1.0.0") || p.Timeout.Duration != 5*time.Second || *p.Retries != 3 {
		t.Fatalf("acme plugin: %+v", p)
	}
	if got := string(p.ConfigJSON()); got != `{"nested":{"a":1},"test_msisdn_prefixes":["4479000"]}` {
		t.Errorf("config JSON %s", got)
	}
	if n := f.Plugin("nimbus"); n == nil || n.Path != "/opt/plugins/cloud" || n.Timeout != nil || n.Retries != nil || string(n.ConfigJSON()) != "{}" {
		t.Errorf("nimbus plugin: %+v", n)
	}
	if f.Plugin("plain") != nil || f.Plugin("unknown") != nil {
		t.Error("a client without a plugin block has one")
	}
	if !f.HasPlugins() {
		t.Error("HasPlugins = false")
	}
	var none *File
	if none.HasPlugins() || none.Plugin("acme") != nil {
		t.Error("no file has plugins")
	}
}

func TestPluginBlockErrors(t *testing.T) {
	_, err := Parse("clients.yaml", []byte(`
defaults:
  plugin: { path: /x, sha256: `+sum+` }
clients:
  acme:
    plugin:
      sha256: abc
      timeout: 0s
      retries: -1
      config:
        1: x
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"clients.yaml: defaults.plugin: a mediation plugin is set per client",
		"clients.yaml: clients.acme.plugin.path: the plugin binary is required",
		`clients.yaml: clients.acme.plugin.sha256: "abc" is not a SHA-256 checksum`,
		"clients.yaml: clients.acme.plugin.timeout: must be above zero",
		"clients.yaml: clients.acme.plugin.retries: -1 is negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestMisspeltKeys: a key that is no setting, at any level, is an error
// naming the file, the line and the key, never a silent default.
func TestMisspeltKeys(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"defaults:\n  validaton:\n    max_age: 1h\n",
			"clients.yaml: line 2: defaults.validaton: not a setting; did you mean validation? (known here: columns, core, delimiter, fields_from_mediation, format, plugin, source, usage_time, validation)"},
		{"clients:\n  acme:\n    usage_time:\n      formt: epoch_seconds\n",
			"clients.yaml: line 4: clients.acme.usage_time.formt: not a setting; did you mean format? (known here: format, zone)"},
		{"clients:\n  acme:\n    format: csv\n    validation:\n      max_futur: 5m\n",
			"clients.yaml: line 5: clients.acme.validation.max_futur: not a setting; did you mean max_future?"},
		{"client:\n  acme: {}\n",
			"clients.yaml: line 1: client: not a setting; did you mean clients? (known here: clients, defaults)"},
		{"clients:\n  acme:\n    plugin:\n      path: p\n      sha: " + sum + "\n",
			"clients.yaml: line 5: clients.acme.plugin.sha: not a setting"},
		{"clients:\n  acme:\n    colour: blue\n",
			"clients.yaml: line 3: clients.acme.colour: not a setting (known here:"},
	} {
		_, err := Parse("clients.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %s", c.yaml, err, c.want)
		}
	}
	// Free-form blocks stay free: column names, a plugin's config.
	f, err := Parse("clients.yaml", []byte("clients:\n  acme:\n    columns: {Anything: record_id}\n    plugin:\n      path: p\n      sha256: "+sum+"\n      config: {any_key: {deep: 1}}\n"))
	if err != nil || f.ReaderOptions("acme").Columns["Anything"] != "record_id" {
		t.Fatalf("free-form blocks: %v", err)
	}
	for _, empty := range []string{"", "# nothing yet\n"} {
		if _, err := Parse("clients.yaml", []byte(empty)); err != nil {
			t.Errorf("an empty settings file %q: %v", empty, err)
		}
	}
}

// TestOpenRefusesMisspeltKey: the settings file vivace dev and the
// pipelines open is refused at start, naming the file and line.
func TestOpenRefusesMisspeltKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte("clients:\n  acme:\n    validaton:\n      max_age: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path+": line 3: clients.acme.validaton: not a setting") {
		t.Fatalf("Open: %v", err)
	}
}

// TestSettingsOfTheWrongShape: a value of the wrong kind is named by its
// file, line and path, in YAML's terms, never Go's ("cannot unmarshal
// !!seq into map[string]string").
func TestSettingsOfTheWrongShape(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"clients:\n  acme:\n    columns:\n      - a\n      - b\n",
			"clients.yaml: line 4: clients.acme.columns: a list where a mapping (name: value lines) was expected"},
		{"clients:\n  acme:\n    columns:\n      Ref: {field: record_id}\n",
			"clients.yaml: line 4: clients.acme.columns.Ref: a mapping where a single value (text) was expected"},
		{"clients:\n  - acme\n", "clients.yaml: line 2: clients: a list where a mapping (name: value lines) was expected"},
		{"- acme\n", "clients.yaml: line 1: the settings: a list where a mapping (name: value lines) was expected"},
		{"just text\n", `clients.yaml: line 1: the settings: "just text" where a mapping`},
		{"clients:\n  acme:\n    plugin:\n      path: p\n      sha256: " + sum + "\n      retries: many\n",
			`clients.yaml: line 6: clients.acme.plugin.retries: "many" where a whole number was expected`},
		{"clients:\n  acme:\n    fields_from_mediation: yes please\n",
			`clients.yaml: line 3: clients.acme.fields_from_mediation: "yes please" where true or false was expected`},
		{"clients:\n  acme:\n    validation:\n      max_age: [1h]\n",
			"clients.yaml: line 4: a list where a duration (e.g. 2160h, 15m) was expected"},
		{"clients:\n  acme:\n    format: [csv]\n", "clients.yaml: line 3: clients.acme.format: a list where a single value (text) was expected"},
		{"clients:\n  acme:\n    format: csv\n   delimiter: x\n", "clients.yaml: not valid YAML: line "},
		{"clients:\n  acme:\n    usage_time:\n      format: \"2006-01-02\"\n",
			`clients.yaml: clients.acme.usage_time: format "2006-01-02" is not a timestamp layout`},
		{"clients:\n  acme:\n    usage_time: {format: epoch_millis, zone: Europe/Paris}\n",
			`clients.yaml: clients.acme.usage_time: zone "Europe/Paris": only a layout without an offset is read in a zone`},
	} {
		_, err := Parse("clients.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %s", c.yaml, err, c.want)
			continue
		}
		if f := msgcheck.Internals(err.Error()); f != "" {
			t.Errorf("%q: speaks of Go (%q): %v", c.yaml, f, err)
		}
	}
}

// FuzzSettingsMessages: whatever the file holds, an error says so in the
// file's terms.
func FuzzSettingsMessages(f *testing.F) {
	f.Add("clients:\n  acme:\n    columns: [a]\n")
	f.Add("defaults:\n  validation: {max_age: x, max_quantity: [1]}\n")
	f.Add("clients: {a: {plugin: {path: p, sha256: x, retries: [1], timeout: {a: 1}, config: [1]}}}\n")
	f.Add("clients: {a: {source: {s3: [1]}}}\n")
	f.Add("clients: {a: {source: {s3: {bucket: {x: 1}, poll_interval: [1], path_style: maybe}}}}\n")
	f.Add("&a [*a]\n")
	f.Fuzz(func(t *testing.T, doc string) {
		_, err := Parse("clients.yaml", []byte(doc))
		if err == nil {
			return
		}
		if f := msgcheck.Internals(err.Error()); f != "" {
			t.Fatalf("%q: speaks of Go (%q): %v", doc, f, err)
		}
	})
}

// TestClientEntries: an entry, even an empty one, makes a client known;
// its timestamp format and mediation setting reach the readers and the
// checks, and defaults apply to clients without their own.
func TestClientEntries(t *testing.T) {
	f, err := Parse("clients.yaml", []byte(`
defaults:
  usage_time: {format: epoch_seconds}
clients:
  newco:
  empty: {}
  telco:
    usage_time:
      format: "2006-01-02 15:04:05"
      zone: Europe/London
    fields_from_mediation: true
  cloud:
    plugin: {path: p, sha256: `+sum+`}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"newco", "empty", "telco", "cloud"} {
		if !f.Has(c) {
			t.Errorf("%s is not known", c)
		}
	}
	if f.Has("acmee") || (*File)(nil).Has("newco") {
		t.Error("a client without an entry is known")
	}
	now := time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)
	if got, err := usage.ParseUsageTime("2026-07-01 10:00:00", f.Rules("telco"), now); err != nil || !got.Equal(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("telco's time: %v %v", got, err)
	}
	if got, err := usage.ParseUsageTime("1782900000", f.Rules("newco"), now); err != nil || got.Unix() != 1782900000 {
		t.Errorf("the defaults' time: %v %v", got, err)
	}
	if !f.ReaderOptions("telco").AnyColumns || !f.ReaderOptions("cloud").AnyColumns || f.ReaderOptions("newco").AnyColumns {
		t.Error("AnyColumns: telco (fields_from_mediation) and cloud (a plugin) only")
	}
}
