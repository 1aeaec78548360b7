package compile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/repo"
	"github.com/goplt/goplt/internal/runplan"
)

// The repository's own manifests compile to exactly the committed files (the golden files):
// the same check as `goplt generate --check`, from the test suite.
func TestRepositoryOutputIsCommitted(t *testing.T) {
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifest.LoadDir(filepath.Join(root, "manifests"), root)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := Generate(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arts {
		b, err := os.ReadFile(filepath.Join(root, a.Path))
		if err != nil || !bytes.Equal(b, a.Data) {
			t.Errorf("%s is stale (run make generate): %v", a.Path, err)
		}
	}
}

const platform = `apiVersion: goplt/v1
kind: Platform
metadata: {name: t}
spec:
  gateway: gateway
  profiles:
    local:
      pubsub: {type: pubsub.kafka, metadata: {brokers: {envRef: GOPLT_KAFKA_BROKERS}, authType: none}}
      nameResolution: {component: consul, configuration: {useCache: true}}
      devCallers: [console]
`

func module(name, deps, extra string) string {
	return "apiVersion: goplt/v1\nkind: Module\nmetadata: {name: " + name + ", version: 1.0.0}\nspec:\n  app: {id: " + name + ", build: ./apps/" + name + "}\n" + deps + extra
}

func diamond(t *testing.T) *manifest.Set {
	t.Helper()
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "schemas"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "schemas", "e.v1.json"), []byte(`{"type":"object"}`), 0o644)
	dep := func(names ...string) string {
		s := "  dependsOn:\n"
		for _, n := range names {
			s += "    - {name: " + n + ", version: \"^1\"}\n"
		}
		return s
	}
	files := map[string][]byte{
		"manifests/platform.yaml": []byte(platform),
		"manifests/identity.yaml": []byte(module("identity", "", "  events:\n    publishes:\n      - {topic: identity.user.created, schema: schemas/e.v1.json}\n")),
		"manifests/blog.yaml":     []byte(module("blog", dep("identity"), "  events:\n    subscribes:\n      - {topic: identity.user.created, route: /events/user}\n")),
		"manifests/billing.yaml":  []byte(module("billing", dep("identity"), "  secrets: [stripe-key]\n")),
		"manifests/gateway.yaml":  []byte(module("gateway", dep("blog", "billing"), "")),
	}
	set, err := manifest.Load(files, root)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func find(t *testing.T, arts []Artifact, p string) []byte {
	t.Helper()
	for _, a := range arts {
		if a.Path == p {
			return a.Data
		}
	}
	t.Fatalf("%s not generated", p)
	return nil
}

