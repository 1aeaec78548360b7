package compile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goplt/goplt/internal/manifest"
)

// contractsImport is the import path of the contract types generated code refers to.
const contractsImport = "github.com/goplt/goplt/internal/contracts"

// publication finds the module publishing topic and its publication.
func (g *gen) publication(topic string) (*manifest.Module, manifest.Publication, bool) {
	for _, m := range g.set.Modules {
		for _, p := range m.Spec.Events.Publishes {
			if p.Topic == topic {
				return m, p, true
			}
		}
	}
	return nil, manifest.Publication{}, false
}

// acceptedVersions are the payload versions a subscription reads: those it lists (default
// the one published now) and the one published now, which validate has checked is compatible
// with the older ones it lists.
func acceptedVersions(s manifest.Subscription, p manifest.Publication) []int {
	vs := append([]int{p.PayloadVersion()}, s.Accepts...)
	slices.Sort(vs)
	return slices.Compact(vs)
}

// contractCode writes <app package>/contract/contract_gen.go for every module built from a Go
// package that serves routes, publishes or subscribes: its route table from the manifest
// (kernel.UseRoutes: the kernel refuses to start when the handlers differ from it) and the
// schemas the kernel checks payloads against (kernel.UseContracts), embedded so the app needs
// no schema files at run time.
func (g *gen) contractCode() error {
	for _, m := range g.set.Modules {
		routes, events := len(m.Spec.Routes) > 0, hasEvents(m)
		if m.Spec.App.Build == "" || !routes && !events {
			continue
		}
		var b bytes.Buffer
		b.WriteString(GoHeader)
		fmt.Fprintf(&b, "\n// Package contract holds the contracts of module %s (manifests/%s.yaml): its HTTP\n"+
			"// routes and who may call each, the schema of each event it publishes and of each payload\n"+
			"// version its subscriptions read.\npackage contract\n\n", m.Metadata.Name, m.Metadata.Name)
		b.WriteString("import (\n")
		if events {
			fmt.Fprintf(&b, "\t%q\n", contractsImport)
		}
		if routes {
			fmt.Fprintf(&b, "\t%q\n", kernelImport)
		}
		b.WriteString(")\n\n")
		var sources []Source
		if routes {
			sources = append(sources, writeRoutes(&b, m)...)
		}
		if events {
			srcs, err := g.writeEvents(&b, m)
			if err != nil {
				return err
			}
			sources = append(sources, srcs...)
		}
		src, err := format.Source(b.Bytes())
		if err != nil {
			return fmt.Errorf("contracts of %s: %w", m.Metadata.Name, err)
		}
		g.out = append(g.out, Artifact{Path: path.Join(strings.TrimPrefix(m.Spec.App.Build, "./"), "contract", "contract_gen.go"), Data: src, Sources: sources})
	}
	return nil
}

// writeRoutes writes Routes(), the module's route table.
func writeRoutes(b *bytes.Buffer, m *manifest.Module) []Source {
	b.WriteString("// Routes is the module's route table, for Init: k.UseRoutes(contract.Routes()), then one\n" +
		"// k.HandleFunc(pattern, handler) for each.\nfunc Routes() []kernel.DeclaredRoute {\n\treturn []kernel.DeclaredRoute{\n")
	var sources []Source
	for i, r := range m.Spec.Routes {
		var access string
		switch {
		case len(r.Callers) > 0:
			quoted := make([]string, len(r.Callers))
			for j, c := range r.Callers {
				quoted[j] = strconv.Quote(c)
			}
			access = "Callers: []string{" + strings.Join(quoted, ", ") + "}"
		case r.Public:
			access = "Public: true"
		default:
			access = "Permission: " + strconv.Quote(r.Permission)
		}
		fmt.Fprintf(b, "\t\t{Pattern: %q, Access: kernel.Access{%s}},\n", r.Method+" "+r.Path, access)
		sources = append(sources, Source{"route " + r.Method + " " + r.Path, m.PosOf(fmt.Sprintf("/spec/routes/%d", i))})
	}
	b.WriteString("\t}\n}\n\n")
	return sources
}

// writeEvents writes Events(), the module's event contracts.
func (g *gen) writeEvents(b *bytes.Buffer, m *manifest.Module) ([]Source, error) {
	b.WriteString("// Events is for Init: k.UseContracts(contract.Events()).\nfunc Events() contracts.Set {\n\treturn contracts.Set{\n")
	b.WriteString("\t\tPublishes: map[string]contracts.EventSchema{\n")
	var sources []Source
	for i, p := range m.Spec.Events.Publishes {
		schema, err := g.compactSchema(p.Schema)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(b, "\t\t\t%q: {Version: %d, Schema: %q},\n", p.Topic, p.PayloadVersion(), schema)
		sources = append(sources, Source{"schema of " + p.Topic, m.PosOf(fmt.Sprintf("/spec/events/publishes/%d", i))})
	}
	b.WriteString("\t\t},\n\t\tSubscribes: map[string][]contracts.EventSchema{\n")
	subs := map[string][]string{}
	for i, s := range m.Spec.Events.Subscribes {
		_, p, ok := g.publication(s.Topic)
		if !ok {
			continue // external: no contract
		}
		var entries []string
		for _, v := range acceptedVersions(s, p) {
			schema, err := g.compactSchema(p.SchemaFor(v))
			if err != nil {
				return nil, err
			}
			entries = append(entries, fmt.Sprintf("{Version: %d, Schema: %q}", v, schema))
		}
		subs[s.Topic] = entries
		sources = append(sources, Source{"versions read from " + s.Topic, m.PosOf(fmt.Sprintf("/spec/events/subscribes/%d", i))})
	}
	topics := make([]string, 0, len(subs))
	for t := range subs {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		fmt.Fprintf(b, "\t\t\t%q: {%s},\n", t, strings.Join(subs[t], ", "))
	}
	b.WriteString("\t\t},\n\t}\n}\n")
	return sources, nil
}

// compactSchema reads a schema file (relative to the repository root) as compact JSON.
func (g *gen) compactSchema(p string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(g.set.Root, p))
	if err != nil {
		return "", fmt.Errorf("schema: %w", err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", fmt.Errorf("schema %s: %w", p, err)
	}
	return b.String(), nil
}
