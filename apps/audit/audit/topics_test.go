package audit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// The Go list of recorded topics and the manifest's subscriptions must not drift apart: a
// topic in one and not the other is either never delivered or answered 404 (and lost).
func TestTopicsMatchManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "manifests", "audit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			Events struct {
				Subscribes []struct {
					Topic, Route    string
					DeadLetterTopic string `yaml:"deadLetterTopic"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range m.Spec.Events.Subscribes {
		if s.Route != "/events/"+s.Topic {
			t.Errorf("%s arrives at %s, want /events/%s", s.Topic, s.Route, s.Topic)
		}
		if s.Topic == DeadLetterTopic {
			continue
		}
		if s.DeadLetterTopic != DeadLetterTopic {
			t.Errorf("%s: dead letters go to %q, want %s", s.Topic, s.DeadLetterTopic, DeadLetterTopic)
		}
		got = append(got, s.Topic)
	}
	want := slices.Clone(Topics)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("manifest subscribes to %v, the module records %v", got, want)
	}
}
