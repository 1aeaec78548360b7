package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// renderedConfig is a sidecar's Configuration as this run uses it.
type renderedConfig struct {
	Path string
	// SelfRegister says whether the sidecar registers itself in Consul.
	SelfRegister bool
	// SamplingRate is the sidecar's tracing sampling rate ("0" when tracing is off), which
	// the app gets too (GOPLT_TRACE_SAMPLING_RATE) for the traces it starts.
	SamplingRate string
}

// renderConfig copies the app's Dapr Configuration into dir, adapted to the ports this run
// chose: when the sidecar registers itself in Consul without its own health checks, it gets a
// 1-second check on its real port instead of the resolver's default 15-second one, so
// dependents do not wait up to 15 s for the first passing check. With an OTLP endpoint
// (host:port), the sidecar exports its spans there, sampling at rate ("" for every request).
func renderConfig(src, dir string, a *App, otlp, rate string) (renderedConfig, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return renderedConfig{}, fmt.Errorf("read Dapr configuration: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return renderedConfig{}, fmt.Errorf("%s: %w", src, err)
	}
	if kind, _ := doc["kind"].(string); kind != "Configuration" {
		return renderedConfig{}, fmt.Errorf("%s: kind is %q, want Configuration", src, kind)
	}
	selfRegister := false
	if nr := dig(doc, "spec", "nameResolution"); nr != nil {
		if comp, _ := nr["component"].(string); comp == "consul" {
			conf, _ := nr["configuration"].(map[string]any)
			if conf == nil {
				conf = map[string]any{}
				nr["configuration"] = conf
			}
			selfRegister, _ = conf["selfRegister"].(bool)
			if selfRegister && !a.Spec.HasApp() {
				return renderedConfig{}, fmt.Errorf("%s: selfRegister is true but %s has no app (Consul registration needs an app port): set selfRegister: false", src, a.Spec.ID)
			}
			if _, has := conf["checks"]; selfRegister && !has {
				host := "127.0.0.1:" + strconv.Itoa(a.HTTPPort)
				conf["checks"] = []any{map[string]any{
					"name":     "Dapr Health Status",
					"checkID":  "daprHealth:" + a.Spec.ID + "-127.0.0.1-" + strconv.Itoa(a.HTTPPort),
					"interval": "1s",
					"http":     "http://" + host + "/v1.0/healthz?appid=" + a.Spec.ID,
				}}
			}
		}
	}
	if otlp != "" {
		spec, _ := doc["spec"].(map[string]any)
		if spec == nil {
			spec = map[string]any{}
			doc["spec"] = spec
		}
		if rate == "" {
			rate = "1"
		}
		spec["tracing"] = map[string]any{"samplingRate": rate,
			"otel": map[string]any{"endpointAddress": otlp, "isSecure": false, "protocol": "http"}}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return renderedConfig{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return renderedConfig{}, err
	}
	rc := renderedConfig{Path: filepath.Join(dir, strings.ReplaceAll(a.Name(), "#", "-")+".yaml"), SelfRegister: selfRegister, SamplingRate: "0"}
	if tr := dig(doc, "spec", "tracing"); tr != nil {
		if rate, ok := tr["samplingRate"].(string); ok && rate != "" {
			rc.SamplingRate = rate
		}
	}
	return rc, os.WriteFile(rc.Path, out, 0o644)
}

func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}
