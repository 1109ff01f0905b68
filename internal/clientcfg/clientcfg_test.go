package clientcfg

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
