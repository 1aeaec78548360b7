package compile

import (
	"path"
	"strconv"
	"time"

	"github.com/dapr/dapr/pkg/injector/annotations"

	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/sidecar"
)

// Kubernetes object shapes (the subset goplt emits); tests decode them strictly into k8s.io/api.
type (
	kobj struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
		Spec       any        `yaml:"spec,omitempty"`
		Data       any        `yaml:"data,omitempty"`
	}
	podMeta struct {
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	}
	envVar struct {
		Name      string     `yaml:"name"`
		Value     string     `yaml:"value,omitempty"`
		ValueFrom *envSource `yaml:"valueFrom,omitempty"`
	}
	envSource struct {
		SecretKeyRef struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		PeriodSeconds    int `yaml:"periodSeconds"`
		FailureThreshold int `yaml:"failureThreshold,omitempty"`
	}
	resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
	containerSecurity struct {
		AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	}
	podSecurity struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
		RunAsGroup   int  `yaml:"runAsGroup"`
		// FSGroup owns mounted volumes, so the non-root app can write its claims.
		FSGroup        int `yaml:"fsGroup,omitempty"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	}
	containerPort struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	}
	container struct {
		Name            string             `yaml:"name"`
		Image           string             `yaml:"image"`
		Args            []string           `yaml:"args,omitempty"`
		Ports           []containerPort    `yaml:"ports,omitempty"`
		Env             []envVar           `yaml:"env"`
		StartupProbe    *probe             `yaml:"startupProbe,omitempty"`
		ReadinessProbe  *probe             `yaml:"readinessProbe,omitempty"`
		LivenessProbe   *probe             `yaml:"livenessProbe,omitempty"`
		Resources       *resources         `yaml:"resources,omitempty"`
		SecurityContext *containerSecurity `yaml:"securityContext,omitempty"`
		VolumeMounts    []volumeMount      `yaml:"volumeMounts,omitempty"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	volume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap,omitempty"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim,omitempty"`
	}
	podSpec struct {
		ServiceAccountName string       `yaml:"serviceAccountName,omitempty"`
		SecurityContext    *podSecurity `yaml:"securityContext,omitempty"`
		Containers         []container  `yaml:"containers"`
		Volumes            []volume     `yaml:"volumes,omitempty"`
	}
	policyRule struct {
		APIGroups     []string `yaml:"apiGroups"`
		Resources     []string `yaml:"resources"`
		ResourceNames []string `yaml:"resourceNames,omitempty"`
		Verbs         []string `yaml:"verbs"`
	}
	roleRef struct {
		APIGroup string `yaml:"apiGroup"`
		Kind     string `yaml:"kind"`
		Name     string `yaml:"name"`
	}
	subject struct {
		Kind      string `yaml:"kind"`
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	}
	// rbacObj is a Role or RoleBinding: rules, or a role reference and subjects, at the top level.
	rbacObj struct {
		APIVersion string       `yaml:"apiVersion"`
		Kind       string       `yaml:"kind"`
		Metadata   objectMeta   `yaml:"metadata"`
		Rules      []policyRule `yaml:"rules,omitempty"`
		RoleRef    *roleRef     `yaml:"roleRef,omitempty"`
		Subjects   []subject    `yaml:"subjects,omitempty"`
	}
	podTemplate struct {
		Metadata podMeta `yaml:"metadata"`
		Spec     podSpec `yaml:"spec"`
	}
)

const (
	defaultK8sPort = 8080
	// PostgresSecret holds the database URL (key "url") in the namespace; created by operators.
	PostgresSecret = "goplt-postgres"
)

// Where the goplt-policies ConfigMap appears in app containers, and goplt-routes in the
// gateway's.
const (
	policiesMount = "/etc/goplt/policies"
	routesMount   = "/etc/goplt/routes"
)

func configMapVolume(name, configMap string) volume {
	v := volume{Name: name, ConfigMap: &struct {
		Name string `yaml:"name"`
	}{configMap}}
	return v
}

// VolumesMount is where an app's declared volumes appear in its container
// ($GOPLT_VOLUMES/<app id>/<volume>, as under the local stack's home).
const VolumesMount = "/var/lib/goplt/volumes"

// claimName is the PersistentVolumeClaim behind an app's volume.
func claimName(id, volume string) string { return id + "-" + volume }

func claimVolume(name, claim string) volume {
	return volume{Name: name, PersistentVolumeClaim: &struct {
		ClaimName string `yaml:"claimName"`
	}{claim}}
}

func secretEnv(name, secret, key string) envVar {
	src := &envSource{}
	src.SecretKeyRef.Name, src.SecretKeyRef.Key = secret, key
	return envVar{Name: name, ValueFrom: src}
}

func httpProbe(p string) *probe {
	pr := &probe{PeriodSeconds: 5}
	pr.HTTPGet.Path, pr.HTTPGet.Port = p, "http"
	return pr
}

// startupProbe gives the app startupWindow to come up: the kernel applies the module's
// migrations (under its advisory lock, one replica at a time) before it listens, and the
// liveness probe must not kill a long migration.
func startupProbe() *probe {
	pr := httpProbe("/healthz")
	pr.FailureThreshold = int(startupWindow / (5 * time.Second))
	return pr
}

const startupWindow = 10 * time.Minute

// Resources, from what `make bench` measures (docs/benchmarks.md, "The whole platform's
// memory"): the largest app holds 26 MiB RSS, a sidecar 64 MiB idle and 80 MiB at saturation.
// Requests cover the steady state with room; limits stop a leak, not a burst.
var (
	appResources = resources{
		Requests: map[string]string{"cpu": "50m", "memory": "48Mi"},
		Limits:   map[string]string{"cpu": "1", "memory": "256Mi"},
	}
	sidecarRequests = [2]string{"100m", "96Mi"} // cpu, memory
	sidecarLimits   = [2]string{"1", "256Mi"}   // cpu, memory
)

// nonRootUser is the uid and gid goplt's images run as (distroless' "nonroot").
const nonRootUser = 65532

// restricted are the security contexts Pod Security's "restricted" level requires.
func restricted() (*podSecurity, *containerSecurity) {
	p := &podSecurity{RunAsNonRoot: true, RunAsUser: nonRootUser, RunAsGroup: nonRootUser}
	p.SeccompProfile.Type = "RuntimeDefault"
	c := &containerSecurity{ReadOnlyRootFilesystem: true}
	c.Capabilities.Drop = []string{"ALL"}
	return p, c
}

// Labels every object of an app carries; selectors use only appLabel, and nothing else in the
// namespace carries it.
const (
	appLabel    = "app.kubernetes.io/name"
	partOfLabel = "app.kubernetes.io/part-of"
)

// SidecarImage is the image of goplt's daprd (the sidecar `make run` runs) under prefix: the
// Dapr injector puts it into every pod through dapr.io/sidecar-image.
func SidecarImage(prefix string) string {
	return imageRef(prefix, "daprd", sidecar.DaprVersion+"-goplt")
}

// AppImage is the image of app id at version under prefix.
func AppImage(prefix, id, version string) string { return imageRef(prefix, id, version) }

func imageRef(prefix, name, tag string) string {
	if prefix == "" {
		return name + ":" + tag
	}
	return prefix + "/" + name + ":" + tag
}

// workloads emits the namespace; per module a ServiceAccount that may read only its own
// Secrets, a Deployment with the Dapr annotations, a Service, and a PodDisruptionBudget when it
// runs several replicas; and ConfigMaps holding the ladon policies and the gateway route
// table taken from the shared artifacts. Each app migrates its own schema when it starts (the
// kernel does it under an advisory lock before it listens; the startup probe waits for it), so
// no migration Job has to be ordered before it.
func (g *gen) workloads(shared []Artifact) {
	g.fromPlatform("namespace", "/namespace")
	g.emit(path.Join(KubernetesDeploy, "namespace.yaml"), kobj{APIVersion: "v1", Kind: "Namespace",
		Metadata: objectMeta{Name: g.ns, Labels: map[string]string{
			partOfLabel: "goplt",
			// Every pod here meets the restricted level (the sidecar too: see docs/kubernetes.md).
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		}}})
	podSec, ctrSec := restricted()
	for _, name := range g.set.Order() {
		m := g.set.Module(name)
		id := m.Spec.App.ID
		port := m.Spec.App.Port
		if port == 0 {
			port = defaultK8sPort
		}
		labels := map[string]string{appLabel: id, partOfLabel: "goplt", "app.kubernetes.io/version": m.Metadata.Version}
		env := []envVar{
			{Name: "APP_ID", Value: id},
			{Name: "APP_PORT", Value: strconv.Itoa(port)},
			// In a pod the kubelet probes the pod IP; the app token still keeps others out.
			{Name: envvar.ListenHost, Value: "0.0.0.0"},
			secretEnv("APP_API_TOKEN", id+"-app-token", "token"),
			secretEnv("DAPR_API_TOKEN", id+"-api-token", "token"),
			// The compiled policies (the role catalogue), mounted from the goplt-policies ConfigMap.
			{Name: envvar.Policies, Value: policiesMount + "/ladon.json"},
		}
		if hasEvents(m) {
			env = append(env, envVar{Name: envvar.PubSub, Value: PubSubName(id)})
		}
		if g.prof.TracingSamplingRate != "" {
			env = append(env, envVar{Name: envvar.TraceSamplingRate, Value: g.prof.TracingSamplingRate})
		}
		if len(m.Spec.State) > 0 {
			env = append(env, envVar{Name: envvar.StateStore, Value: m.Spec.State[0]})
		}
		if v := g.withProfileEnv(m, nil)[envvar.GatewayIdempotentTTL]; v != "" {
			env = append(env, envVar{Name: envvar.GatewayIdempotentTTL, Value: v})
		}
		if g.prof.OTLPEndpoint != "" {
			env = append(env, envVar{Name: envvar.OTLPEndpoint, Value: "http://" + g.prof.OTLPEndpoint})
		}
		if db := m.Spec.Database; db != nil {
			env = append(env, secretEnv(envvar.DatabaseURL, PostgresSecret, "url"), envVar{Name: envvar.DBSchema, Value: db.Schema})
		}
		mounts := []volumeMount{{Name: "policies", MountPath: policiesMount, ReadOnly: true}}
		volumes := []volume{configMapVolume("policies", "goplt-policies")}
		if id == g.set.Platform.Spec.Gateway {
			// The gateway routes by the compiled table, re-read when the ConfigMap changes.
			env = append(env, envVar{Name: envvar.Routes, Value: routesMount + "/routes.json"})
			mounts = append(mounts, volumeMount{Name: "routes", MountPath: routesMount, ReadOnly: true})
			volumes = append(volumes, configMapVolume("routes", "goplt-routes"))
		}
		var claims []any
		if vols := m.Spec.App.Volumes; len(vols) > 0 {
			env = append(env, envVar{Name: envvar.Volumes, Value: VolumesMount})
			for _, v := range vols {
				claim := claimName(id, v.Name)
				mounts = append(mounts, volumeMount{Name: "volume-" + v.Name, MountPath: path.Join(VolumesMount, id, v.Name)})
				volumes = append(volumes, claimVolume("volume-"+v.Name, claim))
				claims = append(claims, kobj{APIVersion: "v1", Kind: "PersistentVolumeClaim", Metadata: objectMeta{Name: claim, Namespace: g.ns, Labels: labels},
					Spec: map[string]any{
						"accessModes": []string{"ReadWriteOnce"},
						"resources":   map[string]any{"requests": map[string]string{"storage": v.VolumeSize()}},
					}})
			}
		}
		health := m.Spec.App.HealthPath
		if health == "" {
			health = "/readyz"
		}
		replicas := m.Spec.App.Instances()
		selector := map[string]map[string]string{"matchLabels": {appLabel: id}}
		var strategy map[string]string
		pod := podSec
		if len(claims) > 0 {
			// A ReadWriteOnce claim is held by one pod: the old one goes before the new one
			// starts, and the volume belongs to the app's group.
			strategy = map[string]string{"type": "Recreate"}
			withGroup := *podSec
			withGroup.FSGroup = nonRootUser
			pod = &withGroup
		}
		deploy := kobj{APIVersion: "apps/v1", Kind: "Deployment", Metadata: objectMeta{Name: id, Namespace: g.ns, Labels: labels},
			Spec: struct {
				Replicas int                          `yaml:"replicas"`
				Strategy map[string]string            `yaml:"strategy,omitempty"`
				Selector map[string]map[string]string `yaml:"selector"`
				Template podTemplate                  `yaml:"template"`
			}{replicas, strategy, selector, podTemplate{
				Metadata: podMeta{Labels: labels, Annotations: g.daprAnnotations(id, port)},
				Spec: podSpec{ServiceAccountName: id, SecurityContext: pod, Containers: []container{{
					Name: "app", Image: AppImage(g.prof.ImagePrefix, id, m.Metadata.Version), Ports: []containerPort{{Name: "http", ContainerPort: port}},
					Env: env, StartupProbe: startupProbe(), ReadinessProbe: httpProbe(health), LivenessProbe: httpProbe("/healthz"),
					Resources: &appResources, SecurityContext: ctrSec, VolumeMounts: mounts,
				}}, Volumes: volumes},
			}},
		}
		svc := kobj{APIVersion: "v1", Kind: "Service", Metadata: objectMeta{Name: id, Namespace: g.ns, Labels: labels},
			Spec: struct {
				Selector map[string]string `yaml:"selector"`
				Ports    []map[string]any  `yaml:"ports"`
			}{map[string]string{appLabel: id}, []map[string]any{{"name": "http", "port": 80, "targetPort": "http"}}}}
		docs := append(append(g.serviceAccount(m, labels), claims...), deploy, svc)
		if replicas > 1 {
			docs = append(docs, kobj{APIVersion: "policy/v1", Kind: "PodDisruptionBudget", Metadata: objectMeta{Name: id, Namespace: g.ns, Labels: labels},
				Spec: struct {
					MaxUnavailable int                          `yaml:"maxUnavailable"`
					Selector       map[string]map[string]string `yaml:"selector"`
				}{1, selector}})
		}
		g.from("ServiceAccount, Role, Deployment, Service", m.PosOf("/spec/app"))
		g.emit(path.Join(KubernetesDeploy, "apps", id+".yaml"), docs...)
	}
	data := map[string]string{}
	for _, a := range shared {
		switch a.Path {
		case PoliciesFile:
			data["ladon.json"] = string(a.Data)
		case RoutesFile:
			data["routes.json"] = string(a.Data)
		}
	}
	g.emit(path.Join(KubernetesDeploy, "configmaps.yaml"),
		kobj{APIVersion: "v1", Kind: "ConfigMap", Metadata: objectMeta{Name: "goplt-policies", Namespace: g.ns}, Data: map[string]string{"ladon.json": data["ladon.json"]}},
		kobj{APIVersion: "v1", Kind: "ConfigMap", Metadata: objectMeta{Name: "goplt-routes", Namespace: g.ns}, Data: map[string]string{"routes.json": data["routes.json"]}},
	)
}

// daprAnnotations are the pod annotations the Dapr injector reads.
func (g *gen) daprAnnotations(id string, port int) map[string]string {
	return map[string]string{
		annotations.KeyEnabled:                   "true",
		annotations.KeyAppID:                     id,
		annotations.KeyAppPort:                   strconv.Itoa(port),
		annotations.KeyAppProtocol:               "http",
		annotations.KeyConfig:                    id,
		annotations.KeyAppTokenSecret:            id + "-app-token",
		annotations.KeyAPITokenSecret:            id + "-api-token",
		annotations.KeyEnableAppHealthCheck:      "true",
		annotations.KeyAppHealthCheckPath:        "/healthz",
		annotations.KeySidecarImage:              SidecarImage(g.prof.ImagePrefix),
		annotations.KeyCPURequest:                sidecarRequests[0],
		annotations.KeyMemoryRequest:             sidecarRequests[1],
		annotations.KeyCPULimit:                  sidecarLimits[0],
		annotations.KeyMemoryLimit:               sidecarLimits[1],
		annotations.KeySidecarSeccompProfileType: "RuntimeDefault",
		// Dapr's built-in "kubernetes" store would read any Secret the pod's account may read,
		// unscoped; the app reads through the scoped "secretstore" component instead, and the
		// operator resolves components' secretKeyRefs on its own.
		annotations.KeyDisableBuiltinK8sSecretStore: "true",
	}
}

// serviceAccount returns m's ServiceAccount and a Role, bound to it, that may get only the
// Secrets its sidecar's secret store may read (the Configuration's secrets scope): with the
// kubernetes secret store the sidecar reads them as the pod's account.
func (g *gen) serviceAccount(m *manifest.Module, labels map[string]string) []any {
	id := m.Spec.App.ID
	meta := objectMeta{Name: id, Namespace: g.ns, Labels: labels}
	docs := []any{kobj{APIVersion: "v1", Kind: "ServiceAccount", Metadata: meta}}
	secrets := sorted(g.allowedSecrets(m))
	if len(secrets) == 0 || g.prof.Secrets == nil || g.prof.Secrets.Type != "secretstores.kubernetes" {
		return docs
	}
	return append(docs,
		rbacObj{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role", Metadata: meta,
			Rules: []policyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: secrets, Verbs: []string{"get"}}}},
		rbacObj{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding", Metadata: meta,
			RoleRef:  &roleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: id},
			Subjects: []subject{{Kind: "ServiceAccount", Name: id, Namespace: g.ns}}},
	)
}
