// Who may call whom: each app's Dapr Configuration (access control, secret scopes).

package compile

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/manifest"
)

type (
	aclPolicy struct {
		AppID         string         `yaml:"appId"`
		DefaultAction string         `yaml:"defaultAction"`
		TrustDomain   string         `yaml:"trustDomain"`
		Namespace     string         `yaml:"namespace"`
		Operations    []aclOperation `yaml:"operations,omitempty"`
	}
	aclOperation struct {
		Name     string   `yaml:"name"`
		HTTPVerb []string `yaml:"httpVerb"`
		Action   string   `yaml:"action"`
	}
	accessControl struct {
		DefaultAction string      `yaml:"defaultAction"`
		TrustDomain   string      `yaml:"trustDomain"`
		Policies      []aclPolicy `yaml:"policies,omitempty"`
	}
	secretScope struct {
		StoreName      string   `yaml:"storeName"`
		DefaultAccess  string   `yaml:"defaultAccess"`
		AllowedSecrets []string `yaml:"allowedSecrets"`
	}
	configSpec struct {
		// MTLS, locally: the Dapr CLI turns on mTLS (with Sentry at localhost:50001) for a
		// Configuration that says so; goplt run passes the flags itself.
		MTLS *struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"mtls,omitempty"`
		Metric struct {
			// Enabled is required by Dapr's Configuration CRD (its default, true, spelled out).
			Enabled bool `yaml:"enabled"`
			HTTP    struct {
				IncreasedCardinality bool `yaml:"increasedCardinality"`
			} `yaml:"http"`
		} `yaml:"metric"`
		Tracing        *tracingSpec `yaml:"tracing,omitempty"`
		NameResolution *struct {
			Component     string         `yaml:"component"`
			Configuration map[string]any `yaml:"configuration,omitempty"`
		} `yaml:"nameResolution,omitempty"`
		AccessControl accessControl `yaml:"accessControl"`
		Secrets       *struct {
			Scopes []secretScope `yaml:"scopes"`
		} `yaml:"secrets,omitempty"`
	}
)

// Callers returns who may invoke a module: the gateway, the modules that declared a
// dependency on it, and the profile's development callers. Sorted.
func Callers(set *manifest.Set, prof manifest.Profile, m *manifest.Module) []string {
	seen := map[string]bool{}
	if gw := set.Platform.Spec.Gateway; gw != "" && gw != m.Spec.App.ID {
		seen[gw] = true
	}
	for _, o := range set.Modules {
		for _, d := range o.Spec.DependsOn {
			if d.Name == m.Metadata.Name {
				seen[o.Spec.App.ID] = true
			}
		}
	}
	for _, c := range prof.DevCallers {
		seen[c] = true
	}
	for _, r := range m.Spec.Routes {
		for _, c := range r.Callers {
			if c != "*" {
				seen[c] = true
			}
		}
	}
	return sortedKeys(seen)
}

// internalDenials returns the access-control operations that keep caller out of m's internal
// routes it is not listed for: the whole /internal/ prefix when it may call none of them,
// else each route it may not call.
func internalDenials(m *manifest.Module, caller string) []aclOperation {
	var denied []aclOperation
	allowedAny := false
	for _, r := range m.Spec.Routes {
		if len(r.Callers) == 0 {
			continue
		}
		if slices.Contains(r.Callers, caller) || slices.Contains(r.Callers, "*") {
			allowedAny = true
			continue
		}
		denied = append(denied, aclOperation{Name: aclOperationName(r.Path), HTTPVerb: []string{r.Method}, Action: "deny"})
	}
	if !allowedAny {
		return []aclOperation{{Name: "/internal/**", HTTPVerb: []string{"*"}, Action: "deny"}}
	}
	return denied
}

// aclOperationName turns a route pattern into a Dapr access-control operation: parameters
// become * (one segment) and a final {rest...} becomes ** (any depth).
func aclOperationName(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "...}"):
			segs[i] = "**"
		case strings.HasPrefix(s, "{"):
			segs[i] = "*"
		}
	}
	return strings.Join(segs, "/")
}

type (
	tracingSpec struct {
		SamplingRate string    `yaml:"samplingRate"`
		Otel         *otelSpec `yaml:"otel,omitempty"`
	}
	// otelSpec sends a sidecar's spans to the profile's OTLP/HTTP receiver, in the clear: a
	// collector beside the apps (a node agent, a Service in the cluster).
	otelSpec struct {
		Protocol        string `yaml:"protocol"`
		EndpointAddress string `yaml:"endpointAddress"`
		IsSecure        bool   `yaml:"isSecure"`
	}
)

func (g *gen) config(m *manifest.Module, callers []string, secrets []string) configSpec {
	selfRegister := m != nil
	var c configSpec
	c.Metric.Enabled = true
	if g.profile == "local" {
		c.MTLS = &struct {
			Enabled bool `yaml:"enabled"`
		}{true}
	}
	if g.prof.TracingSamplingRate != "" || g.prof.OTLPEndpoint != "" {
		c.Tracing = &tracingSpec{SamplingRate: g.prof.TracingSamplingRate}
		if g.prof.OTLPEndpoint != "" {
			c.Tracing.Otel = &otelSpec{Protocol: "http", EndpointAddress: g.prof.OTLPEndpoint}
		}
	}
	if nr := g.prof.NameResolution; nr != nil {
		conf := map[string]any{}
		for k, v := range nr.Configuration {
			conf[k] = v
		}
		if nr.Component == "consul" {
			conf["selfRegister"] = selfRegister
			if selfRegister {
				conf["selfDeregister"] = true
			}
		}
		c.NameResolution = &struct {
			Component     string         `yaml:"component"`
			Configuration map[string]any `yaml:"configuration,omitempty"`
		}{nr.Component, conf}
	}
	c.AccessControl = accessControl{DefaultAction: "deny", TrustDomain: trustDomain}
	hasInternal := m != nil && slices.ContainsFunc(m.Spec.Routes, func(r manifest.Route) bool { return len(r.Callers) > 0 })
	for _, caller := range callers {
		p := aclPolicy{AppID: caller, DefaultAction: "allow", TrustDomain: trustDomain, Namespace: g.namespace()}
		if hasInternal {
			p.Operations = internalDenials(m, caller)
		}
		c.AccessControl.Policies = append(c.AccessControl.Policies, p)
	}
	if len(secrets) > 0 {
		c.Secrets = &struct {
			Scopes []secretScope `yaml:"scopes"`
		}{[]secretScope{{StoreName: secretStoreName, DefaultAccess: "deny", AllowedSecrets: sorted(secrets)}}}
	}
	return c
}

func (g *gen) configurations() {
	for _, m := range g.set.Modules {
		id := m.Spec.App.ID
		g.explainCallers(m)
		g.emit(path.Join(g.configDir, id+".yaml"), resource{APIVersion: "dapr.io/v1alpha1", Kind: "Configuration",
			Metadata: g.meta(id), Spec: g.config(m, Callers(g.set, g.prof, m), g.allowedSecrets(m))})
	}
	for _, c := range g.prof.DevCallers {
		g.emit(path.Join(g.configDir, c+".yaml"), resource{APIVersion: "dapr.io/v1alpha1", Kind: "Configuration",
			Metadata: g.meta(c), Spec: g.config(nil, nil, nil)})
	}
}

// allowedSecrets are the secrets m's app may read through its sidecar: those it declares, and
// with events its own event-signing keys and every app's public keys. Its broker password is
// not among them: the sidecar resolves the component's secretKeyRef itself.
func (g *gen) allowedSecrets(m *manifest.Module) []string {
	s := slices.Clone(m.Spec.Secrets)
	if hasEvents(m) && g.prof.Secrets != nil {
		s = append(s, eventsig.SigningSecret(m.Spec.App.ID), eventsig.PublicKeysSecret)
		g.from("secrets.scopes: event-signing keys", m.PosOf("/spec/events"))
	}
	return s
}

// explainCallers records where each caller admitted by m's access control comes from.
func (g *gen) explainCallers(m *manifest.Module) {
	if g.prof.NameResolution != nil {
		g.fromPlatform("spec.nameResolution", "/nameResolution")
	}
	if gw := g.set.Platform.Spec.Gateway; gw != "" && gw != m.Spec.App.ID {
		g.from("accessControl allows "+gw+" (the gateway)", g.set.Platform.PosOf("/spec/gateway"))
	}
	for _, o := range g.set.Modules {
		for j, d := range o.Spec.DependsOn {
			if d.Name == m.Metadata.Name {
				g.from("accessControl allows "+o.Spec.App.ID+" (depends on "+m.Metadata.Name+")", o.PosOf(fmt.Sprintf("/spec/dependsOn/%d", j)))
			}
		}
	}
	for j, c := range g.prof.DevCallers {
		g.fromPlatform("accessControl allows "+c+" (dev caller)", fmt.Sprintf("/devCallers/%d", j))
	}
	if len(m.Spec.Secrets) > 0 {
		g.from("secrets.scopes", m.PosOf("/spec/secrets"))
	}
}
