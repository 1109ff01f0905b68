package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"vivace.dev/vivace/internal/app"
)

// helmBinary is the pinned helm that `make helm` installs into bin/
// (VIVACE_HELM names another).
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("VIVACE_HELM"); h != "" {
		return h
	}
	h := filepath.Join(root(t), "bin", "helm-v3.16.3")
	if _, err := os.Stat(h); err != nil {
		t.Skip("helm is not installed: make helm installs the pinned version into bin/")
	}
	return h
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Dir = root(t)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = errors.New(err.Error() + ": " + errb.String())
	}
	return out.String(), err
}

type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct {
		Name        string
		Labels      map[string]string
		Annotations map[string]string
	}
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node
}

type container struct {
	Name  string
	Image string
	Args  []string
	Env   []struct {
		Name, Value string
		ValueFrom   map[string]any `yaml:"valueFrom"`
	}
	Resources struct {
		Requests map[string]string
		Limits   map[string]string
	}
	LivenessProbe struct {
		HTTPGet struct{ Path, Scheme string } `yaml:"httpGet"`
	} `yaml:"livenessProbe"`
	ReadinessProbe struct {
		HTTPGet struct{ Path, Scheme string } `yaml:"httpGet"`
	} `yaml:"readinessProbe"`
	VolumeMounts []volumeMount `yaml:"volumeMounts"`
}

type volumeMount struct {
	Name      string
	MountPath string `yaml:"mountPath"`
}

type deploymentSpec struct {
	Replicas int
	Template struct {
		Spec struct {
			Containers      []container
			SecurityContext map[string]any `yaml:"securityContext"`
			Volumes         []struct {
				Name   string
				Secret struct {
					SecretName string `yaml:"secretName"`
				}
			}
		}
	}
}

var chartValues = []string{
	"--set", "database.url=postgres://vivace:secret@db:5432/vivace",
	"--set", "kafka.brokers=seed-0.example:9092",
	"--set", "kafka.tls.enabled=true",
	"--set", "kafka.sasl.mechanism=SCRAM-SHA-256", "--set", "kafka.sasl.username=vivace", "--set", "kafka.sasl.password=pw",
	"--set", "core.url=https://core.example/api", "--set", "core.clientNo=1001", "--set", "core.authKey=key",
	"--set", "topics.create=true", "--set", "topics.replication=1",
	"--set", "serviceMonitor.enabled=true", "--set", "autoscaling.enabled=true", "--set", "dashboards.enabled=true",
	"--set-string", "clientSettings=clients: {}",
}

func render(t *testing.T, extra ...string) map[string]map[string]manifest {
	t.Helper()
	out, err := helm(t, append([]string{"template", "rel", "charts/vivace"}, extra...)...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	byKind := map[string]map[string]manifest{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var m manifest
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("helm template printed what is not YAML: %v", err)
		}
		if m.Kind == "" {
			continue
		}
		if byKind[m.Kind] == nil {
			byKind[m.Kind] = map[string]manifest{}
		}
		byKind[m.Kind][m.Metadata.Name] = m
	}
	return byKind
}

// TestChartLints: helm lint passes on the chart with the values a real
// installation sets.
func TestChartLints(t *testing.T) {
	if out, err := helm(t, append([]string{"lint", "--strict", "charts/vivace"}, chartValues...)...); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	// Without a database the chart refuses to render, naming the value.
	if _, err := helm(t, "template", "rel", "charts/vivace"); err == nil || !strings.Contains(err.Error(), "database.url") {
		t.Errorf("helm template without database.url: %v, want an error naming database.url", err)
	}
}

