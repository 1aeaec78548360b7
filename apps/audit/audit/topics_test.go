package audit

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/goplt/goplt/internal/manifest"
)

// Audit records exactly the topics whose publications say audit: true, each delivered to
// /events/<topic> with dead letters to audit.deadletter: a topic in one and not the other is
// either never delivered or answered 404 (and lost).
func TestTopicsAreTheAuditedPublications(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", "..", ".."))
	set, err := manifest.LoadDir(filepath.Join(root, "manifests"), root)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range set.Modules {
		for _, p := range m.Spec.Events.Publishes {
			if p.Audit {
				want = append(want, p.Topic)
			}
		}
	}
	slices.Sort(want)
	if got := Topics(); !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("audit records %v, the manifests audit %v (run goplt generate)", got, want)
	}
	for _, s := range set.Module("audit").Spec.Events.Subscribes {
		if s.Topic == DeadLetterTopic {
			continue
		}
		if s.Route != "/events/"+s.Topic || s.DeadLetterTopic != DeadLetterTopic {
			t.Errorf("%s arrives at %s, dead letters to %q", s.Topic, s.Route, s.DeadLetterTopic)
		}
	}
}
