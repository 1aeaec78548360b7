package compile

import (
	"fmt"
	"path"
	"strconv"
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
		PeriodSeconds int `yaml:"periodSeconds"`
	}
	containerPort struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	}
	container struct {
		Name           string          `yaml:"name"`
		Image          string          `yaml:"image"`
		Args           []string        `yaml:"args,omitempty"`
		Ports          []containerPort `yaml:"ports,omitempty"`
		Env            []envVar        `yaml:"env"`
		ReadinessProbe *probe          `yaml:"readinessProbe,omitempty"`
		LivenessProbe  *probe          `yaml:"livenessProbe,omitempty"`
		VolumeMounts   []volumeMount   `yaml:"volumeMounts,omitempty"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	volume struct {
		Name      string `yaml:"name"`
		ConfigMap struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	}
	podSpec struct {
		RestartPolicy string      `yaml:"restartPolicy,omitempty"`
		Containers    []container `yaml:"containers"`
		Volumes       []volume    `yaml:"volumes,omitempty"`
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
	v := volume{Name: name}
	v.ConfigMap.Name = configMap
	return v
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

// workloads emits, per module, a Deployment with Dapr annotations and a Service; per module
// with migrations, a Job (numbered in dependency order); and ConfigMaps holding the ladon
// policies and the gateway route table taken from the shared artifacts.
func (g *gen) workloads(shared []Artifact) {
	step := 0
	for _, name := range g.set.Order() {
		m := g.set.Module(name)
		id := m.Spec.App.ID
		port := m.Spec.App.Port
		if port == 0 {
			port = defaultK8sPort
		}
		labels := map[string]string{"app.kubernetes.io/name": id, "app.kubernetes.io/part-of": "goplt", "app.kubernetes.io/version": m.Metadata.Version}
		image := fmt.Sprintf("%s/%s:%s", g.prof.ImagePrefix, id, m.Metadata.Version)
		if g.prof.ImagePrefix == "" {
			image = fmt.Sprintf("%s:%s", id, m.Metadata.Version)
		}
		env := []envVar{
			{Name: "APP_ID", Value: id},
			{Name: "APP_PORT", Value: strconv.Itoa(port)},
			// In a pod the kubelet probes the pod IP; the app token still keeps others out.
			{Name: "GOPLT_LISTEN_HOST", Value: "0.0.0.0"},
			secretEnv("APP_API_TOKEN", id+"-app-token", "token"),
			secretEnv("DAPR_API_TOKEN", id+"-api-token", "token"),
			// The compiled policies (the role catalogue), mounted from the goplt-policies ConfigMap.
			{Name: "GOPLT_POLICIES", Value: policiesMount + "/ladon.json"},
		}
		if hasEvents(m) {
			env = append(env, envVar{Name: "GOPLT_PUBSUB", Value: PubSubName(id)})
		}
		if g.prof.TracingSamplingRate != "" {
			env = append(env, envVar{Name: "GOPLT_TRACE_SAMPLING_RATE", Value: g.prof.TracingSamplingRate})
		}
		var dbEnv []envVar
		if db := m.Spec.Database; db != nil {
			dbEnv = append(dbEnv, secretEnv("GOPLT_DATABASE_URL", PostgresSecret, "url"), envVar{Name: "GOPLT_DB_SCHEMA", Value: db.Schema})
		}
		mounts := []volumeMount{{Name: "policies", MountPath: policiesMount, ReadOnly: true}}
		volumes := []volume{configMapVolume("policies", "goplt-policies")}
		if id == g.set.Platform.Spec.Gateway {
			// The gateway routes by the compiled table, re-read when the ConfigMap changes.
			env = append(env, envVar{Name: "GOPLT_ROUTES", Value: routesMount + "/routes.json"})
			mounts = append(mounts, volumeMount{Name: "routes", MountPath: routesMount, ReadOnly: true})
			volumes = append(volumes, configMapVolume("routes", "goplt-routes"))
		}
		health := m.Spec.App.HealthPath
		if health == "" {
			health = "/readyz"
		}
		deploy := kobj{APIVersion: "apps/v1", Kind: "Deployment", Metadata: objectMeta{Name: id, Namespace: g.ns, Labels: labels},
			Spec: struct {
				Replicas int                          `yaml:"replicas"`
				Selector map[string]map[string]string `yaml:"selector"`
				Template podTemplate                  `yaml:"template"`
			}{m.Spec.App.Instances(), map[string]map[string]string{"matchLabels": {"app.kubernetes.io/name": id}}, podTemplate{
				Metadata: podMeta{Labels: labels, Annotations: map[string]string{
					"dapr.io/enabled":                 "true",
					"dapr.io/app-id":                  id,
					"dapr.io/app-port":                strconv.Itoa(port),
					"dapr.io/app-protocol":            "http",
					"dapr.io/config":                  id,
					"dapr.io/app-token-secret":        id + "-app-token",
					"dapr.io/api-token-secret":        id + "-api-token",
					"dapr.io/enable-app-health-check": "true",
					"dapr.io/app-health-check-path":   "/healthz",
				}},
				Spec: podSpec{Containers: []container{{
					Name: "app", Image: image, Ports: []containerPort{{Name: "http", ContainerPort: port}},
					Env: append(env, dbEnv...), ReadinessProbe: httpProbe(health), LivenessProbe: httpProbe("/healthz"),
					VolumeMounts: mounts,
				}}, Volumes: volumes},
			}},
		}
		svc := kobj{APIVersion: "v1", Kind: "Service", Metadata: objectMeta{Name: id, Namespace: g.ns, Labels: labels},
			Spec: struct {
				Selector map[string]string `yaml:"selector"`
				Ports    []map[string]any  `yaml:"ports"`
			}{map[string]string{"app.kubernetes.io/name": id}, []map[string]any{{"name": "http", "port": 80, "targetPort": "http"}}}}
		g.from("Deployment and Service", m.PosOf("/spec/app"))
		g.emit(path.Join(KubernetesDeploy, "apps", id+".yaml"), deploy, svc)

		if db := m.Spec.Database; db != nil && db.Migrations != "" {
			step++
			job := kobj{APIVersion: "batch/v1", Kind: "Job",
				Metadata: objectMeta{Name: id + "-migrate-" + m.Metadata.Version, Namespace: g.ns, Labels: labels},
				Spec: struct {
					BackoffLimit int         `yaml:"backoffLimit"`
					Template     podTemplate `yaml:"template"`
				}{3, podTemplate{Metadata: podMeta{Labels: labels}, Spec: podSpec{RestartPolicy: "Never", Containers: []container{{
					Name: "migrate", Image: image, Args: []string{"--migrate-only"}, Env: append([]envVar{{Name: "APP_ID", Value: id}}, dbEnv...),
				}}}}},
			}
			g.from("Job", m.PosOf("/spec/database"))
			// Numbered so that applying the folder in name order respects dependencies.
			g.emit(path.Join(KubernetesDeploy, "migrations", fmt.Sprintf("%02d-%s.yaml", step, id)), job)
		}
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
