package watch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A change reaches the apps built from the changed package, directly or through imports, and
// embedded files count; tests and unrelated files do not.
func TestChangesMapToTheAppsBuiltFromThem(t *testing.T) {
	root := t.TempDir()
	write(t, root, "go.mod", "module example.com/w\n\ngo 1.26\n")
	write(t, root, "lib/lib.go", "package lib\n\nfunc X() int { return 1 }\n")
	write(t, root, "apps/one/main.go", "package main\n\nimport _ \"example.com/w/lib\"\n\nfunc main() {}\n")
	write(t, root, "apps/one/migrations/1.sql", "select 1;\n")
	write(t, root, "apps/two/main.go", "package main\n\nfunc main() {}\n")
	write(t, root, "manifests/one.yaml", "kind: Module\n")
	ctx := context.Background()
	w, err := New(ctx, root, map[string]string{"one": "./apps/one", "two": "./apps/two"})
	if err != nil {
		t.Fatal(err)
	}
	w.Interval, w.Settle = 20*time.Millisecond, 30*time.Millisecond
	next := func(edit func()) Change {
		t.Helper()
		time.Sleep(20 * time.Millisecond) // a new mtime even on coarse clocks
		edit()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ch, err := w.Next(cctx)
		if err != nil {
			t.Fatalf("no change seen: %v", err)
		}
		return ch
	}
	for _, c := range []struct {
		file, content string
		apps          []string
		definitions   bool
	}{
		{"lib/lib.go", "package lib\n\nfunc X() int { return 2 }\n", []string{"one"}, false},
		{"apps/two/main.go", "package main\n\nfunc main() { println() }\n", []string{"two"}, false},
		{"apps/one/migrations/2.sql", "select 2;\n", []string{"one"}, false},
		{"apps/two/extra.go", "package main\n\nvar x = 1\n", []string{"two"}, false},
		{"manifests/one.yaml", "kind: Module # edited\n", nil, true},
	} {
		ch := next(func() { write(t, root, c.file, c.content) })
		if !slices.Equal(ch.Apps, c.apps) || (len(ch.Definitions) > 0) != c.definitions {
			t.Errorf("%s: change %+v, want apps %v, definitions %v", c.file, ch, c.apps, c.definitions)
		}
	}
	// A test file, and a file in no watched folder, change nothing.
	write(t, root, "apps/one/main_test.go", "package main\n")
	write(t, root, "docs/readme.md", "x\n")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if ch, err := w.Next(cctx); err == nil {
		t.Errorf("a test file or an unwatched file was reported: %+v", ch)
	}
}
