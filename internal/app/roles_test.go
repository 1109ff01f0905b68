package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	// The components the pipelines use beside Vivace's, as the binary
	// registers them.
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Roles
		wantErr string
	}{
		{in: "rate", want: Roles{RoleRate}},
		{in: "mediate, rate,mediate", want: Roles{RoleMediate, RoleRate}},
		{in: "all", want: Roles{RoleAll}},
		{in: "", wantErr: "no role given"},
		{in: "rate,rating", wantErr: `role "rating"`},
	} {
		got, err := ParseRoles(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRoles(%q): error %v, want one with %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseRoles(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	all := Roles{RoleAll}
	for _, r := range Every {
		if !all.Has(r) {
			t.Errorf("all does not hold %s", r)
		}
	}
	if (Roles{RoleRate}).Has(RoleMediate) {
		t.Error("rate holds mediate")
	}
}

// TestStreamsOfRoles: a role runs the embedded pipelines its
// "# vivace:role" lines give it, and a pipeline without one is refused
// unless every role runs.
func TestStreamsOfRoles(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	env := func(string) (string, bool) { return "", false }
	for roles, want := range map[string][]string{
		"mediate,rate": {"exceptions", "mediate", "rate"},
		"ingest":       {"ingest"},
		"sync":         {"sync"},
		"catalog":      {"catalog"}, // aria_feed needs VIVACE_ARIA_FEED_URL
		"api":          nil,
	} {
		rs, err := ParseRoles(roles)
		if err != nil {
			t.Fatal(err)
		}
		set, err := loadStreams("", rs, env, log)
		if err != nil {
			t.Fatalf("%s: %v", roles, err)
		}
		if got := set.names(); !slices.Equal(got, want) {
			t.Errorf("role %s runs %v, want %v", roles, got, want)
		}
	}

	dir := t.TempDir()
	yaml := "input:\n  generate:\n    mapping: root = {}\n    count: 1\noutput:\n  drop: {}\n"
	if err := os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadStreams(dir, Roles{RoleRate}, env, log); err == nil || !strings.Contains(err.Error(), "pipeline mine: no \"# vivace:role ROLE\" line") {
		t.Errorf("a pipeline without a role under --role rate: %v, want it refused by name", err)
	}
	if set, err := loadStreams(dir, Roles{RoleAll}, env, log); err != nil || !slices.Equal(set.names(), []string{"mine"}) {
		t.Errorf("under all: %v, %v; want it run", set, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte("# vivace:role rating\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadStreams(dir, Roles{RoleRate}, env, log); err == nil || !strings.Contains(err.Error(), `role "rating"`) {
		t.Errorf("a pipeline with an unknown role: %v, want it refused", err)
	}
}
