package contracts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// Golden pairs: testdata/pairs/<case>/{old,new}.json and want.txt ("compatible", or one
// change per line).
func TestGoldenPairs(t *testing.T) {
	dirs, err := filepath.Glob("testdata/pairs/*")
	if err != nil || len(dirs) < 8 {
		t.Fatalf("golden pairs: %v (%d)", err, len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range Breaking(load(t, filepath.Join(dir, "old.json")), load(t, filepath.Join(dir, "new.json")), "version") {
				got = append(got, c.String())
			}
			g := strings.Join(got, "\n")
			if len(got) == 0 {
				g = "compatible"
			}
			if g != strings.TrimSpace(string(want)) {
				t.Errorf("got:\n%s\nwant:\n%s", g, want)
			}
			if strings.HasPrefix(filepath.Base(dir), "compatible") != (len(got) == 0) {
				t.Errorf("the case's name and its result disagree")
			}
		})
	}
}

func TestCompare(t *testing.T) {
	v1 := load(t, "testdata/pairs/breaking-field-removed/old.json")
	v1b := load(t, "testdata/pairs/breaking-field-removed/new.json")
	reannotated := load(t, "testdata/pairs/compatible-annotations/old.json")
	old := map[string]Event{
		"a.thing.made":    {Topic: "a.thing.made", Version: 1, Schema: v1},
		"a.thing.gone":    {Topic: "a.thing.gone", Version: 1, Schema: v1},
		"a.thing.bumped":  {Topic: "a.thing.bumped", Version: 1, Schema: v1},
		"a.thing.renamed": {Topic: "a.thing.renamed", Version: 1, Schema: reannotated},
	}
	new := map[string]Event{
		"a.thing.made":    {Topic: "a.thing.made", Version: 1, Schema: v1b},                                                          // same version, other schema
		"a.thing.bumped":  {Topic: "a.thing.bumped", Version: 2, Schema: v1b},                                                        // new version, still breaking
		"a.thing.renamed": {Topic: "a.thing.renamed", Version: 1, Schema: load(t, "testdata/pairs/compatible-annotations/new.json")}, // annotations only
	}
	var got []string
	for _, c := range Compare(old, new) {
		got = append(got, c.Topic+" "+c.Rule)
	}
	want := "a.thing.bumped field-removed,a.thing.gone topic-removed,a.thing.made version-reused"
	if strings.Join(got, ",") != want {
		t.Errorf("got %v\nwant %s", got, want)
	}
}
