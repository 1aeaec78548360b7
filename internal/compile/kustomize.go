package compile

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dapr/dapr/pkg/injector/annotations"
)

// kustomization is the subset of kustomize's Kustomization goplt writes.
type kustomization struct {
	APIVersion string          `yaml:"apiVersion"`
	Kind       string          `yaml:"kind"`
	Resources  []string        `yaml:"resources"`
	Replicas   []replicaCount  `yaml:"replicas,omitempty"`
	Labels     []kustomizLabel `yaml:"labels,omitempty"`
	// Configurations are transformer configurations: kustomize merges a base's into every
	// kustomization built on it.
	Configurations []string `yaml:"configurations,omitempty"`
}

// transformerConfig is a kustomize transformer configuration naming more image fields.
type transformerConfig struct {
	Images []fieldSpec `yaml:"images"`
}

type fieldSpec struct {
	Path string `yaml:"path"`
	Kind string `yaml:"kind"`
}

// kustomizeConfig is the base's transformer configuration: an overlay's images: then also
// rewrites Dapr's dapr.io/sidecar-image annotation (the injector's image for the sidecar), so
// naming a registry once moves the sidecar too. ("\/" escapes the slash in the key.)
const kustomizeConfig = "kustomizeconfig.yaml"

type replicaCount struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

type kustomizLabel struct {
	Pairs map[string]string `yaml:"pairs"`
}

// Overlays goplt writes, beside the base (kustomize refuses an overlay inside its base).
const (
	OverlayDev        = "deploy/overlays/dev"
	OverlayProduction = "deploy/overlays/production"
)

// kustomizations makes the Kubernetes output applicable with `kubectl apply -k`: a kustomization
// over the Dapr resources (components/kubernetes), the base (deploy/kubernetes: the namespace,
// the apps, their Dapr Configurations, the broker's users and topics, and the Dapr resources),
// and two overlays: dev (one replica of everything, for a small cluster) and production (the
// base as generated; the place to name a registry, patch resources, add ingress).
func (g *gen) kustomizations() {
	var comps, base []string
	for _, a := range g.out {
		switch {
		case !strings.HasSuffix(a.Path, ".yaml"):
		case strings.HasPrefix(a.Path, g.compDir+"/"):
			comps = append(comps, strings.TrimPrefix(a.Path, g.compDir+"/"))
		case strings.HasPrefix(a.Path, KubernetesDeploy+"/"):
			base = append(base, strings.TrimPrefix(a.Path, KubernetesDeploy+"/"))
		}
	}
	slices.Sort(comps)
	slices.Sort(base)
	k := func(resources ...string) kustomization {
		return kustomization{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization", Resources: resources}
	}
	g.fromPlatform("namespace and the Kubernetes profile", "")
	g.emit(path.Join(g.compDir, "kustomization.yaml"), k(comps...))
	rel := relPath(KubernetesDeploy, g.compDir)
	g.fromPlatform("namespace and the Kubernetes profile", "")
	baseK := k(append([]string{rel}, base...)...)
	baseK.Configurations = []string{kustomizeConfig}
	g.emit(path.Join(KubernetesDeploy, "kustomization.yaml"), baseK)
	g.fromPlatform("image fields of the Kubernetes profile", "")
	g.emitNote(path.Join(KubernetesDeploy, kustomizeConfig), "# Kustomize transformer configuration: images: also rewrites the sidecar image annotation.\n",
		transformerConfig{Images: []fieldSpec{{Path: `spec/template/metadata/annotations/` + strings.ReplaceAll(annotations.KeySidecarImage, "/", `\/`), Kind: "Deployment"}}})

	up := relPath(OverlayDev, KubernetesDeploy)
	dev := k(up)
	for _, name := range g.set.Order() {
		if m := g.set.Module(name); m.Spec.App.Instances() > 1 {
			dev.Replicas = append(dev.Replicas, replicaCount{Name: m.Spec.App.ID, Count: 1})
		}
	}
	dev.Labels = []kustomizLabel{{Pairs: map[string]string{"goplt.dev/overlay": "dev"}}}
	g.fromPlatform("the dev overlay: one replica of each app", "")
	g.emit(path.Join(OverlayDev, "kustomization.yaml"), dev)
	prod := k(up)
	prod.Labels = []kustomizLabel{{Pairs: map[string]string{"goplt.dev/overlay": "production"}}}
	g.fromPlatform("the production overlay", "")
	g.emitNote(path.Join(OverlayProduction, "kustomization.yaml"), "# Copy this overlay to name your registry (images:), patch resources or add an ingress;\n"+
		"# docs/kubernetes.md says how.\n", prod)
}

// relPath is the path from folder from to folder to, both relative to the repository root.
func relPath(from, to string) string {
	r, err := filepath.Rel(from, to)
	if err != nil {
		panic(fmt.Sprintf("compile: %s is not relative to %s", to, from)) // both are our constants
	}
	return filepath.ToSlash(r)
}
