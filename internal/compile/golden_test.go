package compile

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	componentsapi "github.com/dapr/dapr/pkg/apis/components/v1alpha1"
	configurationapi "github.com/dapr/dapr/pkg/apis/configuration/v1alpha1"
	resiliencyapi "github.com/dapr/dapr/pkg/apis/resiliency/v1alpha1"
	subscriptionsapi "github.com/dapr/dapr/pkg/apis/subscriptions/v2alpha1"
	"github.com/ory/ladon"
	ladonmanager "github.com/ory/ladon/manager/memory"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/goplt/goplt/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/*/golden")

const fixture = "testdata/fixture8"

func compileFixture(t *testing.T) []Artifact {
	t.Helper()
	set, err := manifest.LoadDir(filepath.Join(fixture, "manifests"), fixture)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Modules) != 8 {
		t.Fatalf("fixture has %d modules, want 8", len(set.Modules))
	}
	arts, err := Generate(set)
	if err != nil {
		t.Fatal(err)
	}
	return arts
}

// Golden files pin every byte generated for an 8-module set with diamonds
// (gateway -> blog, billing -> identity; notify -> blog, billing).
func TestGoldenFixture(t *testing.T) {
	arts := compileFixture(t)
	golden := filepath.Join(fixture, "golden")
	if *update {
		_ = os.RemoveAll(golden)
		for _, a := range arts {
			p := filepath.Join(golden, a.Path)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, a.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]bool{}
	for _, a := range arts {
		want[filepath.ToSlash(a.Path)] = true
		b, err := os.ReadFile(filepath.Join(golden, a.Path))
		if err != nil {
			t.Errorf("%s: no golden file (go test ./internal/compile -update): %v", a.Path, err)
			continue
		}
		if !bytes.Equal(b, a.Data) {
			t.Errorf("%s differs from its golden file (review, then go test ./internal/compile -update)", a.Path)
		}
	}
	_ = filepath.WalkDir(golden, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(golden, p)
			if !want[filepath.ToSlash(rel)] {
				t.Errorf("golden file %s is no longer generated", rel)
			}
		}
		return err
	})
}

// strictDecode converts YAML to JSON and decodes it into Dapr's own API type, rejecting any
// field that type does not know.
func strictDecode(doc []byte, into any) error {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// Every generated Dapr resource decodes strictly into github.com/dapr/dapr's types, and every
// Kubernetes object into k8s.io/api's.
func TestResourcesDecodeStrictly(t *testing.T) {
	kinds := map[string]int{}
	for _, a := range compileFixture(t) {
		if !strings.HasSuffix(a.Path, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(string(a.Data), "\n---\n") {
			var head struct {
				Kind       string `yaml:"kind"`
				APIVersion string `yaml:"apiVersion"`
			}
			_ = yaml.Unmarshal([]byte(doc), &head)
			var into any
			switch head.APIVersion + " " + head.Kind {
			case "dapr.io/v1alpha1 Component":
				into = &componentsapi.Component{}
			case "dapr.io/v1alpha1 Configuration":
				into = &configurationapi.Configuration{}
			case "dapr.io/v1alpha1 Resiliency":
				into = &resiliencyapi.Resiliency{}
			case "dapr.io/v2alpha1 Subscription":
				into = &subscriptionsapi.Subscription{}
			case "apps/v1 Deployment":
				into = &appsv1.Deployment{}
			case "v1 Service":
				into = &corev1.Service{}
			case "v1 ConfigMap":
				into = &corev1.ConfigMap{}
			case "v1 Namespace":
				into = &corev1.Namespace{}
			case "v1 ServiceAccount":
				into = &corev1.ServiceAccount{}
			case "rbac.authorization.k8s.io/v1 Role":
				into = &rbacv1.Role{}
			case "rbac.authorization.k8s.io/v1 RoleBinding":
				into = &rbacv1.RoleBinding{}
			case "policy/v1 PodDisruptionBudget":
				into = &policyv1.PodDisruptionBudget{}
			case "kafka.strimzi.io/v1 KafkaTopic", "kustomize.config.k8s.io/v1beta1 Kustomization":
				kinds[head.Kind]++ // checked against a real API server and kubectl (internal/kubetest)
				continue
			case "kafka.strimzi.io/v1 KafkaUser":
				if err := validateKafkaUser(doc); err != nil {
					t.Errorf("%s: %v", a.Path, err)
				}
				kinds[head.Kind]++
				continue
			case "goplt/v1 RunPlan", "goplt/v1 MigrationPlan", "goplt/v1 BrokerACLs", " ":
				continue // goplt's own documents, and dapr.yaml (no kind)
			default:
				t.Errorf("%s: unexpected %s %s", a.Path, head.APIVersion, head.Kind)
				continue
			}
			kinds[head.Kind]++
			if err := strictDecode([]byte(doc), into); err != nil {
				t.Errorf("%s does not decode strictly into %s %s: %v", a.Path, head.APIVersion, head.Kind, err)
			}
		}
	}
	// 8 modules: a ServiceAccount, Deployment and Service each, a Configuration per profile. A
	// KafkaUser per module with events (5 of 8); a Role and RoleBinding per module that reads
	// secrets (6).
	// Kustomizations: the components, the base, two overlays.
	for kind, want := range map[string]int{"Namespace": 1, "ServiceAccount": 8, "Role": 6, "RoleBinding": 6, "Deployment": 8, "Service": 8,
		"Configuration": 8 + 1 + 8, "ConfigMap": 2, "KafkaUser": 5, "Kustomization": 4} {
		if kinds[kind] != want {
			t.Errorf("%d %s objects, want %d", kinds[kind], kind, want)
		}
	}
}

// The policies load into ladon and decide as the roles declare, with ladon as the judge.
func TestPoliciesDecideAsDeclared(t *testing.T) {
	var doc struct {
		Generated    string                 `json:"generated"`
		Permissions  []string               `json:"permissions"`
		DefaultRoles []string               `json:"defaultRoles"`
		Policies     []*ladon.DefaultPolicy `json:"policies"`
	}
	for _, a := range compileFixture(t) {
		if a.Path == PoliciesFile {
			dec := json.NewDecoder(bytes.NewReader(a.Data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(doc.Permissions) == 0 || !sort.StringsAreSorted(doc.Permissions) {
		t.Fatalf("permission catalogue %v: want every declared permission, sorted", doc.Permissions)
	}
	l := &ladon.Ladon{Manager: ladonmanager.NewMemoryManager()}
	for _, p := range doc.Policies {
		if err := l.Manager.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		role, action string
		allow        bool
	}{
		{"blog.editor", "blog.post.update", true},
		{"blog.author", "blog.post.create", true},
		{"blog.author", "blog.post.update", false},
		{"billing.customer", "billing.plan.read", true},
		{"billing.customer", "identity.user.manage", false},
		{"identity.admin", "identity.user.manage", true},
		{"nobody", "blog.post.create", false},
	} {
		err := l.IsAllowed(context.Background(), &ladon.Request{Subject: "role:" + c.role, Action: c.action, Resource: "blog:post:42"})
		if (err == nil) != c.allow {
			t.Errorf("%s %s: allowed=%v, want %v", c.role, c.action, err == nil, c.allow)
		}
	}
}

func TestGoName(t *testing.T) {
	got := fmt.Sprint(goName("post.create"), " ", goName("post-editor"), " ", goName("user_profile.read"))
	if got != "PostCreate PostEditor UserProfileRead" {
		t.Errorf("goName: %s", got)
	}
}

func TestGraph(t *testing.T) {
	set, err := manifest.LoadDir(filepath.Join(fixture, "manifests"), fixture)
	if err != nil {
		t.Fatal(err)
	}
	text := GraphText(set)
	for _, want := range []string{"identity 1.3.0\n", "notify 0.1.0 -> blog (>=1.1.0), billing (>=0.5.0)\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("graph text lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "identity 1.3.0") > strings.Index(text, "blog 1.2.0") {
		t.Errorf("dependencies not listed first:\n%s", text)
	}
	dot := GraphDOT(set)
	if !strings.HasPrefix(dot, "digraph goplt {") || !strings.Contains(dot, `"gateway" -> "notify" [label=">=0.1.0"];`) {
		t.Errorf("dot:\n%s", dot)
	}
}

// explain: the identity configuration admits blog because of blog's dependsOn entry, and says
// exactly where that entry is.
func TestSourcesPointAtManifestEntries(t *testing.T) {
	blog, err := os.ReadFile(filepath.Join(fixture, "manifests", "blog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	line, col := 0, 0
	for i, l := range strings.Split(string(blog), "\n") {
		if c := strings.Index(l, "{name: identity"); c >= 0 {
			line, col = i+1, c+1
		}
	}
	for _, a := range compileFixture(t) {
		if a.Path != "deploy/local/config/identity.yaml" {
			continue
		}
		for _, s := range a.Sources {
			if s.Part == "accessControl allows blog (depends on identity)" {
				if s.Pos.File != "manifests/blog.yaml" || s.Pos.Line != line || s.Pos.Col != col {
					t.Errorf("source at %s, want manifests/blog.yaml:%d:%d", s.Pos, line, col)
				}
				return
			}
		}
		t.Fatalf("no source for blog's access: %+v", a.Sources)
	}
	t.Fatal("identity configuration not generated")
}

// The daprd registrations generated for the fixture (which uses every building block,
// state included) compile against the pinned Dapr: the catalogue's Go is checked for real, by
// type-checking tools/dapr/daprd with the fixture's file in place of the repository's.
func TestFixtureSidecarCompilesAgainstDapr(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks Dapr's runtime (a minute or two with a cold build cache)")
	}
	golden, err := filepath.Abs(filepath.Join("testdata", "fixture8", "golden", SidecarComponentsFile))
	if err != nil {
		t.Fatal(err)
	}
	target, err := filepath.Abs(filepath.Join("..", "..", SidecarComponentsFile))
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(t.TempDir(), "overlay.json")
	b, _ := json.Marshal(map[string]map[string]string{"Replace": {target: golden}})
	if err := os.WriteFile(overlay, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "-overlay", overlay, "./daprd")
	cmd.Dir = filepath.Join("..", "..", "tools", "dapr")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the fixture's daprd registrations do not compile: %v\n%s", err, out)
	}
}

// validateKafkaUser checks a KafkaUser against testdata/strimzi-kafkauser-v1.schema.json.
func validateKafkaUser(doc string) error {
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("testdata/strimzi-kafkauser-v1.schema.json")
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// The repository's KafkaUsers (which include a broadcast subscription's prefixed group)
// validate too.
func TestRepositoryKafkaUsersValidate(t *testing.T) {
	b, err := os.ReadFile("../../" + kafkaUsersFile)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	if !strings.Contains(string(b), "patternType: prefix\n") || len(docs) < 5 {
		t.Fatalf("%s: expected a KafkaUser per app with events, one with a prefixed group", kafkaUsersFile)
	}
	for i, doc := range docs {
		if err := validateKafkaUser(doc); err != nil {
			t.Errorf("%s document %d: %v", kafkaUsersFile, i+1, err)
		}
	}
}
