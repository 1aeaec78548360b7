// Package sidecar decides what goes into goplt's daprd (tools/dapr/daprd): the Dapr runtime
// with only the component types the compiled manifests reference. The compiler asks it which
// types a profile may name (Catalogue), and writes the daprd's registrations for exactly the
// types in use (Source); the binary cache keys the build by that file, so a manifest that starts
// using a new type gets a daprd that has it at the next `make deps`.
package sidecar

import (
	"bytes"
	"fmt"
	"go/format"
	"maps"
	"slices"
	"sort"
	"strings"
)

// DaprVersion is the Dapr runtime goplt's daprd is built from (and sentry's version): the
// version of github.com/dapr/dapr in tools/dapr/go.mod.
const DaprVersion = "1.16.5"

// Entry is a component type goplt's daprd can include: how component files name it and how the
// daprd registers it. The registrations are those of Dapr's own cmd/daprd/components, so files
// written for the stock daprd load unchanged.
type Entry struct {
	Kind     string   // pubsub, state, secretstores, nameresolution
	Type     string   // spec.type, e.g. "pubsub.kafka"; for nameresolution the bare name
	Versions []string // accepted spec.version values; "" (unset) means the type's default
	Imports  []string // Go imports the registration needs, besides the kind's registry
	Register string   // the Go statement that registers it
	Note     string   // why a profile would use it
}

// registry is the Go import of each kind's registry and the name the generated code gives it.
var registry = map[string][2]string{
	"pubsub":         {"pubsubLoader", "github.com/dapr/dapr/pkg/components/pubsub"},
	"state":          {"stateLoader", "github.com/dapr/dapr/pkg/components/state"},
	"secretstores":   {"secretstoresLoader", "github.com/dapr/dapr/pkg/components/secretstores"},
	"nameresolution": {"nrLoader", "github.com/dapr/dapr/pkg/components/nameresolution"},
}

// Catalogue is every type goplt's daprd can be built with. A profile naming anything else is
// refused by goplt validate; adding a type here (with its registration, as Dapr's
// cmd/daprd/components has it) makes it available.
var Catalogue = []Entry{
	{Kind: "pubsub", Type: "pubsub.kafka", Versions: []string{"", "v1"},
		Imports:  []string{`kafka "github.com/dapr/components-contrib/pubsub/kafka"`},
		Register: `pubsubLoader.DefaultRegistry.RegisterComponent(kafka.NewKafka, "kafka")`,
		Note:     "the event bus"},
	{Kind: "state", Type: "state.postgresql", Versions: []string{"v2"},
		Imports: []string{`pgv2 "github.com/dapr/components-contrib/state/postgresql/v2"`, `"github.com/dapr/dapr/pkg/components"`},
		Register: `stateLoader.DefaultRegistry.RegisterComponentWithVersions("postgresql", components.Versioning{
		Preferred: components.VersionConstructor{Version: "v2", Constructor: pgv2.NewPostgreSQLStateStore},
		Default:   "v2",
	})`,
		Note: "state stores"},
	{Kind: "secretstores", Type: "secretstores.local.file", Versions: []string{"", "v1"},
		Imports:  []string{`"github.com/dapr/components-contrib/secretstores/local/file"`},
		Register: `secretstoresLoader.DefaultRegistry.RegisterComponent(file.NewLocalSecretStore, "local.file")`,
		Note:     "secrets"},
	{Kind: "secretstores", Type: "secretstores.local.env", Versions: []string{"", "v1"},
		Imports:  []string{`"github.com/dapr/components-contrib/secretstores/local/env"`},
		Register: `secretstoresLoader.DefaultRegistry.RegisterComponent(env.NewEnvSecretStore, "local.env")`,
		Note:     "secrets"},
	{Kind: "secretstores", Type: "secretstores.kubernetes", Versions: []string{"", "v1"},
		Imports:  []string{`sskubernetes "github.com/dapr/components-contrib/secretstores/kubernetes"`},
		Register: `secretstoresLoader.DefaultRegistry.RegisterComponent(sskubernetes.NewKubernetesSecretStore, "kubernetes")`,
		Note:     "secrets; also Dapr's built-in store in a cluster"},
	{Kind: "nameresolution", Type: "consul",
		Imports:  []string{`"github.com/dapr/components-contrib/nameresolution/hashicorp/consul"`},
		Register: `nrLoader.DefaultRegistry.RegisterComponent(consul.NewResolver, "hashicorp.consul", "consul")`,
		Note:     "service discovery"},
	{Kind: "nameresolution", Type: "mdns",
		Imports:  []string{`"github.com/dapr/components-contrib/nameresolution/mdns"`},
		Register: `nrLoader.DefaultRegistry.RegisterComponent(mdns.NewResolver, "mdns")`,
		Note:     "Dapr's self-hosted default, when a Configuration names no resolver"},
	{Kind: "nameresolution", Type: "kubernetes",
		Imports:  []string{`nrkubernetes "github.com/dapr/components-contrib/nameresolution/kubernetes"`},
		Register: `nrLoader.DefaultRegistry.RegisterComponent(nrkubernetes.NewResolver, "kubernetes")`,
		Note:     "Dapr's default in a cluster"},
}