// TestChartRenders: every role is a Deployment of its own running serve
// --role with probes, resources and the broker and database settings;
// the pipelines ConfigMap is exactly pipelines/; the secrets, the
// migration hook, ServiceMonitors, HPAs and the dashboard are there.
func TestChartRenders(t *testing.T) {
	ms := render(t, chartValues...)
	for _, r := range app.Every {
		name := "rel-vivace-" + string(r)
		d, ok := ms["Deployment"][name]
		if !ok {
			t.Errorf("no Deployment %s for the %s role (have %v)", name, r, slices.Sorted(maps.Keys(ms["Deployment"])))
			continue
		}
		var spec deploymentSpec
		if err := d.Spec.Decode(&spec); err != nil {
			t.Fatal(err)
		}
		if spec.Replicas < 1 || len(spec.Template.Spec.Containers) != 1 {
			t.Errorf("%s: %d replicas, %d containers", name, spec.Replicas, len(spec.Template.Spec.Containers))
			continue
		}
		c := spec.Template.Spec.Containers[0]
		if !slices.Contains(c.Args, "--role="+string(r)) || c.Args[0] != "serve" || !slices.Contains(c.Args, "--pipelines=/etc/vivace/pipelines") {
			t.Errorf("%s runs %q, want serve --role=%s --pipelines=/etc/vivace/pipelines", name, c.Args, r)
		}
		if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s probes: readiness %q, liveness %q", name, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("%s resources %+v: want cpu requests and a memory limit", name, c.Resources)
		}
		env := map[string]string{}
		secret := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
			secret[e.Name] = e.ValueFrom["secretKeyRef"] != nil
		}
		if env["VIVACE_KAFKA_BROKERS"] != "seed-0.example:9092" || env["VIVACE_KAFKA_TLS"] != "true" ||
			env["VIVACE_KAFKA_SASL_MECHANISM"] != "SCRAM-SHA-256" {
			t.Errorf("%s broker settings %v", name, env)
		}
		for _, k := range []string{"DATABASE_URL", "VIVACE_KAFKA_SASL_PASSWORD", "VIVACE_CORE_AUTH_KEY"} {
			if !secret[k] {
				t.Errorf("%s: %s does not come from a Secret", name, k)
			}
		}
		if spec.Template.Spec.SecurityContext["runAsNonRoot"] != true {
			t.Errorf("%s: pods may run as root", name)
		}
		if _, ok := ms["Service"][name]; !ok {
			t.Errorf("no Service %s (its probes and metrics)", name)
		}
		if _, ok := ms["ServiceMonitor"][name]; !ok {
			t.Errorf("no ServiceMonitor %s with serviceMonitor.enabled", name)
		}
	}
	for _, r := range []string{"mediate", "rate"} {
		if _, ok := ms["HorizontalPodAutoscaler"]["rel-vivace-"+r]; !ok {
			t.Errorf("no HorizontalPodAutoscaler for %s with autoscaling.enabled", r)
		}
	}

	// The pipelines ConfigMap holds exactly the repository's pipelines.
	cm, ok := ms["ConfigMap"]["rel-vivace-pipelines"]
	if !ok {
		t.Fatal("no pipelines ConfigMap")
	}
	files, _ := filepath.Glob(filepath.Join(root(t), "pipelines", "*.yaml"))
	want := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.yaml") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want[filepath.Base(f)] = string(b)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(cm.Data)), slices.Sorted(maps.Keys(want))) {
		t.Errorf("pipelines ConfigMap has %v, pipelines/ has %v: run make chart-pipelines",
			slices.Sorted(maps.Keys(cm.Data)), slices.Sorted(maps.Keys(want)))
	}
	for k, w := range want {
		if cm.Data[k] != w {
			t.Errorf("pipelines ConfigMap's %s differs from pipelines/%s: run make chart-pipelines", k, k)
		}
	}

	s, ok := ms["Secret"]["rel-vivace-secrets"]
	if !ok || s.StringData["DATABASE_URL"] == "" || s.StringData["VIVACE_KAFKA_SASL_PASSWORD"] != "pw" || s.StringData["VIVACE_CORE_AUTH_KEY"] != "key" {
		t.Errorf("secrets %+v: want the DSN, the SASL password and the core key", s.StringData)
	}
	job, ok := ms["Job"]["rel-vivace-migrate"]
	if !ok || !strings.Contains(job.Metadata.Annotations["helm.sh/hook"], "pre-upgrade") {
		t.Errorf("migration Job %+v: want a pre-install,pre-upgrade hook", job.Metadata)
	}
	topics, ok := ms["Job"]["rel-vivace-topics"]
	if !ok || !strings.Contains(topics.Metadata.Annotations["helm.sh/hook"], "pre-install") {
		t.Errorf("topics Job %+v: want a pre-install hook with topics.create", topics.Metadata)
	} else {
		var spec struct {
			Template struct {
				Spec struct{ Containers []container }
			}
		}
		if err := topics.Spec.Decode(&spec); err != nil {
			t.Fatal(err)
		}
		if c := spec.Template.Spec.Containers; len(c) != 1 || !slices.Equal(c[0].Args, []string{"topics", "create", "--partitions=12", "--replication=1"}) {
			t.Errorf("topics Job runs %+v", c)
		}
	}
	var dashboards int
	for n, m := range ms["ConfigMap"] {
		if !strings.HasPrefix(n, "rel-vivace-dashboard-") {
			continue
		}
		dashboards++
		for k, v := range m.Data {
			var d struct {
				Title  string
				Panels []any
			}
			if err := json.Unmarshal([]byte(v), &d); err != nil || d.Title == "" || len(d.Panels) == 0 {
				t.Errorf("dashboard %s: %v, title %q, %d panels", k, err, d.Title, len(d.Panels))
			}
		}
	}
	if dashboards == 0 {
		t.Error("no dashboard ConfigMap with dashboards.enabled")
	}
}

