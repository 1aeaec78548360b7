package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/goplt/goplt/internal/cli"
	"github.com/goplt/goplt/internal/images"
	"github.com/goplt/goplt/internal/repo"
)

// The generated Kubernetes output meets a real control plane the way a user applies it:
// Dapr's CRDs (from the pinned Dapr module) and Strimzi's (testdata) are installed, then
// `kubectl apply --server-side --validate=strict -k` of the dev overlay. Every object must be
// accepted without a warning, every Deployment's Pods must pass Pod Security "restricted"
// admission and become Available on kwok's fake node, each app's service account may read its
// own Secrets and not another app's, and no Service selects a Pod of another workload.
func TestGeneratedOutputDeploys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane")
	}
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	started := time.Now()
	log, err := os.Create(filepath.Join(t.TempDir(), "control-plane.log"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := Start(ctx, root, Options{Nodes: true, Output: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	t.Logf("control plane up in %v", time.Since(started).Round(time.Millisecond))

	installCRDs(ctx, t, cp, root, false)
	if err := cp.StartInjector(ctx); err != nil {
		t.Fatal(err)
	}
	applied := time.Now()
	out, warnings, err := cp.KubectlWarn(ctx, nil, "apply", "--server-side", "--field-manager=goplt", "--validate=strict",
		"-k", filepath.Join(root, "deploy/overlays/dev"))
	if err != nil {
		t.Fatalf("the dev overlay was refused:\n%v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("the API server warned:\n%s", strings.Join(warnings, "\n"))
	}
	objects := strings.Count(strings.TrimSpace(string(out)), "\n") + 1
	t.Logf("%d objects applied in %v, 0 refused", objects, time.Since(applied).Round(time.Millisecond))

	// The API server's schema checks can fail: a Configuration without metric.enabled, which
	// goplt wrote before, is refused.
	bad := `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: mutated, namespace: goplt}
spec:
  metric: {http: {increasedCardinality: false}}
`
	if _, err := cp.Kubectl(ctx, []byte(bad), "apply", "--server-side", "--validate=strict", "-f", "-"); err == nil || !strings.Contains(err.Error(), "spec.metric.enabled: Required value") {
		t.Errorf("a Configuration without metric.enabled: %v, want refused", err)
	}

	// Least privilege: each app's account reads its own secrets only.
	for _, c := range []struct {
		as, secret, want string
	}{
		{"notes", "event-signing-notes", "yes"},
		{"notes", "event-keys", "yes"},
		{"notes", "event-signing-blog", "no"},
		{"notes", "auth-signing-keys", "no"},
		{"auth", "auth-signing-keys", "yes"},
		{"gateway", "auth-signing-keys", "no"},
	} {
		got, _ := cp.Kubectl(ctx, nil, "auth", "can-i", "get", "secret/"+c.secret, "-n", "goplt", "--as=system:serviceaccount:goplt:"+c.as)
		if strings.TrimSpace(string(got)) != c.want {
			t.Errorf("can %s get secret %s: %q, want %s", c.as, c.secret, strings.TrimSpace(string(got)), c.want)
		}
	}
	if got, _ := cp.Kubectl(ctx, nil, "auth", "can-i", "list", "secrets", "-n", "goplt", "--as=system:serviceaccount:goplt:notes"); strings.TrimSpace(string(got)) != "no" {
		t.Errorf("notes may list secrets: %s", got)
	}

	// goplt secrets kubernetes creates what the pods reference, printing no value, and a
	// second run changes nothing.
	const dbURL = "postgres://goplt:not-printed@db.example:5432/goplt"
	t.Setenv("GOPLT_DATABASE_URL", dbURL)
	secretsCmd := []string{"secrets", "kubernetes", "--kubectl", cp.KubectlPath(), "--kubeconfig", cp.Kubeconfig}
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, secretsCmd, &stdout, &stderr); code != 0 {
		t.Fatalf("goplt secrets kubernetes: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	t.Logf("goplt secrets kubernetes: %s", strings.SplitN(stdout.String(), "\n", 2)[0])
	first := secretData(ctx, t, cp)
	for name, fields := range first {
		for _, v := range fields {
			if len(v) >= 8 && strings.Contains(stdout.String()+stderr.String(), v) {
				t.Errorf("the output shows a value of secret %s", name)
			}
		}
	}
	stdout.Reset()
	if code := cli.Main(ctx, secretsCmd, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), " 0 created, 0 updated,") {
		t.Fatalf("second run: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if again := secretData(ctx, t, cp); !reflect.DeepEqual(first, again) {
		t.Error("a second run changed secret values")
	}
	for _, ref := range podReferences(ctx, t, cp) {
		if _, err := cp.Kubectl(ctx, nil, "get", "-n", "goplt", ref); err != nil {
			t.Errorf("a pod references %s, which does not exist: %v", ref, err)
		}
	}

	if claims := bindVolumes(ctx, t, cp); claims["audit-witness"] != "1Gi" {
		t.Errorf("no claim audit-witness of 1Gi (audit's witness volume) among %v", claims)
	}

	// Every Deployment's Pods are admitted (restricted) and become Available on the fake node.
	if _, err := cp.Kubectl(ctx, nil, "wait", "-n", "goplt", "--for=condition=Available", "deployment", "--all", "--timeout=180s"); err != nil {
		events, _ := cp.Kubectl(ctx, nil, "get", "events", "-n", "goplt")
		rs, _ := cp.Kubectl(ctx, nil, "describe", "replicasets", "-n", "goplt")
		t.Fatalf("Deployments not Available: %v\n%s\n%s", err, events, rs)
	}
	t.Logf("every Deployment Available %v after the apply", time.Since(applied).Round(time.Millisecond))

	// Every app's Pods carry Dapr's injected sidecar: goplt's daprd, the app's id and
	// Configuration, its tokens from its Secrets, the resources the annotations ask for.
	var all corev1.PodList
	raw, err := cp.Kubectl(ctx, nil, "get", "pods", "-n", "goplt", "-o", "json")
	if err != nil || json.Unmarshal(raw, &all) != nil {
		t.Fatalf("list pods: %v", err)
	}
	injected := map[string]bool{}
	for _, pod := range all.Items {
		app := pod.Labels["app.kubernetes.io/name"]
		d, err := DaprdContainer(pod)
		if err != nil {
			t.Error(err)
			continue
		}
		args := " " + strings.Join(d.Args, " ") + " "
		env := map[string]string{}
		for _, e := range d.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				env[e.Name] = e.ValueFrom.SecretKeyRef.Name
			}
		}
		switch {
		case d.Image != "registry.example.com/goplt/daprd:1.16.5-goplt":
			t.Errorf("%s: sidecar image %s, want goplt's daprd", pod.Name, d.Image)
		case !strings.Contains(args, " --app-id "+app+" ") || !strings.Contains(args, " --config "+app+" "):
			t.Errorf("%s: sidecar args %s", pod.Name, args)
		case env["DAPR_API_TOKEN"] != app+"-api-token" || env["APP_API_TOKEN"] != app+"-app-token":
			t.Errorf("%s: sidecar tokens from %v", pod.Name, env)
		case d.Resources.Requests.Memory().String() != "96Mi" || d.Resources.Limits.Memory().String() != "256Mi":
			t.Errorf("%s: sidecar resources %v", pod.Name, d.Resources)
		default:
			injected[app] = true
		}
	}
	names, _ := cp.Kubectl(ctx, nil, "get", "deployments", "-n", "goplt", "-o", "name")
	deployments := len(strings.Fields(string(names)))
	t.Logf("%d of %d Deployments' Pods injected with goplt's daprd", len(injected), deployments)
	if len(injected) != deployments || deployments == 0 {
		t.Errorf("injected apps %v, want all %d", slices.Sorted(maps.Keys(injected)), deployments)
	}

	// Each Service selects the Pods of its own Deployment and nothing else.
	var pods struct {
		Items []struct {
			Metadata struct {
				Name            string
				Labels          map[string]string
				OwnerReferences []struct{ Kind, Name string } `json:"ownerReferences"`
			}
		}
	}
	raw, err = cp.Kubectl(ctx, nil, "get", "pods", "-n", "goplt", "-o", "json")
	if err != nil || json.Unmarshal(raw, &pods) != nil {
		t.Fatalf("list pods: %v", err)
	}
	var services struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ Selector map[string]string }
		}
	}
	raw, err = cp.Kubectl(ctx, nil, "get", "services", "-n", "goplt", "-o", "json")
	if err != nil || json.Unmarshal(raw, &services) != nil {
		t.Fatalf("list services: %v", err)
	}
	for _, s := range services.Items {
		selected := 0
		for _, p := range pods.Items {
			match := len(s.Spec.Selector) > 0
			for k, v := range s.Spec.Selector {
				match = match && p.Metadata.Labels[k] == v
			}
			if !match {
				continue
			}
			selected++
			if len(p.Metadata.OwnerReferences) != 1 || p.Metadata.OwnerReferences[0].Kind != "ReplicaSet" || !strings.HasPrefix(p.Metadata.OwnerReferences[0].Name, s.Metadata.Name+"-") {
				t.Errorf("service %s selects pod %s of %v", s.Metadata.Name, p.Metadata.Name, p.Metadata.OwnerReferences)
			}
		}
		if selected == 0 {
			t.Errorf("service %s selects no pod", s.Metadata.Name)
		}
	}
}

