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
// package that publishes or subscribes: the schemas the kernel checks payloads against
// (kernel.UseContracts), embedded so the app needs no schema files at run time.
func (g *gen) contractCode() error {
	for _, m := range g.set.Modules {
		if m.Spec.App.Build == "" || !hasEvents(m) {
			continue
		}
		var b bytes.Buffer
		b.WriteString(GoHeader)
		fmt.Fprintf(&b, "\n// Package contract holds the event contracts of module %s (manifests/%s.yaml): the schema of\n"+
			"// each event it publishes and of each payload version its subscriptions read.\npackage contract\n\n", m.Metadata.Name, m.Metadata.Name)
		fmt.Fprintf(&b, "import %q\n\n", contractsImport)
		b.WriteString("// Events is for Init: k.UseContracts(contract.Events()).\nfunc Events() contracts.Set {\n\treturn contracts.Set{\n")
		b.WriteString("\t\tPublishes: map[string]contracts.EventSchema{\n")
		var sources []Source
		for i, p := range m.Spec.Events.Publishes {
			schema, err := g.compactSchema(p.Schema)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "\t\t\t%q: {Version: %d, Schema: %q},\n", p.Topic, p.PayloadVersion(), schema)
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
					return err
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
			fmt.Fprintf(&b, "\t\t\t%q: {%s},\n", t, strings.Join(subs[t], ", "))
		}
		b.WriteString("\t\t},\n\t}\n}\n")
		src, err := format.Source(b.Bytes())
		if err != nil {
			return fmt.Errorf("event contracts of %s: %w", m.Metadata.Name, err)
		}
		g.out = append(g.out, Artifact{Path: path.Join(strings.TrimPrefix(m.Spec.App.Build, "./"), "contract", "contract_gen.go"), Data: src, Sources: sources})
	}
	return nil
}

// compactSchema reads a schema file (relative to the repository root) as compact JSON.
func (g *gen) compactSchema(p string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(g.set.Root, p))
	if err != nil {
		return "", fmt.Errorf("event schema: %w", err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", fmt.Errorf("event schema %s: %w", p, err)
	}
	return b.String(), nil
}
