package contracts

import (
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// rawManifest is what the comparisons read of a module manifest. It is decoded without the
// rest of validation, so an older revision whose manifests today's rules would refuse can
// still be compared.
type rawManifest struct {
	file     string // relative to the tree's root
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Routes []struct {
			Method     string   `yaml:"method"`
			Path       string   `yaml:"path"`
			Permission string   `yaml:"permission"`
			Public     bool     `yaml:"public"`
			Callers    []string `yaml:"callers"`
			Request    string   `yaml:"request"`
			Response   *struct {
				Status int    `yaml:"status"`
				Schema string `yaml:"schema"`
			} `yaml:"response"`
		} `yaml:"routes"`
		Events struct {
			Publishes []struct {
				Topic   string `yaml:"topic"`
				Version int    `yaml:"version"`
				Schema  string `yaml:"schema"`
			} `yaml:"publishes"`
		} `yaml:"events"`
	} `yaml:"spec"`
}

// modules reads the module manifests of a tree (<root>/manifests/*.yaml).
func modules(root string) ([]rawManifest, error) {
	files, err := filepath.Glob(filepath.Join(root, "manifests", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []rawManifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var m rawManifest
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if m.Kind != "Module" {
			continue
		}
		m.file, _ = filepath.Rel(root, f)
		out = append(out, m)
	}
	return out, nil
}

// readSchema reads a schema file of a tree.
func readSchema(root, rel string) (map[string]any, error) {
	raw, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	s, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return s, nil
}

// Published reads the events a tree's manifests publish, with their schemas. where maps a
// topic to its manifest file.
func Published(root string) (events map[string]Event, where map[string]string, err error) {
	mods, err := modules(root)
	if err != nil {
		return nil, nil, err
	}
	events, where = map[string]Event{}, map[string]string{}
	for _, m := range mods {
		for _, p := range m.Spec.Events.Publishes {
			s, err := readSchema(root, p.Schema)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: schema of %s: %w", m.file, p.Topic, err)
			}
			events[p.Topic] = Event{Topic: p.Topic, Version: max(p.Version, 1), Schema: s}
			where[p.Topic] = m.file
		}
	}
	return events, where, nil
}