// installCRDs installs Dapr's CRDs from the pinned Dapr module and Strimzi's from testdata,
// and waits until they are established. Dapr's Subscription CRD asks for a conversion webhook
// that Dapr's operator patches in at its start (and refuses to start without); with no
// operator (withOperator false), the test drops it: goplt writes the storage version, v2alpha1.
func installCRDs(ctx context.Context, t *testing.T, cp *ControlPlane, root string, withOperator bool) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/dapr/dapr")
	cmd.Dir = root
	dir, err := cmd.Output()
	if err != nil {
		t.Fatalf("find the Dapr module: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(dir)), "charts/dapr/crds/*.yaml"))
	strimzi, _ := filepath.Glob("testdata/crds/*.yaml")
	conversion := regexp.MustCompile(`(?s)\n  conversion:\n    strategy: Webhook\n.*?\n  names:`)
	for _, f := range append(files, strimzi...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !withOperator {
			b = conversion.ReplaceAll(b, []byte("\n  conversion:\n    strategy: None\n  names:"))
		}
		if _, err := cp.Kubectl(ctx, b, "apply", "--server-side", "-f", "-"); err != nil {
			t.Fatalf("install %s: %v", filepath.Base(f), err)
		}
	}
	if _, err := cp.Kubectl(ctx, nil, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
}

// secretData reads the namespace's Secrets (values decoded).
func secretData(ctx context.Context, t *testing.T, cp *ControlPlane) map[string]map[string]string {
	t.Helper()
	raw, err := cp.Kubectl(ctx, nil, "get", "secrets", "-n", "goplt", "-o", "json")
	var l struct {
		Items []struct {
			Metadata struct{ Name string }
			Data     map[string][]byte
		}
	}
	if err != nil || json.Unmarshal(raw, &l) != nil {
		t.Fatalf("read secrets: %v", err)
	}
	out := map[string]map[string]string{}
	for _, it := range l.Items {
		out[it.Metadata.Name] = map[string]string{}
		for k, v := range it.Data {
			out[it.Metadata.Name][k] = string(v)
		}
	}
	return out
}

// podReferences lists ("secret/<name>", "configmap/<name>") what the Deployments' pod
// templates reference: env secretKeyRefs, volumes, the Dapr injector's token secrets, and the
// secrets each app's Role lets its sidecar read.
func podReferences(ctx context.Context, t *testing.T, cp *ControlPlane) []string {
	t.Helper()
	var deps struct {
		Items []struct {
			Spec struct {
				Template struct {
					Metadata struct{ Annotations map[string]string }
					Spec     struct {
						Containers []struct {
							Env []struct {
								ValueFrom *struct {
									SecretKeyRef *struct{ Name string } `json:"secretKeyRef"`
								} `json:"valueFrom"`
							}
						}
						Volumes []struct {
							ConfigMap *struct{ Name string } `json:"configMap"`
							Secret    *struct {
								SecretName string `json:"secretName"`
							} `json:"secret"`
						}
					}
				}
			}
		}
	}
	raw, err := cp.Kubectl(ctx, nil, "get", "deployments", "-n", "goplt", "-o", "json")
	if err != nil || json.Unmarshal(raw, &deps) != nil {
		t.Fatalf("list deployments: %v", err)
	}
	refs := map[string]bool{}
	for _, d := range deps.Items {
		pt := d.Spec.Template
		for _, k := range []string{"dapr.io/app-token-secret", "dapr.io/api-token-secret"} {
			if n := pt.Metadata.Annotations[k]; n != "" {
				refs["secret/"+n] = true
			}
		}
		for _, c := range pt.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					refs["secret/"+e.ValueFrom.SecretKeyRef.Name] = true
				}
			}
		}
		for _, v := range pt.Spec.Volumes {
			if v.ConfigMap != nil {
				refs["configmap/"+v.ConfigMap.Name] = true
			}
			if v.Secret != nil {
				refs["secret/"+v.Secret.SecretName] = true
			}
		}
	}
	var roles struct {
		Items []struct {
			Rules []struct {
				ResourceNames []string `json:"resourceNames"`
			}
		}
	}
	raw, err = cp.Kubectl(ctx, nil, "get", "roles", "-n", "goplt", "-o", "json")
	if err != nil || json.Unmarshal(raw, &roles) != nil {
		t.Fatalf("list roles: %v", err)
	}
	for _, r := range roles.Items {
		for _, rule := range r.Rules {
			for _, n := range rule.ResourceNames {
				refs["secret/"+n] = true
			}
		}
	}
	if len(refs) < 10 {
		t.Fatalf("only %d references found: the walk is broken", len(refs))
	}
	return slices.Sorted(maps.Keys(refs))
}

// bindVolumes gives each claim a hostPath volume of its size and returns the claims' sizes.
// A real cluster's default StorageClass provisions them; this one has no provisioner. On a
// real node the folder is made, owned by the pods' user.
func bindVolumes(ctx context.Context, t *testing.T, cp *ControlPlane) map[string]string {
	t.Helper()
	raw, err := cp.Kubectl(ctx, nil, "get", "pvc", "-n", "goplt", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.resources.requests.storage}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		name, size, _ := strings.Cut(line, " ")
		if name == "" {
			continue
		}
		claims[name] = size
		dir := "/var/lib/kwok-volumes/" + name
		if cp.node != nil {
			dir = filepath.Join(cp.node.dir, "volumes", name)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, images.User, images.User); err != nil {
				t.Fatal(err)
			}
		}
		pv := fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: goplt-%s}
spec:
  capacity: {storage: %s}
  accessModes: [ReadWriteOnce]
  hostPath: {path: %s}
  claimRef: {namespace: goplt, name: %s}
`, name, size, dir, name)
		if _, err := cp.Kubectl(ctx, []byte(pv), "apply", "-f", "-"); err != nil {
			t.Fatalf("a volume for claim %s: %v", name, err)
		}
	}
	return claims
}
