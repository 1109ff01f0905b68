// Package pipelines embeds the default Benthos streams, one per Kafka hop,
// so that `vivace dev` runs on embedded defaults. Operators who edit them
// run `vivace dev --pipelines DIR` (or `vivace run FILE` for one stream).
package pipelines

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// Stream is one pipeline file.
type Stream struct {
	Name string // file name without .yaml
	YAML string
	// Requires lists environment variables the stream needs to be set to
	// run at all, from "# vivace:requires VAR ..." lines: a stream for an
	// optional source (such as the core system's native feed) is left out
	// where that source is not configured.
	Requires []string
	// Role is the `vivace serve` role that runs the stream, from a
	// "# vivace:role ROLE" line (empty: only the role all runs it).
	Role string
}

// Default returns the embedded streams, sorted by name.
func Default() ([]Stream, error) { return Load(files) }

// Load reads every *.yaml of fsys that is not a *_test.yaml.
func Load(fsys fs.FS) ([]Stream, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Stream
	for _, n := range names {
		if strings.HasSuffix(n, "_test.yaml") {
			continue
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		st := Stream{Name: strings.TrimSuffix(path.Base(n), ".yaml"), YAML: string(b)}
		for _, line := range strings.Split(st.YAML, "\n") {
			if vars, ok := strings.CutPrefix(strings.TrimSpace(line), "# vivace:requires "); ok {
				st.Requires = append(st.Requires, strings.Fields(vars)...)
			}
			if role, ok := strings.CutPrefix(strings.TrimSpace(line), "# vivace:role "); ok {
				st.Role = strings.TrimSpace(role)
			}
		}
		out = append(out, st)
	}
	return out, nil
}