func TestDiamond(t *testing.T) {
	set := diamond(t)
	arts, err := Generate(set)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Generate(set)
	for i := range arts {
		if arts[i].Path != again[i].Path || !bytes.Equal(arts[i].Data, again[i].Data) {
			t.Fatalf("output not deterministic: %s", arts[i].Path)
		}
		if !IsGenerated(arts[i].Data) {
			t.Errorf("%s lacks the generated header", arts[i].Path)
		}
	}

	// identity may be invoked by those that depend on it, the gateway and the dev caller only.
	var cfg struct {
		Spec struct {
			AccessControl struct {
				DefaultAction string `yaml:"defaultAction"`
				Policies      []struct {
					AppID string `yaml:"appId"`
				} `yaml:"policies"`
			} `yaml:"accessControl"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(find(t, arts, "deploy/local/config/identity.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	var callers []string
	for _, p := range cfg.Spec.AccessControl.Policies {
		callers = append(callers, p.AppID)
	}
	if got := strings.Join(callers, ","); got != "billing,blog,console,gateway" || cfg.Spec.AccessControl.DefaultAction != "deny" {
		t.Errorf("identity callers = %s (default %s)", got, cfg.Spec.AccessControl.DefaultAction)
	}
	if err := yaml.Unmarshal(find(t, arts, "deploy/local/config/gateway.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Spec.AccessControl.Policies) != 1 || cfg.Spec.AccessControl.Policies[0].AppID != "console" {
		t.Errorf("gateway should be callable by the dev caller only: %+v", cfg.Spec.AccessControl.Policies)
	}

	// Least privilege: a pub/sub component of its own for each app that uses events, and
	// none for the others; secrets only where declared.
	for _, app := range []string{"blog", "identity"} {
		var comp struct {
			Metadata struct{ Name string } `yaml:"metadata"`
			Scopes   []string              `yaml:"scopes"`
		}
		_ = yaml.Unmarshal(find(t, arts, "components/local/pubsub-"+app+".yaml"), &comp)
		if got := strings.Join(comp.Scopes, ","); got != app || comp.Metadata.Name != "pubsub-"+app {
			t.Errorf("%s's pub/sub component is %s, scoped to %s", app, comp.Metadata.Name, got)
		}
	}
	for _, a := range arts {
		if strings.HasPrefix(a.Path, "components/local/pubsub-billing") || strings.HasPrefix(a.Path, "components/local/pubsub-gateway") {
			t.Errorf("%s generated for an app without events", a.Path)
		}
	}
	if !bytes.Contains(find(t, arts, "deploy/local/config/billing.yaml"), []byte("allowedSecrets:\n          - stripe-key")) {
		t.Errorf("billing's secret scope missing:\n%s", find(t, arts, "deploy/local/config/billing.yaml"))
	}
	sub := string(find(t, arts, "components/local/subscription-blog-identity-user-created.yaml"))
	for _, want := range []string{"pubsubname: pubsub-blog", "topic: identity.user.created", "default: /events/user", "deadLetterTopic: identity.user.created.deadletter", "scopes:\n  - blog"} {
		if !strings.Contains(sub, want) {
			t.Errorf("subscription lacks %q:\n%s", want, sub)
		}
	}

	// The run plan starts dependencies first and parses as a plan.
	plan, err := runplan.Parse("runplan.yaml", find(t, arts, "deploy/local/runplan.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	order, _ := plan.Order()
	if got := strings.Join(order, ","); got != "identity,billing,blog,gateway,console" {
		t.Errorf("run order = %s", got)
	}
}

// Nothing that may already be applied is retried: no timeout by default (Dapr retries a call
// its timeout cut short); a module's own timeout turns its retries off unless it sets them.
func TestResiliencyRetriesOnlyWhatIsSafe(t *testing.T) {
	root := t.TempDir()
	files := map[string][]byte{
		"manifests/platform.yaml": []byte(platform),
		"manifests/gateway.yaml":  []byte(module("gateway", "", "")),
		"manifests/plain.yaml":    []byte(module("plain", "", "")),
		"manifests/timed.yaml":    []byte(module("timed", "", "  resiliency: {timeout: 2s}\n")),
		"manifests/reads.yaml":    []byte(module("reads", "", "  resiliency: {timeout: 2s, retries: 2}\n")),
	}
	set, err := manifest.Load(files, root)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := Generate(set)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Spec resiliencySpec `yaml:"spec"`
	}
	if err := yaml.Unmarshal(find(t, arts, "components/local/resiliency.yaml"), &res); err != nil {
		t.Fatal(err)
	}
	p := res.Spec.Policies
	for _, c := range []struct {
		app     string
		timeout string
		retries int
	}{{"plain", "", 3}, {"timed", "2s", 0}, {"reads", "2s", 2}} {
		if p.Timeouts[c.app] != c.timeout || res.Spec.Targets.Apps[c.app].Timeout != map[bool]string{true: c.app}[c.timeout != ""] {
			t.Errorf("%s: timeout %q (target %q), want %q", c.app, p.Timeouts[c.app], res.Spec.Targets.Apps[c.app].Timeout, c.timeout)
		}
		r := p.Retries[c.app]
		if r.MaxRetries != c.retries || r.Matching == nil || r.Matching.HTTPStatusCodes != "503" || r.Matching.GRPCStatusCodes != "14" {
			t.Errorf("%s: retries %+v, want %d on 503 / Unavailable only", c.app, r, c.retries)
		}
	}
}
