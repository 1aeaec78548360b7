package compile

import (
	"fmt"

	"github.com/goplt/goplt/internal/sidecar"
)

// SidecarComponentsFile is goplt's daprd's registrations (tools/dapr/daprd), generated so the
// sidecar holds exactly the component types the compiled profiles reference.
const SidecarComponentsFile = "tools/dapr/daprd/components_gen.go"

// sidecarComponents writes the daprd's registrations for every type the compiled profiles'
// sidecars need (manifest.Set.ComponentUses), each traced to its line in platform.yaml.
func (g *gen) sidecarComponents(profiles ...string) error {
	var entries []sidecar.Entry
	var sources []Source
	for _, profile := range profiles {
		for _, u := range g.set.ComponentUses(profile) {
			e, ok := sidecar.Lookup(u.Kind, u.Type, u.Version)
			if !ok {
				return fmt.Errorf("profile %s: goplt's daprd cannot include %s component %s %s (run goplt validate)", profile, u.Kind, u.Type, u.Version)
			}
			entries = append(entries, e)
			pointer := "/spec/profiles/" + profile
			if u.Block != "" {
				pointer += "/" + u.Block
			}
			sources = append(sources, Source{u.Type + " (profile " + profile + ": " + u.Why + ")", g.set.Platform.PosOf(pointer)})
		}
	}
	src, err := sidecar.Source(GoHeader, entries)
	if err != nil {
		return err
	}
	g.out = append(g.out, Artifact{Path: SidecarComponentsFile, Data: src, Sources: sources})
	return nil
}
