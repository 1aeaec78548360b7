package compile

import (
	"fmt"
	"slices"

	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/sidecar"
)

// SidecarComponentsFile is goplt's daprd's registrations (tools/dapr/daprd), generated so the
// sidecar holds exactly the component types the compiled profiles reference.
const SidecarComponentsFile = "tools/dapr/daprd/components_gen.go"

// sidecarComponents selects, for every compiled profile, the types its components and
// configurations reference (only for building blocks some module uses), plus what Dapr
// falls back to by itself: mdns locally and the Kubernetes resolver and secret store in a
// cluster.
func (g *gen) sidecarComponents(profiles ...string) error {
	uses := func(f func(*manifest.Module) bool) bool { return slices.ContainsFunc(g.set.Modules, f) }
	var entries []sidecar.Entry
	var sources []Source
	need := func(profile, block, kind, typ, version, why string) error {
		e, ok := sidecar.Lookup(kind, typ, version)
		if !ok {
			return fmt.Errorf("profile %s: goplt's daprd cannot include %s component %s %s (run goplt validate)", profile, kind, typ, version)
		}
		entries = append(entries, e)
		pos := g.set.Platform.PosOf("/spec/profiles/" + profile + block)
		sources = append(sources, Source{typ + " (" + why + ")", pos})
		return nil
	}
	for _, name := range profiles {
		prof, ok := g.set.Platform.Spec.Profiles[name]
		if !ok {
			continue
		}
		var errs []error
		if uses(func(m *manifest.Module) bool { return len(m.Spec.Events.Publishes)+len(m.Spec.Events.Subscribes) > 0 }) {
			errs = append(errs, need(name, "/pubsub", "pubsub", prof.PubSub.Type, prof.PubSub.Version, "profile "+name+" pubsub"))
		}
		if prof.State != nil && uses(func(m *manifest.Module) bool { return len(m.Spec.State) > 0 }) {
			errs = append(errs, need(name, "/state", "state", prof.State.Type, prof.State.Version, "profile "+name+" state"))
		}
		if prof.Secrets != nil && uses(func(m *manifest.Module) bool { return len(m.Spec.Secrets) > 0 }) {
			errs = append(errs, need(name, "/secrets", "secretstores", prof.Secrets.Type, prof.Secrets.Version, "profile "+name+" secrets"))
		}
		switch {
		case prof.NameResolution != nil && prof.NameResolution.Component != "":
			errs = append(errs, need(name, "/nameResolution", "nameresolution", prof.NameResolution.Component, "", "profile "+name+" name resolution"))
		case name == "kubernetes":
			errs = append(errs, need(name, "", "nameresolution", "kubernetes", "", "profile kubernetes: Dapr's default resolver in a cluster"))
		default:
			errs = append(errs, need(name, "", "nameresolution", "mdns", "", "profile "+name+": Dapr's self-hosted default resolver"))
		}
		if name == "kubernetes" {
			errs = append(errs, need(name, "", "secretstores", "secretstores.kubernetes", "", "profile kubernetes: Dapr's built-in secret store in a cluster"))
		}
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	src, err := sidecar.Source(GoHeader, entries)
	if err != nil {
		return err
	}
	g.out = append(g.out, Artifact{Path: SidecarComponentsFile, Data: src, Sources: sources})
	return nil
}