// TestChartRoleOff: a role turned off has no Deployment.
func TestChartRoleOff(t *testing.T) {
	ms := render(t, "--set", "database.url=postgres://db/vivace", "--set", "roles.sync.enabled=false")
	if _, ok := ms["Deployment"]["rel-vivace-sync"]; ok {
		t.Error("roles.sync.enabled=false still deploys the sync role")
	}
	if _, ok := ms["Deployment"]["rel-vivace-rate"]; !ok {
		t.Error("the rate role is gone with the sync role")
	}
}

// TestChartTLS: with tls.secretName every role serves HTTPS from the
// mounted Secret, its probes and the ServiceMonitor speak HTTPS, and
// publicURL reaches the processes; without it, plain HTTP.
func TestChartTLS(t *testing.T) {
	ms := render(t, "--set", "database.url=postgres://db/vivace", "--set", "tls.secretName=vivace-tls",
		"--set", "publicURL=https://billing.example", "--set", "serviceMonitor.enabled=true")
	for _, r := range app.Every {
		name := "rel-vivace-" + string(r)
		var spec deploymentSpec
		d := ms["Deployment"][name]
		if err := d.Spec.Decode(&spec); err != nil || len(spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: %v", name, err)
		}
		c := spec.Template.Spec.Containers[0]
		for _, a := range []string{"--tls-cert=/etc/vivace/tls/tls.crt", "--tls-key=/etc/vivace/tls/tls.key", "--public-url=https://billing.example"} {
			if !slices.Contains(c.Args, a) {
				t.Errorf("%s runs %q, without %s", name, c.Args, a)
			}
		}
		if c.LivenessProbe.HTTPGet.Scheme != "HTTPS" || c.ReadinessProbe.HTTPGet.Scheme != "HTTPS" {
			t.Errorf("%s probes: %q, %q; want HTTPS", name, c.LivenessProbe.HTTPGet.Scheme, c.ReadinessProbe.HTTPGet.Scheme)
		}
		mounted := slices.Contains(c.VolumeMounts, volumeMount{Name: "tls", MountPath: "/etc/vivace/tls"})
		var secret string
		for _, v := range spec.Template.Spec.Volumes {
			if v.Name == "tls" {
				secret = v.Secret.SecretName
			}
		}
		if !mounted || secret != "vivace-tls" {
			t.Errorf("%s: tls volume mounted %v, from Secret %q", name, mounted, secret)
		}
		var sm struct {
			Endpoints []struct {
				Scheme    string
				TLSConfig map[string]any `yaml:"tlsConfig"`
			}
		}
		m := ms["ServiceMonitor"][name]
		if err := m.Spec.Decode(&sm); err != nil || len(sm.Endpoints) != 1 ||
			sm.Endpoints[0].Scheme != "https" || sm.Endpoints[0].TLSConfig == nil {
			t.Errorf("%s ServiceMonitor endpoints %+v %v: want https", name, sm.Endpoints, err)
		}
	}
	plain := render(t, "--set", "database.url=postgres://db/vivace")
	var spec deploymentSpec
	api := plain["Deployment"]["rel-vivace-api"]
	if err := api.Spec.Decode(&spec); err != nil {
		t.Fatal(err)
	}
	c := spec.Template.Spec.Containers[0]
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--tls-") || strings.HasPrefix(a, "--public-url") }) ||
		c.ReadinessProbe.HTTPGet.Scheme != "HTTP" {
		t.Errorf("without tls.secretName: %q, probe %q", c.Args, c.ReadinessProbe.HTTPGet.Scheme)
	}
}
