package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	own := commands()
	for _, c := range []struct{ in, want string }{
		{"vivace ingest --client acme f.csv --wait", "vivace ingest --client acme --wait f.csv"},
		{"vivace ingest f.csv g.csv --client acme --timeout 5m --wait", "vivace ingest --client acme --timeout 5m --wait f.csv g.csv"},
		{"vivace ingest f.csv --client=acme", "vivace ingest --client=acme f.csv"},
		{"vivace ingest --client acme -- --wait", "vivace ingest --client acme -- --wait"},
		{"vivace feed publish cat.jsonl --wait --brokers b:9092", "vivace feed publish --wait --brokers b:9092 cat.jsonl"},
		{"vivace feed errors reprocess e1 e2 --api http://x", "vivace feed errors reprocess --api http://x e1 e2"},
		{"vivace lookup load m.csv --client telco --lookup msisdn --replace", "vivace lookup load --client telco --lookup msisdn --replace m.csv"},
		{"vivace murs export --client c --format csv", "vivace murs export --client c --format csv"},
		// Not Vivace's own, or not a leaf command: left as they are.
		{"vivace test ./pipelines/... --log debug", "vivace test ./pipelines/... --log debug"},
		{"vivace feed publish", "vivace feed publish"},
		{"vivace feed x --wait", "vivace feed x --wait"},
		{"vivace sync run --client c", "vivace sync run --client c"},
		{"vivace", "vivace"},
	} {
		got := strings.Join(flagsFirst(own, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

// TestHelpTexts: every command's help is written to be read: no literal
// \n from a raw string, and the top-level template carries Vivace's words.
func TestHelpTexts(t *testing.T) {
	var walk func(path string, cs []*cli.Command)
	walk = func(path string, cs []*cli.Command) {
		for _, c := range cs {
			p := path + " " + c.Name
			for what, s := range map[string]string{"usage": c.Usage, "description": c.Description, "args": c.ArgsUsage} {
				if strings.Contains(s, `\n`) {
					t.Errorf("%s: %s has a literal \\n: %q", p, what, s)
				}
			}
			for _, f := range c.Flags {
				if u := f.(cli.DocGenerationFlag).GetUsage(); strings.Contains(u, `\n`) || u == "" {
					t.Errorf("%s --%s: usage %q", p, f.Names()[0], u)
				}
			}
			walk(p, c.Subcommands)
		}
	}
	walk("vivace", commands())
	tmpl := appHelpTemplate(cli.AppHelpTemplate)
	if !strings.Contains(tmpl, appUsage) || !strings.Contains(tmpl, "First steps") || strings.Contains(tmpl, "helpNameTemplate") {
		t.Errorf("help template:\n%s", tmpl)
	}
	if !slices.Contains(strings.Split(indent("a\n\nb", "  "), "\n"), "") {
		t.Error("indent fills empty lines")
	}
}

// TestCLIPageCoversEveryCommand: docs/cli.md names every command and
// every flag, so that a new one cannot go undocumented.
func TestCLIPageCoversEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	var walk func(path string, cs []*cli.Command)
	walk = func(path string, cs []*cli.Command) {
		for _, c := range cs {
			p := path + " " + c.Name
			if !strings.Contains(page, p) {
				t.Errorf("docs/cli.md does not name %q", p)
			}
			for _, f := range c.Flags {
				if n := f.Names()[0]; !strings.Contains(page, "--"+n) {
					t.Errorf("docs/cli.md does not name %s --%s", p, n)
				}
			}
			walk(p, c.Subcommands)
		}
	}
	walk("vivace", commands())
}