// aliases are other names a type is known by.
var aliases = map[string]string{"nameresolution hashicorp.consul": "consul"}

// Lookup finds the catalogue entry for a type at a version (for nameresolution, typ is the bare
// name and version is ignored).
func Lookup(kind, typ, version string) (Entry, bool) {
	if a, ok := aliases[kind+" "+typ]; ok {
		typ = a
	}
	for _, e := range Catalogue {
		if e.Kind == kind && e.Type == typ && (kind == "nameresolution" || slices.Contains(e.Versions, version)) {
			return e, true
		}
	}
	return Entry{}, false
}

// Names lists the catalogue's types of one kind with their versions, for messages
// ("pubsub.kafka/v1").
func Names(kind string) []string {
	var out []string
	for _, e := range Catalogue {
		if e.Kind != kind {
			continue
		}
		vs := slices.DeleteFunc(slices.Clone(e.Versions), func(v string) bool { return v == "" })
		if len(vs) == 0 {
			out = append(out, e.Type)
		}
		for _, v := range vs {
			out = append(out, e.Type+"/"+v)
		}
	}
	return out
}

// Source is the daprd's generated registration file (package main of tools/dapr/daprd) for
// the given entries, which must come from the catalogue. header starts the file.
func Source(header string, entries []Entry) ([]byte, error) {
	entries = slices.Clone(entries)
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].Kind != entries[j].Kind {
			return entries[i].Kind < entries[j].Kind
		}
		return entries[i].Type < entries[j].Type
	})
	entries = slices.CompactFunc(entries, func(a, b Entry) bool { return a.Kind == b.Kind && a.Type == b.Type })
	imports := map[string]bool{}
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("\npackage main\n\n")
	var body strings.Builder
	body.WriteString("// registerComponents adds the component types the compiled manifests reference, and\n" +
		"// nothing else (internal/sidecar.Catalogue says what can be added).\nfunc registerComponents() {\n")
	for _, e := range entries {
		r, ok := registry[e.Kind]
		if !ok {
			return nil, fmt.Errorf("sidecar: unknown component kind %q", e.Kind)
		}
		imports[fmt.Sprintf("%s %q", r[0], r[1])] = true
		for _, i := range e.Imports {
			imports[i] = true
		}
		fmt.Fprintf(&body, "\t// %s: %s.\n\t%s\n", e.Type, e.Note, e.Register)
	}
	body.WriteString("}\n")
	if len(imports) > 0 {
		b.WriteString("import (\n")
		for _, i := range slices.Sorted(maps.Keys(imports)) {
			b.WriteString("\t" + i + "\n")
		}
		b.WriteString(")\n\n")
	}
	b.WriteString(body.String())
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("sidecar: format registrations: %w", err)
	}
	return src, nil
}
