package clientcfg

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Core is where a client's MUR sync sends its usage: the core billing
// system's endpoint and the client's credentials there. Every field is
// optional; what is left out comes from the process's defaults (the
// --core-url flag, VIVACE_CORE_URL, VIVACE_CORE_CLIENT_NO,
// VIVACE_CORE_AUTH_KEY). The auth key itself is never written here: the
// settings name the environment variable that holds it.
type Core struct {
	// URL is the core's API base URL (http://core:8080) or the full
	// dispatcher URL.
	URL string `yaml:"url"`
	// ClientNo is the client's number at the core (client_no).
	ClientNo int64 `yaml:"client_no"`
	// AuthKeyEnv names the environment variable that holds the client's
	// auth_key.
	AuthKeyEnv string `yaml:"auth_key_env"`

	line    int
	lines   map[string]int
	unknown []string
}

var coreKeys = map[string]bool{"url": true, "client_no": true, "auth_key_env": true}

// UnmarshalYAML implements yaml.Unmarshaler, keeping each key's line and
// noting keys that are no setting.
func (c *Core) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: core must be a mapping of url, client_no and auth_key_env", n.Line)
	}
	type plain Core
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = Core(p)
	c.line, c.lines = n.Line, map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		c.lines[k.Value] = k.Line
		if !coreKeys[k.Value] {
			c.unknown = append(c.unknown, k.Value)
		}
	}
	return nil
}

// checkCores validates every client's core settings.
func (f *File) checkCores(name string) []error {
	var errs []error
	if c := f.Defaults.Core; c != nil {
		errs = append(errs, fmt.Errorf("%s: line %d: defaults.core: the default core endpoint and credentials come from "+
			"--core-url, VIVACE_CORE_URL, VIVACE_CORE_CLIENT_NO and VIVACE_CORE_AUTH_KEY; put a client's own under clients.<name>.core",
			name, c.line))
	}
	clients := make([]string, 0, len(f.Clients))
	for k := range f.Clients {
		clients = append(clients, k)
	}
	sort.Strings(clients)
	for _, k := range clients {
		if c := f.Clients[k].Core; c != nil {
			errs = append(errs, c.check(name, "clients."+k+".core")...)
		}
	}
	return errs
}

func (c *Core) check(name, where string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		line := c.line
		if l, ok := c.lines[field]; ok {
			line = l
		}
		errs = append(errs, fmt.Errorf("%s: line %d: %s.%s: %s", name, line, where, field, fmt.Sprintf(format, args...)))
	}
	unknown := append([]string(nil), c.unknown...)
	sort.Strings(unknown)
	for _, k := range unknown {
		if k == "auth_key" {
			bad(k, "the key itself never goes in this file; put it in an environment variable and name that in auth_key_env")
			continue
		}
		bad(k, "unknown setting (known: url, client_no, auth_key_env)")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil || u.Host == "":
			bad("url", "%q is not a URL such as https://core.example.com", c.URL)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("url", "%q: scheme must be http or https", c.URL)
		case u.User != nil:
			bad("url", "%q: credentials do not go in the URL; use client_no and auth_key_env", u.Redacted())
		}
	}
	if _, set := c.lines["client_no"]; set && c.ClientNo <= 0 {
		bad("client_no", "%d: must be a positive number", c.ClientNo)
	}
	if c.AuthKeyEnv != "" && !envRE.MatchString(c.AuthKeyEnv) {
		bad("auth_key_env", "%q is not an environment variable name; give the variable's name, never the key itself", c.AuthKeyEnv)
	}
	return errs
}

// Core returns a client's core settings, or nil when it has none (the
// defaults apply).
func (f *File) Core(client string) *Core {
	if f == nil {
		return nil
	}
	c := f.Clients[client].Core
	if c == nil {
		return nil
	}
	cp := *c
	cp.URL = strings.TrimSpace(cp.URL)
	return &cp
}
