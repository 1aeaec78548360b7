package contracts

import (
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Published reads the events a tree's manifests publish (<root>/manifests/*.yaml) with their
// schemas, without the rest of validation, so an older revision whose manifests today's rules
// would refuse can still be compared. where maps a topic to its manifest file.
func Published(root string) (events map[string]Event, where map[string]string, err error) {
	files, err := filepath.Glob(filepath.Join(root, "manifests", "*.yaml"))
	if err != nil {
		return nil, nil, err
	}
	events, where = map[string]Event{}, map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Events struct {
					Publishes []struct {
						Topic   string `yaml:"topic"`
						Version int    `yaml:"version"`
						Schema  string `yaml:"schema"`
					} `yaml:"publishes"`
				} `yaml:"events"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		if doc.Kind != "Module" {
			continue
		}
		for _, p := range doc.Spec.Events.Publishes {
			raw, err := os.ReadFile(filepath.Join(root, p.Schema))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: schema of %s: %w", f, p.Topic, err)
			}
			s, err := Parse(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.Schema, err)
			}
			events[p.Topic] = Event{Topic: p.Topic, Version: max(p.Version, 1), Schema: s}
			rel, _ := filepath.Rel(root, f)
			where[p.Topic] = rel
		}
	}
	return events, where, nil
}
