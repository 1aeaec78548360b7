package manifest

import "slices"

// ComponentUse is a Dapr component type a profile's sidecars are given: a building block some
// module uses, or what Dapr falls back to by itself.
type ComponentUse struct {
	Block   string // the profile's field ("pubsub", "state", "secrets", "nameResolution"); "" for a fallback
	Kind    string // pubsub, state, secretstores, nameresolution
	Type    string // spec.type, or the resolver's bare name
	Version string
	Why     string
}

// ComponentUses lists the component types the named profile's sidecars need: its pub/sub,
// state and secret store types when some module uses events, state or secrets (a block no
// module uses emits no component), its name resolver, or Dapr's own fallbacks (mdns self-hosted;
// the Kubernetes resolver and built-in secret store in the kubernetes profile).
func (s *Set) ComponentUses(profile string) []ComponentUse {
	prof, ok := s.Platform.Spec.Profiles[profile]
	if !ok {
		return nil
	}
	uses := func(f func(*Module) bool) bool { return slices.ContainsFunc(s.Modules, f) }
	var out []ComponentUse
	add := func(block, kind string, c *Component, why string) {
		if c != nil && c.Type != "" {
			out = append(out, ComponentUse{block, kind, c.Type, c.Version, why})
		}
	}
	if uses(func(m *Module) bool { return len(m.Spec.Events.Publishes)+len(m.Spec.Events.Subscribes) > 0 }) {
		add("pubsub", "pubsub", &prof.PubSub, "pub/sub")
	}
	if uses(func(m *Module) bool { return len(m.Spec.State) > 0 }) {
		add("state", "state", prof.State, "state")
	}
	if uses(func(m *Module) bool { return len(m.Spec.Secrets) > 0 }) {
		add("secrets", "secretstores", prof.Secrets, "secrets")
	}
	switch {
	case prof.NameResolution != nil && prof.NameResolution.Component != "":
		out = append(out, ComponentUse{"nameResolution", "nameresolution", prof.NameResolution.Component, "", "name resolution"})
	case profile == "kubernetes":
		out = append(out, ComponentUse{"", "nameresolution", "kubernetes", "", "Dapr's default resolver in a cluster"})
	default:
		out = append(out, ComponentUse{"", "nameresolution", "mdns", "", "Dapr's self-hosted default resolver"})
	}
	if profile == "kubernetes" {
		out = append(out, ComponentUse{"", "secretstores", "secretstores.kubernetes", "", "Dapr's built-in secret store in a cluster"})
	}
	return out
}
