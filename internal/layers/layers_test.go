package layers

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "vivace.dev/vivace/"

// adapters are the packages under internal/ that talk to the world; a
// name ending in "/..." covers the package and everything under it.
// Every package not listed is domain.
var adapters = []string{
	"internal/api",             // the HTTP API (net/http)
	"internal/app",             // the composition root: builds a process from every other package
	"internal/ariafeed",        // the core system's Data Feed client (net/http)
	"internal/bulkapi",         // the core system's bulk usage call (net/http)
	"internal/corelink",        // MUR sync's link to the core: mursync.Core over bulkapi
	"internal/devenv",          // what vivace dev embeds: kfake, a private PostgreSQL
	"internal/fakecore",        // the stand-in core billing system (an HTTP server)
	"internal/ingest/s3source", // S3-compatible bucket sources (minio)
	"internal/kafkax",          // Kafka client settings (franz-go)
	"internal/pgtest",          // tests: a database per package (pgx)
	"internal/store/...",       // PostgreSQL: the base and every subject store (pgx)
	"internal/synctest",
	"internal/tmfhub", // TMF635 hub callbacks to subscribers' listeners (net/http)        // tests: MURs in the database, the fake core's totals (pgx)
}

// forbidden are the imports (a path, or a path and everything under it)
// domain packages may not have.
var forbidden = []string{
	"net/http",
	"database/sql",
	"github.com/redpanda-data/benthos",
	"github.com/jackc/pgx",
	"github.com/twmb/franz-go",
	"github.com/minio/minio-go",
	"github.com/pressly/goose",
	"github.com/hashicorp/go-plugin",
	"google.golang.org/grpc",
	"github.com/prometheus",
	"github.com/graph-gophers/graphql-go",
}

// domainModules are the modules outside the standard library that domain
// packages may use: pure computation, no I/O. Add one only when that
// holds for it too.
var domainModules = []string{
	"github.com/cockroachdb/apd/v3", // decimals
	"gopkg.in/yaml.v3",              // the client settings file
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func isAdapter(pkg string) bool {
	for _, a := range adapters {
		if p, ok := strings.CutSuffix(a, "/..."); ok {
			if under(pkg, p) {
				return true
			}
		} else if pkg == a {
			return true
		}
	}
	return false
}

// packages returns the non-test imports of every package under internal/,
// by package path relative to the module.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel("..", filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Join("internal", rel))
		if _, ok := pkgs[pkg]; !ok {
			pkgs[pkg] = nil
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if !slices.Contains(pkgs[pkg], p) {
				pkgs[pkg] = append(pkgs[pkg], p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestDomainImportsNoAdapters keeps the layers: a domain package imports
// no I/O framework and no adapter package.
func TestDomainImportsNoAdapters(t *testing.T) {
	pkgs := packages(t)
	if len(pkgs) < 20 {
		t.Fatalf("found only %d packages under internal/; is the test running in internal/layers?", len(pkgs))
	}
	for _, a := range adapters {
		if p, wild := strings.CutSuffix(a, "/..."); !wild {
			if _, ok := pkgs[a]; !ok {
				t.Errorf("adapter %s is listed but has no package: take it off the list", a)
			}
		} else if _, ok := pkgs[p]; !ok {
			t.Errorf("adapter tree %s is listed but has no package: take it off the list", a)
		}
	}
	for pkg, imports := range pkgs {
		if isAdapter(pkg) {
			continue
		}
		for _, im := range imports {
			local, ours := strings.CutPrefix(im, module)
			switch {
			case ours && isAdapter(local):
				t.Errorf("domain package %s imports the adapter %s", pkg, local)
			case ours && !under(local, "internal"):
				t.Errorf("domain package %s imports %s, which is not under internal/", pkg, local)
			case ours:
			case slices.ContainsFunc(forbidden, func(f string) bool { return under(im, f) }):
				t.Errorf("domain package %s imports %s: move that code to an adapter (or list %s as one)", pkg, im, pkg)
			case strings.Contains(strings.SplitN(im, "/", 2)[0], ".") &&
				!slices.ContainsFunc(domainModules, func(m string) bool { return under(im, m) }):
				t.Errorf("domain package %s imports %s, a module domain packages do not use "+
					"(if it does no I/O, add it to domainModules)", pkg, im)
			}
		}
	}
}

// TestAdapterListCatchesStore: the classification the test relies on.
func TestAdapterListCatchesStore(t *testing.T) {
	for pkg, want := range map[string]bool{
		"internal/store": true, "internal/store/catalogstore": true, "internal/storex": false,
		"internal/api": true, "internal/apiv2": false, "internal/feed": false, "internal/ingest": false,
		"internal/ingest/s3source": true,
	} {
		if got := isAdapter(pkg); got != want {
			t.Errorf("isAdapter(%s) = %v, want %v", pkg, got, want)
		}
	}
}
