// Package deploy checks the deployment files at the top of the
// repository — the Dockerfile, docker-compose.redpanda.yml and the Helm
// chart — with the tools that read them, where no container engine or
// cluster runs.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"vivace.dev/vivace/internal/app"
	"vivace.dev/vivace/internal/kafkax"
)

func root(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// topicCommands are the rpk commands vivace topics create --print-rpk
// prints for a single broker, in order.
func topicCommands(partitions int32, replication int16) []string {
	var out []string
	for _, name := range kafkax.DefaultTopics() {
		s := kafkax.TopicSpec{Name: name, Partitions: partitions, Replication: replication, Retention: kafkax.DefaultRetention[name]}
		out = append(out, s.RPK())
	}
	return out
}

type composeFile struct {
	Services map[string]struct {
		Image       string
		Command     []string
		Entrypoint  []string
		Environment map[string]string
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		Ports       []any
		Volumes     []any
	}
}

// TestComposeFile: docker-compose reads docker-compose.redpanda.yml, and
// it has Redpanda with its console, PostgreSQL, MinIO, the topic and
// migration jobs, and every role as a service of its own from one image,
// started after both jobs.
func TestComposeFile(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed (scripts/install-deps.sh installs it)")
	}
	cmd := exec.Command(bin, "-f", "docker-compose.redpanda.yml", "config")
	cmd.Dir = root(t)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, errb.String())
	}
	var f composeFile
	if err := yaml.Unmarshal(out.Bytes(), &f); err != nil {
		t.Fatalf("docker-compose config printed what is not YAML: %v", err)
	}
	for _, s := range []string{"redpanda", "console", "postgres", "minio", "topics", "migrate"} {
		if _, ok := f.Services[s]; !ok {
			t.Errorf("no %s service", s)
		}
	}
	if img := f.Services["redpanda"].Image; !strings.HasPrefix(img, "redpandadata/redpanda:") || f.Services["topics"].Image != img {
		t.Errorf("redpanda image %q, topics image %q: want Redpanda's, the same for both (the job runs its rpk)", img, f.Services["topics"].Image)
	}
	if c := f.Services["migrate"].Command; !slices.Equal(c, []string{"migrate"}) {
		t.Errorf("migrate runs %q, want vivace migrate", c)
	}

	// The topic job creates what vivace topics create would.
	script := strings.Join(f.Services["topics"].Command, "\n")
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^\s*create (.+)$`).FindAllStringSubmatch(script, -1) {
		got = append(got, "rpk topic create "+strings.TrimSpace(m[1]))
	}
	if want := topicCommands(12, 1); !slices.Equal(got, want) {
		t.Errorf("topics job creates\n%s\nwant (vivace topics create --replication 1 --print-rpk)\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	image := f.Services["migrate"].Image
	for _, r := range app.Every {
		name := "vivace-" + string(r)
		s, ok := f.Services[name]
		if !ok {
			t.Errorf("no service %s for the %s role", name, r)
			continue
		}
		if s.Image != image {
			t.Errorf("%s runs image %q, want %q like the others", name, s.Image, image)
		}
		if !slices.Equal(s.Command, []string{"serve", "--role", string(r)}) {
			t.Errorf("%s runs %q, want serve --role %s", name, s.Command, r)
		}
		if s.DependsOn["migrate"].Condition != "service_completed_successfully" ||
			s.DependsOn["topics"].Condition != "service_completed_successfully" {
			t.Errorf("%s starts before the migration and topic jobs have finished: %+v", name, s.DependsOn)
		}
		if s.Environment["DATABASE_URL"] == "" || s.Environment["VIVACE_KAFKA_BROKERS"] != "redpanda:9092" {
			t.Errorf("%s environment %v: want DATABASE_URL and VIVACE_KAFKA_BROKERS=redpanda:9092", name, s.Environment)
		}
	}
	// The api and ingest roles share the file archive.
	api, ingest := f.Services["vivace-api"].Volumes, f.Services["vivace-ingest"].Volumes
	if len(api) == 0 || len(ingest) == 0 || !equalYAML(t, api, ingest) {
		t.Errorf("vivace-api volumes %v, vivace-ingest volumes %v: want the same data volume", api, ingest)
	}
}

func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// TestDockerfile: a build stage and a small final stage, a static binary
// (no cgo), a user that is not root, and every example plugin under
// plugins/mediation/clients built in.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("%d FROM lines: want a build stage and a final one", len(froms))
	}
	if final := froms[len(froms)-1][1]; !strings.HasPrefix(final, "alpine:") && final != "scratch" {
		t.Errorf("final stage %s: want a small base", final)
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("the binary is not built with CGO_ENABLED=0 (static)")
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "root") || strings.HasPrefix(users[len(users)-1][1], "0") {
		t.Errorf("USER lines %v: want the final stage to run as a user that is not root", users)
	}
	dirs, err := filepath.Glob(filepath.Join(root(t), "plugins/mediation/clients/*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no example plugins found: %v", err)
	}
	for _, d := range dirs {
		if !strings.Contains(df, "./plugins/mediation/clients/"+filepath.Base(d)) {
			t.Errorf("the example plugin %s is not built into the image", filepath.Base(d))
		}
	}
}
