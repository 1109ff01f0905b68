package uiapi

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docExamples returns the GraphQL examples of docs/api.md's "GraphQL"
// section.
func docExamples(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n## GraphQL\n")
	if i < 0 {
		t.Fatal("docs/api.md has no GraphQL section")
	}
	section := doc[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	if len(out) < 10 {
		t.Fatalf("docs/api.md: %d GraphQL examples", len(out))
	}
	return out
}

// TestDocExamples runs every GraphQL example of docs/api.md as written:
// each must answer without errors.
func TestDocExamples(t *testing.T) {
	w := newWorld(t)
	for _, q := range docExamples(t) {
		vars := map[string]any{}
		if strings.Contains(q, "$id") {
			vars["id"] = w.excs[w.acme]
		}
		if strings.Contains(q, "$record") {
			// The example's record, at a time inside the client's window.
			vars["record"] = map[string]any{"record_id": w.acme + "-x0", "account_id": "A100", "usage_type": "VOICE", "quantity": "5",
				"usage_time": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)}
		}
		if strings.Contains(q, "$after") {
			vars["after"] = w.excs[w.acme]
		}
		if strings.Contains(q, `client: "demo"`) {
			q = strings.ReplaceAll(q, `client: "demo"`, `client: "`+w.acme+`"`)
		}
		var out map[string]any
		w.ok("admin", q, vars, &out)
		if len(out) == 0 {
			t.Errorf("no data for\n%s", q)
		}
	}
}

// TestSchemaParses: the embedded schema and the resolvers agree (every
// field has a resolver of the right type), without a database.
func TestSchemaParses(t *testing.T) {
	a := &API{}
	if err := a.Init(); err != nil {
		t.Fatal(err)
	}
}
