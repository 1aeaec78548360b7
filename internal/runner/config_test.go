package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/internal/runplan"
)

func TestRenderConfigAddsFastHealthCheck(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.yaml")
	_ = os.WriteFile(src, []byte(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: blog}
spec:
  nameResolution:
    component: consul
    configuration: {selfRegister: true, useCache: true}
`), 0o644)
	a := &App{Spec: runplan.App{ID: "blog", Build: "./apps/blog"}, HTTPPort: 41234}
	rc, err := renderConfig(src, filepath.Join(dir, "out"), a, "127.0.0.1:4318", "")
	if err != nil || !rc.SelfRegister || rc.SamplingRate != "1" {
		t.Fatalf("render: %+v err=%v", rc, err)
	}
	b, _ := os.ReadFile(rc.Path)
	var doc struct {
		Spec struct {
			Tracing struct {
				SamplingRate string `yaml:"samplingRate"`
				Otel         struct {
					EndpointAddress string `yaml:"endpointAddress"`
					Protocol        string `yaml:"protocol"`
				} `yaml:"otel"`
			} `yaml:"tracing"`
			NameResolution struct {
				Configuration struct {
					UseCache bool `yaml:"useCache"`
					Checks   []struct {
						Interval string `yaml:"interval"`
						HTTP     string `yaml:"http"`
					} `yaml:"checks"`
				} `yaml:"configuration"`
			} `yaml:"nameResolution"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if tr := doc.Spec.Tracing; tr.SamplingRate != "1" || tr.Otel.EndpointAddress != "127.0.0.1:4318" || tr.Otel.Protocol != "http" {
		t.Errorf("tracing not pointed at the OTLP endpoint: %+v", tr)
	}
	c := doc.Spec.NameResolution.Configuration
	if !c.UseCache || len(c.Checks) != 1 || c.Checks[0].Interval != "1s" || c.Checks[0].HTTP != "http://127.0.0.1:41234/v1.0/healthz?appid=blog" {
		t.Errorf("rendered configuration:\n%s", b)
	}
}

func TestRenderConfigRejects(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ doc, want string }{
		"wrong kind":           {"kind: Component\n", `kind is "Component", want Configuration`},
		"not yaml":             {"kind: [\n", "did not find expected node content"},
		"register without app": {"kind: Configuration\nspec:\n  nameResolution:\n    component: consul\n    configuration: {selfRegister: true}\n", "set selfRegister: false"},
	} {
		src := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		_ = os.WriteFile(src, []byte(c.doc), 0o644)
		_, err := renderConfig(src, dir, &App{Spec: runplan.App{ID: "caller"}}, "", "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v, want %q", name, err, c.want)
		}
	}
}

// The app learns its sidecar's sampling rate: the compiled one, "0" without tracing, and "1"
// when the run exports spans (renderConfig's first test).
func TestRenderConfigSamplingRate(t *testing.T) {
	dir := t.TempDir()
	for doc, want := range map[string]string{
		"kind: Configuration\nspec:\n  tracing: {samplingRate: \"0.1\"}\n": "0.1",
		"kind: Configuration\nspec: {}\n":                                  "0",
	} {
		src := filepath.Join(dir, "in.yaml")
		_ = os.WriteFile(src, []byte(doc), 0o644)
		rc, err := renderConfig(src, filepath.Join(dir, "out"), &App{Spec: runplan.App{ID: "caller"}}, "", "")
		if err != nil || rc.SamplingRate != want {
			t.Errorf("%q: rate %q err %v, want %q", doc, rc.SamplingRate, err, want)
		}
	}
}
