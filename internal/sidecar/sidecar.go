// Package sidecar describes goplt's own daprd build (tools/dapr/daprd): the Dapr runtime with
// only the component types that goplt's compiled manifests reference. The compiler checks every
// profile against Components, so a manifest cannot ask for a type the sidecar lacks, and the
// binary cache keys the build by ComponentSet, so changing the set rebuilds it.
package sidecar

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Component is one component type the sidecar registers, as a Dapr component file names it
// (spec.type and spec.version); name-resolution types are bare names ("consul"), as a
// Configuration's nameResolution.component gives them.
type Component struct {
	Kind     string   // pubsub, state, secretstores, nameresolution
	Type     string   // e.g. "pubsub.kafka"; for nameresolution the bare name
	Versions []string // accepted spec.version values; "" (unset) means the type's default
}

// Components is everything tools/dapr/daprd/components.go registers. A test parses that file
// and fails when the two differ.
var Components = []Component{
	{Kind: "pubsub", Type: "pubsub.kafka", Versions: []string{"", "v1"}},
	{Kind: "secretstores", Type: "secretstores.local.file", Versions: []string{"", "v1"}},
	{Kind: "secretstores", Type: "secretstores.kubernetes", Versions: []string{"", "v1"}},
	{Kind: "nameresolution", Type: "consul"},
	{Kind: "nameresolution", Type: "hashicorp.consul"},
	{Kind: "nameresolution", Type: "mdns"},
	{Kind: "nameresolution", Type: "kubernetes"},
}

// Supports reports whether the sidecar registers component type typ at version (for
// nameresolution, typ is the bare name and version is ignored).
func Supports(kind, typ, version string) bool {
	for _, c := range Components {
		if c.Kind == kind && c.Type == typ {
			return kind == "nameresolution" || slices.Contains(c.Versions, version)
		}
	}
	return false
}

// Names lists the registered types of one kind, with their versions, for messages
// ("pubsub.kafka/v1").
func Names(kind string) []string {
	var out []string
	for _, c := range Components {
		if c.Kind != kind {
			continue
		}
		vs := slices.DeleteFunc(slices.Clone(c.Versions), func(v string) bool { return v == "" })
		if len(vs) == 0 {
			out = append(out, c.Type)
			continue
		}
		for _, v := range vs {
			out = append(out, c.Type+"/"+v)
		}
	}
	return out
}

// ComponentSet is a short stable digest of Components, part of the daprd build's cache key.
func ComponentSet() string {
	var b strings.Builder
	for _, c := range Components {
		fmt.Fprintf(&b, "%s %s %s\n", c.Kind, c.Type, strings.Join(c.Versions, ","))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])[:10]
}
