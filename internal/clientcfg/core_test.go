package clientcfg_test

import (
	"strings"
	"testing"

	"vivace.dev/vivace/internal/clientcfg"
)

func TestCore(t *testing.T) {
	const yml = `
clients:
  acme:
    core:
      url: https://core.example.com
      client_no: 1001
      auth_key_env: ACME_CORE_KEY
  globex:
    core:
      client_no: 2002
  initech:
    format: csv
`
	f, err := clientcfg.Parse("clients.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Core("acme")
	if c == nil || c.URL != "https://core.example.com" || c.ClientNo != 1001 || c.AuthKeyEnv != "ACME_CORE_KEY" {
		t.Fatalf("acme: %+v", c)
	}
	if c := f.Core("globex"); c == nil || c.URL != "" || c.ClientNo != 2002 {
		t.Fatalf("globex: %+v", c)
	}
	if f.Core("initech") != nil || f.Core("nobody") != nil {
		t.Fatal("a client without core settings has some")
	}
	var none *clientcfg.File
	if none.Core("x") != nil {
		t.Fatal("no file has core settings")
	}
}

func TestCoreErrors(t *testing.T) {
	tests := []struct {
		name, yml string
		want      []string
	}{
		{"unknown key", `
clients:
  acme:
    core:
      url: https://core.example.com
      clientno: 5
`, []string{"clients.yaml: line 6: clients.acme.core.clientno: unknown setting (known: url, client_no, auth_key_env)"}},
		{"key inline", `
clients:
  acme:
    core:
      auth_key: s3cr3t
`, []string{"line 5: clients.acme.core.auth_key: the key itself never goes in this file"}},
		{"bad values", `
clients:
  acme:
    core:
      url: ftp://core
      client_no: 0
      auth_key_env: "my key"
`, []string{"line 5: clients.acme.core.url: \"ftp://core\": scheme must be http or https",
			"line 6: clients.acme.core.client_no: 0: must be a positive number",
			"line 7: clients.acme.core.auth_key_env: \"my key\" is not an environment variable name"}},
		{"credentials in url", `
clients:
  acme:
    core:
      url: https://user:pw@core.example.com
`, []string{"credentials do not go in the URL"}},
		{"not a url", `
clients:
  acme:
    core:
      url: core.example.com
`, []string{"is not a URL such as"}},
		{"in defaults", `
defaults:
  core:
    url: https://core.example.com
`, []string{"line 4: defaults.core: the default core endpoint and credentials come from --core-url"}},
		{"not a mapping", `
clients:
  acme:
    core: https://core.example.com
`, []string{"line 4: core must be a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := clientcfg.Parse("clients.yaml", []byte(tt.yml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error shows a secret: %q", err)
			}
		})
	}
}
